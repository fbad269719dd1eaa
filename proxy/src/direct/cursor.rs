//! Where one direct connection stands, and what it writes for each item (design
//! "Resume" 1–3).
//!
//! A connection that joined a channel live is *in step* with it: it has seen exactly what
//! the channel delivered since, so every event carries the channel's own position, encoded
//! once per item by the hub and shared. A resuming connection (or one reading several
//! channels) keeps a position of its own, drops what that position already covers, and
//! encodes its ids itself; once its position equals the channel's after an item, it is in
//! step again.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use fjord_protocol::item::StreamAction;
use fjord_protocol::resume::ResumePosition;
use serde_json::json;

use super::replay::Gap;
use crate::history::ChannelRecord;
use crate::hub::{unix_ms, Delivery};
use crate::kafka_event::{strip_id_line, KafkaEvent, ParsedEvent};

/// How events reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `text/event-stream`.
    Sse,
    /// A JSON answer per poll.
    Poll,
    /// The raw values, one per line.
    Raw,
}

#[derive(Debug)]
enum State {
    InStep {
        base: ResumePosition,
        last: Option<Arc<ChannelRecord>>,
    },
    Own(ResumePosition),
}

/// The position of one connection.
#[derive(Debug)]
pub struct Cursor {
    state: State,
    /// Only a single-channel connection can be in step with its channel.
    single_channel: bool,
}

/// One event a connection writes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A Kafka record, with the connection's id for it; `shared` is the channel's own
    /// encoding when the connection is in step.
    Record {
        record: &'a KafkaEvent,
        id: IdSource<'a>,
        shared_sse: Option<&'a Bytes>,
    },
    /// An item published by other means than the relay: written as published.
    Plain(&'a Delivery),
}

/// An event id: the channel's (already encoded) or the connection's own.
#[derive(Debug)]
pub enum IdSource<'a> {
    Channel(&'a str),
    Own(String),
}

impl IdSource<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            IdSource::Channel(id) => id,
            IdSource::Own(id) => id,
        }
    }
}

impl Cursor {
    /// A connection that joined live at the channel's `position`.
    pub fn in_step(position: ResumePosition) -> Cursor {
        Cursor {
            state: State::InStep {
                base: position,
                last: None,
            },
            single_channel: true,
        }
    }

    /// A connection with a position of its own (resuming, or reading several channels).
    pub fn own(position: ResumePosition, single_channel: bool) -> Cursor {
        Cursor {
            state: State::Own(position),
            single_channel,
        }
    }

    /// Where the connection stands.
    pub fn position(&self) -> ResumePosition {
        match &self.state {
            State::InStep {
                last: Some(last), ..
            } => last.channel_position(),
            State::InStep { base, last: None } => base.clone(),
            State::Own(position) => position.clone(),
        }
    }

    /// The resume id of the current position. A position naming no partition yet still
    /// marks a moment: it carries the current time, so a resume from it gets what
    /// arrived since.
    pub fn resume_id(&self) -> String {
        let mut position = self.position();
        if position.is_empty() {
            position.set_timestamp_ms(unix_ms());
        }
        position.encode()
    }

    pub fn is_in_step(&self) -> bool {
        matches!(self.state, State::InStep { .. })
    }

