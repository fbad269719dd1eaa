//! `fjord demo`: zero-setup SuperEats. An embedded Kafka (librdkafka's mock cluster, or
//! a real broker with `--kafka`), the relay and the proxy in one process exactly as
//! `fjord run` wires them, an event generator, and a live page at the proxy's root.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use fjord_proxy::hub::PublishInput;
use fjord_proxy::launch;
use fjord_relay::{ItemSink, Relay};
use tokio::sync::watch;

use crate::config::FjordConfig;
use crate::demo::kafka::{self, EmbeddedKafka};
use crate::demo::setup::{self, DemoDir, DemoSettings};
use crate::demo::supereats::SuperEats;
use crate::{proxy_cmd, relay_cmd, route_config};

#[derive(Args)]
#[command(
    about = "Run the SuperEats demo: embedded Kafka, relay, proxy, live orders and drivers in a browser page",
    after_help = "Examples:\n  fjord demo                          # then open http://127.0.0.1:7999/\n  fjord demo --kafka 127.0.0.1:9092   # the same against a real broker"
)]
pub struct DemoArgs {
    /// A real Kafka broker to use instead of the embedded one; topics `orders` and
    /// `drivers` are created there if missing.
    #[arg(long, value_name = "HOST:PORT")]
    kafka: Option<String>,
    /// Public HTTP listener: the page and the streams.
    #[arg(long, default_value = "127.0.0.1:7999")]
    listen: SocketAddr,
    /// The proxy's control API, metrics and health.
    #[arg(long, default_value = "127.0.0.1:5561")]
    control: SocketAddr,
    /// The relay's control API (replay for resuming clients, metrics, health).
    #[arg(long, default_value = "127.0.0.1:5571")]
    relay_control: SocketAddr,
    /// Milliseconds between two steps of the simulation (one order moves on per step).
    #[arg(long, default_value_t = 700)]
    tick_ms: u64,
    /// Orders in flight at once.
    #[arg(long, default_value_t = 6)]
    orders: usize,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(20..=60_000).contains(&args.tick_ms) {
        bail!("--tick-ms must be between 20 and 60000");
    }
    if !(1..=50).contains(&args.orders) {
        bail!("--orders must be between 1 and 50");
    }
    let tick = Duration::from_millis(args.tick_ms);
    let (embedded, bootstrap) = match &args.kafka {
        Some(broker) => (None, broker.clone()),
        None => {
            say("starting the embedded Kafka (librdkafka mock cluster)");
            let cluster = EmbeddedKafka::start()?;
            let bootstrap = cluster.bootstrap_servers();
            (Some(cluster), bootstrap)
        }
    };
    say(&format!("Kafka at {bootstrap}, topics orders and drivers"));

    let dir = DemoDir::create()?;
    let settings = DemoSettings {
        listen: args.listen,
        control: args.control,
        relay_control: args.relay_control,
        bootstrap: bootstrap.clone(),
        from_beginning: embedded.is_some(),
    };
    let config_path = dir.config_path();
    let text = setup::config_text(&settings, &dir.web(), &setup::fresh_secret()?);
    std::fs::write(&config_path, &text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = FjordConfig::parse(&text, &config_path.display().to_string())?;
    let token = setup::mint_page_token(&config, dir.root())?;
    dir.write_page(&token, tick)?;
    let mut proxy_config = proxy_cmd::build_from_file(&config, Some(dir.root()))?;
    let mut relay_config =
        relay_cmd::build(&config, false).map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    // As in `fjord run`: direct routes replay from the relay beside them.
    let own_relay = relay_config.control.map(|addr| format!("http://{addr}"));
    proxy_config.direct = route_config::direct_settings(&config, Some(dir.root()), own_relay)?;

    let runtime = launch::runtime().context("starting the async runtime")?;
    let external = args.kafka.is_some();
    let result = runtime.block_on(async move {
        if external {
            kafka::ensure_topics(&bootstrap).await?;
        }
        let proxy = launch::start(proxy_config).await?;
        say(&format!("proxy listening on {}", proxy.listen_addr));
        let hub = Arc::clone(&proxy.hub);
        relay_config.sink = Some(ItemSink::new(move |item| {
            hub.publish(item, PublishInput::Relay);
        }));
        let relay = Relay::start(relay_config).await?;
        say("relay consuming orders and drivers");
        let (stop_tx, stop_rx) = watch::channel(false);
        let generator = tokio::spawn(kafka::run_generator(
            kafka::producer(&bootstrap)?,
            SuperEats::new(args.orders, seed()),
            tick,
            stop_rx,
        ));
        say("SuperEats is taking orders");
        let base = format!("http://{}", proxy.listen_addr);
        println!();
        println!("  Open {base}/   (Ctrl-C stops the demo)");
        println!();
        println!("  The page's token, for your own clients:");
        println!("    curl -N '{base}/orders/all?token={token}'");
        println!("  config: {}", config_path.display());
        println!();
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        say("stopping");
        let _ = stop_tx.send(true);
        let _ = generator.await;
        relay.shutdown().await;
        proxy.shutdown();
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(embedded);
    result?;
    say("stopped");
    Ok(())
}

/// Progress goes to standard output, for the person who started the demo.
fn say(text: &str) {
    println!("fjord demo: {text}");
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
}
