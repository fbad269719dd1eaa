//! One encoder for both output encodings. [`Sink`] builds the tree; its two
//! implementations differ only in how bytes are written (§3.5): JSON writes UTF-8 as
//! strings and anything else as base64 under the `*-bin` key, tnetstring writes raw
//! bytes under the plain key.

use base64::Engine as _;
use bytes::Bytes;

use super::{
    HttpResponseFormat, HttpStreamFormat, PublishItem, ResponseAction, ResponseBody, StreamAction,
    WsMessageFormat, WsMessageKind,
};
use crate::tnetstring;

pub(super) trait Sink: Sized {
    fn text(s: &str) -> Self;
    fn int(i: i64) -> Self;
    fn boolean(b: bool) -> Self;
    fn list(items: Vec<Self>) -> Self;
    fn object(entries: Vec<(&str, Self)>) -> Self;
    fn patch(patch: &json_patch::Patch) -> Self;
    /// The value of a `*-bin` key that holds `bytes`.
    fn binary(bytes: &Bytes) -> Self;
    fn header_value(bytes: &Bytes) -> Self;
    /// Adds `bytes` under `key`, or under `bin_key` when this encoding cannot carry
    /// them as a string; returns whether `bin_key` was used.
    fn push_content<'a>(
        entries: &mut Vec<(&'a str, Self)>,
        key: &'a str,
        bin_key: &'a str,
        bytes: &Bytes,
    ) -> bool;
}

impl Sink for serde_json::Value {
    fn text(s: &str) -> Self {
        serde_json::Value::String(s.to_owned())
    }

    fn int(i: i64) -> Self {
        serde_json::Value::from(i)
    }

    fn boolean(b: bool) -> Self {
        serde_json::Value::Bool(b)
    }

    fn list(items: Vec<Self>) -> Self {
        serde_json::Value::Array(items)
    }

    fn object(entries: Vec<(&str, Self)>) -> Self {
        serde_json::Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    fn patch(patch: &json_patch::Patch) -> Self {
        // Serialising a patch cannot fail: its pointers are strings, its values JSON.
        serde_json::to_value(patch).unwrap_or(serde_json::Value::Null)
    }

    fn binary(bytes: &Bytes) -> Self {
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn header_value(bytes: &Bytes) -> Self {
        serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
    }

    fn push_content<'a>(
        entries: &mut Vec<(&'a str, Self)>,
        key: &'a str,
        bin_key: &'a str,
        bytes: &Bytes,
    ) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                entries.push((key, Self::text(text)));
                false
            }
            Err(_) => {
                entries.push((bin_key, Self::binary(bytes)));
                true
            }
        }
    }
}

impl Sink for tnetstring::Value {
    fn text(s: &str) -> Self {
        tnetstring::Value::str(s)
    }

    fn int(i: i64) -> Self {
        tnetstring::Value::Int(i)
    }

    fn boolean(b: bool) -> Self {
        tnetstring::Value::Bool(b)
    }

    fn list(items: Vec<Self>) -> Self {
        tnetstring::Value::List(items)
    }

    fn object(entries: Vec<(&str, Self)>) -> Self {
        tnetstring::Value::dict(entries)
    }

    fn patch(patch: &json_patch::Patch) -> Self {
        json_to_tnetstring(&serde_json::Value::patch(patch))
    }

    fn binary(bytes: &Bytes) -> Self {
        tnetstring::Value::Bytes(bytes.clone())
    }

    fn header_value(bytes: &Bytes) -> Self {
        tnetstring::Value::Bytes(bytes.clone())
    }

    fn push_content<'a>(
        entries: &mut Vec<(&'a str, Self)>,
        key: &'a str,
        _bin_key: &'a str,
        bytes: &Bytes,
    ) -> bool {
        entries.push((key, tnetstring::Value::Bytes(bytes.clone())));
        false
    }
}

/// JSON numbers become `#` when they fit in i64 and `^` otherwise.
fn json_to_tnetstring(value: &serde_json::Value) -> tnetstring::Value {
    use serde_json::Value as J;
    use tnetstring::Value as T;
    match value {
        J::Null => T::Null,
        J::Bool(b) => T::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => T::Int(i),
            None => T::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => T::str(s),
        J::Array(items) => T::List(items.iter().map(json_to_tnetstring).collect()),
        J::Object(map) => T::dict(map.iter().map(|(k, v)| (k, json_to_tnetstring(v)))),
    }
}

