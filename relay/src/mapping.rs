//! Record → publish items (§9, design "Data flow" 1). Pure: a [`StreamRule`] turns one
//! record into zero, one or several items, or a [`SkipReason`]; nothing here does I/O.
//!
//! Every item carries its Kafka position in `meta` (`topic`, `partition`, `offset`,
//! `timestamp`), `id = <topic>-<partition>-<offset>`, and `no-seq: true` with no `prev-id`:
//! a channel may be fed by several partitions, whose records have no single predecessor
//! (§9, §3.7).

use std::collections::BTreeMap;

use bytes::Bytes;
use fjord_protocol::item::{
    Formats, HttpResponseFormat, HttpStreamFormat, PublishItem, ResponseAction, ResponseBody,
    ResponseMessage, StreamAction, WsMessageFormat, WsMessageKind,
};
use fjord_protocol::resume::KafkaPosition;
use fjord_protocol::sse::SseEvent;
use regex::Regex;

use crate::config::{DataConfig, FilterConfig, FormatConfig, StreamConfig, TopicSelector};
use crate::record::{KafkaRecord, RecordView};
use crate::skip::SkipReason;
use crate::template::{is_valid_pointer, json_field, Template, TemplateError};

/// Why a `[[relay.stream]]` rule is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("stream {rule}: {source}")]
    Template { rule: String, source: TemplateError },
    #[error(
        "stream {rule}: topic pattern {pattern:?} is not a valid regular expression: {reason}"
    )]
    Pattern {
        rule: String,
        pattern: String,
        reason: String,
    },
    #[error("stream {rule}: topic name is empty")]
    EmptyTopic { rule: String },
    #[error("stream {rule}: JSON pointer {pointer:?} must be empty or start with '/'")]
    Pointer { rule: String, pointer: String },
    #[error("stream {rule}: no format enabled (http-stream, http-response, ws-message)")]
    NoFormats { rule: String },
    #[error("stream {rule}: projected field name {name:?} is used twice")]
    DuplicateField { rule: String, name: String },
}

/// Which topics a rule reads.
#[derive(Debug, Clone)]
pub enum TopicMatcher {
    Exact(String),
    Pattern { source: String, regex: Regex },
}

impl TopicMatcher {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicMatcher::Exact(name) => name == topic,
            TopicMatcher::Pattern { regex, .. } => regex.is_match(topic),
        }
    }

    /// The librdkafka subscription entry: the name, or `^(pattern)$` (a leading `^` is
    /// how librdkafka recognises a pattern).
    pub fn subscription(&self) -> String {
        match self {
            TopicMatcher::Exact(name) => name.clone(),
            TopicMatcher::Pattern { source, .. } => format!("^({source})$"),
        }
    }
}

