//! `fjord run`: the proxy and the relay in one process, the relay feeding the proxy's
//! hub directly (no ZeroMQ hop). The single-node default.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use fjord_proxy::hub::PublishInput;
use fjord_proxy::launch;
use fjord_relay::{ItemSink, Relay};

use crate::proxy_cmd;

#[derive(Args)]
#[command(
    about = "Run the proxy and the Kafka relay in one process",
    after_help = "Example:\n  fjord run -c fjord.toml"
)]
pub struct RunArgs {
    /// Configuration file.
    #[arg(short, long, default_value = "fjord.toml")]
    config: PathBuf,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = crate::validate::load(&args.config, crate::validate::Scope::Run)?;
    let base_dir = args.config.parent().map(|p| p.to_path_buf());
    let mut proxy_config = proxy_cmd::build_from_file(&config, base_dir.as_deref())?;
    let mut relay_config = crate::relay_cmd::build(&config, false)
        .map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    // Direct routes replay from the relay running beside them unless told otherwise.
    let own_relay = relay_config
        .control
        .filter(|addr| addr.port() != 0)
        .map(|addr| format!("http://{addr}"));
    proxy_config.direct =
        crate::route_config::direct_settings(&config, base_dir.as_deref(), own_relay)?;
    let runtime = launch::runtime().context("starting the async runtime")?;
    runtime.block_on(async move {
        let proxy = launch::start(proxy_config).await?;
        let hub = Arc::clone(&proxy.hub);
        relay_config.sink = Some(ItemSink::new(move |item| {
            hub.publish(item, PublishInput::Relay);
        }));
        let relay = Relay::start(relay_config).await?;
        tracing::info!(
            listen = %proxy.listen_addr,
            control = %proxy.control_addr,
            "fjord running (proxy and relay)"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("shutting down");
        relay.shutdown().await;
        proxy.shutdown();
        Ok(())
    })
}
