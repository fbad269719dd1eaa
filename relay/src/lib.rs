//! Fjord relay: consumes Kafka topics in a consumer group and publishes every record as
//! GRIP publish items to proxies (design "Data flow" 1–2, spec §9).

pub mod config;
pub mod mapping;
pub mod record;
pub mod skip;
pub mod template;
pub mod metrics;
pub mod output;
