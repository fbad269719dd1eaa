//! Arbitrary bytes as a `POST /publish` body (§4.1) and, wrapped as
//! `{"items":[<bytes>]}`, as JSON publish items (§3): decoding must return an error or
//! items, never panic, and every item must survive to_json→from_json unchanged, both
//! as a value and through its compact text.

#![no_main]

use fjord_protocol::item::{parse_publish_request, PublishItem};
use libfuzzer_sys::fuzz_target;

fn assert_round_trip(item: &PublishItem) {
    let json = item.to_json();
    assert_eq!(PublishItem::from_json(&json, None).as_ref(), Ok(item));
    let body = format!("{{\"items\":[{json}]}}");
    let reparsed = parse_publish_request(body.as_bytes()).expect("to_json output decodes");
    assert_eq!(reparsed.as_slice(), std::slice::from_ref(item));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = parse_publish_request(data) {
        items.iter().for_each(assert_round_trip);
    }
    let mut wrapped = b"{\"items\":[".to_vec();
    wrapped.extend_from_slice(data);
    wrapped.extend_from_slice(b"]}");
    if let Ok(items) = parse_publish_request(&wrapped) {
        items.iter().for_each(assert_round_trip);
    }
});
