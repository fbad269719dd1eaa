//! Catching a resuming connection up (design "Resume"): subscribe live first (the queue
//! buffers), take what the channel's history holds after the client's position, ask a
//! relay to replay what it does not, then go live; the connection's [`Cursor`] drops
//! whatever it already has.

use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::resume::ResumePosition;

use super::cursor::{gap_sse, Cursor, Event, Transport};
use super::replay::{Gap, ReplayEntry};
use super::stream::CloseReason;
use super::DirectRoute;
use crate::context::ProxyContext;
use crate::history::{Catchup, ChannelRecord};
use crate::hub::SubscriptionSet;
use crate::kafka_event::KafkaEvent;
use crate::metrics::Metrics;

/// Most items one catch-up sends; a client further behind gets them in rounds (the
/// stream ends with its resume id and it reconnects).
pub const MAX_CATCHUP_ITEMS: usize = 10_000;

/// One thing a resuming connection is sent before it goes live.
#[derive(Debug)]
pub enum CatchupEntry {
    /// From the channel's history.
    Remembered(Arc<ChannelRecord>),
    /// From a relay replay.
    Replayed(KafkaEvent),
    /// Offsets Kafka no longer has.
    Gap(Gap),
    /// Neither history nor a relay could say what was missed.
    Unknown { channel: String, reason: String },
}

/// Where a connection starts and what it is sent first.
pub struct CatchupOutcome {
    pub cursor: Cursor,
    pub entries: Vec<CatchupEntry>,
    /// End the stream after the entries (cut short, or the replay failed).
    pub close: Option<CloseReason>,
}

impl CatchupEntry {
    fn sort_key(&self) -> Option<(&str, i32, i64)> {
        let position = match self {
            CatchupEntry::Remembered(r) => &r.record.position,
            CatchupEntry::Replayed(r) => &r.position,
            CatchupEntry::Gap(_) | CatchupEntry::Unknown { .. } => return None,
        };
        Some((&position.topic, position.partition, position.offset))
    }

    /// The event as the cursor sees it, or `None` for gaps and duplicates.
    pub fn event<'a>(&'a self, cursor: &mut Cursor) -> Option<Event<'a>> {
        match self {
            CatchupEntry::Remembered(record) => cursor.accept_remembered(record),
            CatchupEntry::Replayed(record) => cursor.accept_record(record),
            CatchupEntry::Gap(_) | CatchupEntry::Unknown { .. } => None,
        }
    }

    /// The bytes a stream writes for the entry, moving the cursor past it.
    pub fn write(
        &self,
        cursor: &mut Cursor,
        transport: Transport,
        metrics: &Metrics,
    ) -> Option<Bytes> {
        match self {
            CatchupEntry::Gap(gap) => {
                metrics.gaps.inc();
                let id = cursor.skip_gap(gap);
                (transport == Transport::Sse).then(|| gap_sse(gap, &id))
            }
            CatchupEntry::Unknown { channel, reason } => {
                metrics.gaps.inc();
                let data = serde_json::json!({ "channel": channel, "reason": reason });
                (transport == Transport::Sse).then(|| {
                    Bytes::from(format!(
                        "id: {}\nevent: gap\ndata: {data}\n\n",
                        cursor.resume_id()
                    ))
                })
            }
            _ => {
                let event = self.event(cursor)?;
                if !event.is_writable() {
                    return None;
                }
                Some(match transport {
                    Transport::Raw => event.raw_line(),
                    _ => event.sse(),
                })
            }
        }
    }
}

/// Subscribes the connection to `channels` and works out what it missed.
pub async fn catch_up(
    ctx: &Arc<ProxyContext>,
    direct: &DirectRoute,
    subscriptions: &mut SubscriptionSet,
    channels: &[String],
    resume: Option<&ResumePosition>,
) -> CatchupOutcome {
    let single = channels.len() == 1;
    let starts: Vec<_> = channels
        .iter()
        .map(|channel| {
            let start = subscriptions.add_direct(channel, direct.history, resume);
            (channel.as_str(), start)
        })
        .collect();

    let Some(after) = resume else {
        let cursor = if single {
            Cursor::in_step(starts[0].1.position.clone())
        } else {
            let mut union = ResumePosition::new();
            for (_, start) in &starts {
                for (topic, partition, offset) in start.position.iter() {
                    union.advance(topic, partition, offset);
                }
                union.set_timestamp_ms(union.timestamp_ms().max(start.position.timestamp_ms()));
            }
            Cursor::own(union, false)
        };
        return CatchupOutcome {
            cursor,
            entries: Vec::new(),
            close: None,
        };
    };

    let mut cursor = Cursor::own(after.clone(), single);
    let mut entries = Vec::new();
    let mut close = None;
    for (channel, start) in starts {
        match start.catchup {
            Some(Catchup::Items(items)) => {
                ctx.metrics.resumes.with_label_values(&["history"]).inc();
                entries.extend(items.into_iter().map(CatchupEntry::Remembered));
            }
            Some(Catchup::Replay) | None => match &ctx.direct.replay {
                Some(relay) => {
                    ctx.metrics.resumes.with_label_values(&["replay"]).inc();
                    match relay.replay(channel, direct.stream.as_deref(), after).await {
                        Ok(replayed) => entries.extend(replayed.into_iter().map(|e| match e {
                            ReplayEntry::Gap(gap) => CatchupEntry::Gap(gap),
                            ReplayEntry::Record(record) => CatchupEntry::Replayed(record),
                        })),
                        Err(error) => {
                            tracing::warn!(%channel, %error, "replay failed; the client will retry");
                            ctx.metrics.resumes.with_label_values(&["failed"]).inc();
                            close = Some(CloseReason::ReplayFailed);
                            break;
                        }
                    }
                }
                None => {
                    // Nothing can say what was missed: say so, and continue from where
                    // the channel stands.
                    ctx.metrics.resumes.with_label_values(&["unknown"]).inc();
                    for (topic, partition, offset) in start.position.iter() {
                        cursor_advance(&mut cursor, topic, partition, offset);
                    }
                    entries.push(CatchupEntry::Unknown {
                        channel: channel.to_owned(),
                        reason: "not in this proxy's history and no relay to replay from"
                            .to_owned(),
                    });
                }
            },
        }
    }
    if close.is_some() {
        // The whole catch-up is retried; send nothing of it now.
        entries.clear();
    }
    if !single {
        // Per-partition order across channels; gaps first, so the cursor skips a lost
        // range before the records after it.
        entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
    if entries.len() > MAX_CATCHUP_ITEMS {
        entries.truncate(MAX_CATCHUP_ITEMS);
        close = Some(CloseReason::MoreToReplay);
    }
    CatchupOutcome {
        cursor,
        entries,
        close,
    }
}

/// Moves a cursor's own position forward without an event (what an unknown gap skips).
fn cursor_advance(cursor: &mut Cursor, topic: &str, partition: i32, offset: i64) {
    cursor.skip_gap(&Gap {
        topic: topic.to_owned(),
        partition,
        from: offset,
        to: offset,
    });
}
