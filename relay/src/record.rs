//! A Kafka record as the mapping sees it: owned, independent of the Kafka client, so the
//! mapping rules (design "Data flow" 1) stay pure and unit-testable.

use std::cell::OnceCell;

use bytes::Bytes;

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when the broker reports one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Headers in record order; a header may repeat and may have no value.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl KafkaRecord {
    /// A record with just a position and a value, for tests and examples.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64, value: &[u8]) -> Self {
        KafkaRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
        }
    }

    pub fn with_key(mut self, key: &[u8]) -> Self {
        self.key = Some(Bytes::copy_from_slice(key));
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: &[u8]) -> Self {
        self.headers
            .push((name.into(), Some(Bytes::copy_from_slice(value))));
        self
    }

    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The last header called `name`: Kafka headers may repeat, and the latest value is
    /// the one a producer meant when it appended a second one.
    pub fn header(&self, name: &str) -> Option<Option<&Bytes>> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_ref())
    }
}

/// Why the value could not be read as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonUnavailable {
    /// The record is a tombstone.
    NoValue,
    /// The value is not a JSON document.
    NotJson,
}

/// A record plus its value parsed as JSON at most once, however many templates, filters
/// and rules look into it.
pub struct RecordView<'a> {
    pub record: &'a KafkaRecord,
    json: OnceCell<Result<serde_json::Value, JsonUnavailable>>,
}

impl<'a> RecordView<'a> {
    pub fn new(record: &'a KafkaRecord) -> Self {
        RecordView {
            record,
            json: OnceCell::new(),
        }
    }

    /// The value as JSON, parsed on first use.
    pub fn json(&self) -> Result<&serde_json::Value, JsonUnavailable> {
        self.json
            .get_or_init(|| match &self.record.value {
                None => Err(JsonUnavailable::NoValue),
                Some(value) => serde_json::from_slice(value).map_err(|_| JsonUnavailable::NotJson),
            })
            .as_ref()
            .map_err(|e| *e)
    }
}