pub(super) fn item<S: Sink>(item: &PublishItem, include_channel: bool) -> S {
    let mut entries = Vec::new();
    if include_channel {
        entries.push(("channel", S::text(&item.channel)));
    }
    if let Some(id) = &item.id {
        entries.push(("id", S::text(id)));
    }
    if let Some(prev_id) = &item.prev_id {
        entries.push(("prev-id", S::text(prev_id)));
    }
    let mut formats = Vec::new();
    if let Some(f) = &item.formats.http_response {
        formats.push(("http-response", http_response(f)));
    }
    if let Some(f) = &item.formats.http_stream {
        formats.push(("http-stream", http_stream(f)));
    }
    if let Some(f) = &item.formats.ws_message {
        formats.push(("ws-message", ws_message(f)));
    }
    entries.push(("formats", S::object(formats)));
    if !item.meta.is_empty() {
        let meta = item
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), S::text(v)))
            .collect();
        entries.push(("meta", S::object(meta)));
    }
    if item.no_seq {
        entries.push(("no-seq", S::boolean(true)));
    }
    if let Some(size) = item.size {
        entries.push(("size", S::int(i64::try_from(size).unwrap_or(i64::MAX))));
    }
    S::object(entries)
}

fn content_filters<S: Sink>(entries: &mut Vec<(&str, S)>, filters: &[String]) {
    if !filters.is_empty() {
        let list = filters.iter().map(|f| S::text(f)).collect();
        entries.push(("content-filters", S::list(list)));
    }
}

/// Key order `code`, `reason`, `headers`, body, as in the §4.6 example.
fn http_response<S: Sink>(format: &HttpResponseFormat) -> S {
    let ResponseAction::Send(message) = &format.action else {
        return S::object(vec![("action", S::text("hint"))]);
    };
    let mut entries = vec![("code", S::int(i64::from(message.code)))];
    if let Some(reason) = &message.reason {
        entries.push(("reason", S::text(reason)));
    }
    if !message.headers.is_empty() {
        let headers = message
            .headers
            .iter()
            .map(|(name, value)| S::list(vec![S::text(name), S::header_value(value)]))
            .collect();
        entries.push(("headers", S::list(headers)));
    }
    match &message.body {
        ResponseBody::Bytes(bytes) => {
            S::push_content(&mut entries, "body", "body-bin", bytes);
        }
        ResponseBody::Patch(patch) => entries.push(("body-patch", S::patch(patch))),
    }
    content_filters(&mut entries, &format.content_filters);
    S::object(entries)
}

fn http_stream<S: Sink>(format: &HttpStreamFormat) -> S {
    match &format.action {
        StreamAction::Send(content) => {
            let mut entries = Vec::new();
            S::push_content(&mut entries, "content", "content-bin", content);
            content_filters(&mut entries, &format.content_filters);
            S::object(entries)
        }
        StreamAction::Close => S::object(vec![("action", S::text("close"))]),
        StreamAction::Hint => S::object(vec![("action", S::text("hint"))]),
    }
}

/// `content` implies TEXT and `content-bin` BINARY on decode, so `type` is written only
/// when the key used does not already say the kind.
fn ws_message<S: Sink>(format: &WsMessageFormat) -> S {
    match format {
        WsMessageFormat::Message {
            kind,
            content,
            content_filters: filters,
        } => {
            let mut entries = Vec::new();
            let type_name = match kind {
                WsMessageKind::Binary => {
                    entries.push(("content-bin", S::binary(content)));
                    None
                }
                WsMessageKind::Text => {
                    let as_bin = S::push_content(&mut entries, "content", "content-bin", content);
                    as_bin.then_some("text")
                }
                WsMessageKind::Ping | WsMessageKind::Pong => {
                    if !content.is_empty() {
                        S::push_content(&mut entries, "content", "content-bin", content);
                    }
                    Some(if *kind == WsMessageKind::Ping {
                        "ping"
                    } else {
                        "pong"
                    })
                }
            };
            if let Some(type_name) = type_name {
                entries.push(("type", S::text(type_name)));
            }
            content_filters(&mut entries, filters);
            S::object(entries)
        }
        WsMessageFormat::Close { code, reason } => {
            let mut entries = vec![("action", S::text("close"))];
            if let Some(code) = code {
                entries.push(("code", S::int(i64::from(*code))));
            }
            if let Some(reason) = reason {
                entries.push(("reason", S::text(reason)));
            }
            S::object(entries)
        }
        WsMessageFormat::Refresh => S::object(vec![("action", S::text("refresh"))]),
    }
}
