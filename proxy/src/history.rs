//! The recent past of a Kafka-fed channel: its position and a ring of its last items
//! (design "Resume" 2).
//!
//! A reconnecting client brings the position it had reached; when the ring still holds
//! every item of the channel after that position, the proxy serves them from memory
//! instead of asking a relay to read Kafka again.
//!
//! Items reach a proxy in per-partition order, but a channel is sparse within its
//! partitions (`orders.42` gets a few records of partition 3 among millions), so the
//! first item of a partition that the ring sees says nothing about earlier offsets. The
//! ring therefore keeps, per partition, a *floor*: the ring holds every item of that
//! partition above its floor. The floor starts at the first item seen (anything older may
//! have passed before this proxy subscribed) and rises as items are evicted. A position
//! can be served from the ring when it names exactly the partitions the ring knows, each
//! at or above its floor; anything else goes to a replay, which is never wrong, only
//! slower.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::resume::ResumePosition;

use crate::kafka_event::KafkaEvent;

/// A Kafka item as one channel delivers it: the record, where the channel stands after
/// it, and the SSE event carrying that position as its id.
#[derive(Debug)]
pub struct ChannelRecord {
    pub record: KafkaEvent,
    /// The channel's position once this item is delivered, encoded: the event id. Only
    /// the encoded form is kept (a decoded position costs hundreds of bytes of tree
    /// nodes per record, and the ring holds many records).
    pub id: String,
    /// `id: <position>` + the event: what every connection in step with the
    /// channel writes.
    pub sse: Bytes,
}

impl ChannelRecord {
    /// The channel's position once this item is delivered.
    pub fn channel_position(&self) -> ResumePosition {
        // The id was encoded from a valid position by this process.
        ResumePosition::decode(&self.id).unwrap_or_default()
    }
}

/// What the ring can do for a reconnecting client.
#[derive(Debug)]
pub enum Catchup {
    /// Everything after the position, oldest first (possibly nothing).
    Items(Vec<Arc<ChannelRecord>>),
    /// The ring does not reach back far enough: replay from Kafka.
    Replay,
}

/// The ring keeps the channel's view of a record, not the published item: the item's
/// other formats and `meta` are freed once it was delivered live.
struct Entry {
    record: Arc<ChannelRecord>,
    /// Wall-clock time of arrival (ms since the epoch), for timestamp-only cursors.
    arrived_ms: u64,
}

/// Position and recent items of one channel.
pub struct ChannelHistory {
    capacity: usize,
    entries: VecDeque<Entry>,
    position: ResumePosition,
    /// Per (topic, partition): the ring holds every item of it above this offset.
    floors: BTreeMap<(String, i32), i64>,
    /// Whether an item was ever evicted (a timestamp-only cursor then cannot be served).
    evicted: bool,
    created_ms: u64,
}

impl ChannelHistory {
    pub fn new(capacity: usize, now_ms: u64) -> ChannelHistory {
        ChannelHistory {
            capacity,
            entries: VecDeque::new(),
            position: ResumePosition::new(),
            floors: BTreeMap::new(),
            evicted: false,
            created_ms: now_ms,
        }
    }

    /// Where the channel stands: the last offset of every partition it delivered.
    pub fn position(&self) -> &ResumePosition {
        &self.position
    }

    /// Whether the record was delivered on this channel already (a relay re-sending its
    /// uncommitted tail after a restart).
    pub fn is_duplicate(&self, record: &KafkaEvent) -> bool {
        self.position.covers_position(&record.position)
    }

    /// Advances the channel past `record` and returns the event as the channel delivers it.
    pub fn advance(&mut self, mut record: KafkaEvent) -> ChannelRecord {
        let position = &record.position;
        self.floors
            .entry((position.topic.clone(), position.partition))
            .or_insert(position.offset);
        self.position.advance_to(position);
        if let Some(timestamp) = record.timestamp_ms {
            self.position.set_timestamp_ms(timestamp);
        }
        let id = self.position.encode();
        let sse = record.sse_with_id(&id);
        // The event body now lives in `sse` too: point at it there, so a remembered
        // record does not also keep the published item's buffer alive.
        record.sse_body = sse.slice(sse.len() - record.sse_body.len()..);
        ChannelRecord { record, id, sse }
    }

    /// Keeps `record` in the ring, evicting the oldest when full.
    pub fn remember(&mut self, record: Arc<ChannelRecord>, now_ms: u64) {
        if self.capacity == 0 {
            self.evict(&record);
            return;
        }
        if self.entries.len() >= self.capacity {
            if let Some(old) = self.entries.pop_front() {
                self.evict(&old.record);
            }
        }
        self.entries.push_back(Entry {
            record,
            arrived_ms: now_ms,
        });
    }

    fn evict(&mut self, record: &ChannelRecord) {
        self.evicted = true;
        let position = &record.record.position;
        let floor = self
            .floors
            .entry((position.topic.clone(), position.partition))
            .or_insert(position.offset);
        *floor = (*floor).max(position.offset);
    }

    /// What the ring holds after `after`.
    pub fn catch_up(&self, after: &ResumePosition) -> Catchup {
        if after.is_empty() {
            return self.catch_up_since(after.timestamp_ms());
        }
        let named = after.len();
        if named != self.floors.len() {
            return Catchup::Replay;
        }
        for (topic, partition, offset) in after.iter() {
            match self.floors.get(&(topic.to_owned(), partition)) {
                Some(&floor) if offset >= floor => {}
                _ => return Catchup::Replay,
            }
        }
        let items = self
            .entries
            .iter()
            .filter(|entry| !after.covers_position(&entry.record.record.position))
            .map(|entry| Arc::clone(&entry.record))
            .collect();
        Catchup::Items(items)
    }

    /// A cursor without partitions marks a moment this proxy handed out when the channel
    /// had delivered nothing yet: what arrived since then, if the ring is complete.
    fn catch_up_since(&self, since_ms: u64) -> Catchup {
        if self.evicted || since_ms < self.created_ms {
            return Catchup::Replay;
        }
        let items = self
            .entries
            .iter()
            .filter(|entry| entry.arrived_ms >= since_ms)
            .map(|entry| Arc::clone(&entry.record))
            .collect();
        Catchup::Items(items)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
