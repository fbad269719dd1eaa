//! `fjord.toml`: the one configuration file of every subcommand.
//!
//! Parsing is strict (unknown keys are errors) and every error names the file, the
//! line and the key, because a typo in a config must never be silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file. Every section is optional; every key has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FjordConfig {
    #[serde(default)]
    pub proxy: ProxySection,
    #[serde(default)]
    pub auth: AuthSection,
    /// librdkafka settings, passed through unchanged.
    #[serde(default)]
    pub kafka: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub relay: RelaySection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    #[serde(default = "defaults::control")]
    pub control: SocketAddr,
    #[serde(default = "defaults::zmq_pull")]
    pub zmq_pull: String,
    #[serde(default = "defaults::zmq_sub")]
    pub zmq_sub: String,
    #[serde(default)]
    pub relays: Vec<String>,
    pub routes_file: Option<PathBuf>,
    #[serde(default = "defaults::sig_iss")]
    pub sig_iss: String,
    pub sig_key: Option<String>,
    pub upstream_key: Option<String>,
    #[serde(default)]
    pub debug: bool,
    #[serde(default = "defaults::yes")]
    pub update_on_first_subscription: bool,
    #[serde(default = "defaults::connection_subscription_max")]
    pub connection_subscription_max: usize,
    /// Seconds; 0 turns de-duplication by item id off.
    #[serde(default = "defaults::id_cache_ttl")]
    pub id_cache_ttl: u64,
    /// Milliseconds an out-of-order item waits for its predecessor.
    #[serde(default = "defaults::message_wait")]
    pub message_wait: u64,
    /// Relay control URL that direct routes replay missed records from (`fjord run`:
    /// the in-process relay's control port by default).
    pub replay: Option<String>,
    /// Seconds a channel read by direct routes keeps its history after its last client
    /// left, so clients that reconnect soon resume from memory.
    #[serde(default = "defaults::history_linger")]
    pub history_linger: u64,
    #[serde(default)]
    pub route: Vec<RouteSection>,
}

impl Default for ProxySection {
    fn default() -> Self {
        // An empty table deserializes to all defaults; reuse that as the one source.
        toml::from_str("").unwrap_or_else(|_| unreachable!("empty proxy section parses"))
    }
}

/// One `[[proxy.route]]`: exactly one of `origin`, `channel` and `files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub path: Option<String>,
    /// GRIP origin mode: the backend's URL.
    pub origin: Option<String>,
    /// Direct mode: the channel template over the path's `{name}`s.
    pub channel: Option<String>,
    /// Static files: a directory.
    pub files: Option<PathBuf>,
    /// Direct mode: the `[[relay.stream]]` (by name) that feeds the channel, for replays.
    pub stream: Option<String>,
    /// Direct mode: "token" (default) or "public".
    pub auth: Option<String>,
    /// Direct mode: channels per request, the path's plus `?channel=` extras.
    pub max_channels: Option<usize>,
    /// Direct mode: "resume" (default) or "conflate".
    pub on_overflow: Option<String>,
    /// Direct mode: seconds between SSE keep-alive comments (0 = none).
    pub keep_alive: Option<u64>,
    /// Direct mode: the SSE `retry:` hint in milliseconds.
    pub retry_ms: Option<u64>,
    /// Direct mode: origins allowed to read cross-site, or ["*"].
    pub cors_origins: Option<Vec<String>>,
    /// Direct mode: items kept per channel for resumes from memory.
    pub history: Option<usize>,
    /// Direct mode: seconds a long-poll waits.
    pub poll_timeout: Option<u64>,
    /// Direct mode: items a connection may have queued.
    pub queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Key that signs and verifies client tokens (`base64:…`, `file:…`, or a secret).
    pub jwt_key: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// Cookie a client token may come in (direct routes).
    pub cookie: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// XPUB endpoint proxies connect SUB sockets to ("" turns it off).
    pub publish: Option<String>,
    /// Pushpin-style PULL endpoints to PUSH items to.
    #[serde(default)]
    pub push: Vec<String>,
    /// Pushpin-style control APIs to `POST /publish/` batches to.
    #[serde(default)]
    pub http: Vec<String>,
    /// Replay, `/metrics`, `/healthz`, `/readyz`.
    pub control: Option<SocketAddr>,
    #[serde(default)]
    pub stream: Vec<StreamSection>,
}

/// One `[[relay.stream]]`: which records become which channel messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    /// Name the replay endpoint knows the rule by.
    pub name: Option<String>,
    /// Exact topic name.
    pub topic: Option<String>,
    /// Or a regular expression matching whole topic names.
    pub topic_pattern: Option<String>,
    /// Channel template over {topic} {partition} {key} {header.NAME} {json./pointer}.
    pub channel: Option<String>,
    /// Several channel templates: one item per template.
    #[serde(default)]
    pub channels: Vec<String>,
    /// SSE event name template.
    pub event: Option<String>,
    /// Data as a JSON object of chosen fields: output name = JSON pointer.
    pub fields: Option<BTreeMap<String, String>>,
    /// Only records whose header or JSON field equals a value.
    pub filter: Option<FilterSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    pub header: Option<String>,
    pub json: Option<String>,
    pub equals: toml::Value,
}

mod defaults {
    use std::net::SocketAddr;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 7999))
    }
    pub fn control() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5561))
    }
    pub fn zmq_pull() -> String {
        "tcp://127.0.0.1:5560".into()
    }
    pub fn zmq_sub() -> String {
        "tcp://127.0.0.1:5562".into()
    }
    pub fn sig_iss() -> String {
        "pushpin".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn connection_subscription_max() -> usize {
        20
    }
    pub fn id_cache_ttl() -> u64 {
        60
    }
    pub fn message_wait() -> u64 {
        5000
    }
    pub fn history_linger() -> u64 {
        60
    }
}

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{file}{location}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// `:line:column` when known.
    pub location: String,
    pub message: String,
}

impl FjordConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<FjordConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            location: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<FjordConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(":{line}:{column}")
                })
                .unwrap_or_default();
            ConfigError {
                file: file.to_owned(),
                location,
                message: e.message().trim().to_owned(),
            }
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_pushpin_defaults() {
        let config = FjordConfig::parse("", "fjord.toml").expect("empty config is valid");
        assert_eq!(config.proxy.listen.port(), 7999);
        assert_eq!(config.proxy.control.to_string(), "127.0.0.1:5561");
        assert_eq!(config.proxy.sig_iss, "pushpin");
        assert_eq!(config.proxy.connection_subscription_max, 20);
    }

    #[test]
    fn unknown_key_is_reported_with_file_line_and_key() {
        let err = FjordConfig::parse("[proxy]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "f.toml")
            .expect_err("typo must fail");
        let text = err.to_string();
        assert!(text.starts_with("f.toml:3:1:"), "{text}");
        assert!(text.contains("lisen"), "{text}");
    }

    #[test]
    fn routes_are_read_in_order() {
        let config = FjordConfig::parse(
            "[[proxy.route]]\npath = \"/api/\"\norigin = \"http://127.0.0.1:8080\"\n",
            "f.toml",
        )
        .expect("valid");
        assert_eq!(config.proxy.route.len(), 1);
        assert_eq!(config.proxy.route[0].path.as_deref(), Some("/api/"));
    }
}
