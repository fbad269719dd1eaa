//! Checks of `[kafka]`, `[relay]` and `[[relay.stream]]`: librdkafka accepts every
//! setting, and every mapping rule compiles as the relay will compile it at start.

use fjord_relay::consumer::group_consumer_config;
use fjord_relay::mapping::{RuleError, StreamRule};
use fjord_relay::output::zmtp::Endpoint;
use fjord_relay::template::TemplateError;
use fjord_relay::{DataConfig, FilterConfig, RelayConfig, StreamConfig, TopicSelector};
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::config::{ConfigSource, FjordConfig, KeyPath, Problem, StreamSection};

/// Bound of the compile-report-set-aside loop of one rule (it has a handful of parts).
const MAX_PROBLEMS_PER_RULE: usize = 16;

/// `standalone`: the relay runs as its own process (`fjord relay`) and so needs an
/// output of its own; under `fjord run` it feeds the proxy in-process.
pub fn check(
    config: &FjordConfig,
    source: &ConfigSource,
    standalone: bool,
    out: &mut Vec<Problem>,
) {
    check_kafka(config, source, out);
    let relay = KeyPath::root("relay");
    let section = &config.relay;
    if section.stream.is_empty() {
        out.push(Problem::at(
            source,
            &relay.key("stream"),
            "at least one [[relay.stream]] rule is required",
        ));
    }
    let defaults = RelayConfig::default();
    for (index, stream) in section.stream.iter().enumerate() {
        let at = relay.key("stream").index(index);
        match crate::relay_cmd::stream(stream) {
            Err(e) => {
                let key = if e.to_string().starts_with("filter") {
                    at.key("filter")
                } else {
                    at.clone()
                };
                out.push(Problem::at(source, &key, e.to_string()));
            }
            Ok(mut compiled) => {
                // The relay's compiler stops at a rule's first problem; setting each one
                // found aside and compiling again reports them all.
                for _ in 0..MAX_PROBLEMS_PER_RULE {
                    let Err(e) = StreamRule::compile(&compiled, index, defaults.max_value_bytes)
                    else {
                        break;
                    };
                    let (key, message) = locate_rule_error(stream, &e);
                    out.push(Problem::at(source, &at.join(&key), message));
                    if !set_aside(&mut compiled, &e) {
                        break;
                    }
                }
            }
        }
    }
    if let Some(publish) = section.publish.as_deref().filter(|p| !p.is_empty()) {
        if let Err(e) = Endpoint::parse(publish) {
            out.push(Problem::at(source, &relay.key("publish"), e.to_string()));
        }
    }
    for (index, push) in section.push.iter().enumerate() {
        if let Err(e) = Endpoint::parse(push) {
            let path = relay.key("push").index(index);
            out.push(Problem::at(source, &path, e.to_string()));
        }
    }
    for (index, url) in section.http.iter().enumerate() {
        if let Some(reason) = http_target_problem(url) {
            let path = relay.key("http").index(index);
            out.push(Problem::at(source, &path, format!("{url:?}: {reason}")));
        }
    }
    let publish_off = section.publish.as_deref() == Some("");
    if standalone && publish_off && section.push.is_empty() && section.http.is_empty() {
        out.push(Problem::at(
            source,
            &relay,
            "no output: `publish` is \"\" and there is no `push` or `http` target",
        ));
    }
}

fn check_kafka(config: &FjordConfig, source: &ConfigSource, out: &mut Vec<Problem>) {
    let kafka = KeyPath::root("kafka");
    let mut settings = std::collections::BTreeMap::new();
    for (key, value) in &config.kafka {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                value.to_string()
            }
            _ => {
                let message = "expected a string, number or boolean";
                out.push(Problem::at(source, &kafka.key(key), message));
                continue;
            }
        };
        // librdkafka checks names and values when a client is configured, but stops at
        // the first; one setting at a time reports them all.
        if let Err(e) = ClientConfig::new().set(key, &text).create_native_config() {
            let message = match e {
                KafkaError::ClientConfig(_, description, _, _) => description,
                other => other.to_string(),
            };
            out.push(Problem::at(source, &kafka.key(key), message));
        }
        settings.insert(key.clone(), text);
    }
    if !settings.contains_key("bootstrap.servers") && !settings.contains_key("metadata.broker.list")
    {
        out.push(Problem::at(
            source,
            &kafka,
            "\"bootstrap.servers\" is required (the Kafka brokers to start from)",
        ));
        return;
    }
    settings
        .entry("group.id".to_owned())
        .or_insert_with(|| "fjord-relay".to_owned());
    if let Err(e) = group_consumer_config(&settings) {
        let key = kafka.key("enable.auto.offset.store");
        out.push(Problem::at(source, &key, e.to_string()));
    }
}

