//! Checks of `[proxy]` and `[[proxy.route]]`, through the proxy crate's own parsers.

use std::path::{Path, PathBuf};

use fjord_proxy::keys::{signing_key_from_spec, verifying_key_from_spec};
use fjord_proxy::route::{OriginUrlError, Route};
use fjord_proxy::routes_file::load_routes_file;
use fjord_proxy::zmtp::Endpoint;

use crate::config::{ConfigSource, FjordConfig, KeyPath, Problem};

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
    for (index, route) in section.route.iter().enumerate() {
        let at = proxy.key("route").index(index);
        let Some(origin) = route.origin.as_deref() else {
            out.push(Problem::at(source, &at, "`origin` is required"));
            continue;
        };
        if let Err(e) = Route::from_origin_url(route.path.as_deref(), origin) {
            let key = match e {
                OriginUrlError::PathNotAbsolute(_) | OriginUrlError::PathTemplate(_) => "path",
                _ => "origin",
            };
            out.push(Problem::at(source, &at.key(key), e.to_string()));
        }
    }
}

fn resolve(base_dir: Option<&Path>, path: &Path) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
