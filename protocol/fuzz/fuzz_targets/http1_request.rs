//! The proxy's HTTP/1 request reader (`fjord_proxy::http1::request::read_request`, the
//! public listener's parser) on arbitrary client bytes: it must return requests or
//! errors, never panic, and what it makes of a byte stream must not depend on how the
//! network happened to split it into reads.
//!
//! Input layout: byte 0 seeds the read sizes of the fragmented pass (0 = one byte per
//! read, otherwise 1..=byte sizes from a xorshift sequence); byte 1 picks the body limit
//! (`byte × 16` bytes); the rest is what the client sends on one connection.
//!
//! The bytes are read twice, each time request after request (keep-alive, pipelining)
//! until the client's end, an error, or 64 requests: once with every read returning as
//! much as fits, once fragmented. Both passes must give the same outcomes — each
//! request's method, target, version, headers, body and keep-alive flag, or the error.
//! Every body is within the limit; a `Content-Length` body without `Transfer-Encoding`
//! has that length.

#![no_main]

use fjord_proxy::http1::request::{read_request, RequestError};
use libfuzzer_sys::fuzz_target;

#[path = "common/replay.rs"]
mod replay;
use replay::{complete, Replay, Sizes};

/// Requests read from one connection at most (the outcome list stays small).
const MAX_REQUESTS: usize = 64;

#[derive(Debug, PartialEq)]
enum Outcome {
    Request {
        method: String,
        target: String,
        version: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        keep_alive: bool,
    },
    Closed,
    Error(String),
}

fn read_all(data: &[u8], sizes: Option<Sizes>, max_body: usize) -> Vec<Outcome> {
    let mut wire = Replay::new(data, sizes);
    let mut carry = Vec::new();
    let mut outcomes = Vec::new();
    while outcomes.len() < MAX_REQUESTS {
        match complete(
            read_request(&mut wire, &mut carry, max_body),
            "read_request",
        ) {
            Ok(Some(parsed)) => {
                let request = parsed.inner;
                let body = request.body().to_vec();
                assert!(body.len() <= max_body, "body over the limit");
                let headers = request.headers();
                if !headers.contains_key(http::header::TRANSFER_ENCODING) {
                    if let Some(length) = headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<usize>().ok())
                    {
                        assert_eq!(
                            body.len(),
                            length,
                            "body length differs from Content-Length"
                        );
                    }
                }
                outcomes.push(Outcome::Request {
                    method: request.method().to_string(),
                    target: request.uri().to_string(),
                    version: format!("{:?}", request.version()),
                    headers: headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    body,
                    keep_alive: parsed.keep_alive,
                });
            }
            Ok(None) => {
                outcomes.push(Outcome::Closed);
                break;
            }
            Err(error) => {
                assert!(
                    !matches!(error, RequestError::Io(_)),
                    "an in-memory stream cannot fail: {error}"
                );
                outcomes.push(Outcome::Error(error.to_string()));
                break;
            }
        }
    }
    outcomes
}

fuzz_target!(|data: &[u8]| {
    let [seed, limit, wire @ ..] = data else {
        return;
    };
    let max_body = usize::from(*limit) * 16;
    let whole = read_all(wire, None, max_body);
    let fragmented = read_all(wire, Some(Sizes::new(*seed)), max_body);
    assert_eq!(whole, fragmented, "outcome depends on read boundaries");
});
