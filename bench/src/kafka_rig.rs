//! The set-up the Kafka scenarios share (`kafka-e2e`, `resume-storm`): a
//! broker (`kafka_broker`), a fresh topic, a producer, Fjord fed by the topic, subscribers on
//! one order channel each, a warm-up through Kafka, and resource sampling of
//! Fjord, the subscribers, the runner and the broker.
//!
//! Layout, SuperEats-style: subscriber `i` watches order `i` (channel
//! `orders.{i}`: `GET /orders/{i}` on a direct route, `GET /orders.{i}`
//! through the GRIP origin), record `k` is keyed `k % subscribers`, so the
//! relay maps each record to exactly one subscriber.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

use crate::kafka_broker::{Broker, BrokerOpts};
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
    #[command(flatten)]
    pub broker: BrokerOpts,
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

/// `--relay-kafka KEY=VALUE` of every Kafka scenario.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
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
        let broker = Broker::start(&o.broker).await?;
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
        broker.create_topic(&topic, o.partitions).await?;
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
        let broker = self.broker.sample()?;
        let mut runner = procstat::sample_pids(&[std::process::id()])?;
        if self.broker.runs_in_runner() {
            runner.cpu_s -= broker.cpu_s;
        }
        Ok(Resources {
            sut,
            each,
            subscribers: procstat::sample_pids(&self.subs.fleet.pids())?,
            runner,
            broker,
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
    pub each: Vec<(String, Sample)>,
    pub subscribers: Sample,
    /// The runner: producer, fleet control, load sampler (less the mock
    /// broker's thread, which is counted as the broker).
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
