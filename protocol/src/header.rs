//! HTTP list syntax for GRIP headers (§2.1) and the GRIP headers the proxy writes to the
//! origin (§1.5, §1.6).
//!
//! Repeated headers and comma-separated elements are equivalent, so every reader here takes
//! all values of a header at once. An element is `value *( ";" name ["=" param-value] )`;
//! parameter values may be quoted strings with backslash escapes, and neither quoted strings
//! nor an element's leading `<URI>` are split at `,` or `;`. The element value itself is kept
//! verbatim (quotes are not special there): `Grip-Keep-Alive` carries arbitrary data in that
//! position and Pushpin reads it as-is. Empty list elements are skipped, as RFC 9110 §5.6.1
//! asks of recipients.

use http::{HeaderName, HeaderValue};

/// Lower-case header names used by GRIP, for `HeaderMap` lookups.
pub mod names {
    use http::HeaderName;

    pub const GRIP_HOLD: HeaderName = HeaderName::from_static("grip-hold");
    pub const GRIP_CHANNEL: HeaderName = HeaderName::from_static("grip-channel");
    pub const GRIP_TIMEOUT: HeaderName = HeaderName::from_static("grip-timeout");
    pub const GRIP_KEEP_ALIVE: HeaderName = HeaderName::from_static("grip-keep-alive");
    pub const GRIP_SET_META: HeaderName = HeaderName::from_static("grip-set-meta");
    pub const GRIP_LINK: HeaderName = HeaderName::from_static("grip-link");
    pub const GRIP_STATUS: HeaderName = HeaderName::from_static("grip-status");
    pub const GRIP_EXPOSE_HEADERS: HeaderName = HeaderName::from_static("grip-expose-headers");
    pub const GRIP_LAST: HeaderName = HeaderName::from_static("grip-last");
    pub const GRIP_FEATURE: HeaderName = HeaderName::from_static("grip-feature");
}

/// The `Grip-Feature` value sent to the origin (§1.5). Origin libraries check it to decide
/// which instructions they may use; only features the proxy implements are listed.
pub const GRIP_FEATURE_VALUE: &str = "status, session, link:next, link:gone, filter:skip-self, \
     filter:skip-users, filter:require-sub, filter:build-id, filter:var-subst";

/// `Grip-Feature` as a ready header value (§1.5).
pub fn grip_feature_header_value() -> HeaderValue {
    HeaderValue::from_static(GRIP_FEATURE_VALUE)
}

/// One `name` or `name=value` parameter of a list element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderParam {
    pub name: String,
    /// `None` for a bare `name`; quoted values arrive unescaped.
    pub value: Option<String>,
}

impl HeaderParam {
    /// Parameter names are case-insensitive (Pushpin compares them that way).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// One comma-separated element: its leading value and its `;` parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderElement {
    /// Verbatim, trimmed of surrounding whitespace (a `<URI>` keeps its brackets).
    pub value: String,
    pub params: Vec<HeaderParam>,
}

impl HeaderElement {
    /// First parameter with this name (case-insensitive), with or without a value.
    pub fn param(&self, name: &str) -> Option<&HeaderParam> {
        self.params.iter().find(|p| p.is_named(name))
    }

    /// Value of the first parameter with this name; `None` if absent or given without `=`.
    pub fn param_value(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(|p| p.value.as_deref())
    }

    /// Every parameter with this name, in order (e.g. repeated `filter=`).
    pub fn params_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderParam> {
        self.params.iter().filter(move |p| p.is_named(name))
    }

