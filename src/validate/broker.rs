//! `fjord check`'s one network check: does a Kafka broker answer a metadata request?
//!
//! A warning, never an error: brokers are often started after the proxy, and the relay
//! waits for them (its `/readyz` says so). The request goes through librdkafka with the
//! file's own `[kafka]` settings, so SASL and TLS settings are exercised too, which a
//! bare TCP connect would not.

use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::config::{ConfigSource, FjordConfig, KeyPath, Problem};

/// A warning when no broker of `[kafka] bootstrap.servers` answers within `timeout`;
/// `None` when one does, or when there is nothing to probe.
pub fn probe_brokers(
    config: &FjordConfig,
    source: &ConfigSource,
    timeout: Duration,
) -> Option<Problem> {
    let servers_key = ["bootstrap.servers", "metadata.broker.list"]
        .into_iter()
        .find(|key| config.kafka.contains_key(*key))?;
    let mut client = ClientConfig::new();
    for (key, value) in &config.kafka {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        client.set(key, text);
    }
    // A probe, not a group member: no group join, no commits, quiet logs.
    client.remove("group.id");
    client.set("enable.auto.commit", "false");
    client.set_log_level(RDKafkaLogLevel::Emerg);
    client.set("log_level", "0");
    let path = KeyPath::root("kafka").key(servers_key);
    let servers = config.kafka.get(servers_key).map(|v| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let warn = |reason: String| {
        Some(
            Problem::at(
                source,
                &path,
                format!(
                    "no broker of {} answered a metadata request within {}s ({reason}); \
                     the relay will keep trying",
                    servers.as_deref().unwrap_or("?"),
                    timeout.as_secs()
                ),
            )
            .warning(),
        )
    };
    let consumer: BaseConsumer = match client.create() {
        Ok(consumer) => consumer,
        Err(e) => return warn(e.to_string()),
    };
    match consumer.fetch_metadata(None, timeout) {
        Ok(_) => None,
        Err(e) => warn(e.to_string()),
    }
}
