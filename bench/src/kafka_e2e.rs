//! `kafka-e2e`: records produced to Kafka, through Fjord's relay and proxy,
//! to SSE subscribers. Latency is produce call → receipt (the timestamp is
//! inside each record's value), loss is against what the broker acknowledged.
//!
//! Layout, SuperEats-style: subscriber `i` watches order `i` (channel
//! `orders.{i}`), record `k` is keyed `k % subscribers`, so every subscriber
//! sees `rate / subscribers` events per second and the relay maps each
//! record to exactly one subscriber. The broker is the test broker (tansu)
//! started from `fjord-testkit`, or any broker on a loopback address given
//! with `--bootstrap`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use fjord_testkit::KafkaBroker;
use serde_json::{json, Value};

use crate::kafka_producer::{self, ProducePlan};
use crate::kafka_sut::{KafkaFeed, KafkaSut, Topology};
use crate::loadavg;
use crate::procstat::{self, Sample};
use crate::scenarios::round;
use crate::sse::{self, Counters};
use crate::subscribers::{Endpoint, LoadOpts, Subscribers};

const CHANNEL_PREFIX: &str = "orders.";
const PROBE_KEY: &str = "probe";

#[derive(Debug, Clone, Args)]
pub struct KafkaE2eArgs {
    /// `run`: `fjord run` (relay feeds the proxy in-process); `split`:
    /// `fjord relay` + `fjord proxy` over ZeroMQ.
    #[arg(long, value_enum, default_value = "run")]
    pub topology: Topology,
    /// SSE subscribers, each on its own order channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Records produced per second (over all keys).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Producing duration in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Producer `linger.ms`.
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u32,
    /// Use the broker at this loopback address instead of starting one
    /// (a fresh topic is created on it).
    #[arg(long)]
    pub bootstrap: Option<SocketAddr>,
    /// The tansu binary for the started broker (default: `FJORD_TANSU_BIN`,
    /// `tansu` on PATH, then ~/.cargo/bin/tansu).
    #[arg(long)]
    pub tansu: Option<PathBuf>,
    /// Extra consumer setting for the relay, `KEY=VALUE` (librdkafka names);
    /// repeatable.
    #[arg(long = "relay-kafka", value_parser = parse_key_value)]
    pub relay_kafka: Vec<(String, String)>,
    /// Most seconds to wait for late deliveries after producing ends.
    #[arg(long, default_value_t = 30)]
    pub drain_max: u64,
    #[command(flatten)]
    pub load: LoadOpts,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Where the records go: a broker started for this run, or one given.
struct Broker {
    bootstrap: String,
    /// Kept alive for the run; dropping it stops the broker.
    fixture: Option<KafkaBroker>,
}

async fn broker(a: &KafkaE2eArgs) -> Result<Broker> {
    if let Some(addr) = a.bootstrap {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "--bootstrap must be a loopback address, got {addr}"
        );
        return Ok(Broker {
            bootstrap: addr.to_string(),
            fixture: None,
        });
    }
    let fixture = tokio::task::spawn_blocking(KafkaBroker::start)
        .await
        .context("broker start task")?
        .context("starting the test broker")?;
    Ok(Broker {
        bootstrap: fixture.bootstrap(),
        fixture: Some(fixture),
    })
}

/// Points the broker fixture at `--tansu` (it reads `FJORD_TANSU_BIN`).
/// Call before any other thread starts: the environment is process-wide.
pub fn select_tansu(a: &KafkaE2eArgs) -> Result<()> {
    if let Some(path) = &a.tansu {
        anyhow::ensure!(path.is_file(), "--tansu {}: no such file", path.display());
        std::env::set_var("FJORD_TANSU_BIN", path);
    }
    Ok(())
}

/// Processes of the started broker (tansu) among our own descendants.
fn broker_pids() -> Vec<u32> {
    let Ok(tree) = procstat::tree(std::process::id()) else {
        return Vec::new();
    };
    tree.into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "tansu")
                .unwrap_or(false)
        })
        .collect()
}