    /// The text between `<` and `>` when the value has the RFC 8288 `<URI-reference>` form.
    pub fn uri_reference(&self) -> Option<&str> {
        self.value.strip_prefix('<')?.strip_suffix('>')
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderSyntaxError {
    #[error("value is not valid UTF-8")]
    NotUtf8,
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("unexpected {found:?} after a quoted string")]
    TextAfterQuote { found: char },
    #[error("parameter value without a parameter name")]
    EmptyParamName,
}

/// Parses every value of a list-valued header (`Grip-Channel`, `Grip-Link`, ...) into its
/// elements, in order: `a, b; prev-id=3` and two headers `a` / `b; prev-id=3` give the same
/// result.
pub fn parse_list<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<HeaderElement>, HeaderSyntaxError> {
    let mut out = Vec::new();
    for value in values {
        for (head, params) in scan(utf8(value)?, Shape::List)? {
            if let Head::Value(value) = head {
                out.push(HeaderElement { value, params });
            }
        }
    }
    Ok(out)
}

/// Parses one header value as a single element without splitting at commas, as Pushpin does
/// for `Grip-Keep-Alive`, whose data may contain commas. The value runs to the first `;`.
/// `None` for an empty value.
pub fn parse_element(value: &[u8]) -> Result<Option<HeaderElement>, HeaderSyntaxError> {
    let mut elements = scan(utf8(value)?, Shape::Single)?;
    Ok(elements.pop().and_then(|(head, params)| match head {
        Head::Value(value) => Some(HeaderElement { value, params }),
        Head::Param(_) => None,
    }))
}

/// Parses a list whose elements are themselves `name=value` pairs (`Grip-Set-Meta:
/// k1="v1", k2=v2`): each element becomes its parameter list, the leading pair first.
pub fn parse_param_list<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Vec<HeaderParam>>, HeaderSyntaxError> {
    let mut out = Vec::new();
    for value in values {
        for (head, mut params) in scan(utf8(value)?, Shape::ParamList)? {
            if let Head::Param(Some(first)) = head {
                params.insert(0, first);
            }
            if !params.is_empty() {
                out.push(params);
            }
        }
    }
    Ok(out)
}

fn utf8(value: &[u8]) -> Result<&str, HeaderSyntaxError> {
    std::str::from_utf8(value).map_err(|_| HeaderSyntaxError::NotUtf8)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Comma-separated elements whose head is a verbatim value or a `<URI>`.
    List,
    /// Comma-separated elements whose head is itself a `name=value` parameter.
    ParamList,
    /// One element, head verbatim up to the first `;`.
    Single,
}

enum Head {
    Value(String),
    Param(Option<HeaderParam>),
}

type Scanned = (Head, Vec<HeaderParam>);

fn scan(input: &str, shape: Shape) -> Result<Vec<Scanned>, HeaderSyntaxError> {
    let splits_commas = shape != Shape::Single;
    let is_delim = move |c: char| c == ';' || (splits_commas && c == ',');
    let mut cur = Cursor { rest: input };
    let mut out = Vec::new();
    loop {
        cur.skip_whitespace();
        match cur.peek() {
            None => break,
            Some(',') if splits_commas => {
                cur.bump();
                continue;
            }
            Some(_) => {}
        }
        let head = match shape {
            Shape::ParamList => Head::Param(parse_param(&mut cur, is_delim)?),
            Shape::List | Shape::Single => {
                let mut value = String::new();
                if shape == Shape::List && cur.peek() == Some('<') {
                    if let Some(len) = bracketed_uri_len(cur.rest) {
                        value.push_str(cur.take(len));
                    }
                }
                value.push_str(cur.take_until(is_delim));
                Head::Value(trim_ows(&value).to_owned())
            }
        };
        let mut params = Vec::new();
        while cur.peek() == Some(';') {
            cur.bump();
            if let Some(param) = parse_param(&mut cur, is_delim)? {
                params.push(param);
            }
        }
        let empty = match &head {
            Head::Value(v) => v.is_empty(),
            Head::Param(p) => p.is_none(),
        };
        if !(empty && params.is_empty()) {
            out.push((head, params));
        }
        // The element ends at a comma (consumed by the next iteration) or at the end.
    }
    Ok(out)
}

/// Length of a leading `<...>` that can be a URI reference: the closing `>` must come before
/// any character a URI cannot contain, so `<a; id="x>"` is not mistaken for one.
fn bracketed_uri_len(rest: &str) -> Option<usize> {
    let inner = rest.strip_prefix('<')?;
    let end = inner.find(['>', '<', '"', ' ', '\t'])?;
    (inner.as_bytes().get(end) == Some(&b'>')).then_some(end + 2)
}

fn parse_param(
    cur: &mut Cursor<'_>,
    is_delim: impl Fn(char) -> bool + Copy,
) -> Result<Option<HeaderParam>, HeaderSyntaxError> {
    cur.skip_whitespace();
    let name = trim_ows(cur.take_until(|c| c == '=' || is_delim(c))).to_owned();
    let value = if cur.peek() == Some('=') {
        cur.bump();
        cur.skip_whitespace();
        if cur.peek() == Some('"') {
            cur.bump();
            let value = parse_quoted(cur)?;
            cur.skip_whitespace();
            match cur.peek() {
                Some(c) if !is_delim(c) => {
                    return Err(HeaderSyntaxError::TextAfterQuote { found: c })
                }
                _ => {}
            }
            Some(value)
        } else {
            Some(trim_ows(cur.take_until(is_delim)).to_owned())
        }
    } else {
        None
    };
    match (name.is_empty(), value) {
        (true, None) => Ok(None),
        (true, Some(_)) => Err(HeaderSyntaxError::EmptyParamName),
        (false, value) => Ok(Some(HeaderParam { name, value })),
    }
}

/// Reads a quoted string whose opening quote was consumed; `\x` stands for `x`.
fn parse_quoted(cur: &mut Cursor<'_>) -> Result<String, HeaderSyntaxError> {
    let mut out = String::new();
    loop {
        match cur.bump() {
            None => return Err(HeaderSyntaxError::UnterminatedQuote),
            Some('"') => return Ok(out),
            Some('\\') => out.push(cur.bump().ok_or(HeaderSyntaxError::UnterminatedQuote)?),
            Some(c) => out.push(c),
        }
    }
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        self.rest = chars.as_str();
        Some(c)
    }

