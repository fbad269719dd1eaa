//! One decoder for both input encodings. JSON and tnetstring items have the same shape
//! (§3.1) and differ only in how strings and binary content arrive (§3.5); [`Node`]
//! hides the first difference and [`Node::TNETSTRING`] selects the rules for the second.

use std::collections::BTreeMap;
use std::str::Utf8Error;

use base64::Engine as _;
use bytes::Bytes;

use super::{
    Formats, HttpResponseFormat, HttpStreamFormat, ItemError, ItemProblem, PublishItem,
    ResponseAction, ResponseBody, ResponseMessage, StreamAction, WsMessageFormat, WsMessageKind,
};
use crate::tnetstring;

/// Read access to a decoded JSON or tnetstring tree.
pub(super) trait Node: Sized {
    /// Binary rules of §3.5: byte strings are raw and HTTP `*-bin` keys are ignored.
    const TNETSTRING: bool;
    fn type_name(&self) -> &'static str;
    fn is_object(&self) -> bool;
    /// The value under `key` of an object/dict; `null` counts as absent.
    fn field(&self, key: &str) -> Option<&Self>;
    fn entries(&self) -> Option<Vec<(&[u8], &Self)>>;
    /// `None` when not a string; `Some(Err)` when a byte string is not UTF-8.
    fn as_text(&self) -> Option<Result<&str, Utf8Error>>;
    fn as_bytes(&self) -> Option<Bytes>;
    /// Integers, and for JSON also floats with no fractional part; values beyond the
    /// i64 range saturate so that range checks report them as invalid.
    fn as_int(&self) -> Option<i64>;
    fn as_bool(&self) -> Option<bool>;
    fn as_list(&self) -> Option<&[Self]>;
    fn to_json(&self) -> Result<serde_json::Value, String>;
}

impl Node for serde_json::Value {
    const TNETSTRING: bool = false;

    fn type_name(&self) -> &'static str {
        match self {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }

    fn is_object(&self) -> bool {
        serde_json::Value::is_object(self)
    }

    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key).filter(|v| !v.is_null())
    }

    fn entries(&self) -> Option<Vec<(&[u8], &Self)>> {
        self.as_object()
            .map(|map| map.iter().map(|(k, v)| (k.as_bytes(), v)).collect())
    }

    fn as_text(&self) -> Option<Result<&str, Utf8Error>> {
        self.as_str().map(Ok)
    }

    fn as_bytes(&self) -> Option<Bytes> {
        self.as_str().map(|s| Bytes::copy_from_slice(s.as_bytes()))
    }

    fn as_int(&self) -> Option<i64> {
        json_int(self.as_number()?)
    }

    fn as_bool(&self) -> Option<bool> {
        serde_json::Value::as_bool(self)
    }

    fn as_list(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }

    fn to_json(&self) -> Result<serde_json::Value, String> {
        Ok(self.clone())
    }
}

/// [`Node::as_int`] of a JSON number.
pub(super) fn json_int(number: &serde_json::Number) -> Option<i64> {
    if let Some(i) = number.as_i64() {
        return Some(i);
    }
    if number.as_u64().is_some() {
        return Some(i64::MAX);
    }
    let f = number.as_f64()?;
    // `as` saturates at the i64 bounds, which the range checks then reject.
    (f.is_finite() && f.fract() == 0.0).then_some(f as i64)
}

impl Node for tnetstring::Value {
    const TNETSTRING: bool = true;

    fn type_name(&self) -> &'static str {
        tnetstring::Value::type_name(self)
    }

    fn is_object(&self) -> bool {
        matches!(self, tnetstring::Value::Dict(_))
    }

    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key.as_bytes()).filter(|v| !v.is_null())
    }

    fn entries(&self) -> Option<Vec<(&[u8], &Self)>> {
        self.as_dict()
            .map(|entries| entries.iter().map(|(k, v)| (k.as_ref(), v)).collect())
    }

    fn as_text(&self) -> Option<Result<&str, Utf8Error>> {
        tnetstring::Value::as_bytes(self).map(|b| std::str::from_utf8(b))
    }

    fn as_bytes(&self) -> Option<Bytes> {
        tnetstring::Value::as_bytes(self).cloned()
    }

    fn as_int(&self) -> Option<i64> {
        self.as_int()
    }

    fn as_bool(&self) -> Option<bool> {
        tnetstring::Value::as_bool(self)
    }

    fn as_list(&self) -> Option<&[Self]> {
        tnetstring::Value::as_list(self)
    }

    fn to_json(&self) -> Result<serde_json::Value, String> {
        tnetstring_to_json(self)
    }
}

