//! Resume positions: the SSE event id of a Kafka-fed channel (design "Resume", §9).
//!
//! A channel may be fed by several partitions (and, rarely, several topics), and Kafka only
//! orders records within a partition, so "where was this client" is the last delivered offset
//! of every partition, not a single number. The proxy puts the encoded position in each
//! event's `id:`; a reconnect brings it back as `Last-Event-ID` and the proxy replays what lies
//! above those offsets, then drops live records the position already [covers].
//!
//! Wire form, base64url without padding, of:
//!
//! ```text
//! version (1 byte, = 1)
//! timestamp_ms                     varint
//! topic count                      varint, >= 1 unless the position is empty
//! per topic, names in ascending byte order:
//!     name length, name bytes      varint + Kafka topic name
//!     partition count              varint, >= 1
//!     per partition, ascending:
//!         partition, offset        varint, varint
//! ```
//!
//! Varints are unsigned LEB128 in their shortest form. The encoding is canonical (sorted,
//! no duplicates, shortest varints, no trailing bytes), so one position has exactly one id
//! and ids can be compared as strings. One topic with three partitions at offsets in the
//! millions encodes to about 40 characters.
//!
//! [covers]: ResumePosition::covers

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const VERSION: u8 = 1;

/// Longest id [`ResumePosition::decode`] looks at. An id travels in `Last-Event-ID` or a query
/// string; ~1,000 partitions fit, and anything longer is garbage that must not be decoded.
pub const MAX_ENCODED_LEN: usize = 8 * 1024;

/// Kafka's own limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;

/// Smallest encoding of one topic entry: name length, one name byte, partition count, and
/// one partition/offset pair.
const MIN_TOPIC_BYTES: usize = 5;

/// Smallest encoding of one partition entry.
const MIN_PARTITION_BYTES: usize = 2;

/// Why an id is not a resume position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The id is longer than [`MAX_ENCODED_LEN`].
    #[error("resume id longer than {MAX_ENCODED_LEN} characters")]
    TooLong,
    /// Not base64url without padding.
    #[error("resume id is not base64url")]
    InvalidBase64,
    /// The id decodes to nothing.
    #[error("resume id is empty")]
    Empty,
    /// A format this build does not know.
    #[error("unknown resume id version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("resume id is truncated")]
    Truncated,
    /// A varint longer than needed or than 64 bits.
    #[error("resume id has an overlong varint")]
    OverlongVarint,
    /// Bytes left after the last topic.
    #[error("resume id has trailing bytes")]
    TrailingBytes,
    /// A count larger than the remaining bytes could hold.
    #[error("resume id declares more entries than it holds")]
    CountTooLarge,
    /// A topic name that Kafka would not accept.
    #[error("resume id has an invalid topic name")]
    InvalidTopic,
    /// A topic listed with no partitions.
    #[error("resume id has a topic without partitions")]
    EmptyTopic,
    /// Topics not in ascending order, or listed twice.
    #[error("resume id topics are unsorted or duplicated")]
    UnsortedTopics,
    /// Partitions not in ascending order, or listed twice.
    #[error("resume id partitions are unsorted or duplicated")]
    UnsortedPartitions,
    /// A partition number outside `0..=i32::MAX`.
    #[error("resume id has a partition out of range")]
    PartitionOutOfRange,
    /// An offset outside `0..=i64::MAX`.
    #[error("resume id has an offset out of range")]
    OffsetOutOfRange,
}

