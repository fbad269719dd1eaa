//! The event payload shared by publishers and subscribers.
//!
//! Every published message is the JSON object `{"seq":N,"ts":T}` where `T` is
//! the publisher's wall clock in microseconds since the Unix epoch, taken just
//! before the message is handed to the system under test. Subscribers subtract
//! it from their own clock (same machine, same clock) to get end-to-end latency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The message body: `{"seq":N,"ts":T}`.
pub fn body(seq: u64, ts_us: u64) -> String {
    format!("{{\"seq\":{seq},\"ts\":{ts_us}}}")
}

/// The same message framed as one SSE event (for publishers that append raw
/// bytes to the stream, i.e. GRIP `http-stream` content).
pub fn sse_event(seq: u64, ts_us: u64) -> String {
    format!("data: {}\n\n", body(seq, ts_us))
}

/// Extracts the `ts` field from an SSE `data:` value or a bare body.
pub fn parse_ts(data: &[u8]) -> Option<u64> {
    parse_field(data, b"\"ts\":")
}

/// Extracts the `seq` field from an SSE `data:` value or a bare body.
pub fn parse_seq(data: &[u8]) -> Option<u64> {
    parse_field(data, b"\"seq\":")
}

/// The decimal number right after `key` (`"name":`) in `data`.
fn parse_field(data: &[u8], key: &[u8]) -> Option<u64> {
    let pos = data.windows(key.len()).position(|w| w == key)?;
    let digits = &data[pos + key.len()..];
    let mut value: u64 = 0;
    let mut any = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ev = sse_event(7, 1_700_000_000_123_456);
        assert_eq!(ev, "data: {\"seq\":7,\"ts\":1700000000123456}\n\n");
        assert_eq!(parse_ts(ev.as_bytes()), Some(1_700_000_000_123_456));
        assert_eq!(parse_ts(b"data: hello"), None);
        assert_eq!(parse_seq(ev.as_bytes()), Some(7));
    }
}