    /// Takes `len` bytes; `len` must come from a search in `rest`, so it is a char boundary.
    fn take(&mut self, len: usize) -> &'a str {
        let (taken, rest) = self.rest.split_at_checked(len).unwrap_or((self.rest, ""));
        self.rest = rest;
        taken
    }

    fn take_until(&mut self, stop: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(stop).unwrap_or(self.rest.len());
        self.take(end)
    }

    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches(OWS);
    }
}

/// Optional whitespace of HTTP (RFC 9110 §5.6.3): only space and tab.
const OWS: [char; 2] = [' ', '\t'];

fn trim_ows(s: &str) -> &str {
    s.trim_matches(OWS)
}

/// One `Grip-Last: <channel>; last-id=<id>` header (§1.6, §3.7): the last item ID the proxy
/// saw on a channel, sent when it asks the origin to fill a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GripLast {
    pub channel: String,
    pub last_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GripLastError {
    #[error("Grip-Last: empty channel name")]
    EmptyChannel,
    /// Origin libraries split `Grip-Last` at `,` and `;` and trim the channel, so such a
    /// name cannot be written in a way they would read back.
    #[error("Grip-Last: channel {0:?} cannot be written in a header")]
    UnrepresentableChannel(String),
    #[error("Grip-Last: last-id {0:?} cannot be written in a header")]
    UnrepresentableId(String),
    #[error("Grip-Last: channel {0:?} has no last-id parameter")]
    MissingLastId(String),
    #[error("Grip-Last: {0}")]
    Syntax(#[from] HeaderSyntaxError),
}

impl GripLast {
    pub fn new(channel: impl Into<String>, last_id: impl Into<String>) -> Self {
        GripLast {
            channel: channel.into(),
            last_id: last_id.into(),
        }
    }

    /// Formats the header value, quoting the ID only when it would not survive unquoted,
    /// which keeps the plain `a; last-id=7` form Pushpin sends for ordinary IDs.
    pub fn to_header_value(&self) -> Result<HeaderValue, GripLastError> {
        let channel = self.channel.as_str();
        if channel.is_empty() {
            return Err(GripLastError::EmptyChannel);
        }
        let channel_ok = trim_ows(channel) == channel
            && !channel.contains([',', ';'])
            && !channel.chars().any(|c| c.is_ascii_control());
        if !channel_ok {
            return Err(GripLastError::UnrepresentableChannel(self.channel.clone()));
        }
        if self
            .last_id
            .chars()
            .any(|c| c.is_ascii_control() && c != '\t')
        {
            return Err(GripLastError::UnrepresentableId(self.last_id.clone()));
        }
        let text = format!("{channel}; last-id={}", quote_if_needed(&self.last_id));
        HeaderValue::from_bytes(text.as_bytes())
            .map_err(|_| GripLastError::UnrepresentableId(self.last_id.clone()))
    }

    /// Reads every `Grip-Last` value of a request (one channel per element).
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<GripLast>, GripLastError> {
        parse_list(values)?
            .into_iter()
            .map(|element| {
                if element.value.is_empty() {
                    return Err(GripLastError::EmptyChannel);
                }
                match element.param_value("last-id") {
                    Some(id) => Ok(GripLast::new(element.value.clone(), id)),
                    None => Err(GripLastError::MissingLastId(element.value)),
                }
            })
            .collect()
    }
}

/// Quotes a parameter value when separators, quotes, backslashes or whitespace would
/// otherwise change how it reads back.
pub fn quote_if_needed(value: &str) -> std::borrow::Cow<'_, str> {
    let needs_quotes = value
        .chars()
        .any(|c| matches!(c, ',' | ';' | '"' | '\\' | ' ' | '\t' | '='));
    if !needs_quotes {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    std::borrow::Cow::Owned(out)
}

/// Whether a response header is a GRIP instruction header (§2.1, §2.3: `Grip-*` names are
/// never relayed to clients).
pub fn is_grip_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("grip-")
}

#[cfg(test)]
mod tests;
