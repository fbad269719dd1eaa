//! The benchmark scenarios. Each one starts the system under test, runs a
//! bounded load, samples the system's whole process tree from /proc, stops
//! everything and returns one JSON object.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::fleet::{self, Fleet, FleetPlan, Merged};
use crate::loadavg;
use crate::procstat;
use crate::publisher::{self, Plan, PublishReport, PublisherKind};
use crate::systems::{self, Running, SystemKind};

/// Options shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// System under test.
    #[arg(long, value_enum)]
    pub system: SystemKind,
    /// Publisher (default: http for pushpin/fjord, nchan for nchan).
    #[arg(long, value_enum)]
    pub publisher: Option<PublisherKind>,
    /// Loopback source addresses for subscribers (default 127.0.0.2-17).
    #[arg(long, value_delimiter = ',')]
    pub sources: Option<Vec<IpAddr>>,
    /// Connection set-ups in flight, over all workers.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
    /// Most subscriber connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub per_worker: usize,
    /// Extra attempts for a failed connection set-up.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Seconds to let the system settle before memory samples.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Hard cap on the whole scenario, in seconds.
    #[arg(long, default_value_t = 1200)]
    pub max_seconds: u64,
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
    fleet: Fleet,
    setup: fleet::SetupSummary,
    conns: usize,
    channels: usize,
}

fn fleet_plan(
    c: &Common,
    running: &Running,
    conns: usize,
    channels: usize,
    prefix: &str,
) -> FleetPlan {
    FleetPlan {
        addr: running.launch.client,
        path_prefix: running.launch.sub_prefix.clone(),
        channel_prefix: prefix.to_string(),
        channels,
        conns,
        per_worker: c.per_worker,
        min_workers: 2,
        sources: c.sources.clone().unwrap_or_else(fleet::default_sources),
        setup_concurrency: c.setup_concurrency,
        retries: c.retries,
        max_seconds: c.max_seconds + 60,
    }
}

async fn connect(
    c: &Common,
    running: Running,
    conns: usize,
    channels: usize,
    prefix: &str,
) -> Result<Session> {
    let plan = fleet_plan(c, &running, conns, channels, prefix);
    let mut fleet = Fleet::spawn(&plan)?;
    eprintln!(
        "bench: opening {conns} SSE connections on {channels} channel(s) with {} worker(s)",
        fleet.len()
    );
    let setup = fleet
        .wait_ready(Duration::from_secs(c.max_seconds))
        .await
        .context("waiting for subscribers")?;
    eprintln!(
        "bench: {} opened, {} failed in {:.1} s",
        setup.opened, setup.failed, setup.setup_s
    );
    Ok(Session {
        running,
        fleet,
        setup,
        conns,
        channels,
    })
}

/// Deliveries expected when messages `0..attempted` (minus failed ones) go to
/// channel `seq % channels` and connection `i` listens on `i % channels`.
/// Every connection that opened counts, including ones the server closed
/// later: what they missed is loss.
fn expected(s: &Session, report: &PublishReport) -> u64 {
    let ch = s.channels as u64;
    let total = report.attempted;
    let mut per_channel: Vec<u64> = (0..ch)
        .map(|c| total / ch + u64::from(c < total % ch))
        .collect();
    for &seq in &report.failed_seqs {
        per_channel[(seq % ch) as usize] -= 1;
    }
    let mut excluded = vec![false; s.conns];
    for &i in &s.setup.failed_idx {
        if let Some(x) = excluded.get_mut(i) {
            *x = true;
        }
    }
    (0..s.conns)
        .filter(|&i| !excluded[i])
        .map(|i| per_channel[i % s.channels])
        .sum()
}

struct Drained {
    merged: Merged,
    expected: u64,
    /// Seconds from publish start until the last observed delivery progress.
    last_progress_s: f64,
}

/// Polls the workers until every expected event arrived, progress stalls
/// for `stall`, or `max` has passed since publishing ended.
async fn drain(
    s: &mut Session,
    report: &PublishReport,
    t0: Instant,
    max: Duration,
    stall: Duration,
) -> Result<Drained> {
    let end = Instant::now() + max;
    let mut last_events = u64::MAX;
    let mut last_change = Instant::now();
    loop {
        let merged = s.fleet.report().await?;
        let exp = expected(s, report);
        if merged.events != last_events {
            last_events = merged.events;
            last_change = Instant::now();
        }
        let now = Instant::now();
        if merged.events >= exp || now > end || now - last_change > stall {
            return Ok(Drained {
                merged,
                expected: exp,
                last_progress_s: (last_change - t0).as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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

fn round(v: f64, digits: i32) -> f64 {
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
    tokio::time::sleep(Duration::from_secs(c.settle)).await;
    s.running.check_alive()?;
    let after = procstat::sample(s.running.root_pid())?;
    let merged = s.fleet.report().await?;
    let open = merged.opened - merged.closed;
    let n = a.conns.max(1) as f64;

    let verify = if a.no_verify {
        Value::Null
    } else {
        s.fleet.reset().await?;
        let rate = (channels as f64).clamp(1000.0, 5000.0);
        let secs = (channels as f64 / rate).ceil() as u64 + 30;
        let plan = publish_plan("idle", channels, rate, channels as u64, secs);
        let t0 = Instant::now();
        let report = publisher::run(&target, &plan).await?;
        let d = drain(
            &mut s,
            &report,
            t0,
            Duration::from_secs(15),
            Duration::from_secs(3),
        )
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
        "client_workers": s.setup.workers,
        "opened": s.setup.opened,
        "failed": s.setup.failed,
        "failed_attempts": s.setup.failed_attempts,
        "setup_errors": s.setup.errors,
        "setup_s": round(s.setup.setup_s, 2),
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
    s.fleet.stop().await;
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
    tokio::time::sleep(Duration::from_secs(c.settle)).await;
    s.running.check_alive()?;

    let total = (rate * a.duration as f64).round() as u64;
    let mut plan = publish_plan(prefix, channels, rate, total, a.duration + 5);
    plan.batch_max = a.batch_max;
    plan.in_flight = a.in_flight;
    s.fleet.reset().await?;
    let before = procstat::sample(s.running.root_pid())?;
    let me = [std::process::id()];
    let (gen_before, pub_before) = (
        procstat::sample_pids(&s.fleet.pids())?,
        procstat::sample_pids(&me)?,
    );
    let t0 = Instant::now();
    eprintln!("bench: publishing {total} messages at {rate}/s on {channels} channel(s)");
    let report = publisher::run(&target, &plan).await?;
    let d = drain(
        &mut s,
        &report,
        t0,
        Duration::from_secs(a.drain_max),
        Duration::from_secs(3),
    )
    .await?;
    let after = procstat::sample(s.running.root_pid())?;
    let (gen_after, pub_after) = (
        procstat::sample_pids(&s.fleet.pids())?,
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
        "client_workers": s.setup.workers,
        "opened": s.setup.opened,
        "failed": s.setup.failed,
        "setup_errors": s.setup.errors,
        "closed_during_run": d.merged.closed,
        "target_rate": rate,
        "duration_s": a.duration,
        "publish": report,
        "expected": d.expected,
        "received": received,
        "loss": d.expected.saturating_sub(received),
        "loss_pct": round(100.0 * d.expected.saturating_sub(received) as f64 / d.expected.max(1) as f64, 3),
        "bad_events": d.merged.bad_events,
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
    s.fleet.stop().await;
    Ok(out)
}
