//! `kafka-e2e`: records produced to Kafka, through Fjord's relay and proxy,
//! to SSE subscribers. Latency is produce call → receipt (the timestamp is
//! inside each record's value), loss is against what the broker
//! acknowledged. Every subscriber watches its own order channel and sees
//! `rate / subscribers` events per second (layout in `kafka_rig`).

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::kafka_producer::{self, ProducePlan};
use crate::kafka_rig::{KafkaOpts, Rig};
use crate::loadavg;
use crate::scenarios::round;

#[derive(Debug, Clone, Args)]
pub struct KafkaE2eArgs {
    /// SSE subscribers, each on its own order channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Records produced per second (over all keys).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Producing duration in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    #[command(flatten)]
    pub kafka: KafkaOpts,
}

/// `kafka-e2e`: one bounded run, one JSON object.
pub async fn run(a: &KafkaE2eArgs) -> Result<Value> {
    let o = &a.kafka;
    let load = loadavg::Sampler::start();
    let mut rig = Rig::setup(o, a.subscribers).await?;
    let plan = ProducePlan::steady(&rig.topic, a.subscribers, a.rate, a.duration);
    let total = plan.total;
    rig.subs.fleet.reset().await?;
    let before = rig.sample()?;
    let t0 = Instant::now();
    eprintln!(
        "bench: producing {total} records at {}/s to {} keys",
        a.rate, a.subscribers
    );
    let produced = kafka_producer::run(&rig.producer, &plan, None).await?;
    let report = &produced.report;
    let d = rig
        .subs
        .drain(
            report,
            t0,
            Duration::from_secs(o.drain_max),
            Duration::from_secs(5),
        )
        .await?;
    let after = rig.sample()?;
    let alive = rig.sut.check_alive().is_ok();

    let received = d.merged.events;
    let window = d.last_progress_s.max(report.elapsed_s).max(1e-9);
    let cpu = after.sut.cpu_s - before.sut.cpu_s;
    let out = json!({
        "scenario": "kafka-e2e",
        "system": "fjord",
        "topology": o.topology,
        "route": o.route,
        "broker": rig.broker.describe(),
        "broker_kind": rig.broker.kind(),
        "partitions": o.partitions,
        "subscribers": a.subscribers,
        "channels": a.subscribers,
        "client_workers": rig.subs.setup.workers,
        "opened": rig.subs.setup.opened,
        "failed": rig.subs.setup.failed,
        "setup_errors": rig.subs.setup.errors,
        "closed_during_run": d.merged.closed,
        "target_rate": a.rate,
        "duration_s": a.duration,
        "produce": report,
        "produce_ack_latency": produced.ack_latency,
        "expected": d.expected,
        "received": received,
        "loss": d.expected.saturating_sub(received),
        "loss_pct": round(100.0 * d.expected.saturating_sub(received) as f64 / d.expected.max(1) as f64, 3),
        "seq_regressions": d.merged.regressions,
        "bad_events": d.merged.bad_events,
        "delivery_window_s": round(window, 2),
        "deliveries_per_s": round(received as f64 / window, 1),
        "latency": d.merged.latency_summary(),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_million": round(cpu / (received.max(1) as f64) * 1e6, 2),
        "resources": before.delta_json(&after),
        "rss_idle_kb": rig.idle.rss_kb,
        "server_alive_at_end": alive,
        "settings": rig.settings_json(),
        "loadavg_1m": load.finish(),
    });
    rig.subs.fleet.stop().await;
    Ok(out)
}
