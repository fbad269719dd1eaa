//! Arbitrary bytes into the tnetstring decoder (§4.6): it must return an error or a
//! value, never panic or overflow the stack, and every value it returns must survive
//! encode→decode unchanged.

#![no_main]

use fjord_protocol::tnetstring::{decode, decode_prefix, encode, encoded_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((value, rest)) = decode_prefix(data) {
        let wire = encode(&value);
        assert_eq!(wire.len(), encoded_len(&value));
        assert_eq!(decode(&wire).as_ref(), Ok(&value));
        assert_eq!(decode(data).is_ok(), rest.is_empty());
    }
});
