//! Published items (§3): the envelope a publisher sends and the three delivery formats
//! it may carry, decoded from JSON (HTTP control API §4.1, `J` frames §4.2) or from
//! tnetstring (ZeroMQ frames §4.2/§4.3), and encoded back to either.
//!
//! The types make states that Pushpin would reject or ignore unrepresentable: an
//! `http-response` that sends always has a code and a body, a WebSocket close carries
//! no content, and so on. Decoding follows Pushpin's `publishitem.cpp` and
//! `publishformat.cpp`, with these differences:
//!
//! - Stricter, because the value could not be represented or delivered: an `action`
//!   that the format does not define (`close` on `http-response`, `hint` on
//!   `ws-message`), `formats` holding no known format, an empty `channel`, a WebSocket
//!   close code above 65535, text that is not UTF-8, malformed base64 (Pushpin skips bad
//!   characters), and a `body-patch` that is not a valid RFC 6902 document (Pushpin
//!   finds out only when applying it).
//! - More lenient (strictly additive): `null` counts as an absent key, `status` is an
//!   alias of `reason` (§3.2), and integral JSON floats are accepted as integers.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::tnetstring;

mod decode;
mod encode;
mod json;

/// One published item (§3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishItem {
    /// Channel the item is published to; never empty.
    pub channel: String,
    /// This item's ID within the channel (§3.7).
    pub id: Option<String>,
    /// ID of the preceding item in the channel (§3.7).
    pub prev_id: Option<String>,
    pub formats: Formats,
    /// Publish metadata consulted by subscription filters (§2.6).
    pub meta: BTreeMap<String, String>,
    /// Bypass reordering (§3.7 step 2) while still using IDs for reliability.
    pub no_seq: bool,
    /// Size hint, used for stats only.
    pub size: Option<u64>,
}

/// The formats an item carries; each hold type uses the one that matches it (§3.1).
/// A decoded item always has at least one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Formats {
    pub http_response: Option<HttpResponseFormat>,
    pub http_stream: Option<HttpStreamFormat>,
    pub ws_message: Option<WsMessageFormat>,
}

/// `http-response` (§3.2), delivered to response holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponseFormat {
    pub action: ResponseAction,
    /// Filters applied to the body (§2.6). Pushpin reads them only for `send`, so they
    /// are ignored on decode and not written for `hint`.
    pub content_filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseAction {
    /// Complete the held response with this message.
    Send(ResponseMessage),
    /// Retry the original request to the origin at once (§5).
    Hint,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMessage {
    /// Status code, 0–999; 200 when the publisher gave none.
    pub code: u16,
    /// Reason phrase; `None` means the standard phrase for `code`. An empty phrase in
    /// the input decodes as `None`, as Pushpin treats it.
    pub reason: Option<String>,
    /// Headers that override the hold's original ones name by name, in publish order.
    pub headers: Vec<(String, Bytes)>,
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    Bytes(Bytes),
    /// RFC 6902 patch applied to the hold's timeout body (§3.2).
    Patch(json_patch::Patch),
}

/// `http-stream` (§3.3), delivered to stream holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpStreamFormat {
    pub action: StreamAction,
    /// Filters applied to the content (§2.6). Pushpin reads them only for `send`, so
    /// they are ignored on decode and not written for `close` and `hint`.
    pub content_filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamAction {
    /// Append these bytes to the held response, verbatim.
    Send(Bytes),
    /// End the response cleanly after the data already queued.
    Close,
    /// Drop queued items and fetch the next link at once.
    Hint,
}

/// `ws-message` (§3.4), delivered to WebSocket connections.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessageFormat {
    Message {
        kind: WsMessageKind,
        content: Bytes,
        content_filters: Vec<String>,
    },
    /// Close the connection. Codes above 65535 are rejected on decode, since a close
    /// frame cannot carry them (Pushpin only rejects negative codes).
    Close {
        code: Option<u16>,
        /// `None` for an absent or empty reason.
        reason: Option<String>,
    },
    /// Make a WebSocket-over-HTTP session contact the origin at once.
    Refresh,
}

/// Frame type of a WebSocket message. Without an explicit `type`, `content` means
/// TEXT and `content-bin` means BINARY (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMessageKind {
    Text,
    Binary,
    Ping,
    Pong,
}

/// Where and why an item failed to decode. `path` is the dotted key path inside the
/// item (`formats.http-response.headers[2][0]`); empty for the item itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render("item"))]
pub struct ItemError {
    pub path: String,
    pub problem: ItemProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemProblem {
    #[error("required key is missing")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("byte string is not valid UTF-8")]
    NotUtf8,
    #[error("must not be empty")]
    Empty,
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("unknown action '{action}' (expected {expected})")]
    UnknownAction {
        action: String,
        expected: &'static str,
    },
    #[error("unknown message type '{0}' (expected text, binary, ping or pong)")]
    UnknownMessageType(String),
    #[error("no content (expected {expected})")]
    MissingContent { expected: &'static str },
    #[error(
        "no format given (expected at least one of 'http-response', 'http-stream', 'ws-message')"
    )]
    NoFormats,
}

