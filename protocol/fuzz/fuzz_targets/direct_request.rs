//! A direct-mode request's untrusted parts (README "Direct mode"): byte 0 picks the
//! parser, the rest is its input.
//!
//! - 0: a request target `path?query` against the template `/t/{tenant}/orders/{id}`:
//!   matching and query parsing never panic; every matched value is non-empty, free of
//!   control characters, and renders into the channel template; a percent-decoded pair
//!   re-encoded and decoded again gives itself.
//! - 1: a `Cookie` + `Authorization` header pair (split at the first 0xff) for token
//!   lookup: never panics, and a token found is a substring of the input.
//! - 2: a relay replay answer (NDJSON): parsing never panics, and every record it accepts
//!   has a position a resume id can carry.
#![no_main]

use fjord_protocol::form::{parse_query, percent_encode};
use fjord_protocol::resume::ResumePosition;
use fjord_proxy::direct::auth::find_token;
use fjord_proxy::direct::path::{ChannelTemplate, PathTemplate};

use fjord_proxy::direct::replay::{parse_replay, ReplayEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let Ok(target) = std::str::from_utf8(input) else {
                return;
            };
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let template = PathTemplate::parse("/t/{tenant}/orders/{id}").expect("template");
            let channel = ChannelTemplate::parse("{tenant}.orders.{id}", &template).expect("channel");
            if let Some(values) = template.matches(path) {
                for value in values.values() {
                    assert!(!value.is_empty());
                    assert!(!value.chars().any(char::is_control));
                }
                let rendered = channel.render(&values);
                assert!(rendered.contains(".orders."));
            }
            if let Ok(pairs) = parse_query(query) {
                for (name, value) in pairs {
                    let again = format!("{}={}", percent_encode(&name), percent_encode(&value));
                    let reparsed = parse_query(&again).expect("re-encoded pair parses");
                    assert_eq!(reparsed, vec![(name, value)]);
                }
            }
        }
        1 => {
            let mut parts = input.splitn(2, |&b| b == 0xff);
            let cookie = parts.next().unwrap_or_default();
            let authorization = parts.next().unwrap_or_default();
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_bytes(cookie) {
                headers.insert(http::header::COOKIE, value);
            }
            if let Ok(value) = http::HeaderValue::from_bytes(authorization) {
                headers.insert(http::header::AUTHORIZATION, value);
            }
            if let Some(token) = find_token(&headers, None, "fjord_token") {
                let haystack = String::from_utf8_lossy(input);
                assert!(haystack.contains(token));
            }
        }
        _ => {
            if let Ok(entries) = parse_replay("orders.1", input) {
                for entry in entries {
                    if let ReplayEntry::Record(record) = entry {
                        let mut position = ResumePosition::new();
                        assert!(position.advance_to(&record.position));
                    }
                }
            }
        }
    }
});