/// Converts a tnetstring tree to JSON for `body-patch`, whose operations are JSON by
/// definition. The input is depth-bounded by the tnetstring decoder.
fn tnetstring_to_json(value: &tnetstring::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    use tnetstring::Value as T;
    let utf8 = |b: &Bytes| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| "byte string is not valid UTF-8".to_owned())
    };
    Ok(match value {
        T::Bytes(b) => J::String(utf8(b)?),
        T::Int(i) => J::from(*i),
        T::Float(f) => {
            J::Number(serde_json::Number::from_f64(*f).ok_or("non-finite float has no JSON form")?)
        }
        T::Bool(b) => J::Bool(*b),
        T::Null => J::Null,
        T::List(items) => J::Array(
            items
                .iter()
                .map(tnetstring_to_json)
                .collect::<Result<_, _>>()?,
        ),
        T::Dict(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((utf8(k)?, tnetstring_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Where a value sits in the item. Only a failed decode renders it, so that a good item
/// costs no path strings.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    /// The dotted form of [`ItemError::path`]: `formats.http-response.headers[2][0]`.
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.write(out);
                out.push_str(&format!("[{index}]"));
            }
        }
    }
}

fn fail<T>(path: &Path, problem: ItemProblem) -> Result<T, ItemError> {
    Err(ItemError {
        path: path.render(),
        problem,
    })
}

fn wrong_type<T, N: Node>(path: &Path, expected: &'static str, found: &N) -> Result<T, ItemError> {
    fail(
        path,
        ItemProblem::WrongType {
            expected,
            found: found.type_name(),
        },
    )
}

fn expect_object<N: Node>(node: &N, path: &Path) -> Result<(), ItemError> {
    if node.is_object() {
        Ok(())
    } else {
        wrong_type(path, "an object", node)
    }
}

fn text<N: Node>(node: &N, path: &Path) -> Result<String, ItemError> {
    match node.as_text() {
        Some(Ok(s)) => Ok(s.to_owned()),
        Some(Err(_)) => fail(path, ItemProblem::NotUtf8),
        None => wrong_type(path, "a string", node),
    }
}

fn opt_text<N: Node>(node: &N, parent: &Path, key: &str) -> Result<Option<String>, ItemError> {
    node.field(key)
        .map(|v| text(v, &parent.key(key)))
        .transpose()
}

fn bytes<N: Node>(node: &N, path: &Path) -> Result<Bytes, ItemError> {
    match node.as_bytes() {
        Some(b) => Ok(b),
        None => wrong_type(path, "a string", node),
    }
}

fn base64<N: Node>(node: &N, path: &Path) -> Result<Bytes, ItemError> {
    let encoded = text(node, path)?;
    let compact: Vec<u8> = encoded
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    match LENIENT_BASE64.decode(compact) {
        Ok(decoded) => Ok(Bytes::from(decoded)),
        Err(e) => fail(path, ItemProblem::InvalidValue(format!("not base64: {e}"))),
    }
}

/// Standard alphabet; padding optional and line breaks skipped, because publishers
/// differ on both and Pushpin's decoder tolerates them.
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn int_in<N: Node>(
    node: &N,
    path: &Path,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ItemError> {
    let Some(i) = node.as_int() else {
        return wrong_type(path, "an integer", node);
    };
    if range.contains(&i) {
        Ok(i)
    } else {
        let bounds = format!("{i} is outside {}..={}", range.start(), range.end());
        fail(path, ItemProblem::InvalidValue(bounds))
    }
}

pub(super) fn item<N: Node>(
    node: &N,
    channel_override: Option<&str>,
) -> Result<PublishItem, ItemError> {
    let root = Path::Root;
    expect_object(node, &root)?;
    let channel = match channel_override.filter(|c| !c.is_empty()) {
        Some(channel) => channel.to_owned(),
        None => {
            let path = root.key("channel");
            match node.field("channel") {
                None => return fail(&path, ItemProblem::Missing),
                Some(v) => match text(v, &path)? {
                    c if c.is_empty() => return fail(&path, ItemProblem::Empty),
                    c => c,
                },
            }
        }
    };
    let formats = match node.field("formats") {
        Some(wrapper) => {
            let path = root.key("formats");
            expect_object(wrapper, &path)?;
            formats(wrapper, &path)?
        }
        None => formats(node, &root)?,
    };
    let mut meta = BTreeMap::new();
    if let Some(v) = node.field("meta") {
        let path = root.key("meta");
        let Some(entries) = v.entries() else {
            return wrong_type(&path, "an object", v);
        };
        for (key, value) in entries {
            let Ok(key) = std::str::from_utf8(key) else {
                return fail(&path, ItemProblem::NotUtf8);
            };
            meta.insert(key.to_owned(), text(value, &path.key(key))?);
        }
    }
    let no_seq = match node.field("no-seq") {
        None => false,
        Some(v) => match v.as_bool() {
            Some(b) => b,
            None => return wrong_type(&root.key("no-seq"), "a boolean", v),
        },
    };
    let size = node
        .field("size")
        .map(|v| int_in(v, &root.key("size"), 0..=i64::MAX).map(|s| s.unsigned_abs()))
        .transpose()?;
    Ok(PublishItem {
        channel,
        id: opt_text(node, &root, "id")?,
        prev_id: opt_text(node, &root, "prev-id")?,
        formats,
        meta,
        no_seq,
        size,
    })
}

fn formats<N: Node>(node: &N, path: &Path) -> Result<Formats, ItemError> {
    let formats = Formats {
        http_response: node
            .field("http-response")
            .map(|v| http_response(v, &path.key("http-response")))
            .transpose()?,
        http_stream: node
            .field("http-stream")
            .map(|v| http_stream(v, &path.key("http-stream")))
            .transpose()?,
        ws_message: node
            .field("ws-message")
            .map(|v| ws_message(v, &path.key("ws-message")))
            .transpose()?,
    };
    if formats.is_empty() {
        return fail(path, ItemProblem::NoFormats);
    }
    Ok(formats)
}

/// Reads `action`, defaulting to `send`, and checks it is one of `allowed`.
fn action<'a, N: Node>(
    node: &N,
    path: &Path,
    allowed: &[&'a str],
    expected: &'static str,
) -> Result<&'a str, ItemError> {
    let Some(action) = opt_text(node, path, "action")? else {
        return Ok("send");
    };
    match allowed.iter().find(|a| **a == action) {
        Some(found) => Ok(found),
        None => fail(
            &path.key("action"),
            ItemProblem::UnknownAction { action, expected },
        ),
    }
}

fn content_filters<N: Node>(node: &N, path: &Path) -> Result<Vec<String>, ItemError> {
    let Some(v) = node.field("content-filters") else {
        return Ok(Vec::new());
    };
    let path = path.key("content-filters");
    let Some(list) = v.as_list() else {
        return wrong_type(&path, "an array", v);
    };
    list.iter()
        .enumerate()
        .map(|(i, f)| text(f, &path.index(i)))
        .collect()
}

/// Content under `key`, or under `bin_key` as base64 in JSON input, which wins (§3.5).
fn content<N: Node>(
    node: &N,
    path: &Path,
    key: &str,
    bin_key: &str,
) -> Result<Option<Bytes>, ItemError> {
    if !N::TNETSTRING {
        if let Some(v) = node.field(bin_key) {
            return base64(v, &path.key(bin_key)).map(Some);
        }
    }
    node.field(key)
        .map(|v| bytes(v, &path.key(key)))
        .transpose()
}

fn http_response<N: Node>(node: &N, path: &Path) -> Result<HttpResponseFormat, ItemError> {
    expect_object(node, path)?;
    if action(node, path, &["send", "hint"], "send or hint")? == "hint" {
        return Ok(HttpResponseFormat {
            action: ResponseAction::Hint,
            content_filters: Vec::new(),
        });
    }
    let code = match node.field("code") {
        Some(v) => int_in(v, &path.key("code"), 0..=999)?,
        None => 200,
    };
    // `status` is the reason's name in old GRIP documents [ext]; only a string counts.
    let reason = match node.field("reason") {
        Some(v) => Some(text(v, &path.key("reason"))?),
        None => node
            .field("status")
            .and_then(|v| v.as_text()?.ok().map(str::to_owned)),
    }
    .filter(|r| !r.is_empty());
    let body = match content(node, path, "body", "body-bin")? {
        Some(bytes) => ResponseBody::Bytes(bytes),
        None => match node.field("body-patch") {
            Some(v) => ResponseBody::Patch(patch(v, &path.key("body-patch"))?),
            None => {
                let expected = if N::TNETSTRING {
                    "'body' or 'body-patch'"
                } else {
                    "'body', 'body-bin' or 'body-patch'"
                };
                return fail(path, ItemProblem::MissingContent { expected });
            }
        },
    };
    Ok(HttpResponseFormat {
        action: ResponseAction::Send(ResponseMessage {
            code: u16::try_from(code).unwrap_or_default(),
            reason,
            headers: headers(node, path)?,
            body,
        }),
        content_filters: content_filters(node, path)?,
    })
}

fn patch<N: Node>(node: &N, path: &Path) -> Result<json_patch::Patch, ItemError> {
    if node.as_list().is_none() {
        return wrong_type(path, "an array", node);
    }
    let json = node
        .to_json()
        .or_else(|e| fail(path, ItemProblem::InvalidValue(e)))?;
    serde_json::from_value(json).or_else(|e| fail(path, ItemProblem::InvalidValue(e.to_string())))
}

/// Headers as `{"name": "value"}` or `[["name", "value"], ...]` (§3.2).
fn headers<N: Node>(node: &N, path: &Path) -> Result<Vec<(String, Bytes)>, ItemError> {
    let Some(v) = node.field("headers") else {
        return Ok(Vec::new());
    };
    let path = path.key("headers");
    if let Some(list) = v.as_list() {
        let mut out = Vec::with_capacity(list.len());
        for (i, pair) in list.iter().enumerate() {
            let at = path.index(i);
            match pair.as_list() {
                Some([name, value]) => {
                    out.push((text(name, &at.index(0))?, bytes(value, &at.index(1))?))
                }
                Some(other) => {
                    let count = other.len();
                    return fail(
                        &at,
                        ItemProblem::InvalidValue(format!(
                            "{count} elements instead of [name, value]"
                        )),
                    );
                }
                None => return wrong_type(&at, "a [name, value] array", pair),
            }
        }
        return Ok(out);
    }
    let Some(entries) = v.entries() else {
        return wrong_type(&path, "an object or array", v);
    };
    let mut out = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let Ok(name) = std::str::from_utf8(name) else {
            return fail(&path, ItemProblem::NotUtf8);
        };
        out.push((name.to_owned(), bytes(value, &path.key(name))?));
    }
    Ok(out)
}

