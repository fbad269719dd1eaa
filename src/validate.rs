//! The one validation path of `fjord.toml`: `fjord check` prints what it finds, and
//! `fjord run`, `fjord proxy` and `fjord relay` refuse to start on any error it finds.
//!
//! Validation reports every problem at once, each with file, line, column and key, so
//! that fixing a config is one round trip rather than one per typo. The checks call the
//! same parsers the proxy and relay use at start (routes, keys, endpoints, relay
//! mapping rules), so "check passes" and "starts" cannot disagree.

mod broker;
mod proxy_rules;
mod relay_rules;

use std::path::Path;
use std::time::Duration;

use crate::config::{ConfigSource, FjordConfig, KeyPath, Problem, Problems, Severity};

pub use broker::probe_brokers;

/// Which parts of the file the command is about to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `fjord proxy`: the proxy sections and `[auth]`.
    Proxy,
    /// `fjord relay`: `[kafka]`, `[relay]` and `[auth]`.
    Relay,
    /// `fjord run`: proxy and relay in one process.
    Run,
    /// `fjord check`: everything the file contains; the relay's sections only when it
    /// has any, since a proxy-only file is a valid config.
    Check,
}

/// What validating a file found.
#[derive(Debug)]
pub struct Report {
    /// The configuration, when the file parsed (problems may still exist).
    pub config: Option<FjordConfig>,
    pub problems: Vec<Problem>,
    /// Whether the relay's sections were checked.
    pub relay_checked: bool,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }
}

/// Loads `path` for a command that starts a service: the configuration, or every error
/// found. Warnings are logged.
pub fn load(path: &Path, scope: Scope) -> Result<FjordConfig, Problems> {
    let report = check(path, scope);
    for warning in report.warnings() {
        tracing::warn!("{warning}");
    }
    let errors: Vec<Problem> = report.errors().cloned().collect();
    match report.config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(Problems(errors)),
    }
}

/// Reads, parses and validates `path` for `scope`. Offline: see [`probe_brokers`] for
/// the network check `fjord check` adds.
pub fn check(path: &Path, scope: Scope) -> Report {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return Report {
                config: None,
                problems: vec![Problem {
                    severity: Severity::Error,
                    file,
                    position: None,
                    key: None,
                    message: format!("cannot read: {e}"),
                }],
                relay_checked: false,
            }
        }
    };
    let source = ConfigSource::new(&file, &text);
    check_source(&source, path.parent(), scope)
}

/// [`check`] on text already read; `base_dir` resolves relative `file:` paths.
pub fn check_source(source: &ConfigSource, base_dir: Option<&Path>, scope: Scope) -> Report {
    let (config, parse_problems) = FjordConfig::parse_all(source);
    let Some(config) = config else {
        return Report {
            config: None,
            problems: parse_problems,
            relay_checked: false,
        };
    };
    let mut found = Vec::new();
    if matches!(scope, Scope::Proxy | Scope::Run | Scope::Check) {
        proxy_rules::check(&config, source, base_dir, &mut found);
    }
    check_auth(&config, source, base_dir, &mut found);
    let relay_checked = match scope {
        Scope::Relay | Scope::Run => true,
        Scope::Proxy => false,
        Scope::Check => relay_configured(source),
    };
    if relay_checked {
        let standalone = scope != Scope::Run;
        relay_rules::check(&config, source, standalone, &mut found);
        if scope != Scope::Relay {
            check_route_streams(&config, source, &mut found);
        }
    }
    // A value serde refused was replaced by its default; a rule about its entry would
    // only repeat that problem in other words.
    found.retain(|problem| !parse_problems.iter().any(|p| related(p, problem)));
    let mut problems = parse_problems;
    problems.extend(found);
    // In file order, as an editor walks them; problems without a place come first.
    problems.sort_by_key(|p| p.position);
    Report {
        config: Some(config),
        problems,
        relay_checked,
    }
}

fn relay_configured(source: &ConfigSource) -> bool {
    source.contains(&KeyPath::root("kafka")) || source.contains(&KeyPath::root("relay"))
}

fn check_auth(
    config: &FjordConfig,
    source: &ConfigSource,
    base_dir: Option<&Path>,
    out: &mut Vec<Problem>,
) {
    if let Some(spec) = &config.auth.jwt_key {
        // Verifying is what every route needs; a public key file is a valid jwt_key
        // for a proxy that never signs (tokens minted elsewhere).
        if let Err(e) = fjord_proxy::keys::verifying_key_from_spec(spec, base_dir) {
            out.push(Problem::at(
                source,
                &KeyPath::root("auth").key("jwt_key"),
                e.to_string(),
            ));
        }
    }
}

/// A direct route's `stream` names the `[[relay.stream]]` it replays from; when the
/// relay's rules are in the same file, that name must be one of them.
fn check_route_streams(config: &FjordConfig, source: &ConfigSource, out: &mut Vec<Problem>) {
    let names: Vec<&str> = config
        .relay
        .stream
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    for (index, route) in config.proxy.route.iter().enumerate() {
        let Some(stream) = route.stream.as_deref() else {
            continue;
        };
        if !names.contains(&stream) {
            let path = KeyPath::root("proxy")
                .key("route")
                .index(index)
                .key("stream");
            let known = if names.is_empty() {
                "no [[relay.stream]] has a `name`".to_owned()
            } else {
                format!("named streams: {}", names.join(", "))
            };
            out.push(Problem::at(
                source,
                &path,
                format!("no [[relay.stream]] is named {stream:?} ({known})"),
            ));
        }
    }
}

/// Whether one problem's key lies inside the other's.
fn related(a: &Problem, b: &Problem) -> bool {
    let (Some(a), Some(b)) = (&a.key, &b.key) else {
        return false;
    };
    let inside = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    inside(a, b) || inside(b, a)
}

/// How long `fjord check` waits for a broker to answer.
pub const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests;
