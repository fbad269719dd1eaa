//! Origin responses with arbitrary GRIP headers and bodies: `Instruction::parse` (§2) and
//! the link resolver must return errors, never panic.
//!
//! Input layout: byte 0 picks the status code; the rest is split at NUL bytes; every part
//! but the last is one header (its first byte picks the name, the remainder is the value);
//! the last part is the body. A header selector byte of 0xf0 or more stands for
//! `Content-Type: application/grip-instruct`.

#![no_main]

use fjord_protocol::header::{parse_list, GripLast};
use fjord_protocol::instruction::{is_grip_response, resolve_link, Instruction};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 14] = [
    "grip-hold",
    "grip-channel",
    "grip-timeout",
    "grip-keep-alive",
    "grip-set-meta",
    "grip-link",
    "grip-status",
    "grip-expose-headers",
    "grip-session-id",
    "grip-last",
    "content-type",
    "x-origin",
    "content-length",
    "grip-unknown",
];

const STATUSES: [u16; 6] = [200, 200, 204, 404, 500, 999];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let status = StatusCode::from_u16(STATUSES[usize::from(selector) % STATUSES.len()])
        .unwrap_or(StatusCode::OK);

    let mut parts: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let body = parts.pop().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for part in parts.iter().take(16) {
        let Some((&which, value)) = part.split_first() else {
            continue;
        };
        // High selector bytes mark the body as JSON instructions, which random bytes
        // would rarely spell out.
        let (name, value) = if which >= 0xf0 {
            (
                http::header::CONTENT_TYPE,
                &b"application/grip-instruct"[..],
            )
        } else {
            (
                HeaderName::from_static(NAMES[usize::from(which) % NAMES.len()]),
                value,
            )
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }

    let _ = is_grip_response(&headers);
    if let Ok(instruction) = Instruction::parse(status, &headers, body) {
        for link in instruction
            .next_link
            .iter()
            .map(|l| &l.uri)
            .chain(&instruction.gone_link)
        {
            let _ = resolve_link("/a/b?c=d", link);
        }
    }
    for value in headers.values() {
        let _ = parse_list([value.as_bytes()]);
        let _ = GripLast::parse_all([value.as_bytes()]);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = resolve_link("/base/path", text);
        let _ = resolve_link(text, "x/../y?z");
    }
});
