//! The set-up the Kafka scenarios share (`kafka-e2e`, `resume-storm`): a
//! broker, a fresh topic, a producer, Fjord fed by the topic, subscribers on
//! one order channel each, a warm-up through Kafka, and resource sampling of
//! Fjord, the subscribers, the runner and the broker.
//!
//! Layout, SuperEats-style: subscriber `i` watches order `i` (channel
//! `orders.{i}`: `GET /orders/{i}` on a direct route, `GET /orders.{i}`
//! through the GRIP origin), record `k` is keyed `k % subscribers`, so the
//! relay maps each record to exactly one subscriber.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use fjord_testkit::KafkaBroker;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

use crate::kafka_producer;
use crate::kafka_sut::{KafkaFeed, KafkaSut, RouteKind, Topology};
use crate::procstat::{self, Sample};
use crate::scenarios::round;
use crate::sse::{self, Counters};
use crate::subscribers::{Endpoint, LoadOpts, Subscribers};

const PROBE_KEY: &str = "probe";

/// Options of every Kafka scenario.
#[derive(Debug, Clone, Args)]
pub struct KafkaOpts {
    /// `run`: `fjord run` (relay feeds the proxy in-process); `split`:
    /// `fjord relay` + `fjord proxy` over ZeroMQ.
    #[arg(long, value_enum, default_value = "run")]
    pub topology: Topology,
    /// `direct`: a direct-mode route (`/orders/{id}`, public); `origin`: GRIP
    /// stream holds through `fjord-bench origin`.
    #[arg(long, value_enum, default_value = "direct")]
    pub route: RouteKind,
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

/// Points the broker fixture at `--tansu` (it reads `FJORD_TANSU_BIN`).
/// Call before any other thread starts: the environment is process-wide.
pub fn select_tansu(o: &KafkaOpts) -> Result<()> {
    select_tansu_path(o.tansu.as_deref())
}

/// [`select_tansu`] for a scenario with its own options.
pub fn select_tansu_path(tansu: Option<&std::path::Path>) -> Result<()> {
    if let Some(path) = tansu {
        anyhow::ensure!(path.is_file(), "--tansu {}: no such file", path.display());
        std::env::set_var("FJORD_TANSU_BIN", path);
    }
    Ok(())
}

/// Where the records go: a broker started for this run, or one given.
pub struct Broker {
    pub bootstrap: String,
    /// Kept alive for the run; dropping it stops the broker.
    fixture: Option<KafkaBroker>,
}

impl Broker {
    /// Uses the broker at `bootstrap` (loopback only), else starts one.
    pub async fn start(bootstrap: Option<SocketAddr>) -> Result<Broker> {
        if let Some(addr) = bootstrap {
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

    pub fn describe(&self) -> &'static str {
        if self.fixture.is_some() {
            "tansu 0.6.0 (testkit fixture, sqlite storage)"
        } else {
            "given by --bootstrap"
        }
    }
}

/// Processes of the started broker (tansu) among our own descendants.
pub fn broker_pids() -> Vec<u32> {
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

/// Everything a Kafka scenario runs against. Drop order: subscribers, then
/// Fjord, then the broker.
pub struct Rig {
    pub subs: Subscribers,
    pub sut: KafkaSut,
    pub producer: FutureProducer,
    pub producer_settings: Vec<(String, String)>,
    pub topic: String,
    /// Fjord's resources once started, before any subscriber.
    pub idle: Sample,
    pub broker: Broker,
}

impl Rig {
    /// Starts everything and proves the path from Kafka to a subscriber
    /// works before returning; `subscribers` connections, one per key.
    pub async fn setup(o: &KafkaOpts, subscribers: usize) -> Result<Rig> {
        anyhow::ensure!(subscribers > 0, "--subscribers must be > 0");
        anyhow::ensure!(o.partitions > 0, "--partitions must be > 0");
        let broker = Broker::start(o.bootstrap).await?;
        let unique = format!(
            "{}-{}",
            std::process::id(),
            crate::payload::now_us() / 1_000_000
        );
        let topic = format!("bench-orders-{unique}");
        eprintln!(
            "bench: broker {} ({}), topic {topic} with {} partition(s)",
            broker.bootstrap,
            broker.describe(),
            o.partitions
        );
        kafka_producer::create_topic(&broker.bootstrap, &topic, o.partitions).await?;
        let producer_settings = kafka_producer::producer_settings(&broker.bootstrap, o.linger_ms);
        let producer = kafka_producer::producer(&producer_settings)?;
        let feed = KafkaFeed {
            bootstrap: broker.bootstrap.clone(),
            topic: topic.clone(),
            group: format!("fjord-bench-{unique}"),
            extra: o.relay_kafka.clone(),
        };
        let mut sut = KafkaSut::start(o.topology, o.route, &feed).await?;
        let idle = sut.sample()?.0;
        // Connection i subscribes at `{path_prefix}{i}`: the key is the suffix.
        let endpoint = Endpoint {
            addr: sut.client,
            path_prefix: o.route.path_prefix().into(),
        };
        let subs = Subscribers::open(&o.load, &endpoint, subscribers, subscribers, "").await?;
        eprintln!("bench: warm-up through Kafka");
        warm_up(&mut sut, o.route, &producer, &topic, o.partitions).await?;
        tokio::time::sleep(Duration::from_secs(o.load.settle)).await;
        sut.check_alive()?;
        Ok(Rig {
            subs,
            sut,
            producer,
            producer_settings,
            topic,
            idle,
            broker,
        })
    }

    /// Resources of everything involved, now.
    pub fn sample(&self) -> Result<Resources> {
        let (sut, each) = self.sut.sample()?;
        Ok(Resources {
            sut,
            each,
            subscribers: procstat::sample_pids(&self.subs.fleet.pids())?,
            runner: procstat::sample_pids(&[std::process::id()])?,
            broker: procstat::sample_pids(&broker_pids())?,
        })
    }

    /// Producer settings and the configuration file, for the results.
    pub fn settings_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .producer_settings
            .iter()
            .map(|(k, v)| (format!("producer {k}"), Value::String(v.clone())))
            .chain([(
                "fjord.toml".to_string(),
                Value::String(self.sut.config_text.clone()),
            )])
            .collect();
        map.into()
    }
}

/// A resource sample of every party.
pub struct Resources {
    /// Fjord: all its processes summed.
    pub sut: Sample,
    /// Fjord, by process role (`run`, or `proxy` and `relay`).
    pub each: Vec<(&'static str, Sample)>,
    pub subscribers: Sample,
    /// The runner: producer, fleet control, load sampler.
    pub runner: Sample,
    pub broker: Sample,
}

impl Resources {
    /// CPU and memory between `self` (before) and `after`, as JSON fields.
    pub fn delta_json(&self, after: &Resources) -> Value {
        let per_process: serde_json::Map<String, Value> = after
            .each
            .iter()
            .zip(&self.each)
            .map(|((role, a), (_, b))| {
                (
                    role.to_string(),
                    json!({ "cpu_s": round(a.cpu_s - b.cpu_s, 2), "rss_kb": a.rss_kb }),
                )
            })
            .collect();
        json!({
            "cpu_s": round(after.sut.cpu_s - self.sut.cpu_s, 2),
            "per_process": per_process,
            "rss_before_kb": self.sut.rss_kb,
            "rss_kb": after.sut.rss_kb,
            "pss_kb": after.sut.pss_kb,
            "processes": after.sut.processes,
            "broker_cpu_s": round(after.broker.cpu_s - self.broker.cpu_s, 2),
            "subscriber_cpu_s": round(after.subscribers.cpu_s - self.subscribers.cpu_s, 2),
            "runner_cpu_s": round(after.runner.cpu_s - self.runner.cpu_s, 2),
        })
    }
}

/// Opens one SSE stream on the probe channel and produces one record to
/// every partition until all of them arrived: proves that the relay has
/// every partition assigned and (split) that the proxy's subscriptions
/// reached the relay, before the measured run starts.
async fn warm_up(
    sut: &mut KafkaSut,
    route: RouteKind,
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let path = format!("{}{PROBE_KEY}", route.path_prefix());
    let mut stream = sse::open(
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
