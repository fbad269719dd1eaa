//! `[[proxy.route]]` entries and `[auth]` into the proxy's routes and direct-mode
//! settings.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use fjord_protocol::token::TokenValidation;
use fjord_proxy::direct::auth::ClientAuth;
use fjord_proxy::direct::cors::CorsPolicy;
use fjord_proxy::direct::path::{ChannelTemplate, PathTemplate};
use fjord_proxy::direct::replay::ReplayClient;
use fjord_proxy::direct::{AuthMode, DirectRoute, DirectSettings};
use fjord_proxy::hub::OverflowPolicy;
use fjord_proxy::keys::{signing_key_from_spec, verifying_key_from_spec};
use fjord_proxy::route::Route;

use crate::config::{FjordConfig, RouteSection};

/// Cookie a client token may come in when `[auth] cookie` is not set.
pub const DEFAULT_TOKEN_COOKIE: &str = "fjord_token";

/// Every `[[proxy.route]]`, in file order.
pub fn routes(config: &FjordConfig, base_dir: Option<&Path>) -> anyhow::Result<Vec<Route>> {
    config
        .proxy
        .route
        .iter()
        .enumerate()
        .map(|(index, section)| {
            route(section, base_dir).map_err(|e| anyhow!("[[proxy.route]] #{}: {e}", index + 1))
        })
        .collect()
}

/// One `[[proxy.route]]` (also used by `fjord check`, which reports every route's problem).
pub(crate) fn route(section: &RouteSection, base_dir: Option<&Path>) -> anyhow::Result<Route> {
    let direct_only = [
        ("stream", section.stream.is_some()),
        ("auth", section.auth.is_some()),
        ("max_channels", section.max_channels.is_some()),
        ("on_overflow", section.on_overflow.is_some()),
        ("keep_alive", section.keep_alive.is_some()),
        ("retry_ms", section.retry_ms.is_some()),
        ("cors_origins", section.cors_origins.is_some()),
        ("history", section.history.is_some()),
        ("poll_timeout", section.poll_timeout.is_some()),
        ("queue", section.queue.is_some()),
    ];
    match (&section.origin, &section.channel, &section.files) {
        (Some(origin), None, None) => {
            if let Some((key, _)) = direct_only.iter().find(|(_, set)| *set) {
                bail!("`{key}` applies to direct routes (with `channel`), not to `origin` routes");
            }
            Ok(Route::from_origin_url(section.path.as_deref(), origin)?)
        }
        (None, Some(channel), None) => Ok(Route::direct(direct_route(section, channel)?)),
        (None, None, Some(files)) => {
            let root = match base_dir {
                Some(dir) if files.is_relative() => dir.join(files),
                _ => files.clone(),
            };
            if !root.is_dir() {
                bail!("`files`: {} is not a directory", root.display());
            }
            Ok(Route::files(section.path.as_deref(), root)?)
        }
        (None, None, None) => bail!("one of `origin`, `channel` or `files` is required"),
        _ => bail!("`origin`, `channel` and `files` exclude each other"),
    }
}

fn direct_route(section: &RouteSection, channel: &str) -> anyhow::Result<DirectRoute> {
    let path = section
        .path
        .as_deref()
        .ok_or_else(|| anyhow!("`path` is required with `channel`"))?;
    let path = PathTemplate::parse(path).map_err(|e| anyhow!("`path`: {e}"))?;
    let channel = ChannelTemplate::parse(channel, &path).map_err(|e| anyhow!("`channel`: {e}"))?;
    let mut direct = DirectRoute::new(path, channel);
    direct.stream.clone_from(&section.stream);
    direct.auth = match section.auth.as_deref() {
        None | Some("token") => AuthMode::Token,
        Some("public") => AuthMode::Public,
        Some(other) => bail!("`auth` must be \"token\" or \"public\", not {other:?}"),
    };
    direct.on_overflow = match section.on_overflow.as_deref() {
        None | Some("resume") => OverflowPolicy::Close,
        Some("conflate") => OverflowPolicy::Conflate,
        Some(other) => bail!("`on_overflow` must be \"resume\" or \"conflate\", not {other:?}"),
    };
    if let Some(max) = section.max_channels {
        if max == 0 {
            bail!("`max_channels` must be at least 1");
        }
        direct.max_channels = max;
    }
    if let Some(seconds) = section.keep_alive {
        direct.keep_alive = Duration::from_secs(seconds);
    }
    if let Some(retry) = section.retry_ms {
        direct.retry_ms = retry;
    }
    if let Some(origins) = &section.cors_origins {
        direct.cors = CorsPolicy::new(origins.clone());
    }
    if let Some(history) = section.history {
        direct.history = history;
    }
    if let Some(seconds) = section.poll_timeout {
        direct.poll_timeout = Duration::from_secs(seconds);
    }
    if let Some(queue) = section.queue {
        if queue == 0 {
            bail!("`queue` must be at least 1");
        }
        direct.queue = queue;
    }
    Ok(direct)
}

/// Token verification from `[auth]` and the replay source from `[proxy] replay` (or
/// `default_replay`, the in-process relay of `fjord run`).
pub fn direct_settings(
    config: &FjordConfig,
    base_dir: Option<&Path>,
    default_replay: Option<String>,
) -> anyhow::Result<DirectSettings> {
    let auth = match &config.auth.jwt_key {
        None => None,
        Some(spec) => {
            // A private key (RS256/ES256) signs tokens and verifies them too; a public key
            // only verifies.
            let key = match signing_key_from_spec(spec, base_dir) {
                Ok(signing) => signing.verifying_key().clone(),
                Err(_) => verifying_key_from_spec(spec, base_dir)
                    .map_err(|e| anyhow!("[auth] jwt_key: {e}"))?,
            };
            Some(ClientAuth {
                key,
                validation: TokenValidation {
                    audience: config.auth.audience.clone(),
                    issuer: config.auth.issuer.clone(),
                    leeway_secs: 5,
                },
                cookie: config
                    .auth
                    .cookie
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TOKEN_COOKIE.to_owned()),
            })
        }
    };
    let replay = config.proxy.replay.clone().or(default_replay);
    if let Some(url) = &replay {
        if !url.starts_with("http://") {
            bail!("[proxy] replay: {url:?} must be an http:// URL of a relay's control port");
        }
    }
    Ok(DirectSettings {
        auth,
        replay: replay.as_deref().map(ReplayClient::new),
    })
}