    /// Takes a live (or remembered) delivery; `None` when the connection has it already
    /// or it is no stream item.
    pub fn accept<'a>(&mut self, delivery: &'a Arc<Delivery>) -> Option<Event<'a>> {
        match &delivery.kafka {
            Some(kafka) => self.accept_remembered(kafka),
            None => Some(Event::Plain(delivery)),
        }
    }

    /// Takes a record of the channel (live, or from its history); `None` when the
    /// connection has it already.
    pub fn accept_remembered<'a>(&mut self, kafka: &'a Arc<ChannelRecord>) -> Option<Event<'a>> {
        match &mut self.state {
            State::InStep { last, .. } => {
                *last = Some(Arc::clone(kafka));
                Some(Event::Record {
                    record: &kafka.record,
                    id: IdSource::Channel(kafka.id.as_str()),
                    shared_sse: Some(&kafka.sse),
                })
            }
            State::Own(position) => {
                if position.covers_position(&kafka.record.position) {
                    return None;
                }
                position.advance_to(&kafka.record.position);
                if let Some(timestamp) = kafka.record.timestamp_ms {
                    position.set_timestamp_ms(timestamp);
                }
                // Canonical encoding: equal ids are equal positions (resume codec).
                let id = position.encode();
                if self.single_channel && id == kafka.id {
                    self.state = State::InStep {
                        base: ResumePosition::new(),
                        last: Some(Arc::clone(kafka)),
                    };
                    return Some(Event::Record {
                        record: &kafka.record,
                        id: IdSource::Channel(kafka.id.as_str()),
                        shared_sse: Some(&kafka.sse),
                    });
                }
                Some(Event::Record {
                    record: &kafka.record,
                    id: IdSource::Own(id),
                    shared_sse: None,
                })
            }
        }
    }

    /// Takes a replayed record; `None` when the connection has it already.
    pub fn accept_record<'a>(&mut self, record: &'a KafkaEvent) -> Option<Event<'a>> {
        let position = self.own_position();
        if position.covers_position(&record.position) {
            return None;
        }
        position.advance_to(&record.position);
        if let Some(timestamp) = record.timestamp_ms {
            position.set_timestamp_ms(timestamp);
        }
        Some(Event::Record {
            record,
            id: IdSource::Own(position.encode()),
            shared_sse: None,
        })
    }

    /// Moves past a range Kafka lost; returns the id to send with the gap event.
    pub fn skip_gap(&mut self, gap: &Gap) -> String {
        let position = self.own_position();
        position.advance(&gap.topic, gap.partition, gap.to);
        position.encode()
    }

    fn own_position(&mut self) -> &mut ResumePosition {
        if let State::InStep { .. } = self.state {
            self.state = State::Own(self.position());
        }
        match &mut self.state {
            State::Own(position) => position,
            State::InStep { .. } => unreachable!("just made own"),
        }
    }
}

impl Event<'_> {
    /// The SSE bytes of the event.
    pub fn sse(&self) -> Bytes {
        match self {
            Event::Record {
                shared_sse: Some(shared),
                ..
            } => (*shared).clone(),
            Event::Record { record, id, .. } => record.sse_with_id(id.as_str()),
            // Without the publisher's own id: the client's Last-Event-ID must stay a
            // resume id, which the next reconnect is served from.
            Event::Plain(delivery) => stream_content(delivery)
                .map(|content| strip_id_line(&content))
                .unwrap_or_default(),
        }
    }

    /// The record value followed by a newline.
    pub fn raw_line(&self) -> Bytes {
        let data = match self {
            Event::Record { record, .. } => record.data.clone(),
            Event::Plain(delivery) => stream_content(delivery)
                .map(|content| ParsedEvent::parse(&content).data)
                .unwrap_or_default(),
        };
        let mut out = BytesMut::with_capacity(data.len() + 1);
        out.put_slice(&data);
        out.put_u8(b'\n');
        out.freeze()
    }

    /// The long-poll JSON of the event.
    pub fn json(&self) -> serde_json::Value {
        let (id, event, data) = match self {
            Event::Record { record, id, .. } => (
                Some(id.as_str().to_owned()),
                record.event.clone(),
                record.data.clone(),
            ),
            Event::Plain(delivery) => {
                let parsed = stream_content(delivery)
                    .map(|content| ParsedEvent::parse(&content))
                    .unwrap_or_default();
                (delivery.item.id.clone(), parsed.event, parsed.data)
            }
        };
        let mut value = json!({ "id": id, "event": event });
        match std::str::from_utf8(&data) {
            Ok(text) => value["data"] = json!(text),
            Err(_) => {
                use base64::Engine;
                value["data_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&data));
            }
        }
        value
    }

    /// Whether the event is written at all (an item without stream content is not).
    pub fn is_writable(&self) -> bool {
        match self {
            Event::Record { .. } => true,
            Event::Plain(delivery) => stream_content(delivery).is_some(),
        }
    }
}

fn stream_content(delivery: &Delivery) -> Option<Bytes> {
    match &delivery.item.formats.http_stream.as_ref()?.action {
        StreamAction::Send(content) => Some(content.clone()),
        _ => None,
    }
}

/// A gap event: `data` names the lost range, `id` is past it.
pub fn gap_sse(gap: &Gap, id: &str) -> Bytes {
    let data = serde_json::to_string(gap).unwrap_or_default();
    Bytes::from(format!("id: {id}\nevent: gap\ndata: {data}\n\n"))
}

/// The final event of a stream the proxy ends: the client reconnects with `id`.
pub fn close_sse(reason: &str, id: &str) -> Bytes {
    let data = json!({ "reason": reason });
    Bytes::from(format!("id: {id}\nevent: close\ndata: {data}\n\n"))
}
