//! What a direct-mode connection needs of an item that came from Kafka (design "Resume").
//!
//! The relay publishes each record as an item whose `meta` carries its Kafka position
//! (`topic`, `partition`, `offset`, `timestamp`, and `key`/`event` when the record has
//! them, §9) and whose `http-stream` content is a ready SSE event with the item id
//! `<topic>-<partition>-<offset>`. A direct SSE stream replaces that id by a resume id
//! that encodes the whole channel's position, so the event is kept as the bytes after
//! its `id:` line and the resume id is put in front — one allocation per item per
//! channel, shared by every connection that is in step with the channel.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use fjord_protocol::item::{PublishItem, ResponseAction, ResponseBody, StreamAction};
use fjord_protocol::resume::{KafkaPosition, ResumePosition};
use fjord_protocol::sse::SseEvent;

/// One Kafka record as it appears on one channel.
#[derive(Debug, Clone)]
pub struct KafkaEvent {
    pub position: KafkaPosition,
    pub timestamp_ms: Option<u64>,
    /// The record key, when it is UTF-8; what `on_overflow = "conflate"` keys on.
    pub key: Option<String>,
    /// SSE event name, if the relay rule names one.
    pub event: Option<String>,
    /// The record value (or its JSON projection), for long-poll and raw streams.
    pub data: Bytes,
    /// The SSE event without any `id:` line, blank line included.
    pub sse_body: Bytes,
}

impl KafkaEvent {
    /// The Kafka view of `item`, or `None` when it did not come from Kafka (an item
    /// published by other means is delivered as it is).
    pub fn from_item(item: &PublishItem) -> Option<KafkaEvent> {
        let position = position_of(&item.meta)?;
        let timestamp_ms = item.meta.get("timestamp").and_then(|t| t.parse().ok());
        let key = item.meta.get("key").cloned();
        let stream = item
            .formats
            .http_stream
            .as_ref()
            .and_then(|format| match &format.action {
                StreamAction::Send(content) => Some(content),
                _ => None,
            });
        let raw = item
            .formats
            .http_response
            .as_ref()
            .and_then(|format| match &format.action {
                ResponseAction::Send(message) => match &message.body {
                    ResponseBody::Bytes(bytes) => Some(bytes.clone()),
                    _ => None,
                },
                _ => None,
            });
        // The relay sends the event name in `meta` and the value as the response body:
        // the SSE content is parsed only for items that lack either (this runs on the
        // publish path, once per item and channel).
        let needs_parse = raw.is_none() || !item.meta.contains_key("event");
        let parsed = stream
            .filter(|_| needs_parse)
            .map(|content| ParsedEvent::parse(content));
        let event = item
            .meta
            .get("event")
            .cloned()
            .or_else(|| parsed.as_ref().and_then(|p| p.event.clone()));
        let data = match (&raw, &parsed) {
            (Some(raw), _) => raw.clone(),
            (None, Some(parsed)) => parsed.data.clone(),
            (None, None) => return None,
        };
        let sse_body = match stream {
            Some(content) => strip_id_line(content),
            None => {
                let mut sse = SseEvent::new(data.as_ref());
                if let Some(event) = &event {
                    sse = sse.with_event(event);
                }
                sse.to_bytes().ok()?
            }
        };
        Some(KafkaEvent {
            position,
            timestamp_ms,
            key,
            event,
            data,
            sse_body,
        })
    }

    /// The SSE event with `id` as its id.
    pub fn sse_with_id(&self, id: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(id.len() + 5 + self.sse_body.len());
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
        out.put_slice(&self.sse_body);
        out.freeze()
    }
}

/// The Kafka position in an item's `meta`, when all three parts are there and valid.
fn position_of(meta: &BTreeMap<String, String>) -> Option<KafkaPosition> {
    let topic = meta.get("topic")?;
    let partition: i32 = meta.get("partition")?.parse().ok()?;
    let offset: i64 = meta.get("offset")?.parse().ok()?;
    if partition < 0 || offset < 0 {
        return None;
    }
    // A position a resume id cannot carry is no position (advance refuses it too).
    let mut probe = ResumePosition::new();
    probe
        .advance(topic, partition, offset)
        .then(|| KafkaPosition::new(topic.clone(), partition, offset))
}

/// `content` without its leading `id:` line, if it has one (the relay writes the id
/// first; an `id:` elsewhere is left alone).
pub fn strip_id_line(content: &Bytes) -> Bytes {
    if content.starts_with(b"id:") {
        if let Some(newline) = content.iter().position(|&b| b == b'\n') {
            return content.slice(newline + 1..);
        }
    }
    content.clone()
}

/// The `event` and `data` of one SSE event (WHATWG HTML §9.2.6 field rules, enough for
/// the events the relay writes: one event, LF line ends).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedEvent {
    pub event: Option<String>,
    pub data: Bytes,
}

impl ParsedEvent {
    pub fn parse(content: &[u8]) -> ParsedEvent {
        let mut event = None;
        let mut data: Vec<u8> = Vec::new();
        let mut first_data = true;
        for line in content.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(0) => continue,
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            match field {
                b"event" => event = Some(String::from_utf8_lossy(value).into_owned()),
                b"data" => {
                    if !first_data {
                        data.push(b'\n');
                    }
                    first_data = false;
                    data.extend_from_slice(value);
                }
                _ => {}
            }
        }
        ParsedEvent {
            event,
            data: Bytes::from(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::item::{Formats, HttpStreamFormat};

    fn relay_item(meta: &[(&str, &str)], sse: &'static [u8]) -> PublishItem {
        let mut item = PublishItem::new(
            "orders.1",
            Formats {
                http_stream: Some(HttpStreamFormat {
                    action: StreamAction::Send(Bytes::from_static(sse)),
                    content_filters: Vec::new(),
                }),
                ..Formats::default()
            },
        );
        item.meta = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        item
    }

    #[test]
    fn relay_item_becomes_an_event_without_its_item_id() {
        let item = relay_item(
            &[("topic", "orders"), ("partition", "2"), ("offset", "41")],
            b"id: orders-2-41\nevent: order\ndata: {\"a\":1}\n\n",
        );
        let event = KafkaEvent::from_item(&item).expect("a Kafka item");
        assert_eq!(event.position, KafkaPosition::new("orders", 2, 41));
        assert_eq!(event.event.as_deref(), Some("order"));
        assert_eq!(&event.data[..], b"{\"a\":1}");
        assert_eq!(&event.sse_body[..], b"event: order\ndata: {\"a\":1}\n\n");
        assert_eq!(
            &event.sse_with_id("XYZ")[..],
            b"id: XYZ\nevent: order\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let parsed = ParsedEvent::parse(b"data: one\ndata: two\r\ndata:three\n\n");
        assert_eq!(&parsed.data[..], b"one\ntwo\nthree");
        assert_eq!(parsed.event, None);
    }

    #[test]
    fn items_without_a_complete_position_are_not_kafka_events() {
        let sse = b"data: x\n\n";
        assert!(KafkaEvent::from_item(&relay_item(&[], sse)).is_none());
        let no_offset = relay_item(&[("topic", "t"), ("partition", "0")], sse);
        assert!(KafkaEvent::from_item(&no_offset).is_none());
        let negative = relay_item(&[("topic", "t"), ("partition", "0"), ("offset", "-1")], sse);
        assert!(KafkaEvent::from_item(&negative).is_none());
        let bad_topic = relay_item(
            &[("topic", "a b"), ("partition", "0"), ("offset", "1")],
            sse,
        );
        assert!(KafkaEvent::from_item(&bad_topic).is_none());
    }
}
