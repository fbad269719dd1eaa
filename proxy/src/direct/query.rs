//! The query string of a direct request: transport, extra channels, token and cursor.

/// `?a=b&c=d` pairs, percent-decoded (`+` is a space, as in HTML forms). A pair that does
/// not decode to UTF-8 makes the whole query invalid, so a garbled token or cursor is
/// reported instead of being silently dropped.
pub fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(&name.replace('+', " "))?;
        let value = percent_decode(&value.replace('+', " "))?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded() {
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
    fn broken_escapes_invalidate_the_query() {
        assert!(parse_query("a=%zz").is_none());
        assert!(parse_query("a=%4").is_none());
        assert!(parse_query("a=%ff").is_none());
    }
}
