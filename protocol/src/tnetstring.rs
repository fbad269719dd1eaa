//! tnetstring, the self-delimiting encoding of the ZeroMQ publish inputs, the command
//! socket and the stats socket (§4.2–§4.6).
//!
//! Grammar (§4.6): `value = size ":" payload type`, where `size` is 1–9 decimal digits
//! giving the payload length and `type` is one of `,` (byte string), `#` (integer),
//! `^` (float), `!` (boolean), `~` (null), `}` (dict) or `]` (list).
//!
//! The decoder takes untrusted bytes: every length is checked against the enclosing
//! value before it is used, and nesting is bounded by [`MAX_DEPTH`] so that hostile
//! input cannot exhaust the stack.

use bytes::Bytes;

/// Deepest nesting of dicts and lists the decoder accepts. Publish items need about
/// six levels (item → formats → format → headers → header, or a JSON Patch value);
/// the margin leaves room for patch documents while keeping recursion shallow.
pub const MAX_DEPTH: usize = 64;

/// Largest payload a size field can express: the grammar allows at most nine digits.
pub const MAX_PAYLOAD_LEN: usize = 999_999_999;

/// One tnetstring value.
///
/// Byte strings are binary-safe (§3.5), so they are bytes, not text. Dicts keep the
/// wire order of their entries so that encoding reproduces a given byte layout; key
/// order carries no meaning, and [`Value::get`] resolves duplicate keys to the last
/// one, as a hash-based reader would.
#[derive(Debug, Clone)]
pub enum Value {
    Bytes(Bytes),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Dict(Vec<(Bytes, Value)>),
    List(Vec<Value>),
}

/// Equality is structural, except that two NaN floats compare equal: the encoder writes
/// NaN as `3:nan^`, and a value must equal its own decode→encode→decode image.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::Dict(a), Value::Dict(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// A byte string holding the UTF-8 bytes of `text`.
    pub fn str(text: &str) -> Value {
        Value::Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A dict from `(key, value)` pairs, in the given order.
    pub fn dict<K: AsRef<[u8]>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k.as_ref()), v))
                .collect(),
        )
    }

    /// The value stored under `key` when `self` is a dict; with duplicate keys the last
    /// one wins.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as text, when it is one and is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(Bytes, Value)]> {
        match self {
            Value::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Human-readable type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bytes(_) => "byte string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
            Value::Dict(_) => "dict",
            Value::List(_) => "list",
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::str(text)
    }
}

impl From<Bytes> for Value {
    fn from(bytes: Bytes) -> Self {
        Value::Bytes(bytes)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

/// Why a byte sequence is not a tnetstring. Every offset counts from the first byte of
/// the input given to [`decode`] or [`decode_prefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TnetstringError {
    #[error("input ends at byte {offset} inside the size field of a value")]
    Truncated { offset: usize },
    #[error("size field at byte {offset} is not a decimal number followed by ':'")]
    InvalidSize { offset: usize },
    #[error("size field at byte {offset} has more than 9 digits")]
    SizeTooLong { offset: usize },
    #[error(
        "value at byte {offset} declares a {size}-byte payload but only {available} bytes \
         (payload and type byte) are left in the enclosing buffer"
    )]
    Overrun {
        offset: usize,
        size: usize,
        available: usize,
    },
    #[error("unknown type byte 0x{byte:02x} at byte {offset}")]
    UnknownType { offset: usize, byte: u8 },
    #[error("integer payload at byte {offset} is not a 64-bit decimal integer")]
    InvalidInteger { offset: usize },
    #[error("float payload at byte {offset} is not a decimal number")]
    InvalidFloat { offset: usize },
    #[error("boolean payload at byte {offset} is neither 'true' nor 'false'")]
    InvalidBool { offset: usize },
    #[error("null at byte {offset} has a non-empty payload")]
    InvalidNull { offset: usize },
    #[error("dict key at byte {offset} is not a byte string")]
    NonStringKey { offset: usize },
    #[error("dict key at byte {offset} has no value (odd number of elements)")]
    MissingValue { offset: usize },
    #[error("value at byte {offset} nests deeper than {limit} dicts/lists")]
    TooDeep { offset: usize, limit: usize },
    #[error("{count} trailing bytes after the value, starting at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

/// Decodes `input`, which must hold exactly one value and nothing after it.
pub fn decode(input: &[u8]) -> Result<Value, TnetstringError> {
    let (value, rest) = decode_prefix(input)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(TnetstringError::TrailingBytes {
            offset: input.len() - rest.len(),
            count: rest.len(),
        })
    }
}

/// Decodes the first value of `input` and returns it with the bytes that follow it.
pub fn decode_prefix(input: &[u8]) -> Result<(Value, &[u8]), TnetstringError> {
    let (value, next) = Decoder { input }.value(0, input.len(), 0)?;
    Ok((value, input.get(next..).unwrap_or_default()))
}

struct Decoder<'a> {
    input: &'a [u8],
}

