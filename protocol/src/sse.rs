//! Server-sent events encoding (WHATWG HTML, "Server-sent events", event stream format).
//!
//! Used where Fjord itself frames SSE: the relay wraps Kafka record values (§9: `id:`,
//! `event:`, one `data:` line per value line, blank-line terminated) and direct mode writes
//! events, keep-alive comments and `retry:` hints (§6.2, §6.3). The hub encodes an event once
//! per published item and shares the bytes with every subscriber (design "Performance
//! principles"), so the encoders write into a caller's [`BufMut`] (`Vec<u8>` or
//! [`BytesMut`]) and can report the exact size beforehand.
//!
//! Every value is written as `name: value` (with the space) because a receiver strips exactly
//! one leading space: a data line that itself starts with a space survives the round trip.
//! Line breaks inside data and comments (CR, LF or CRLF, all three being line terminators for
//! a receiver) start a new `data:` / `:` line, so a receiver sees the same lines joined by LF.

use bytes::{BufMut, Bytes, BytesMut};

/// A field value that would corrupt the stream if written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A CR or LF would end the field early and turn the rest into another field.
    #[error("SSE {field} field must not contain CR or LF")]
    LineBreak {
        /// `"id"` or `"event"`.
        field: &'static str,
    },
    /// Receivers ignore an `id` field containing NUL, which would silently break resume.
    #[error("SSE id field must not contain NUL")]
    NulInId,
}

/// One event: optional `id`, `event` and `retry` fields followed by its data lines.
///
/// Data is bytes rather than `str` so a Kafka record value can be framed without a UTF-8
/// check; a receiver decodes the stream as UTF-8 (invalid sequences become U+FFFD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// Becomes the client's `Last-Event-ID` (design "Resume").
    pub id: Option<&'a str>,
    /// Event type; receivers default to `message` when absent.
    pub event: Option<&'a str>,
    /// Reconnection delay hint in milliseconds.
    pub retry_ms: Option<u64>,
    /// Payload; always emitted, so an empty payload still dispatches an event with empty data.
    pub data: &'a [u8],
}

impl<'a> SseEvent<'a> {
    /// An event carrying `data` and no other field.
    pub fn new<D: AsRef<[u8]> + ?Sized>(data: &'a D) -> Self {
        Self {
            id: None,
            event: None,
            retry_ms: None,
            data: data.as_ref(),
        }
    }

    /// Sets the `id` field.
    pub fn with_id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the `event` field.
    pub fn with_event(mut self, event: &'a str) -> Self {
        self.event = Some(event);
        self
    }

    /// Sets the `retry` field.
    pub fn with_retry_ms(mut self, retry_ms: u64) -> Self {
        self.retry_ms = Some(retry_ms);
        self
    }

    /// Checks the fields that cannot be split over lines; encoding calls this first so a
    /// rejected event leaves the buffer untouched.
    pub fn validate(&self) -> Result<(), SseError> {
        if let Some(id) = self.id {
            if has_line_break(id.as_bytes()) {
                return Err(SseError::LineBreak { field: "id" });
            }
            if id.as_bytes().contains(&0) {
                return Err(SseError::NulInId);
            }
        }
        if let Some(event) = self.event {
            if has_line_break(event.as_bytes()) {
                return Err(SseError::LineBreak { field: "event" });
            }
        }
        Ok(())
    }

    /// Exact number of bytes [`SseEvent::encode`] writes, for sizing a buffer once.
    pub fn encoded_len(&self) -> usize {
        let id = self.id.map_or(0, |id| field_len(b"id", id.as_bytes()));
        let event = self
            .event
            .map_or(0, |ev| field_len(b"event", ev.as_bytes()));
        let retry = self.retry_ms.map_or(0, retry_len);
        let data: usize = lines(self.data).map(|line| field_len(b"data", line)).sum();
        id + event + retry + data + 1
    }

    /// Appends the event, terminated by its blank line, to `buf`.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), SseError> {
        self.validate()?;
        if let Some(id) = self.id {
            put_field(buf, b"id", id.as_bytes());
        }
        if let Some(event) = self.event {
            put_field(buf, b"event", event.as_bytes());
        }
        if let Some(retry_ms) = self.retry_ms {
            put_retry(buf, retry_ms);
        }
        for line in lines(self.data) {
            put_field(buf, b"data", line);
        }
        buf.put_u8(b'\n');
        Ok(())
    }

    /// The event as shareable bytes, allocated once at the exact size.
    pub fn to_bytes(&self) -> Result<Bytes, SseError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// Appends comment lines (`: text`), one per line of `text`; receivers ignore them, which
/// makes them the SSE keep-alive (§6.2, design "Security"). No blank line is added: a comment
/// between two events does not affect either.
pub fn encode_comment<B: BufMut>(buf: &mut B, text: &str) {
    for line in lines(text.as_bytes()) {
        put_field(buf, b"", line);
    }
}

/// Exact number of bytes [`encode_comment`] writes.
pub fn comment_len(text: &str) -> usize {
    lines(text.as_bytes())
        .map(|line| field_len(b"", line))
        .sum()
}

/// Appends a `retry:` hint as its own block. A block without data dispatches no event and
/// leaves the last event id alone, so the hint can be sent at any point between events.
pub fn encode_retry<B: BufMut>(buf: &mut B, retry_ms: u64) {
    put_retry(buf, retry_ms);
    buf.put_u8(b'\n');
}

fn has_line_break(value: &[u8]) -> bool {
    value.iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Lines of `value` split at CRLF, CR or LF, as a receiver would split them; an empty value
/// is one empty line, and a trailing terminator yields a final empty line.
fn lines(value: &[u8]) -> Lines<'_> {
    Lines { rest: Some(value) }
}

struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(at) => {
                let (line, tail) = rest.split_at(at);
                let skip = if tail.starts_with(b"\r\n") { 2 } else { 1 };
                self.rest = tail.get(skip..);
                Some(line)
            }
        }
    }
}

/// `name: value\n`, or `name:\n` for an empty value; an empty name makes a comment line.
fn put_field<B: BufMut>(buf: &mut B, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    if value.is_empty() {
        buf.put_slice(b":\n");
    } else {
        buf.put_slice(b": ");
        buf.put_slice(value);
        buf.put_u8(b'\n');
    }
}

fn field_len(name: &[u8], value: &[u8]) -> usize {
    if value.is_empty() {
        name.len() + 2
    } else {
        name.len() + 3 + value.len()
    }
}

fn put_retry<B: BufMut>(buf: &mut B, retry_ms: u64) {
    let mut digits = [0u8; 20];
    let text = format_u64(retry_ms, &mut digits);
    put_field(buf, b"retry", text);
}

fn retry_len(retry_ms: u64) -> usize {
    let mut digits = [0u8; 20];
    field_len(b"retry", format_u64(retry_ms, &mut digits))
}

/// Decimal digits of `value` without allocating (the hot path writes many events).
fn format_u64(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &digits[start..]
}

#[cfg(test)]
mod tests;
