//! `fjord relay`: run the Kafka relay alone, and the config translation `fjord run`
//! shares with it.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use fjord_relay::{
    DataConfig, FilterConfig, HttpTarget, Relay, RelayConfig, StreamConfig, TopicSelector,
};

use crate::config::{FjordConfig, StreamSection};

#[derive(Args)]
#[command(
    about = "Run the Kafka relay: consume topics in a consumer group, publish records to proxies",
    after_help = "Example:\n  fjord relay -c fjord.toml"
)]
pub struct RelayArgs {
    /// Configuration file with `[kafka]` and `[[relay.stream]]` sections.
    #[arg(short, long, default_value = "fjord.toml")]
    config: PathBuf,
}

pub fn run(args: RelayArgs) -> anyhow::Result<()> {
    let config = crate::validate::load(&args.config, crate::validate::Scope::Relay)?;
    let relay_config =
        build(&config, true).map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let relay = Relay::start(relay_config).await?;
        tracing::info!(
            publish = relay.publish_endpoint().unwrap_or("off"),
            control = %relay.control_addr().map_or("off".to_owned(), |a| a.to_string()),
            "fjord relay running"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("shutting down");
        relay.shutdown().await;
        Ok(())
    })
}

/// Translates the file's `[kafka]` and `[relay]` sections. `with_publish`: whether the
/// XPUB output is on by default (`fjord relay`) or only when configured (`fjord run`,
/// where the relay feeds the proxy in-process).
pub fn build(config: &FjordConfig, with_publish: bool) -> anyhow::Result<RelayConfig> {
    let mut relay = RelayConfig::default();
    for (key, value) in &config.kafka {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                value.to_string()
            }
            _ => bail!("[kafka] {key}: expected a string, number or boolean"),
        };
        relay.kafka.insert(key.clone(), text);
    }
    if !relay.kafka.contains_key("bootstrap.servers") {
        bail!("[kafka] \"bootstrap.servers\" is required");
    }
    relay
        .kafka
        .entry("group.id".to_owned())
        .or_insert_with(|| "fjord-relay".to_owned());
    let section = &config.relay;
    if section.stream.is_empty() {
        bail!("[[relay.stream]]: at least one stream rule is required");
    }
    relay.streams = section
        .stream
        .iter()
        .enumerate()
        .map(|(i, s)| stream(s).map_err(|e| anyhow!("[[relay.stream]] #{}: {e}", i + 1)))
        .collect::<anyhow::Result<_>>()?;
    relay.publish = match &section.publish {
        Some(endpoint) if endpoint.is_empty() => None,
        Some(endpoint) => Some(endpoint.clone()),
        None if with_publish => relay.publish.take(),
        None => None,
    };
    relay.push = section.push.clone();
    relay.http = section
        .http
        .iter()
        .map(|url| HttpTarget {
            url: url.clone(),
            authorization: None,
        })
        .collect();
    if let Some(control) = section.control {
        relay.control = Some(control);
    }
    Ok(relay)
}

/// One `[[relay.stream]]` as the relay's rule configuration (also used by `fjord check`).
pub(crate) fn stream(section: &StreamSection) -> anyhow::Result<StreamConfig> {
    let topic = match (&section.topic, &section.topic_pattern) {
        (Some(topic), None) => TopicSelector::Exact(topic.clone()),
        (None, Some(pattern)) => TopicSelector::Pattern(pattern.clone()),
        _ => bail!("exactly one of `topic` and `topic_pattern` is required"),
    };
    let mut channels = section.channels.clone();
    if let Some(channel) = &section.channel {
        channels.insert(0, channel.clone());
    }
    let data = match &section.fields {
        Some(fields) => DataConfig::Fields(
            fields
                .iter()
                .map(|(name, pointer)| (name.clone(), pointer.clone()))
                .collect(),
        ),
        None => DataConfig::Value,
    };
    let filter = match &section.filter {
        None => None,
        Some(filter) => {
            let equals = toml_to_json(&filter.equals);
            Some(match (&filter.header, &filter.json) {
                (Some(name), None) => FilterConfig::Header {
                    name: name.clone(),
                    equals: match equals {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    },
                },
                (None, Some(pointer)) => FilterConfig::Json {
                    pointer: pointer.clone(),
                    equals,
                },
                _ => bail!("filter: exactly one of `header` and `json` is required"),
            })
        }
    };
    Ok(StreamConfig {
        name: section.name.clone(),
        topic,
        channels,
        event: section.event.clone(),
        data,
        filter,
        formats: Default::default(),
    })
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Array(items) => items.iter().map(toml_to_json).collect(),
        toml::Value::Table(table) => table
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
    }
}