fn http_stream<N: Node>(node: &N, path: &Path) -> Result<HttpStreamFormat, ItemError> {
    expect_object(node, path)?;
    let action = match action(
        node,
        path,
        &["send", "close", "hint"],
        "send, close or hint",
    )? {
        "close" => StreamAction::Close,
        "hint" => StreamAction::Hint,
        _ => match content(node, path, "content", "content-bin")? {
            Some(bytes) => StreamAction::Send(bytes),
            None => {
                let expected = if N::TNETSTRING {
                    "'content'"
                } else {
                    "'content' or 'content-bin'"
                };
                return fail(path, ItemProblem::MissingContent { expected });
            }
        },
    };
    let content_filters = match action {
        StreamAction::Send(_) => content_filters(node, path)?,
        _ => Vec::new(),
    };
    Ok(HttpStreamFormat {
        action,
        content_filters,
    })
}

fn ws_message<N: Node>(node: &N, path: &Path) -> Result<WsMessageFormat, ItemError> {
    expect_object(node, path)?;
    match action(
        node,
        path,
        &["send", "close", "refresh"],
        "send, close or refresh",
    )? {
        "close" => Ok(WsMessageFormat::Close {
            code: node
                .field("code")
                .map(|v| int_in(v, &path.key("code"), 0..=i64::from(u16::MAX)))
                .transpose()?
                .and_then(|c| u16::try_from(c).ok()),
            reason: opt_text(node, path, "reason")?.filter(|r| !r.is_empty()),
        }),
        "refresh" => Ok(WsMessageFormat::Refresh),
        _ => ws_send(node, path),
    }
}