impl ItemError {
    /// The message with the item itself called `root`, e.g. `items[3]` when the item is
    /// one of a publish request's list.
    pub fn render(&self, root: &str) -> String {
        if self.path.is_empty() {
            format!("{root}: {}", self.problem)
        } else {
            format!("{root}.{}: {}", self.path, self.problem)
        }
    }
}

/// Why a `POST /publish` body was refused (§4.1). `Display` gives the exact response
/// text, without the trailing newline the server appends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRequestError {
    #[error("Body is not valid JSON.")]
    NotJson,
    #[error("Invalid format.")]
    NotAnObject,
    #[error("Invalid format: object does not contain 'items'")]
    MissingItems,
    #[error("Invalid format: object contains 'items' with wrong type")]
    ItemsWrongType,
    #[error("Invalid format: {}", .source.render(&format!("items[{index}]")))]
    InvalidItem { index: usize, source: ItemError },
}

impl PublishItem {
    /// An item on `channel` carrying `formats`, with no IDs or metadata.
    pub fn new(channel: impl Into<String>, formats: Formats) -> Self {
        PublishItem {
            channel: channel.into(),
            id: None,
            prev_id: None,
            formats,
            meta: BTreeMap::new(),
            no_seq: false,
            size: None,
        }
    }

    /// Decodes an item from JSON (§3.1, §3.5): `*-bin` keys are base64 and win over
    /// `body`/`content`; the `formats` wrapper may be omitted in favour of top-level
    /// format keys. Keys set to `null` count as absent.
    ///
    /// `channel_override` is the channel frame of the SUB input (§4.3): when it is
    /// non-empty it wins and the `channel` key is not read; otherwise `channel` is
    /// required and must be a non-empty string.
    pub fn from_json(
        value: &serde_json::Value,
        channel_override: Option<&str>,
    ) -> Result<Self, ItemError> {
        decode::item(value, channel_override)
    }

    /// Decodes an item from tnetstring (§3.1, §3.5): byte strings are taken raw,
    /// `body-bin`/`content-bin` of the HTTP formats are ignored, and `ws-message`
    /// `content-bin` is raw bytes that imply a BINARY frame. Text fields (channel, IDs,
    /// meta, header names) must be UTF-8. `channel_override` as in [`Self::from_json`].
    pub fn from_tnetstring(
        value: &tnetstring::Value,
        channel_override: Option<&str>,
    ) -> Result<Self, ItemError> {
        decode::item(value, channel_override)
    }

    /// The item as JSON in the `formats`-wrapped form. Bytes that are not UTF-8 go out
    /// under the `*-bin` key as base64; header values that are not UTF-8 cannot be
    /// expressed in JSON and are converted lossily.
    pub fn to_json(&self) -> serde_json::Value {
        encode::item(self, true)
    }

    /// The item as a tnetstring dict, bytes raw and integers as `#`. Key order is
    /// `channel`, `id`, `prev-id`, `formats`, `meta`, `no-seq`, `size`, which matches
    /// the §4.6 examples byte for byte. A `size` above `i64::MAX` is written as
    /// `i64::MAX`.
    pub fn to_tnetstring(&self) -> tnetstring::Value {
        encode::item(self, true)
    }

    /// The tnetstring dict without the `channel` key, for the SUB/PUB transport where
    /// the channel travels in its own frame (§4.3).
    pub fn to_tnetstring_without_channel(&self) -> tnetstring::Value {
        encode::item(self, false)
    }
}

impl Formats {
    pub fn is_empty(&self) -> bool {
        self.http_response.is_none() && self.http_stream.is_none() && self.ws_message.is_none()
    }
}

/// Parses the body of `POST /publish` (§4.1): `{"items": [<item>, ...]}`. Validation is
/// all-or-nothing, so the first bad item fails the whole request.
///
/// The body is read into a tree that borrows its strings from `body` and has no map
/// nodes or key strings to allocate, unlike a `serde_json::Value`; items decode from it
/// exactly as [`PublishItem::from_json`] decodes them from a `Value`.
pub fn parse_publish_request(body: &[u8]) -> Result<Vec<PublishItem>, PublishRequestError> {
    let document: json::Json =
        serde_json::from_slice(body).map_err(|_| PublishRequestError::NotJson)?;
    if !matches!(document, json::Json::Object(_)) {
        return Err(PublishRequestError::NotAnObject);
    }
    let json::Json::Array(items) = document
        .get("items")
        .ok_or(PublishRequestError::MissingItems)?
    else {
        return Err(PublishRequestError::ItemsWrongType);
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            decode::item(item, None)
                .map_err(|source| PublishRequestError::InvalidItem { index, source })
        })
        .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod proptests;
