//! The relay's configuration as plain data (design "Configuration": `[kafka]`,
//! `[[relay.stream]]`, `[relay]`). The CLI parses `fjord.toml` into these types; nothing
//! here reads files. Every field has a default through [`Default`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::item::PublishItem;

/// Default XPUB endpoint proxies connect their SUB sockets to (design "Processes").
pub const DEFAULT_PUBLISH: &str = "tcp://127.0.0.1:5570";
/// Default control HTTP address: replay, `/metrics`, health.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:5571";

/// Everything [`crate::Relay::start`] needs.
#[derive(Clone)]
pub struct RelayConfig {
    /// librdkafka settings, passed through unchanged (design "Configuration", `[kafka]`).
    /// `bootstrap.servers` and `group.id` are required. The relay adds
    /// `enable.auto.offset.store=false` (it stores offsets itself after hand-off) and,
    /// unless given, `enable.auto.commit=false` (it commits periodically itself);
    /// setting `enable.auto.offset.store=true` is refused since it would break
    /// at-least-once delivery.
    pub kafka: BTreeMap<String, String>,
    /// Mapping rules, in order (`[[relay.stream]]`).
    pub streams: Vec<StreamConfig>,
    /// XPUB endpoint to bind (`[relay] publish`); `None` disables the output.
    pub publish: Option<String>,
    /// Pushpin-style PULL endpoints to connect a PUSH socket to; each gets every item.
    pub push: Vec<String>,
    /// Pushpin-style control APIs to `POST /publish/` to; each gets every item.
    pub http: Vec<HttpTarget>,
    /// In-process consumer of items (`fjord run`: the proxy hub, without ZeroMQ).
    pub sink: Option<ItemSink>,
    /// Control HTTP address (`[relay] control`); `None` disables it.
    pub control: Option<SocketAddr>,
    /// Records with larger values are skipped (`value_too_large`).
    pub max_value_bytes: usize,
    /// Most records mapped and handed off as one batch.
    pub max_batch_records: usize,
    /// How often stored offsets are committed.
    pub commit_interval: Duration,
    /// How long consumption waits at start for proxies' subscriptions to arrive.
    pub settle: SettleConfig,
    /// A proxy that takes longer than this to accept a batch is disconnected; it
    /// reconnects and subscribes again, and its clients resume (design "Resume").
    pub peer_write_timeout: Duration,
    /// Limits of one `POST /publish/` body.
    pub http_batch: HttpBatchConfig,
    /// How often the broker connection is probed for `/readyz`.
    pub probe_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            kafka: BTreeMap::new(),
            streams: Vec::new(),
            publish: Some(DEFAULT_PUBLISH.to_owned()),
            push: Vec::new(),
            http: Vec::new(),
            sink: None,
            control: DEFAULT_CONTROL.parse().ok(),
            max_value_bytes: 256 * 1024,
            max_batch_records: 1000,
            commit_interval: Duration::from_secs(1),
            settle: SettleConfig::default(),
            peer_write_timeout: Duration::from_secs(10),
            http_batch: HttpBatchConfig::default(),
            probe_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayConfig")
            .field("kafka", &self.kafka.keys().collect::<Vec<_>>())
            .field("streams", &self.streams)
            .field("publish", &self.publish)
            .field("push", &self.push)
            .field("http", &self.http)
            .field("sink", &self.sink.is_some())
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

/// The subscription-settle window at start (issue "relay", design "Data flow" 2): a
/// restarted relay's XPUB socket knows no subscriptions until proxies reconnect and
/// resend them, and records consumed before that would be filtered away and committed.
/// Consumption therefore waits at least `min`, then until no peer connected or
/// subscribed for `quiet`, and at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleConfig {
    pub min: Duration,
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for SettleConfig {
    fn default() -> Self {
        SettleConfig {
            min: Duration::from_millis(1500),
            quiet: Duration::from_millis(300),
            max: Duration::from_secs(5),
        }
    }
}

/// A `POST /publish/` target (§4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Base URL of the control API, e.g. `http://127.0.0.1:5561`; `/publish/` is added
    /// unless the URL already ends with it.
    pub url: String,
    /// Sent as the `Authorization` header when set.
    pub authorization: Option<String>,
}

/// Bounds of one HTTP publish request; Pushpin refuses bodies over 1,000,000 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBatchConfig {
    pub max_items: usize,
    pub max_body_bytes: usize,
}

impl Default for HttpBatchConfig {
    fn default() -> Self {
        HttpBatchConfig {
            max_items: 500,
            max_body_bytes: 900_000,
        }
    }
}

/// The in-process output: called once per item, in order, from the consumer task. It
/// must not block (the proxy hub only enqueues).
#[derive(Clone)]
pub struct ItemSink(pub Arc<dyn Fn(PublishItem) + Send + Sync>);

impl ItemSink {
    pub fn new(f: impl Fn(PublishItem) + Send + Sync + 'static) -> Self {
        ItemSink(Arc::new(f))
    }

    /// A sink feeding a channel; items sent after the receiver is gone are dropped.
    pub fn channel() -> (ItemSink, tokio::sync::mpsc::UnboundedReceiver<PublishItem>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let sink = ItemSink::new(move |item| {
            let _ = sender.send(item);
        });
        (sink, receiver)
    }
}

impl fmt::Debug for ItemSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ItemSink")
    }
}

/// One `[[relay.stream]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// Name used by the replay endpoint; rules can always be named by index too.
    pub name: Option<String>,
    pub topic: TopicSelector,
    /// Channel templates; one item per template. Empty means `["{topic}"]` (§9).
    pub channels: Vec<String>,
    /// SSE `event:` template.
    pub event: Option<String>,
    pub data: DataConfig,
    pub filter: Option<FilterConfig>,
    pub formats: FormatConfig,
}

impl StreamConfig {
    /// A rule for `topic` publishing to `channel`, everything else default.
    pub fn new(topic: impl Into<String>, channel: impl Into<String>) -> Self {
        StreamConfig {
            name: None,
            topic: TopicSelector::Exact(topic.into()),
            channels: vec![channel.into()],
            event: None,
            data: DataConfig::Value,
            filter: None,
            formats: FormatConfig::default(),
        }
    }
}

/// Which topics a rule consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSelector {
    Exact(String),
    /// A regular expression that must match the whole topic name. It is also handed to
    /// librdkafka as the subscription `^(pattern)$`, so keep to the POSIX extended subset
    /// both understand (no `\d`, no lookaround).
    Pattern(String),
}

/// What an item carries as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataConfig {
    /// The record value, byte for byte.
    Value,
    /// A JSON object of chosen fields of the value: `(output name, JSON pointer)`. A
    /// field missing from the record is left out of the object.
    Fields(Vec<(String, String)>),
}

/// A rule applies only to records whose header or JSON field equals a value.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterConfig {
    Header {
        name: String,
        equals: String,
    },
    Json {
        pointer: String,
        equals: serde_json::Value,
    },
}

/// Which delivery formats an item carries (§3.1, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatConfig {
    /// The SSE event (`id:`, `event:`, `data:` lines) for stream holds.
    pub http_stream: bool,
    /// The raw data as the body of a response hold, so a long-poll gets the record.
    pub http_response: bool,
    /// The raw data as a WebSocket message (TEXT when UTF-8, BINARY otherwise).
    pub ws_message: bool,
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig {
            http_stream: true,
            http_response: true,
            ws_message: true,
        }
    }
}
