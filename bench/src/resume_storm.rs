//! `resume-storm`: every subscriber drops its stream at the same moment and
//! reconnects with its last event id (`?lastEventId=`, as EventSource does
//! with `Last-Event-ID`) while records keep being produced. Reports how long
//! until every subscriber had every record produced before the disconnect
//! (catch-up), how long reconnects took, and what was lost or duplicated
//! over the whole run. Needs a direct-mode route: GRIP stream holds have no
//! resume.
//!
//! Loss is counted against every record the broker acknowledged: expected
//! deliveries − (deliveries − duplicates). A duplicate is an event whose
//! `seq` is not above the previous one on its connection (a channel's
//! records come from one partition, in order).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::kafka_producer::{self, ProducePlan};
use crate::kafka_rig::{KafkaOpts, Rig};
use crate::kafka_sut::{self, RouteKind};
use crate::loadavg;
use crate::payload;

#[derive(Debug, Clone, Args)]
pub struct ResumeStormArgs {
    /// SSE subscribers, each on its own order channel.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Records produced per second (over all keys).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Producing duration in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds after producing starts at which every subscriber disconnects.
    #[arg(long, default_value_t = 10)]
    pub storm_at: u64,
    #[command(flatten)]
    pub kafka: KafkaOpts,
}

/// `resume-storm`: one bounded run, one JSON object.
pub async fn run(a: &ResumeStormArgs) -> Result<Value> {
    let o = &a.kafka;
    anyhow::ensure!(
        o.route == RouteKind::Direct,
        "resume-storm needs --route direct (GRIP stream holds do not resume)"
    );
    anyhow::ensure!(
        a.storm_at < a.duration,
        "--storm-at must fall inside --duration"
    );
    let load = loadavg::Sampler::start();
    let mut rig = Rig::setup(o, a.subscribers).await?;
    let plan = ProducePlan::steady(&rig.topic, a.subscribers, a.rate, a.duration);
    let total = plan.total;
    rig.subs.fleet.reset().await?;
    let before = rig.sample()?;
    let t0 = Instant::now();
    eprintln!(
        "bench: producing {total} records at {}/s to {} keys; everyone reconnects at {} s",
        a.rate, a.subscribers, a.storm_at
    );
    let progress = Arc::new(AtomicU64::new(0));
    let producing = {
        let (producer, progress) = (rig.producer.clone(), progress.clone());
        tokio::spawn(async move { kafka_producer::run(&producer, &plan, Some(&progress)).await })
    };
    tokio::time::sleep(Duration::from_secs(a.storm_at)).await;
    let since_us = payload::now_us();
    let next_seq = progress.load(Ordering::Relaxed);
    rig.subs.fleet.storm(next_seq, since_us).await?;
    eprintln!("bench: storm ordered at seq {next_seq}");
    let produced = producing.await.context("producer task")??;
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
    let metrics = kafka_sut::proxy_metrics(
        rig.sut.control,
        &[
            "fjord_proxy_resumes_total",
            "fjord_proxy_gaps_total",
            "fjord_proxy_direct_closes_total",
            "fjord_proxy_queue_overflows_total",
        ],
    )
    .await
    .unwrap_or_else(|e| Value::String(format!("unavailable: {e:#}")));

    let m = &d.merged;
    let unique = m.events.saturating_sub(m.regressions);
    let caught_up = m.catch_up_latency.summary();
    let out = json!({
        "scenario": "resume-storm",
        "system": "fjord",
        "topology": o.topology,
        "route": o.route,
        "broker": rig.broker.describe(),
        "broker_kind": rig.broker.kind(),
        "partitions": o.partitions,
        "subscribers": a.subscribers,
        "client_workers": rig.subs.setup.workers,
        "opened": rig.subs.setup.opened,
        "failed": rig.subs.setup.failed,
        "setup_errors": rig.subs.setup.errors,
        "target_rate": a.rate,
        "duration_s": a.duration,
        "storm_at_s": a.storm_at,
        "storm_next_seq": next_seq,
        "reconnect_concurrency": o.load.reconnect_concurrency,
        "reconnects": m.reconnects,
        "reconnect_failures": m.reconnect_failures,
        "reconnect_latency": m.reconnect_latency.summary(),
        "caught_up": caught_up.samples,
        "not_caught_up": m.reconnects.saturating_sub(caught_up.samples),
        "catch_up_latency": caught_up,
        "produce": report,
        "produce_ack_latency": produced.ack_latency,
        "expected": d.expected,
        "received": m.events,
        "duplicates": m.regressions,
        "lost": d.expected.saturating_sub(unique),
        "closed_during_run": m.closed,
        "bad_events": m.bad_events,
        "latency": m.latency_summary(),
        "proxy_metrics": metrics,
        "resources": before.delta_json(&after),
        "server_alive_at_end": alive,
        "settings": rig.settings_json(),
        "loadavg_1m": load.finish(),
    });
    rig.subs.fleet.stop().await;
    Ok(out)
}
