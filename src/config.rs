//! `fjord.toml`: the one configuration file of every subcommand.
//!
//! Parsing is strict (unknown keys are errors) and every error names the file, the
//! line and the key, because a typo in a config must never be silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod problem;
mod source;

pub use problem::{Problem, Problems, Severity};
pub use source::{ConfigSource, KeyPath};

/// Most parse problems reported for one file before giving up on recovery.
const MAX_PARSE_PROBLEMS: usize = 100;

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
    /// PEM certificate chain: with `tls_key`, the public listener speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
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
    /// Seconds a channel stays subscribed (upstream, and with its history for direct
    /// routes) after its last client left: Pushpin's `subscription_linger`.
    #[serde(default = "defaults::subscription_linger")]
    pub subscription_linger: u64,
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
    pub fn subscription_linger() -> u64 {
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

impl FjordConfig {
    /// Parses `source` and reports every entry serde refuses (unknown keys, wrong
    /// types), not only the first: each refused entry is blanked out — overwritten with
    /// spaces, so every other byte keeps its offset and position — and the text parsed
    /// again. Returns the configuration with those entries at their defaults (`None` when
    /// a problem cannot be cut out, such as a syntax error) and the problems.
    pub fn parse_all(source: &ConfigSource) -> (Option<FjordConfig>, Vec<Problem>) {
        let mut text = source.text.clone();
        let mut problems = Vec::new();
        while problems.len() < MAX_PARSE_PROBLEMS {
            let error = match toml::from_str::<FjordConfig>(&text) {
                Ok(config) => return (Some(config), problems),
                Err(error) => error,
            };
            let offset = error.span().map(|span| span.start);
            let path = offset.and_then(|offset| source.path_at(offset));
            problems.push(Problem {
                severity: Severity::Error,
                file: source.file.clone(),
                position: offset.map(|offset| source.line_column(offset)),
                key: path.as_ref().map(ToString::to_string),
                message: problem::one_line(error.message()),
            });
            let ranges = path.map(|path| source.ranges_of(&path)).unwrap_or_default();
            match blank_out(&text, &ranges) {
                Some(blanked) if blanked != text => text = blanked,
                _ => return (None, problems),
            }
        }
        (None, problems)
    }
}

/// `text` with the bytes of `ranges` replaced by spaces (line breaks kept).
fn blank_out(text: &str, ranges: &[std::ops::Range<usize>]) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    for range in ranges {
        for byte in bytes.get_mut(range.clone())? {
            if *byte != b'\n' && *byte != b'\r' {
                *byte = b' ';
            }
        }
    }
    String::from_utf8(bytes).ok()
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

    fn problems_of(text: &str) -> Vec<String> {
        let source = ConfigSource::new("f.toml", text);
        let (_, problems) = FjordConfig::parse_all(&source);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_unknown_key_is_reported_not_only_the_first() {
        let problems = problems_of(
            "[proxy]\nlisen = 1\ncontrl = 2\n\n[auth]\naudience = \"a\"\nkey = \"k\"\n\n[relay]\n[[relay.stream]]\ntopic = \"t\"\nchanel = \"c\"\n",
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("f.toml:2:1: proxy.lisen: unknown field"));
        assert!(problems[1].starts_with("f.toml:3:1: proxy.contrl: unknown field"));
        assert!(problems[2].starts_with("f.toml:7:1: auth.key: unknown field"));
        assert!(problems[3].starts_with("f.toml:12:1: relay.stream[0].chanel: unknown field"));
    }

    #[test]
    fn wrong_types_are_reported_and_the_rest_still_parses() {
        let source = ConfigSource::new(
            "f.toml",
            "[proxy]\nlisten = \"nowhere\"\nrelays = [\"tcp://a:1\", 2]\nsig_iss = \"me\"\n",
        );
        let (config, problems) = FjordConfig::parse_all(&source);
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 2, "{texts:#?}");
        assert!(
            texts[0].starts_with("f.toml:2:10: proxy.listen: "),
            "{texts:#?}"
        );
        assert!(
            texts[1].starts_with("f.toml:3:24: proxy.relays[1]: "),
            "{texts:#?}"
        );
        let config = config.expect("the rest parses");
        assert_eq!(config.proxy.sig_iss, "me");
        assert_eq!(config.proxy.listen.port(), 7999);
    }

    #[test]
    fn an_unknown_section_is_reported_once_with_its_name() {
        let problems = problems_of("[proxyy]\nlisten = 1\nother = 2\n");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with("f.toml:1:2: proxyy: unknown field"),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_syntax_error_is_one_problem_without_a_config() {
        let source = ConfigSource::new("f.toml", "[proxy]\nlisten = \n");
        let (config, problems) = FjordConfig::parse_all(&source);
        assert!(config.is_none());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().starts_with("f.toml:2:"),
            "{problems:?}"
        );
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
