//! Keep-alive data of stream holds (§2.2 `Grip-Keep-Alive`, §2.5 `keep-alive`, §6.2).
//!
//! Header values cannot carry every byte, so `Grip-Keep-Alive` names a format for its data:
//! `raw` (as written), `cstring` (backslash escapes) or `base64`.

use std::time::Duration;

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;

/// Keep-alive period when none is given (§2.2, §2.5).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(55);
/// Shorter periods are raised to this (§2.2).
pub const MIN_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Standard alphabet; padding optional, as the origin libraries do not all emit it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveFormat {
    Raw,
    Cstring,
    Base64,
}

impl KeepAliveFormat {
    /// The `format=` parameter; an empty value means `raw`, as in Pushpin.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "" | "raw" => Some(KeepAliveFormat::Raw),
            "cstring" => Some(KeepAliveFormat::Cstring),
            "base64" => Some(KeepAliveFormat::Base64),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeepAliveFormat::Raw => "raw",
            KeepAliveFormat::Cstring => "cstring",
            KeepAliveFormat::Base64 => "base64",
        }
    }
}

/// When the keep-alive timer restarts (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// Restarts on every write to the client: bytes are sent only after `timeout` of silence.
    Idle,
    /// Fixed period regardless of traffic.
    Interval,
}

impl KeepAliveMode {
    /// The `mode=` parameter; an empty value means `idle`, as in Pushpin.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "" | "idle" => Some(KeepAliveMode::Idle),
            "interval" => Some(KeepAliveMode::Interval),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeepAliveMode::Idle => "idle",
            KeepAliveMode::Interval => "interval",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepAliveError {
    #[error("cstring data ends with a lone backslash")]
    TrailingBackslash,
    #[error("cstring escape \\x needs two hex digits")]
    BadHexEscape,
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Zero bytes written to a chunked response would end it, so keep-alive data must exist.
    #[error("keep-alive data is empty")]
    Empty,
}

/// A stream hold's keep-alive: non-empty bytes written after `timeout` (at least 1 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAlive {
    data: Bytes,
    timeout: Duration,
    mode: KeepAliveMode,
}

impl KeepAlive {
    /// Raises a timeout below [`MIN_KEEP_ALIVE_TIMEOUT`] to it (§2.2) and rejects empty data.
    pub fn new(
        data: Bytes,
        timeout: Duration,
        mode: KeepAliveMode,
    ) -> Result<Self, KeepAliveError> {
        if data.is_empty() {
            return Err(KeepAliveError::Empty);
        }
        Ok(KeepAlive {
            data,
            timeout: timeout.max(MIN_KEEP_ALIVE_TIMEOUT),
            mode,
        })
    }