/// Opens one SSE stream on the probe channel and produces one record to
/// every partition until all of them arrived: proves that the relay has
/// every partition assigned and (split) that the proxy's subscriptions
/// reached the relay, before the measured run starts.
async fn warm_up(
    sut: &mut KafkaSut,
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let path = format!("/{CHANNEL_PREFIX}{PROBE_KEY}");
    let stream = sse::open(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        sut.client,
        &path,
        Duration::from_secs(10),
    )
    .await
    .context("probe subscribe")?;
    let counters = Arc::new(Counters::default());
    let pump = {
        let counters = counters.clone();
        tokio::spawn(async move { stream.pump(&counters).await })
    };
    kafka_producer::produce_probe(producer, topic, PROBE_KEY, partitions).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let want = partitions as u64;
    while counters.events.load(Ordering::Relaxed) < want {
        sut.check_alive()?;
        if Instant::now() > deadline {
            pump.abort();
            bail!(
                "warm-up: {} of {want} probe records arrived within 90 s\n{}",
                counters.events.load(Ordering::Relaxed),
                sut.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pump.abort();
    Ok(())
}

fn sample_json(s: &Sample) -> Value {
    json!({
        "processes": s.processes,
        "rss_kb": s.rss_kb,
        "pss_kb": s.pss_kb,
        "cpu_s": round(s.cpu_s, 2),
    })
}

/// `kafka-e2e`: one bounded run, one JSON object.
pub async fn run(a: &KafkaE2eArgs) -> Result<Value> {
    anyhow::ensure!(a.subscribers > 0, "--subscribers must be > 0");
    anyhow::ensure!(a.partitions > 0, "--partitions must be > 0");
    let load = loadavg::Sampler::start();
    let broker = broker(a).await?;
    let unique = format!("{}-{}", std::process::id(), payload_clock_s());
    let topic = format!("bench-orders-{unique}");
    eprintln!(
        "bench: broker {} ({}), topic {topic} with {} partition(s)",
        broker.bootstrap,
        if broker.fixture.is_some() {
            "started"
        } else {
            "given"
        },
        a.partitions
    );
    kafka_producer::create_topic(&broker.bootstrap, &topic, a.partitions).await?;
    let producer_settings = kafka_producer::producer_settings(&broker.bootstrap, a.linger_ms);
    let producer = kafka_producer::producer(&producer_settings)?;
    let feed = KafkaFeed {
        bootstrap: broker.bootstrap.clone(),
        topic: topic.clone(),
        group: format!("fjord-bench-{unique}"),
        channel_prefix: CHANNEL_PREFIX.into(),
        extra: a.relay_kafka.clone(),
    };
    let mut sut = KafkaSut::start(a.topology, &feed).await?;
    let idle = sut.sample()?.0;
    let endpoint = Endpoint {
        addr: sut.client,
        path_prefix: "/".into(),
    };
    let mut subs = Subscribers::open(
        &a.load,
        &endpoint,
        a.subscribers,
        a.subscribers,
        CHANNEL_PREFIX,
    )
    .await?;
    eprintln!("bench: warm-up through Kafka");
    warm_up(&mut sut, &producer, &topic, a.partitions).await?;
    tokio::time::sleep(Duration::from_secs(a.load.settle)).await;
    sut.check_alive()?;

    let total = (a.rate * a.duration as f64).round() as u64;
    let plan = ProducePlan {
        topic: topic.clone(),
        keys: a.subscribers,
        rate: a.rate,
        total,
        max_duration: Duration::from_secs(a.duration + 5),
    };
    subs.fleet.reset().await?;
    let me = [std::process::id()];
    let (before, before_each) = sut.sample()?;
    let brokers = broker_pids();
    let (gen_before, prod_before, broker_before) = (
        procstat::sample_pids(&subs.fleet.pids())?,
        procstat::sample_pids(&me)?,
        procstat::sample_pids(&brokers)?,
    );
    let t0 = Instant::now();
    eprintln!(
        "bench: producing {total} records at {}/s to {} keys",
        a.rate, a.subscribers
    );
    let produced = kafka_producer::run(&producer, &plan).await?;
    let report = &produced.report;
    let d = subs
        .drain(
            report,
            t0,
            Duration::from_secs(a.drain_max),
            Duration::from_secs(5),
        )
        .await?;
    let (after, after_each) = sut.sample()?;
    let (gen_after, prod_after, broker_after) = (
        procstat::sample_pids(&subs.fleet.pids())?,
        procstat::sample_pids(&me)?,
        procstat::sample_pids(&brokers)?,
    );
    let alive = sut.check_alive().is_ok();

    let received = d.merged.events;
    let window = d.last_progress_s.max(report.elapsed_s).max(1e-9);
    let cpu = after.cpu_s - before.cpu_s;
    let per_process: serde_json::Map<String, Value> = after_each
        .iter()
        .zip(&before_each)
        .map(|((role, a), (_, b))| {
            (
                role.to_string(),
                json!({
                    "cpu_s": round(a.cpu_s - b.cpu_s, 2),
                    "rss_kb": a.rss_kb,
                }),
            )
        })
        .collect();
    let settings: serde_json::Map<String, Value> = producer_settings
        .iter()
        .map(|(k, v)| (format!("producer {k}"), Value::String(v.clone())))
        .chain([(
            "fjord.toml".to_string(),
            Value::String(sut.config_text.clone()),
        )])
        .collect();
    let out = json!({
        "scenario": "kafka-e2e",
        "system": "fjord",
        "topology": a.topology,
        "route": "GRIP origin (fjord-bench origin), SSE",
        "broker": if broker.fixture.is_some() { "tansu (testkit fixture, sqlite)" } else { "given" },
        "partitions": a.partitions,
        "subscribers": a.subscribers,
        "channels": a.subscribers,
        "client_workers": subs.setup.workers,
        "opened": subs.setup.opened,
        "failed": subs.setup.failed,
        "setup_errors": subs.setup.errors,
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
        "per_process": per_process,
        "rss_idle_kb": idle.rss_kb,
        "rss_kb": after.rss_kb,
        "pss_kb": after.pss_kb,
        "processes": after.processes,
        "sut_before": sample_json(&before),
        "broker_cpu_s": round(broker_after.cpu_s - broker_before.cpu_s, 2),
        "subscriber_cpu_s": round(gen_after.cpu_s - gen_before.cpu_s, 2),
        "producer_cpu_s": round(prod_after.cpu_s - prod_before.cpu_s, 2),
        "server_alive_at_end": alive,
        "settings": settings,
        "loadavg_1m": load.finish(),
    });
    subs.fleet.stop().await;
    drop(sut);
    drop(broker);
    Ok(out)
}

fn payload_clock_s() -> u64 {
    crate::payload::now_us() / 1_000_000
}
