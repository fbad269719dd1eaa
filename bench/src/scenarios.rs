//! The benchmark scenarios. Each one starts the system under test, runs a
//! bounded load, samples the system's whole process tree from /proc, stops
//! everything and returns one JSON object.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::loadavg;
use crate::procstat;
use crate::publisher::{self, Plan, PublisherKind};
use crate::subscribers::{Endpoint, LoadOpts, Subscribers};
use crate::systems::{self, Running, SystemKind};

/// Options shared by every GRIP/SSE scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// System under test.
    #[arg(long, value_enum)]
    pub system: SystemKind,
    /// Publisher (default: http for pushpin/fjord, nchan for nchan).
    #[arg(long, value_enum)]
    pub publisher: Option<PublisherKind>,
    #[command(flatten)]
    pub load: LoadOpts,
}

#[derive(Debug, Clone, Args)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Idle SSE connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// Distinct channels (default: one per connection).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Skip the final one-message-per-channel delivery check.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber connections.
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Messages published per second (over all channels).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Publishing duration in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Most items per HTTP publish request.
    #[arg(long, default_value_t = 500)]
    pub batch_max: usize,
    /// Most publish requests in flight.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Most seconds to wait for late deliveries after publishing ends.
    #[arg(long, default_value_t = 30)]
    pub drain_max: u64,
}

/// Which fan-out shape to run.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// All subscribers on one channel.
    OneChannel,
    /// Every subscriber on its own channel.
    ChannelEach,
}

struct Session {
    running: Running,
    subs: Subscribers,
}

async fn connect(
    c: &Common,
    running: Running,
    conns: usize,
    channels: usize,
    prefix: &str,
) -> Result<Session> {
    let endpoint = Endpoint {
        addr: running.launch.client,
        path_prefix: running.launch.sub_prefix.clone(),
    };
    let subs = Subscribers::open(&c.load, &endpoint, conns, channels, prefix).await?;
    Ok(Session { running, subs })
}