    pub fn data(&self) -> &Bytes {
        &self.data
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn mode(&self) -> KeepAliveMode {
        self.mode
    }
}

/// Decodes `Grip-Keep-Alive` data written in `format`.
///
/// `cstring` understands `\\`, `\r`, `\n`, `\t` and `\xHH`. Pushpin knows all but `\t` and
/// silently drops any other escaped character together with its backslash; js-grip emits
/// `\t`, so it is decoded as TAB (§2.2) and everything else follows Pushpin.
pub fn decode_keepalive_data(
    input: &[u8],
    format: KeepAliveFormat,
) -> Result<Bytes, KeepAliveError> {
    match format {
        KeepAliveFormat::Raw => Ok(Bytes::copy_from_slice(input)),
        KeepAliveFormat::Cstring => decode_cstring(input).map(Bytes::from),
        KeepAliveFormat::Base64 => Ok(Bytes::from(BASE64.decode(input.trim_ascii())?)),
    }
}

fn decode_cstring(input: &[u8]) -> Result<Vec<u8>, KeepAliveError> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next().ok_or(KeepAliveError::TrailingBackslash)? {
            b'\\' => out.push(b'\\'),
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'x' => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(KeepAliveError::BadHexEscape),
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Writes bytes in the `cstring` format so that they survive as one `Grip-Keep-Alive`
/// element: printable ASCII stays, except `\`, `;` and `,`; edge spaces are escaped because
/// header values are trimmed.
pub fn encode_cstring(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    let last = data.len().saturating_sub(1);
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b' ' if i == 0 || i == last => out.push_str("\\x20"),
            b';' | b',' => out.push_str(&format!("\\x{b:02x}")),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Writes bytes in the `base64` format (standard alphabet, padded).
pub fn encode_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cstring(s: &str) -> Result<Bytes, KeepAliveError> {
        decode_keepalive_data(s.as_bytes(), KeepAliveFormat::Cstring)
    }

    #[test]
    fn cstring_decodes_the_pushpin_escapes() {
        assert_eq!(cstring(r"a\\b\r\n\x41\x7e").unwrap(), &b"a\\b\r\nA~"[..]);
    }

    #[test]
    fn cstring_decodes_tab_like_js_grip_emits_it() {
        assert_eq!(cstring(r"event:\tx\n\n").unwrap(), &b"event:\tx\n\n"[..]);
    }

    #[test]
    fn cstring_sse_comment_keep_alive() {
        assert_eq!(cstring(r":\n\n").unwrap(), &b":\n\n"[..]);
    }

    #[test]
    fn cstring_drops_unknown_escapes_like_pushpin() {
        assert_eq!(cstring(r#"a\qb\"c\0"#).unwrap(), &b"abc"[..]);
    }

    #[test]
    fn cstring_hex_escape_accepts_both_cases() {
        assert_eq!(cstring(r"\xFF\xab").unwrap(), &[0xff, 0xab][..]);
    }

    #[test]
    fn cstring_trailing_backslash_is_an_error() {
        assert_eq!(cstring(r"abc\"), Err(KeepAliveError::TrailingBackslash));
    }

    #[test]
    fn cstring_short_or_non_hex_escape_is_an_error() {
        assert_eq!(cstring(r"\x4"), Err(KeepAliveError::BadHexEscape));
        assert_eq!(cstring(r"\x"), Err(KeepAliveError::BadHexEscape));
        assert_eq!(cstring(r"\xg1"), Err(KeepAliveError::BadHexEscape));
    }

    #[test]
    fn raw_data_is_kept_verbatim() {
        let raw = decode_keepalive_data(br"\n", KeepAliveFormat::Raw).unwrap();
        assert_eq!(raw, &br"\n"[..]);
    }

    #[test]
    fn base64_decodes_with_or_without_padding() {
        let padded = decode_keepalive_data(b"Og0K", KeepAliveFormat::Base64).unwrap();
        assert_eq!(padded, &b":\r\n"[..]);
        let unpadded = decode_keepalive_data(b"Cg", KeepAliveFormat::Base64).unwrap();
        assert_eq!(unpadded, &b"\n"[..]);
        let with_padding = decode_keepalive_data(b"Cg==", KeepAliveFormat::Base64).unwrap();
        assert_eq!(with_padding, &b"\n"[..]);
    }

    #[test]
    fn base64_rejects_characters_outside_the_alphabet() {
        let err = decode_keepalive_data(b"Og0K!", KeepAliveFormat::Base64).unwrap_err();
        assert!(matches!(err, KeepAliveError::Base64(_)));
    }

    #[test]
    fn format_and_mode_params_default_on_empty_value() {
        assert_eq!(KeepAliveFormat::from_param(""), Some(KeepAliveFormat::Raw));
        assert_eq!(
            KeepAliveFormat::from_param("cstring"),
            Some(KeepAliveFormat::Cstring)
        );
        assert_eq!(KeepAliveFormat::from_param("hex"), None);
        assert_eq!(KeepAliveMode::from_param(""), Some(KeepAliveMode::Idle));
        assert_eq!(
            KeepAliveMode::from_param("interval"),
            Some(KeepAliveMode::Interval)
        );
        assert_eq!(KeepAliveMode::from_param("Idle"), None);
    }

    #[test]
    fn keep_alive_timeout_below_one_second_is_raised() {
        let ka = KeepAlive::new(
            Bytes::from_static(b"\n"),
            Duration::ZERO,
            KeepAliveMode::Idle,
        );
        assert_eq!(ka.unwrap().timeout(), Duration::from_secs(1));
    }

    #[test]
    fn keep_alive_with_empty_data_is_rejected() {
        let ka = KeepAlive::new(
            Bytes::new(),
            DEFAULT_KEEP_ALIVE_TIMEOUT,
            KeepAliveMode::Idle,
        );
        assert_eq!(ka, Err(KeepAliveError::Empty));
    }

    proptest! {
        #[test]
        fn cstring_round_trips(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let encoded = encode_cstring(&data);
            prop_assert!(encoded.is_ascii());
            prop_assert!(!encoded.contains([';', ',']));
            prop_assert_eq!(encoded.trim(), encoded.as_str());
            let decoded = decode_keepalive_data(encoded.as_bytes(), KeepAliveFormat::Cstring).unwrap();
            prop_assert_eq!(&decoded[..], &data[..]);
        }

        #[test]
        fn base64_round_trips(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let encoded = encode_base64(&data);
            let decoded = decode_keepalive_data(encoded.as_bytes(), KeepAliveFormat::Base64).unwrap();
            prop_assert_eq!(&decoded[..], &data[..]);
        }

        #[test]
        fn cstring_decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_keepalive_data(&data, KeepAliveFormat::Cstring);
        }
    }
}