#[derive(Debug, Clone)]
enum Data {
    Value,
    Fields(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
enum Filter {
    Header {
        name: String,
        equals: String,
    },
    Json {
        pointer: String,
        equals: serde_json::Value,
    },
}

/// One compiled `[[relay.stream]]` rule.
#[derive(Debug, Clone)]
pub struct StreamRule {
    /// `name` from the config, or `#<index>`.
    pub label: String,
    pub name: Option<String>,
    pub topics: TopicMatcher,
    channels: Vec<Template>,
    event: Option<Template>,
    data: Data,
    filter: Option<Filter>,
    formats: FormatConfig,
    max_value_bytes: usize,
}

/// What one rule made of one record.
#[derive(Debug, PartialEq)]
pub enum RuleOutcome {
    /// The record's topic is not one of the rule's.
    NotMatched,
    /// The rule's filter did not select the record.
    Filtered,
    /// The items, one per channel template.
    Items(Vec<PublishItem>),
    Skipped(SkipReason),
}

impl StreamRule {
    /// Parses every template and pattern of `config`; `index` names the rule in errors
    /// when it has no name.
    pub fn compile(
        config: &StreamConfig,
        index: usize,
        max_value_bytes: usize,
    ) -> Result<StreamRule, RuleError> {
        let label = config.name.clone().unwrap_or_else(|| format!("#{index}"));
        let template = |source: &str| {
            Template::parse(source).map_err(|source| RuleError::Template {
                rule: label.clone(),
                source,
            })
        };
        let pointer = |pointer: &str| {
            if is_valid_pointer(pointer) {
                Ok(())
            } else {
                Err(RuleError::Pointer {
                    rule: label.clone(),
                    pointer: pointer.to_owned(),
                })
            }
        };
        let topics = match &config.topic {
            TopicSelector::Exact(name) if name.is_empty() => {
                return Err(RuleError::EmptyTopic { rule: label })
            }
            TopicSelector::Exact(name) => TopicMatcher::Exact(name.clone()),
            TopicSelector::Pattern(source) => {
                let regex =
                    Regex::new(&format!("^(?:{source})$")).map_err(|e| RuleError::Pattern {
                        rule: label.clone(),
                        pattern: source.clone(),
                        reason: e.to_string(),
                    })?;
                TopicMatcher::Pattern {
                    source: source.clone(),
                    regex,
                }
            }
        };
        let channels = if config.channels.is_empty() {
            vec![template("{topic}")?]
        } else {
            config
                .channels
                .iter()
                .map(|c| template(c))
                .collect::<Result<_, _>>()?
        };
        let event = config.event.as_deref().map(template).transpose()?;
        let data = match &config.data {
            DataConfig::Value => Data::Value,
            DataConfig::Fields(fields) => {
                let mut seen = std::collections::HashSet::new();
                for (name, ptr) in fields {
                    pointer(ptr)?;
                    if !seen.insert(name) {
                        return Err(RuleError::DuplicateField {
                            rule: label,
                            name: name.clone(),
                        });
                    }
                }
                Data::Fields(fields.clone())
            }
        };
        let filter = match &config.filter {
            None => None,
            Some(FilterConfig::Header { name, equals }) => Some(Filter::Header {
                name: name.clone(),
                equals: equals.clone(),
            }),
            Some(FilterConfig::Json {
                pointer: ptr,
                equals,
            }) => {
                pointer(ptr)?;
                Some(Filter::Json {
                    pointer: ptr.clone(),
                    equals: equals.clone(),
                })
            }
        };
        let formats = config.formats;
        if !(formats.http_stream || formats.http_response || formats.ws_message) {
            return Err(RuleError::NoFormats { rule: label });
        }
        Ok(StreamRule {
            label,
            name: config.name.clone(),
            topics,
            channels,
            event,
            data,
            filter,
            formats,
            max_value_bytes,
        })
    }

    /// The items for `view`'s record under this rule.
    pub fn apply(&self, view: &RecordView<'_>) -> RuleOutcome {
        let record = view.record;
        if !self.topics.matches(&record.topic) {
            return RuleOutcome::NotMatched;
        }
        match self.selects(view) {
            Ok(true) => {}
            Ok(false) => return RuleOutcome::Filtered,
            Err(reason) => return RuleOutcome::Skipped(reason),
        }
        match self.items(view) {
            Ok(items) => RuleOutcome::Items(items),
            Err(reason) => RuleOutcome::Skipped(reason),
        }
    }

    /// Whether the filter selects the record. A filter on a header or field the record
    /// lacks does not select it; a JSON filter on a value that is not JSON is a skip.
    fn selects(&self, view: &RecordView<'_>) -> Result<bool, SkipReason> {
        match &self.filter {
            None => Ok(true),
            Some(Filter::Header { name, equals }) => Ok(view
                .record
                .header(name)
                .flatten()
                .is_some_and(|value| value.as_ref() == equals.as_bytes())),
            Some(Filter::Json { pointer, equals }) => match json_field(view, pointer) {
                Ok(value) => Ok(value == equals),
                Err(SkipReason::MissingJsonField) => Ok(false),
                Err(reason) => Err(reason),
            },
        }
    }

    fn items(&self, view: &RecordView<'_>) -> Result<Vec<PublishItem>, SkipReason> {
        let record = view.record;
        let value = record.value.as_ref().ok_or(SkipReason::NoValue)?;
        if value.len() > self.max_value_bytes {
            return Err(SkipReason::ValueTooLarge);
        }
        let data = match &self.data {
            Data::Value => value.clone(),
            Data::Fields(fields) => project(view, fields)?,
        };
        let channels = self
            .channels
            .iter()
            .map(|t| t.render(view))
            .collect::<Result<Vec<_>, _>>()?;
        if channels.iter().any(String::is_empty) {
            return Err(SkipReason::EmptyChannel);
        }
        let event = self.event.as_ref().map(|t| t.render(view)).transpose()?;
        let id =
            KafkaPosition::new(record.topic.clone(), record.partition, record.offset).to_string();
        let formats = self.formats(&id, event.as_deref(), &data)?;
        let meta = position_meta(record, event.as_deref());
        Ok(channels
            .into_iter()
            .map(|channel| PublishItem {
                channel,
                id: Some(id.clone()),
                prev_id: None,
                formats: formats.clone(),
                meta: meta.clone(),
                no_seq: true,
                size: None,
            })
            .collect())
    }

    fn formats(&self, id: &str, event: Option<&str>, data: &Bytes) -> Result<Formats, SkipReason> {
        let http_stream = if self.formats.http_stream {
            let mut sse = SseEvent::new(data.as_ref()).with_id(id);
            if let Some(event) = event {
                sse = sse.with_event(event);
            }
            let content = sse.to_bytes().map_err(|_| SkipReason::InvalidEvent)?;
            Some(HttpStreamFormat {
                action: StreamAction::Send(content),
                content_filters: Vec::new(),
            })
        } else {
            None
        };
        let http_response = self.formats.http_response.then(|| HttpResponseFormat {
            action: ResponseAction::Send(ResponseMessage {
                code: 200,
                reason: None,
                headers: Vec::new(),
                body: ResponseBody::Bytes(data.clone()),
            }),
            content_filters: Vec::new(),
        });
        let ws_message = self.formats.ws_message.then(|| WsMessageFormat::Message {
            kind: if std::str::from_utf8(data).is_ok() {
                WsMessageKind::Text
            } else {
                WsMessageKind::Binary
            },
            content: data.clone(),
            content_filters: Vec::new(),
        });
        Ok(Formats {
            http_response,
            http_stream,
            ws_message,
        })
    }
}

/// The JSON object of the chosen fields, serialised once.
fn project(view: &RecordView<'_>, fields: &[(String, String)]) -> Result<Bytes, SkipReason> {
    let mut object = serde_json::Map::with_capacity(fields.len());
    for (name, pointer) in fields {
        match json_field(view, pointer) {
            Ok(value) => {
                object.insert(name.clone(), value.clone());
            }
            Err(SkipReason::MissingJsonField) => {}
            Err(reason) => return Err(reason),
        }
    }
    let bytes = serde_json::to_vec(&serde_json::Value::Object(object))
        .map_err(|_| SkipReason::ValueNotJson)?;
    Ok(Bytes::from(bytes))
}

/// `meta` with the record's position (§9), its key when UTF-8 (proxies conflate a slow
/// reader's queue by key), and the SSE event name (long-poll answers carry it without
/// parsing the SSE content).
fn position_meta(record: &KafkaRecord, event: Option<&str>) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    meta.insert("topic".to_owned(), record.topic.clone());
    meta.insert("partition".to_owned(), record.partition.to_string());
    meta.insert("offset".to_owned(), record.offset.to_string());
    if let Some(timestamp) = record.timestamp_ms {
        meta.insert("timestamp".to_owned(), timestamp.to_string());
    }
    if let Some(key) = record
        .key
        .as_ref()
        .and_then(|k| std::str::from_utf8(k).ok())
    {
        meta.insert("key".to_owned(), key.to_owned());
    }
    if let Some(event) = event {
        meta.insert("event".to_owned(), event.to_owned());
    }
    meta
}

/// All rules of a relay, applied in order to every record.
#[derive(Debug, Clone)]
pub struct Mapper {
    rules: Vec<StreamRule>,
}

/// What all rules made of one record.
#[derive(Debug, Default, PartialEq)]
pub struct RecordMapping {
    pub items: Vec<PublishItem>,
    /// `(rule index, reason)` for every rule that had to skip the record.
    pub skipped: Vec<(usize, SkipReason)>,
    /// Indices of rules whose filter did not select the record.
    pub filtered: Vec<usize>,
}

impl Mapper {
    pub fn compile(configs: &[StreamConfig], max_value_bytes: usize) -> Result<Mapper, RuleError> {
        let rules = configs
            .iter()
            .enumerate()
            .map(|(index, config)| StreamRule::compile(config, index, max_value_bytes))
            .collect::<Result<_, _>>()?;
        Ok(Mapper { rules })
    }

