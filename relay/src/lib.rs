//! Fjord relay: consumes Kafka topics in a consumer group and publishes every record as
//! GRIP publish items to proxies (design "Data flow" 1–2, spec §9).
//!
//! - [`config`]: [`RelayConfig`], the plain data the CLI fills from `fjord.toml`;
//! - [`mapping`], [`template`]: record → items, pure;
//! - [`output`]: XPUB endpoint, PUSH, HTTP publish, in-process sink;
//! - [`consumer`]: the consumer group loop with at-least-once offset handling;
//! - [`replay`], [`control`]: channel replay from offsets, `/metrics`, health;
//! - [`Relay::start`] ties them together and returns a [`RunningRelay`].

pub mod config;
pub mod consumer;
pub mod control;
pub mod health;
pub mod mapping;
pub mod metrics;
pub mod output;
pub mod record;
mod relay;
pub mod replay;
pub mod skip;
pub mod template;

pub use config::{
    DataConfig, FilterConfig, FormatConfig, HttpBatchConfig, HttpTarget, ItemSink, RelayConfig,
    SettleConfig, StreamConfig, TopicSelector,
};
pub use relay::{Relay, RelayError, RunningRelay};