/// Per (topic, partition) the last offset delivered on a channel, plus the timestamp (ms)
/// of the last delivered record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResumePosition {
    timestamp_ms: u64,
    topics: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl ResumePosition {
    /// A position that covers nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Timestamp (ms since the Unix epoch) of the last delivered record; lets a replay fall
    /// back to a time-based lookup when an offset is no longer retained.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// Records the timestamp of the record just delivered. Kafka timestamps are not ordered
    /// across partitions, so this is the latest delivery's timestamp, not a maximum.
    pub fn set_timestamp_ms(&mut self, timestamp_ms: u64) {
        self.timestamp_ms = timestamp_ms;
    }

    /// Marks `offset` of `topic`/`partition` as delivered, keeping the highest offset seen.
    /// Returns whether the position changed. Invalid coordinates (negative partition or
    /// offset, a name Kafka would reject) never come from Kafka and are ignored, so every
    /// position this builds can be encoded and decoded again.
    pub fn advance(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        if partition < 0 || offset < 0 || !is_valid_topic(topic.as_bytes()) {
            return false;
        }
        match self.topics.get_mut(topic) {
            Some(partitions) => match partitions.get_mut(&partition) {
                Some(delivered) if *delivered >= offset => false,
                Some(delivered) => {
                    *delivered = offset;
                    true
                }
                None => {
                    partitions.insert(partition, offset);
                    true
                }
            },
            None => {
                self.topics
                    .insert(topic.to_owned(), BTreeMap::from([(partition, offset)]));
                true
            }
        }
    }

    /// [`ResumePosition::advance`] for a record's position.
    pub fn advance_to(&mut self, position: &KafkaPosition) -> bool {
        self.advance(&position.topic, position.partition, position.offset)
    }

    /// Whether the record at `offset` was already delivered: it is at or below the delivered
    /// offset of its partition. The live switch-over drops such records (design "Resume" 3).
    pub fn covers(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.offset_of(topic, partition)
            .is_some_and(|delivered| offset <= delivered)
    }

    /// [`ResumePosition::covers`] for a record's position.
    pub fn covers_position(&self, position: &KafkaPosition) -> bool {
        self.covers(&position.topic, position.partition, position.offset)
    }

    /// The last delivered offset of a partition, if any was delivered.
    pub fn offset_of(&self, topic: &str, partition: i32) -> Option<i64> {
        self.topics.get(topic)?.get(&partition).copied()
    }

    /// Whether no offset was delivered yet.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Number of (topic, partition) pairs with a delivered offset.
    pub fn len(&self) -> usize {
        self.topics.values().map(BTreeMap::len).sum()
    }

    /// Every (topic, partition, last delivered offset), topics and partitions ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.topics.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(&partition, &offset)| (topic.as_str(), partition, offset))
        })
    }

    /// The id form (see the module documentation).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(16 + 16 * self.len());
        bytes.push(VERSION);
        put_varint(&mut bytes, self.timestamp_ms);
        put_varint(&mut bytes, self.topics.len() as u64);
        for (topic, partitions) in &self.topics {
            put_varint(&mut bytes, topic.len() as u64);
            bytes.extend_from_slice(topic.as_bytes());
            put_varint(&mut bytes, partitions.len() as u64);
            for (&partition, &offset) in partitions {
                put_varint(&mut bytes, partition.unsigned_abs().into());
                put_varint(&mut bytes, offset.unsigned_abs());
            }
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses an id produced by [`ResumePosition::encode`]. The id comes from the client, so
    /// every count is checked against the bytes left before anything is allocated for it.
    pub fn decode(id: &str) -> Result<ResumePosition, ResumeError> {
        if id.len() > MAX_ENCODED_LEN {
            return Err(ResumeError::TooLong);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(id)
            .map_err(|_| ResumeError::InvalidBase64)?;
        let mut reader = Reader { rest: &bytes };
        match reader.byte() {
            Err(_) => return Err(ResumeError::Empty),
            Ok(VERSION) => {}
            Ok(other) => return Err(ResumeError::UnknownVersion(other)),
        }
        let timestamp_ms = reader.varint()?;
        let topic_count = reader.count(MIN_TOPIC_BYTES)?;
        let mut topics = BTreeMap::new();
        let mut previous_topic: Option<&str> = None;
        for _ in 0..topic_count {
            let name_len = reader.count(1)?;
            let name = reader.take(name_len)?;
            if !is_valid_topic(name) {
                return Err(ResumeError::InvalidTopic);
            }
            let name = std::str::from_utf8(name).map_err(|_| ResumeError::InvalidTopic)?;
            if previous_topic.is_some_and(|previous| previous >= name) {
                return Err(ResumeError::UnsortedTopics);
            }
            previous_topic = Some(name);

            let partition_count = reader.count(MIN_PARTITION_BYTES)?;
            if partition_count == 0 {
                return Err(ResumeError::EmptyTopic);
            }
            let mut partitions = BTreeMap::new();
            let mut previous_partition: Option<i32> = None;
            for _ in 0..partition_count {
                let partition = i32::try_from(reader.varint()?)
                    .map_err(|_| ResumeError::PartitionOutOfRange)?;
                if previous_partition.is_some_and(|previous| previous >= partition) {
                    return Err(ResumeError::UnsortedPartitions);
                }
                previous_partition = Some(partition);
                let offset =
                    i64::try_from(reader.varint()?).map_err(|_| ResumeError::OffsetOutOfRange)?;
                partitions.insert(partition, offset);
            }
            topics.insert(name.to_owned(), partitions);
        }
        if !reader.rest.is_empty() {
            return Err(ResumeError::TrailingBytes);
        }
        Ok(ResumePosition {
            timestamp_ms,
            topics,
        })
    }
}

impl fmt::Display for ResumePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for ResumePosition {
    type Err = ResumeError;

    fn from_str(id: &str) -> Result<Self, ResumeError> {
        Self::decode(id)
    }
}

/// Kafka's topic name rule: 1–249 characters from `[a-zA-Z0-9._-]`. Enforcing it keeps ids
/// and `<topic>-<partition>-<offset>` item ids unambiguous.
fn is_valid_topic(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_LEN
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, ResumeError> {
        let (&first, rest) = self.rest.split_first().ok_or(ResumeError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ResumeError> {
        if len > self.rest.len() {
            return Err(ResumeError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// Shortest-form unsigned LEB128 of at most 64 bits.
    fn varint(&mut self) -> Result<u64, ResumeError> {
        let mut value = 0u64;
        for index in 0..10u32 {
            let byte = self.byte()?;
            let payload = u64::from(byte & 0x7f);
            if index == 9 && payload > 1 {
                return Err(ResumeError::OverlongVarint);
            }
            value |= payload << (7 * index);
            if byte & 0x80 == 0 {
                if index > 0 && byte == 0 {
                    return Err(ResumeError::OverlongVarint);
                }
                return Ok(value);
            }
        }
        Err(ResumeError::OverlongVarint)
    }

    /// A count of entries that each need at least `min_entry_bytes`, refused when the rest of
    /// the input could not hold that many.
    fn count(&mut self, min_entry_bytes: usize) -> Result<usize, ResumeError> {
        let count = self.varint()?;
        let max = (self.rest.len() / min_entry_bytes) as u64;
        if count > max {
            return Err(ResumeError::CountTooLarge);
        }
        usize::try_from(count).map_err(|_| ResumeError::CountTooLarge)
    }
}

/// Why a string is not a `<topic>-<partition>-<offset>` item id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaPositionError {
    /// Fewer than three `-`-separated parts.
    #[error("item id is not <topic>-<partition>-<offset>")]
    Shape,
    /// The topic part is not a Kafka topic name.
    #[error("item id has an invalid topic name")]
    InvalidTopic,
    /// The partition is not a canonical non-negative `i32`.
    #[error("item id has an invalid partition")]
    InvalidPartition,
    /// The offset is not a canonical non-negative `i64`.
    #[error("item id has an invalid offset")]
    InvalidOffset,
}

/// A record's place in Kafka; its [`Display`](fmt::Display) form is the item `id` the relay
/// publishes (§9), e.g. `orders-2-1234`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPosition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Record offset within the partition.
    pub offset: i64,
}

impl KafkaPosition {
    /// A position from its parts.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
        }
    }
}

impl fmt::Display for KafkaPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.topic, self.partition, self.offset)
    }
}

impl FromStr for KafkaPosition {
    type Err = KafkaPositionError;

    /// Splits from the right: topic names may contain `-`, numbers cannot. Only the
    /// canonical decimal form is accepted so equal positions have equal ids (§3.7 dedup
    /// compares ids).
    fn from_str(id: &str) -> Result<Self, KafkaPositionError> {
        let mut parts = id.rsplitn(3, '-');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(KafkaPositionError::Shape);
        };
        if !is_valid_topic(topic.as_bytes()) {
            return Err(KafkaPositionError::InvalidTopic);
        }
        let partition = parse_canonical(partition)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or(KafkaPositionError::InvalidPartition)?;
        let offset = parse_canonical(offset).ok_or(KafkaPositionError::InvalidOffset)?;
        Ok(Self::new(topic, partition, offset))
    }
}

/// Non-negative decimal without sign or leading zeros.
fn parse_canonical(digits: &str) -> Option<i64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
