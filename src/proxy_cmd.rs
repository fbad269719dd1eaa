//! `fjord proxy`: run the GRIP proxy alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use fjord_proxy::context::HoldSettings;
use fjord_proxy::hub::HubConfig;
use fjord_proxy::keys::{signing_key_from_spec, verifying_key_from_spec};
use fjord_proxy::launch::{self, ProxyConfig, ZmqSettings};
use fjord_proxy::origin::SigSettings;
use fjord_proxy::sequencer::SequencerConfig;
use fjord_proxy::tls::TlsFiles;

use crate::config::FjordConfig;

/// Pushpin's sample `sig_key`, used when none is configured so that origins set up
/// for a stock Pushpin accept our requests unchanged.
const DEFAULT_SIG_KEY: &str = "changeme";

#[derive(Args)]
#[command(
    about = "Run the GRIP proxy (Pushpin-compatible)",
    after_help = "Example:\n  fjord proxy -c fjord.toml --listen 127.0.0.1:7999 --routes routes"
)]
pub struct ProxyArgs {
    /// Configuration file; without it every setting has its default.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Public HTTP listener, overriding `[proxy] listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Control API / metrics / health address, overriding `[proxy] control`.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// PEM certificate chain for TLS on the public listener, overriding `[proxy] tls_cert`.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate, overriding `[proxy] tls_key`.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// A Pushpin routes file, overriding `[proxy] routes_file`.
    #[arg(long)]
    routes: Option<PathBuf>,
    /// ZeroMQ PULL endpoint to bind, overriding `[proxy] zmq_pull` ("" disables).
    #[arg(long)]
    zmq_pull: Option<String>,
    /// ZeroMQ SUB endpoint to bind, overriding `[proxy] zmq_sub` ("" disables).
    #[arg(long)]
    zmq_sub: Option<String>,
}

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let (config, base_dir) = match &args.config {
        Some(path) => (
            crate::validate::load(path, crate::validate::Scope::Proxy)?,
            path.parent().map(Path::to_path_buf),
        ),
        None => (FjordConfig::default(), None),
    };
    let proxy_config = build(&args, &config, base_dir.as_deref())?;
    let runtime = launch::runtime().context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = launch::start(proxy_config).await?;
        tracing::info!(
            listen = %running.listen_addr,
            control = %running.control_addr,
            "fjord proxy ready"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("shutting down");
        running.shutdown();
        Ok(())
    })
}

fn build(
    args: &ProxyArgs,
    config: &FjordConfig,
    base_dir: Option<&Path>,
) -> anyhow::Result<ProxyConfig> {
    let mut proxy = build_from_file(config, base_dir)?;
    if let Some(listen) = args.listen {
        proxy.listen = listen;
    }
    if let Some(control) = args.control {
        proxy.control = control;
    }
    if args.tls_cert.is_some() || args.tls_key.is_some() {
        let (file_cert, file_key) = match proxy.tls.take() {
            Some(files) => (Some(files.cert), Some(files.key)),
            None => (None, None),
        };
        proxy.tls = match (
            args.tls_cert.clone().or(file_cert),
            args.tls_key.clone().or(file_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => bail!("TLS needs both a certificate and a key (--tls-cert and --tls-key)"),
        };
    }
    if let Some(routes) = &args.routes {
        proxy.routes_file = Some(routes.clone());
    }
    if let Some(pull) = &args.zmq_pull {
        proxy.zmq.pull = (!pull.is_empty()).then(|| pull.clone());
    }
    if let Some(sub) = &args.zmq_sub {
        proxy.zmq.sub = (!sub.is_empty()).then(|| sub.clone());
    }
    Ok(proxy)
}

/// The proxy's settings from the file alone (`fjord run` has no proxy flags).
pub fn build_from_file(
    config: &FjordConfig,
    base_dir: Option<&Path>,
) -> anyhow::Result<ProxyConfig> {
    let section = &config.proxy;
    let routes = crate::route_config::routes(config, base_dir)?;
    let direct = crate::route_config::direct_settings(config, base_dir, None)?;
    let routes_file = section.routes_file.as_ref().map(|p| resolve(base_dir, p));
    let sig_key_spec = section.sig_key.as_deref().unwrap_or(DEFAULT_SIG_KEY);
    let sig_key = signing_key_from_spec(sig_key_spec, base_dir)
        .map_err(|e| anyhow!("[proxy] sig_key: {e}"))?;
    let upstream_key = section
        .upstream_key
        .as_deref()
        .map(|spec| verifying_key_from_spec(spec, base_dir))
        .transpose()
        .map_err(|e| anyhow!("[proxy] upstream_key: {e}"))?;
    let endpoint = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let tls = match (&section.tls_cert, &section.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: resolve(base_dir, cert),
            key: resolve(base_dir, key),
        }),
        (None, None) => None,
        _ => bail!("[proxy] tls_cert and tls_key: TLS needs both"),
    };
    Ok(ProxyConfig {
        listen: section.listen,
        tls,
        control: section.control,
        routes,
        routes_file,
        zmq: ZmqSettings {
            pull: endpoint(&section.zmq_pull),
            sub: endpoint(&section.zmq_sub),
            relays: section.relays.clone(),
        },
        hold: HoldSettings {
            connection_subscription_max: section.connection_subscription_max,
            update_on_first_subscription: section.update_on_first_subscription,
            debug: section.debug,
        },
        hub: HubConfig {
            sequencer: SequencerConfig {
                message_wait: Duration::from_millis(section.message_wait),
                id_cache_ttl: Duration::from_secs(section.id_cache_ttl),
            },
            subscription_linger: Duration::from_secs(section.subscription_linger),
        },
        control_limits: Default::default(),
        sig: SigSettings {
            iss: section.sig_iss.clone(),
            key: Some(sig_key),
        },
        upstream_key,
        direct,
    })
}

fn resolve(base_dir: Option<&Path>, path: &Path) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
