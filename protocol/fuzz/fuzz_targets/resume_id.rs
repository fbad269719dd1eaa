//! Arbitrary bytes as a `Last-Event-ID`: decoding must never panic, and whatever decodes
//! must re-encode to the same id (the encoding is canonical) and decode again to itself.
#![no_main]

use fjord_protocol::resume::ResumePosition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = String::from_utf8_lossy(data);
    if let Ok(position) = ResumePosition::decode(&id) {
        let encoded = position.encode();
        assert_eq!(encoded, id);
        assert_eq!(ResumePosition::decode(&encoded).as_ref(), Ok(&position));
    }
});
