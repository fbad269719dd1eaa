//! `fjord-bench`: load generator and benchmark harness for GRIP/SSE servers.
//!
//! Scenario commands (`conns`, `conns-fleet`, `fanout`, `fanout-many`, `kafka-e2e`,
//! `resume-storm`) start the system under
//! test, run a bounded load, stop everything and print one JSON line on
//! stdout (progress goes to stderr). `origin` and `worker` are helper
//! processes the scenarios spawn; they can also be run by hand.

mod child;
mod conns_fleet;
mod fjord_group;
mod fleet;
mod histogram;
mod kafka_broker;
mod kafka_e2e;
mod kafka_producer;
mod kafka_rig;
mod kafka_sut;
mod loadavg;
mod mock_broker;
mod origin;
mod payload;
mod procstat;
mod proxy_fleet;
mod publisher;
mod resume;
mod resume_storm;
mod scenarios;
mod sse;
mod subscribers;
mod systems;
mod worker;

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fjord-bench",
    about = "Benchmarks for GRIP/SSE realtime proxies"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N idle SSE connections on one server: RSS per connection, failures.
    Conns(scenarios::ConnsArgs),
    /// N idle SSE connections (default 100,000) over several `fjord proxy`
    /// processes fed by one `fjord relay`, then one Kafka broadcast to all:
    /// RSS per proxy and per connection, how many received it and when.
    ConnsFleet(conns_fleet::ConnsFleetArgs),
    /// Subscribers on one channel, a bounded publish run (default 1,000 subs,
    /// 200 msg/s, 20 s): delivery rate, loss, latency, CPU per delivery.
    Fanout(scenarios::FanoutArgs),
    /// Every subscriber on its own channel (default 10,000 subs, 10,000
    /// msg/s, one per channel per second, 20 s).
    FanoutMany(scenarios::FanoutArgs),
    /// Kafka records through `fjord run` (or `fjord relay` + `fjord proxy`)
    /// to SSE subscribers (default 1,000 subscribers, 1,000 records/s, 20 s):
    /// produce-to-receipt latency, loss, CPU and RSS of Fjord.
    KafkaE2e(kafka_e2e::KafkaE2eArgs),
    /// 10,000 subscribers on a direct route drop their streams at once and
    /// reconnect with their last event id while records keep coming: time
    /// until all caught up, lost and duplicated events.
    ResumeStorm(resume_storm::ResumeStormArgs),
    /// Tiny GRIP origin: every path becomes a stream hold on that channel.
    Origin(origin::OriginArgs),
    /// Load-generator worker process (spawned by the scenarios).
    Worker(worker::WorkerArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Origin(a) => origin::main(a),
        Cmd::Worker(a) => worker::main(a),
        Cmd::Conns(a) => {
            let cap = a.common.load.max_seconds;
            run_scenario(cap, async move { scenarios::conns(&a).await })
        }
        Cmd::ConnsFleet(a) => {
            kafka_broker::select_tansu(&a.broker)?;
            let cap = a.load.max_seconds;
            run_scenario(cap, async move { conns_fleet::run(&a).await })
        }
        Cmd::KafkaE2e(a) => {
            kafka_broker::select_tansu(&a.kafka.broker)?;
            let cap = a.kafka.load.max_seconds;
            run_scenario(cap, async move { kafka_e2e::run(&a).await })
        }
        Cmd::ResumeStorm(a) => {
            kafka_broker::select_tansu(&a.kafka.broker)?;
            let cap = a.kafka.load.max_seconds;
            run_scenario(cap, async move { resume_storm::run(&a).await })
        }
        Cmd::Fanout(a) => {
            let cap = a.common.load.max_seconds;
            run_scenario(cap, async move {
                scenarios::fanout(&a, scenarios::Shape::OneChannel).await
            })
        }
        Cmd::FanoutMany(a) => {
            let cap = a.common.load.max_seconds;
            run_scenario(cap, async move {
                scenarios::fanout(&a, scenarios::Shape::ChannelEach).await
            })
        }
    }
}

/// Runs a scenario under a time cap and Ctrl-C; the scenario's guards kill
/// every child process when its future is dropped, on success or error.
fn run_scenario(
    cap_s: u64,
    fut: impl std::future::Future<Output = Result<serde_json::Value>>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let value = rt.block_on(async move {
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(cap_s), fut) => match r {
                Ok(r) => r,
                Err(_) => bail!("scenario exceeded --max-seconds {cap_s}"),
            },
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(())
}
