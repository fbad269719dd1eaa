//! Checks of `[proxy]` and `[[proxy.route]]`, through the proxy crate's own parsers.

use std::path::{Path, PathBuf};

use fjord_proxy::keys::{signing_key_from_spec, verifying_key_from_spec};
use fjord_proxy::route::OriginUrlError;
use fjord_proxy::routes_file::load_routes_file;
use fjord_proxy::tls::{TlsFile, TlsFiles};
use fjord_proxy::zmtp::Endpoint;

use crate::config::{ConfigSource, FjordConfig, KeyPath, Problem, ProxySection};
use crate::route_config;

pub fn check(
    config: &FjordConfig,
    source: &ConfigSource,
    base_dir: Option<&Path>,
    out: &mut Vec<Problem>,
) {
    let proxy = KeyPath::root("proxy");
    let section = &config.proxy;
    for (name, value) in [
        ("zmq_pull", &section.zmq_pull),
        ("zmq_sub", &section.zmq_sub),
    ] {
        if !value.is_empty() {
            if let Err(e) = Endpoint::parse(value) {
                out.push(Problem::at(source, &proxy.key(name), e.to_string()));
            }
        }
    }
    for (index, endpoint) in section.relays.iter().enumerate() {
        if let Err(e) = Endpoint::parse(endpoint) {
            let path = proxy.key("relays").index(index);
            out.push(Problem::at(source, &path, e.to_string()));
        }
    }
    if let Some(routes_file) = &section.routes_file {
        let path = resolve(base_dir, routes_file);
        if let Err(e) = load_routes_file(&path) {
            out.push(Problem::at(
                source,
                &proxy.key("routes_file"),
                e.to_string(),
            ));
        }
    }
    check_tls(section, source, base_dir, out);
    if let Some(spec) = &section.sig_key {
        if let Err(e) = signing_key_from_spec(spec, base_dir) {
            out.push(Problem::at(source, &proxy.key("sig_key"), e.to_string()));
        }
    }
    if let Some(spec) = &section.upstream_key {
        if let Err(e) = verifying_key_from_spec(spec, base_dir) {
            out.push(Problem::at(
                source,
                &proxy.key("upstream_key"),
                e.to_string(),
            ));
        }
    }
    if let Some(url) = section.replay.as_deref() {
        if !url.starts_with("http://") {
            let message = format!("{url:?} must be an http:// URL of a relay's control port");
            out.push(Problem::at(source, &proxy.key("replay"), message));
        }
    }
    for (index, route) in section.route.iter().enumerate() {
        let at = proxy.key("route").index(index);
        if let Err(e) = route_config::route(route, base_dir) {
            out.push(Problem::at(
                source,
                &at.join(&route_error_key(&e)),
                e.to_string(),
            ));
            continue;
        }
        let token_route = route.channel.is_some() && route.auth.as_deref() != Some("public");
        if token_route && config.auth.jwt_key.is_none() {
            let key = if route.auth.is_some() {
                "auth"
            } else {
                "channel"
            };
            out.push(Problem::at(
                source,
                &at.key(key),
                "this route checks client tokens (auth = \"token\", the default) but \
                 [auth] jwt_key is not set; set it, or auth = \"public\"",
            ));
        }
    }
}

/// `tls_cert` and `tls_key` come together, and the pair must load as the listener
/// will load it at start.
fn check_tls(
    section: &ProxySection,
    source: &ConfigSource,
    base_dir: Option<&Path>,
    out: &mut Vec<Problem>,
) {
    let proxy = KeyPath::root("proxy");
    match (&section.tls_cert, &section.tls_key) {
        (None, None) => {}
        (Some(_), None) => out.push(Problem::at(
            source,
            &proxy.key("tls_cert"),
            "tls_key is not set; TLS needs both tls_cert and tls_key",
        )),
        (None, Some(_)) => out.push(Problem::at(
            source,
            &proxy.key("tls_key"),
            "tls_cert is not set; TLS needs both tls_cert and tls_key",
        )),
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: resolve(base_dir, cert),
                key: resolve(base_dir, key),
            };
            if let Err(e) = fjord_proxy::tls::acceptor(&files) {
                let key = match e.file() {
                    TlsFile::Cert => "tls_cert",
                    TlsFile::Key => "tls_key",
                };
                out.push(Problem::at(source, &proxy.key(key), e.to_string()));
            }
        }
    }
}

/// The key a route error is about: the route translation names it first, in backticks
/// (`` `channel`: … ``); origin URL errors name the origin or the path.
fn route_error_key(error: &anyhow::Error) -> KeyPath {
    if let Some(e) = error.downcast_ref::<OriginUrlError>() {
        return KeyPath::root(match e {
            OriginUrlError::PathNotAbsolute(_) | OriginUrlError::PathTemplate(_) => "path",
            _ => "origin",
        });
    }
    let text = error.to_string();
    let named = text
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key)
        .filter(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    match named {
        // "`origin`, `channel` and `files` exclude each other" is about the route.
        Some(key) if !text.contains("exclude each other") => KeyPath::root(key),
        _ => KeyPath::default(),
    }
}

pub(crate) fn resolve(base_dir: Option<&Path>, path: &Path) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
