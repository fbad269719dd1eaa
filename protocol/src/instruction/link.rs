//! `Grip-Link` URIs (§2.2, §6.4, §6.5): validation at parse time and resolution against the
//! client request's path, which the proxy needs before fetching a next link (§12 item 34).

/// Why a link URI is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("empty URI")]
    Empty,
    #[error("character {0:?} is not allowed in a URI")]
    InvalidCharacter(char),
    #[error("'%' must be followed by two hex digits")]
    BadPercentEncoding,
    /// A colon in the first segment would make it read as a scheme (RFC 3986 §4.2).
    #[error("first path segment contains ':' but is not a scheme")]
    ColonInFirstSegment,
    #[error("scheme {0:?} is neither http nor https")]
    UnsupportedScheme(String),
    #[error("absolute URI has no host")]
    MissingHost,
    #[error("base {0:?} is not an absolute path")]
    BaseNotAbsolutePath(String),
}

/// Checks that `uri` (the text between `<` and `>`) is an RFC 3986 URI reference the proxy
/// can follow: an `http`/`https` URL with a host, or a relative reference.
pub fn validate_link(uri: &str) -> Result<(), LinkError> {
    if uri.is_empty() {
        return Err(LinkError::Empty);
    }
    let mut chars = uri.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let hex = (chars.next(), chars.next());
                let ok = matches!(hex, (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit());
                if !ok {
                    return Err(LinkError::BadPercentEncoding);
                }
            }
            c if is_uri_char(c) => {}
            c => return Err(LinkError::InvalidCharacter(c)),
        }
    }
    match split_scheme(uri)? {
        None => Ok(()),
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(LinkError::UnsupportedScheme(scheme.to_owned()));
            }
            let authority = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                return Err(LinkError::MissingHost);
            }
            Ok(())
        }
    }
}

/// Unreserved, gen-delims and sub-delims of RFC 3986 (`%` is handled separately).
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=".contains(c)
}

/// `Some((scheme, rest-after-colon))` for absolute URIs, `None` for relative references.
fn split_scheme(uri: &str) -> Result<Option<(&str, &str)>, LinkError> {
    let Some(end) = uri.find([':', '/', '?', '#']) else {
        return Ok(None);
    };
    let Some((scheme, rest)) = uri.split_at_checked(end) else {
        return Ok(None);
    };
    let Some(rest) = rest.strip_prefix(':') else {
        return Ok(None);
    };
    let mut scheme_chars = scheme.chars();
    let valid = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok(Some((scheme, rest)))
    } else {
        Err(LinkError::ColonInFirstSegment)
    }
}

/// Resolves a link against the path and query of the request it came with (RFC 3986 §5.2):
/// `next?x=1` on `/a/b` gives `/a/next?x=1`, `/t` gives `/t` (no route rewriting, §6.4),
/// an `http(s)://` URL is returned as it is, and a network-path reference (`//host/p`) is
/// returned as it is for the caller to complete with the request's scheme. Fragments are
/// dropped because they are never sent.
pub fn resolve_link(base_path_and_query: &str, link: &str) -> Result<String, LinkError> {
    validate_link(link)?;
    let base = base_path_and_query.split('#').next().unwrap_or("");
    if !base.starts_with('/') {
        return Err(LinkError::BaseNotAbsolutePath(
            base_path_and_query.to_owned(),
        ));
    }
    let link = link.split('#').next().unwrap_or("");
    if split_scheme(link)?.is_some() || link.starts_with("//") {
        return Ok(link.to_owned());
    }
    let (base_path, base_query) = split_query(base);
    let (path, query) = split_query(link);
    let (path, query) = if path.is_empty() {
        (base_path.to_owned(), query.or(base_query))
    } else if path.starts_with('/') {
        (remove_dot_segments(path), query)
    } else {
        let dir_end = base_path.rfind('/').map_or(0, |i| i + 1);
        let dir = base_path.get(..dir_end).unwrap_or("/");
        (remove_dot_segments(&format!("{dir}{path}")), query)
    };
    Ok(match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    })
}

fn split_query(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    }
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments vanish, `..` removes the previous
/// segment (never above the root), and a trailing dot segment leaves a trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => {
                out.push(other);
                continue;
            }
        }
        if i == last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}