impl Decoder<'_> {
    /// Parses the value starting at `start`, which must end at or before `end`;
    /// `depth` is the number of enclosing dicts/lists. Returns the position after it.
    fn value(
        &self,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<(Value, usize), TnetstringError> {
        let (size, payload_start) = self.size(start, end)?;
        let available = end - payload_start;
        if size >= available {
            return Err(TnetstringError::Overrun {
                offset: start,
                size,
                available,
            });
        }
        let payload_end = payload_start + size;
        let payload = self.slice(payload_start, payload_end);
        let type_byte = self.input.get(payload_end).copied().unwrap_or_default();
        let invalid_at = payload_start;
        let value = match type_byte {
            b',' => Value::Bytes(Bytes::copy_from_slice(payload)),
            b'#' => Value::Int(
                parse_int(payload).ok_or(TnetstringError::InvalidInteger { offset: invalid_at })?,
            ),
            b'^' => Value::Float(
                parse_float(payload).ok_or(TnetstringError::InvalidFloat { offset: invalid_at })?,
            ),
            b'!' => match payload {
                b"true" => Value::Bool(true),
                b"false" => Value::Bool(false),
                _ => return Err(TnetstringError::InvalidBool { offset: invalid_at }),
            },
            b'~' if payload.is_empty() => Value::Null,
            b'~' => return Err(TnetstringError::InvalidNull { offset: invalid_at }),
            b'}' | b']' if depth >= MAX_DEPTH => {
                return Err(TnetstringError::TooDeep {
                    offset: start,
                    limit: MAX_DEPTH,
                })
            }
            b'}' => self.dict(payload_start, payload_end, depth + 1)?,
            b']' => self.list(payload_start, payload_end, depth + 1)?,
            byte => {
                return Err(TnetstringError::UnknownType {
                    offset: payload_end,
                    byte,
                })
            }
        };
        Ok((value, payload_end + 1))
    }

    /// Reads `1*9DIGIT ":"` at `start`; returns the size and the payload position.
    fn size(&self, start: usize, end: usize) -> Result<(usize, usize), TnetstringError> {
        let mut size = 0usize;
        let mut at = start;
        loop {
            if at >= end {
                return Err(TnetstringError::Truncated { offset: at });
            }
            let byte = self.input.get(at).copied().unwrap_or_default();
            match byte {
                b':' if at > start => return Ok((size, at + 1)),
                b'0'..=b'9' if at - start < 9 => size = size * 10 + usize::from(byte - b'0'),
                b'0'..=b'9' => return Err(TnetstringError::SizeTooLong { offset: start }),
                _ => return Err(TnetstringError::InvalidSize { offset: start }),
            }
            at += 1;
        }
    }

    fn dict(&self, mut at: usize, end: usize, depth: usize) -> Result<Value, TnetstringError> {
        let mut entries = Vec::new();
        while at < end {
            let key_at = at;
            let (key, next) = self.value(at, end, depth)?;
            let Value::Bytes(key) = key else {
                return Err(TnetstringError::NonStringKey { offset: key_at });
            };
            if next >= end {
                return Err(TnetstringError::MissingValue { offset: key_at });
            }
            let (value, next) = self.value(next, end, depth)?;
            entries.push((key, value));
            at = next;
        }
        Ok(Value::Dict(entries))
    }

    fn list(&self, mut at: usize, end: usize, depth: usize) -> Result<Value, TnetstringError> {
        let mut items = Vec::new();
        while at < end {
            let (item, next) = self.value(at, end, depth)?;
            items.push(item);
            at = next;
        }
        Ok(Value::List(items))
    }

    fn slice(&self, from: usize, to: usize) -> &[u8] {
        self.input.get(from..to).unwrap_or_default()
    }
}

/// `["+"|"-"] 1*DIGIT`, within the i64 range.
fn parse_int(payload: &[u8]) -> Option<i64> {
    let digits = match payload {
        [b'+' | b'-', rest @ ..] => rest,
        _ => payload,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(payload).ok()?.parse().ok()
}

/// Decimal notation (`1`, `-0.5`, `1e300`, `.5`), or `nan`/`inf`/`-inf` as written by
/// Python's tnetstring module and by [`encode`].
fn parse_float(payload: &[u8]) -> Option<f64> {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    if payload.is_empty() || !payload.iter().all(allowed) {
        return None;
    }
    std::str::from_utf8(payload).ok()?.parse().ok()
}

/// Encodes `value` as a fresh buffer.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`.
///
/// A payload longer than [`MAX_PAYLOAD_LEN`] cannot be expressed in nine digits; such a
/// value is still written, but no conforming decoder (including [`decode`]) accepts it.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bytes(b) => write_atom(out, b, b','),
        Value::Int(i) => write_atom(out, i.to_string().as_bytes(), b'#'),
        Value::Float(f) => write_atom(out, format_float(*f).as_bytes(), b'^'),
        Value::Bool(true) => out.extend_from_slice(b"4:true!"),
        Value::Bool(false) => out.extend_from_slice(b"5:false!"),
        Value::Null => out.extend_from_slice(b"0:~"),
        Value::Dict(entries) => {
            write_size(out, payload_len(value));
            for (key, item) in entries {
                write_atom(out, key, b',');
                encode_into(item, out);
            }
            out.push(b'}');
        }
        Value::List(items) => {
            write_size(out, payload_len(value));
            for item in items {
                encode_into(item, out);
            }
            out.push(b']');
        }
    }
}

/// Number of bytes [`encode`] produces for `value`.
pub fn encoded_len(value: &Value) -> usize {
    let payload = payload_len(value);
    decimal_len(payload) + 1 + payload + 1
}

fn payload_len(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len(),
        Value::Int(i) => i.to_string().len(),
        Value::Float(f) => format_float(*f).len(),
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Null => 0,
        Value::Dict(entries) => entries
            .iter()
            .map(|(k, v)| decimal_len(k.len()) + k.len() + 2 + encoded_len(v))
            .sum(),
        Value::List(items) => items.iter().map(encoded_len).sum(),
    }
}

/// Shortest text that parses back to the same `f64`, in the forms [`parse_float`] reads.
fn format_float(f: f64) -> String {
    if f.is_nan() {
        "nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{f:?}")
    }
}

fn write_atom(out: &mut Vec<u8>, payload: &[u8], type_byte: u8) {
    write_size(out, payload.len());
    out.extend_from_slice(payload);
    out.push(type_byte);
}

fn write_size(out: &mut Vec<u8>, size: usize) {
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b':');
}

fn decimal_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
pub(crate) mod tests;