/// The reason `fjord relay` would refuse an `[relay] http` target, as its HTTP output
/// does: an `http://` URL to which `/publish/` is added.
fn http_target_problem(url: &str) -> Option<&'static str> {
    let base = url.trim_end_matches('/');
    let full = if base.ends_with("/publish") {
        format!("{base}/")
    } else {
        format!("{base}/publish/")
    };
    match full.parse::<http::Uri>() {
        Err(_) => Some("not a URL"),
        Ok(uri) if uri.scheme_str() != Some("http") => Some("only http:// is supported"),
        Ok(uri) if uri.host().is_none() => Some("has no host"),
        Ok(_) => None,
    }
}

/// The key of the stream rule a compile error is about, and the message without the
/// rule's label (the key already names the rule).
fn locate_rule_error(section: &StreamSection, error: &RuleError) -> (KeyPath, String) {
    let here = |key: &str| KeyPath::root(key);
    match error {
        RuleError::Template { source, .. } => {
            let template = template_text(source);
            let key = if section.channel.as_deref() == Some(template) {
                here("channel")
            } else if let Some(i) = section.channels.iter().position(|c| c == template) {
                here("channels").index(i)
            } else if section.event.as_deref() == Some(template) {
                here("event")
            } else {
                KeyPath::default()
            };
            (key, source.to_string())
        }
        RuleError::Pattern {
            pattern, reason, ..
        } => (
            here("topic_pattern"),
            // The regex crate draws a caret under the spot over several lines; its last
            // line says what is wrong.
            format!(
                "{pattern:?} is not a valid regular expression: {}",
                reason.lines().last().unwrap_or(reason).trim()
            ),
        ),
        RuleError::EmptyTopic { .. } => (here("topic"), "topic name is empty".to_owned()),
        RuleError::Pointer { pointer, .. } => {
            let field = section
                .fields
                .iter()
                .flatten()
                .find(|(_, p)| *p == pointer)
                .map(|(name, _)| here("fields").join(&here(name)));
            let key = field.unwrap_or_else(|| here("filter").join(&here("json")));
            (
                key,
                format!("JSON pointer {pointer:?} must be empty or start with '/'"),
            )
        }
        RuleError::DuplicateField { name, .. } => (
            here("fields"),
            format!("projected field name {name:?} is used twice"),
        ),
        RuleError::NoFormats { .. } => (KeyPath::default(), error.to_string()),
    }
}

/// Replaces the part of `config` that `error` is about by a harmless one, so that a
/// further compile looks at the remaining parts; `false` when there is no such part.
fn set_aside(config: &mut StreamConfig, error: &RuleError) -> bool {
    const HARMLESS: &str = "x";
    match error {
        RuleError::Template { source, .. } => {
            let template = template_text(source).to_owned();
            let mut replaced = false;
            for channel in config.channels.iter_mut().filter(|c| **c == template) {
                *channel = HARMLESS.to_owned();
                replaced = true;
            }
            if config.event.as_deref() == Some(template.as_str()) {
                config.event = None;
                replaced = true;
            }
            replaced
        }
        RuleError::Pattern { .. } | RuleError::EmptyTopic { .. } => {
            config.topic = TopicSelector::Exact(HARMLESS.to_owned());
            true
        }
        RuleError::Pointer { pointer, .. } => {
            let mut replaced = false;
            if let DataConfig::Fields(fields) = &mut config.data {
                for (_, p) in fields.iter_mut().filter(|(_, p)| p == pointer) {
                    p.clear();
                    replaced = true;
                }
            }
            if let Some(FilterConfig::Json { pointer: p, .. }) = &mut config.filter {
                if p == pointer {
                    p.clear();
                    replaced = true;
                }
            }
            replaced
        }
        RuleError::DuplicateField { .. } | RuleError::NoFormats { .. } => false,
    }
}

fn template_text(error: &TemplateError) -> &str {
    match error {
        TemplateError::Unclosed { template, .. }
        | TemplateError::StrayClose { template, .. }
        | TemplateError::UnknownField { template, .. }
        | TemplateError::EmptyHeaderName { template }
        | TemplateError::InvalidPointer { template, .. } => template,
    }
}