fn settings_json(running: &Running) -> Value {
    running
        .launch
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn publish_plan(prefix: &str, channels: usize, rate: f64, total: u64, secs: u64) -> Plan {
    Plan {
        channel_prefix: prefix.to_string(),
        channels,
        rate,
        total,
        max_duration: Duration::from_secs(secs),
        batch_max: 500,
        in_flight: 32,
    }
}

/// `conns`: N idle SSE connections; memory per connection.
pub async fn conns(a: &ConnsArgs) -> Result<Value> {
    let c = &a.common;
    let channels = a.channels.unwrap_or(a.conns).max(1);
    let publisher_kind = c.publisher.unwrap_or(c.system.default_publisher());
    let load = loadavg::Sampler::start();
    let running = systems::start(c.system).await?;
    let target = running.target(publisher_kind)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = procstat::sample(running.root_pid())?;
    let mut s = connect(c, running, a.conns, channels, "idle").await?;
    tokio::time::sleep(Duration::from_secs(c.load.settle)).await;
    s.running.check_alive()?;
    let after = procstat::sample(s.running.root_pid())?;
    let merged = s.subs.fleet.report().await?;
    let open = merged.opened - merged.closed;
    let n = a.conns.max(1) as f64;

    let verify = if a.no_verify {
        Value::Null
    } else {
        s.subs.fleet.reset().await?;
        let rate = (channels as f64).clamp(1000.0, 5000.0);
        let secs = (channels as f64 / rate).ceil() as u64 + 30;
        let plan = publish_plan("idle", channels, rate, channels as u64, secs);
        let t0 = Instant::now();
        let report = publisher::run(&target, &plan).await?;
        let d = s
            .subs
            .drain(&report, t0, Duration::from_secs(15), Duration::from_secs(3))
            .await?;
        json!({
            "published": report.published,
            "publish_failed": report.failed,
            "expected": d.expected,
            "received": d.merged.events,
            "loss": d.expected.saturating_sub(d.merged.events),
            "latency": d.merged.latency_summary(),
        })
    };
    let out = json!({
        "scenario": "conns",
        "system": c.system,
        "conns": a.conns,
        "channels": channels,
        "client_workers": s.subs.setup.workers,
        "opened": s.subs.setup.opened,
        "failed": s.subs.setup.failed,
        "failed_attempts": s.subs.setup.failed_attempts,
        "setup_errors": s.subs.setup.errors,
        "setup_s": round(s.subs.setup.setup_s, 2),
        "open_after_settle": open,
        "processes": after.processes,
        "rss_before_kb": before.rss_kb,
        "rss_after_kb": after.rss_kb,
        "rss_per_conn_kb": round((after.rss_kb as f64 - before.rss_kb as f64) / n, 2),
        "pss_before_kb": before.pss_kb,
        "pss_after_kb": after.pss_kb,
        "pss_per_conn_kb": round((after.pss_kb as f64 - before.pss_kb as f64) / n, 2),
        "cpu_s_setup": round(after.cpu_s - before.cpu_s, 2),
        "verify": verify,
        "publisher": publisher_kind,
        "settings": settings_json(&s.running),
        "loadavg_1m": load.finish(),
    });
    s.subs.fleet.stop().await;
    Ok(out)
}

/// `fanout` (one channel) and `fanout-many` (a channel per subscriber).
pub async fn fanout(a: &FanoutArgs, shape: Shape) -> Result<Value> {
    let c = &a.common;
    let (name, prefix, default_subs, default_rate) = match shape {
        Shape::OneChannel => ("fanout", "fan", 1_000, 200.0),
        Shape::ChannelEach => ("fanout-many", "many", 10_000, 10_000.0),
    };
    let subs = a.subscribers.unwrap_or(default_subs).max(1);
    let rate = a.rate.unwrap_or(default_rate);
    let channels = match shape {
        Shape::OneChannel => 1,
        Shape::ChannelEach => subs,
    };
    let publisher_kind = c.publisher.unwrap_or(c.system.default_publisher());
    let load = loadavg::Sampler::start();
    let running = systems::start(c.system).await?;
    let target = running.target(publisher_kind)?;
    let mut s = connect(c, running, subs, channels, prefix).await?;
    tokio::time::sleep(Duration::from_secs(c.load.settle)).await;
    s.running.check_alive()?;

    let total = (rate * a.duration as f64).round() as u64;
    let mut plan = publish_plan(prefix, channels, rate, total, a.duration + 5);
    plan.batch_max = a.batch_max;
    plan.in_flight = a.in_flight;
    s.subs.fleet.reset().await?;
    let before = procstat::sample(s.running.root_pid())?;
    let me = [std::process::id()];
    let (gen_before, pub_before) = (
        procstat::sample_pids(&s.subs.fleet.pids())?,
        procstat::sample_pids(&me)?,
    );
    let t0 = Instant::now();
    eprintln!("bench: publishing {total} messages at {rate}/s on {channels} channel(s)");
    let report = publisher::run(&target, &plan).await?;
    let d = s
        .subs
        .drain(
            &report,
            t0,
            Duration::from_secs(a.drain_max),
            Duration::from_secs(3),
        )
        .await?;
    let after = procstat::sample(s.running.root_pid())?;
    let (gen_after, pub_after) = (
        procstat::sample_pids(&s.subs.fleet.pids())?,
        procstat::sample_pids(&me)?,
    );
    let alive = s.running.check_alive().is_ok();

    let received = d.merged.events;
    let window = d.last_progress_s.max(report.elapsed_s).max(1e-9);
    let cpu = after.cpu_s - before.cpu_s;
    let out = json!({
        "scenario": name,
        "system": c.system,
        "publisher": publisher_kind,
        "subscribers": subs,
        "channels": channels,
        "client_workers": s.subs.setup.workers,
        "opened": s.subs.setup.opened,
        "failed": s.subs.setup.failed,
        "setup_errors": s.subs.setup.errors,
        "closed_during_run": d.merged.closed,
        "target_rate": rate,
        "duration_s": a.duration,
        "publish": report,
        "expected": d.expected,
        "received": received,
        "loss": d.expected.saturating_sub(received),
        "loss_pct": round(100.0 * d.expected.saturating_sub(received) as f64 / d.expected.max(1) as f64, 3),
        "bad_events": d.merged.bad_events,
        "seq_regressions": d.merged.regressions,
        "delivery_window_s": round(window, 2),
        "deliveries_per_s": round(received as f64 / window, 1),
        "latency": d.merged.latency_summary(),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_million": round(cpu / (received.max(1) as f64) * 1e6, 2),
        "subscriber_cpu_s": round(gen_after.cpu_s - gen_before.cpu_s, 2),
        "publisher_cpu_s": round(pub_after.cpu_s - pub_before.cpu_s, 2),
        "rss_kb": after.rss_kb,
        "pss_kb": after.pss_kb,
        "processes": after.processes,
        "server_alive_at_end": alive,
        "settings": settings_json(&s.running),
        "loadavg_1m": load.finish(),
    });
    s.subs.fleet.stop().await;
    Ok(out)
}