fn ws_send<N: Node>(node: &N, path: &Path) -> Result<WsMessageFormat, ItemError> {
    let explicit = match opt_text(node, path, "type")?.as_deref() {
        None => None,
        Some("text") => Some(WsMessageKind::Text),
        Some("binary") => Some(WsMessageKind::Binary),
        Some("ping") => Some(WsMessageKind::Ping),
        Some("pong") => Some(WsMessageKind::Pong),
        Some(other) => {
            return fail(
                &path.key("type"),
                ItemProblem::UnknownMessageType(other.to_owned()),
            )
        }
    };
    // Unlike the HTTP formats, `content-bin` counts in tnetstring input too: raw bytes.
    let (implied, content) = if let Some(v) = node.field("content-bin") {
        let at = path.key("content-bin");
        let bytes = if N::TNETSTRING {
            match v.as_bytes() {
                Some(b) => b,
                None => return wrong_type(&at, "a byte string", v),
            }
        } else {
            base64(v, &at)?
        };
        (WsMessageKind::Binary, bytes)
    } else if let Some(v) = node.field("content") {
        (WsMessageKind::Text, bytes(v, &path.key("content"))?)
    } else {
        match explicit {
            Some(WsMessageKind::Ping | WsMessageKind::Pong) => (WsMessageKind::Text, Bytes::new()),
            _ => {
                let expected = "'content' or 'content-bin'";
                return fail(path, ItemProblem::MissingContent { expected });
            }
        }
    };
    Ok(WsMessageFormat::Message {
        kind: explicit.unwrap_or(implied),
        content,
        content_filters: content_filters(node, path)?,
    })
}