    pub fn rules(&self) -> &[StreamRule] {
        &self.rules
    }

    /// A rule by index (`"0"`) or name.
    pub fn find(&self, rule: &str) -> Option<(usize, &StreamRule)> {
        if let Ok(index) = rule.parse::<usize>() {
            return self.rules.get(index).map(|r| (index, r));
        }
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.name.as_deref() == Some(rule))
    }

    /// The librdkafka subscription list, without duplicates.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.rules.iter().map(|r| r.topics.subscription()).collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// A topic whose metadata answers "is the cluster reachable" cheaply: the first exact
    /// topic, or `None` (all topics) when every rule is a pattern.
    pub fn probe_topic(&self) -> Option<String> {
        self.rules.iter().find_map(|r| match &r.topics {
            TopicMatcher::Exact(name) => Some(name.clone()),
            TopicMatcher::Pattern { .. } => None,
        })
    }

    pub fn map(&self, record: &KafkaRecord) -> RecordMapping {
        let view = RecordView::new(record);
        let mut mapping = RecordMapping::default();
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.apply(&view) {
                RuleOutcome::NotMatched => {}
                RuleOutcome::Filtered => mapping.filtered.push(index),
                RuleOutcome::Items(items) => mapping.items.extend(items),
                RuleOutcome::Skipped(reason) => mapping.skipped.push((index, reason)),
            }
        }
        mapping
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
