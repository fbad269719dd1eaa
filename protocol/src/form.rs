//! Percent-encoding (RFC 3986 §2.1) and query strings in the
//! `application/x-www-form-urlencoded` form (`+` is a space), as the proxy's direct routes
//! and the relay's replay endpoint read and write them.

/// Why text is not validly percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent escape in {0:?}")]
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    #[error("{0:?} is not UTF-8 once decoded")]
    NotUtf8(String),
}

/// Decodes `%XX` escapes (a `+` stays a `+`: this is the path form).
pub fn percent_decode(text: &str) -> Result<String, FormError> {
    decode(text, false)
}

/// `name=value` pairs of a query string, decoded; a pair without `=` has an empty value.
/// One broken pair makes the whole query invalid, so a garbled token or cursor is reported
/// instead of being dropped.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, FormError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name, true)?, decode(value, true)?))
        })
        .collect()
}

/// Percent-encodes everything but the unreserved characters (RFC 3986 §2.3).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(text: &str, plus_is_space: bool) -> Result<String, FormError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let byte = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| FormError::BadEscape(text.to_owned()))?;
                out.push(byte);
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let pairs = parse_query("channel=a.b&channel=c%2Ed&token=x+y&mode").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("channel".into(), "a.b".into()),
                ("channel".into(), "c.d".into()),
                ("token".into(), "x y".into()),
                ("mode".into(), "".into()),
            ]
        );
    }

    #[test]
    fn broken_escapes_and_non_utf8_invalidate_the_query() {
        assert!(matches!(parse_query("a=%zz"), Err(FormError::BadEscape(_))));
        assert!(matches!(parse_query("a=%4"), Err(FormError::BadEscape(_))));
        assert!(matches!(parse_query("a=%ff"), Err(FormError::NotUtf8(_))));
    }

    #[test]
    fn a_plus_in_a_path_stays_a_plus() {
        assert_eq!(percent_decode("a+b%20c").unwrap(), "a+b c");
    }

    #[test]
    fn encoding_keeps_unreserved_characters_and_round_trips() {
        assert_eq!(percent_encode("orders.a b/c+d"), "orders.a%20b%2Fc%2Bd");
        let text = "ø&=+ %";
        let pairs = parse_query(&format!("k={}", percent_encode(text))).unwrap();
        assert_eq!(pairs, vec![("k".into(), text.into())]);
    }
}
