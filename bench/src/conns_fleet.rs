//! `conns-fleet`: N idle SSE connections held by several `fjord proxy`
//! processes fed by one `fjord relay`, every one of them receiving one
//! broadcast from Kafka.
//!
//! One process cannot hold 100,000 connections on this machine (20,000 open
//! files each), so the connections are spread evenly over the proxies, all on
//! the direct route `GET /news/all` (channel `news.all`), from several
//! loopback source addresses. Once every set-up finished and the processes
//! settled, each proxy's RSS is sampled; then one Kafka record keyed `all`
//! is produced and the runner counts how many connections received it and
//! how long after the produce call (the timestamp is in the record's value).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

use crate::fleet::{self, Fleet, FleetPlan, Merged};
use crate::kafka_broker::{Broker, BrokerOpts};
use crate::kafka_producer;
use crate::kafka_rig::parse_key_value;
use crate::kafka_sut::KafkaFeed;
use crate::loadavg;
use crate::payload;
use crate::procstat::Sample;
use crate::proxy_fleet::{ProxyFleet, NEWS_PREFIX};
use crate::scenarios::round;
use crate::sse::{self, Counters};
use crate::subscribers::LoadOpts;

/// The key (and channel suffix) every subscriber watches.
const BROADCAST_KEY: &str = "all";
const PROBE_KEY: &str = "probe";
/// Most connections one proxy is asked to hold: its 20,000 open files less
/// room for its listeners, relay sockets and log files.
const PER_PROXY_MAX: usize = 19_500;

#[derive(Debug, Clone, Args)]
pub struct ConnsFleetArgs {
    /// Idle SSE connections, spread evenly over the proxies.
    #[arg(long, default_value_t = 100_000)]
    pub connections: usize,
    /// `fjord proxy` processes, all fed by one `fjord relay`.
    #[arg(long, default_value_t = 6)]
    pub proxies: usize,
    /// Partitions of the news topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Most seconds to wait for every connection set-up to finish.
    #[arg(long, default_value_t = 600)]
    pub open_max: u64,
    /// Most seconds to wait for the broadcast to reach every connection.
    #[arg(long, default_value_t = 60)]
    pub broadcast_max: u64,
    #[command(flatten)]
    pub broker: BrokerOpts,
    /// Extra consumer setting for the relay, `KEY=VALUE`; repeatable.
    #[arg(long = "relay-kafka", value_parser = parse_key_value)]
    pub relay_kafka: Vec<(String, String)>,
    #[command(flatten)]
    pub load: LoadOpts,
}

/// Connections of proxy `k` of `proxies` when `total` are spread evenly.
fn share(total: usize, proxies: usize, k: usize) -> usize {
    total / proxies + usize::from(k < total % proxies)
}

/// `conns-fleet`: one bounded run, one JSON object.
pub async fn run(a: &ConnsFleetArgs) -> Result<Value> {
    anyhow::ensure!(a.connections > 0, "--connections must be > 0");
    anyhow::ensure!(a.proxies > 0, "--proxies must be > 0");
    anyhow::ensure!(a.partitions > 0, "--partitions must be > 0");
    check_capacity(a.connections, a.proxies)?;
    let load = loadavg::Sampler::start();
    let broker = Broker::start(&a.broker).await?;
    let unique = format!("{}-{}", std::process::id(), payload::now_us() / 1_000_000);
    let topic = format!("bench-news-{unique}");
    eprintln!(
        "bench: broker {} ({}), topic {topic} with {} partition(s)",
        broker.bootstrap,
        broker.describe(),
        a.partitions
    );
    broker.create_topic(&topic, a.partitions).await?;
    let producer_settings = kafka_producer::producer_settings(&broker.bootstrap, 0);
    let producer = kafka_producer::producer(&producer_settings)?;
    let feed = KafkaFeed {
        bootstrap: broker.bootstrap.clone(),
        topic: topic.clone(),
        group: format!("fjord-bench-{unique}"),
        extra: a.relay_kafka.clone(),
    };
    let mut sut = ProxyFleet::start(a.proxies, &feed).await?;
    eprintln!(
        "bench: {} proxies and a relay up; warm-up through Kafka",
        a.proxies
    );
    warm_up(&mut sut, &producer, &topic, a.partitions).await?;
    let (idle, relay_idle) = sut.sample()?;

    let mut subs = open_subscribers(a, &sut).await?;
    let setup = subs
        .wait_ready(Duration::from_secs(a.open_max))
        .await
        .context("waiting for subscribers")?;
    eprintln!(
        "bench: {} opened, {} failed in {:.1} s; settling {} s",
        setup.opened, setup.failed, setup.setup_s, a.load.settle
    );
    tokio::time::sleep(Duration::from_secs(a.load.settle)).await;
    sut.check_alive()?;
    let (held, relay_held) = sut.sample()?;
    let before = subs.report().await?;
    let open = before.opened - before.closed;

    subs.reset().await?;
    eprintln!("bench: producing the broadcast (key {BROADCAST_KEY:?}) to {open} open connections");
    let produce_ack_ms = produce_broadcast(&producer, &topic).await?;
    let seen = wait_broadcast(&mut subs, open, a.broadcast_max).await?;
    let alive = sut.check_alive().is_ok();
    let (after, _) = sut.sample()?;

    let per_proxy: Vec<Value> = (0..a.proxies)
        .map(|k| {
            json!({
                "connections": share(a.connections, a.proxies, k),
                "rss_idle_kb": idle[k].rss_kb,
                "rss_kb": held[k].rss_kb,
                "rss_after_broadcast_kb": after[k].rss_kb,
            })
        })
        .collect();
    let sum = |s: &[Sample]| s.iter().map(|x| x.rss_kb).sum::<u64>();
    let (idle_kb, held_kb) = (sum(&idle), sum(&held));
    let opened = setup.opened.max(1) as f64;
    let out = json!({
        "scenario": "conns-fleet",
        "system": "fjord",
        "broker": broker.describe(),
        "broker_kind": broker.kind(),
        "proxies": a.proxies,
        "partitions": a.partitions,
        "connections": a.connections,
        "opened": setup.opened,
        "failed": setup.failed,
        "failed_attempts": setup.failed_attempts,
        "setup_errors": setup.errors,
        "setup_s": round(setup.setup_s, 2),
        "client_workers": setup.workers,
        "open_after_settle": open,
        "closed_before_broadcast": before.closed,
        "per_proxy": per_proxy,
        "rss_idle_kb": idle_kb,
        "rss_kb": held_kb,
        "rss_per_conn_kb": round(held_kb as f64 / opened, 2),
        "rss_added_per_conn_kb": round((held_kb as f64 - idle_kb as f64) / opened, 2),
        "relay_rss_kb": relay_held.rss_kb,
        "relay_rss_idle_kb": relay_idle.rss_kb,
        "broadcast": {
            "received": seen.events,
            "missed": open.saturating_sub(seen.events),
            "duplicates": seen.regressions,
            "bad_events": seen.bad_events,
            "closed_during_wait": seen.closed.saturating_sub(before.closed),
            "latency": seen.latency_summary(),
            "produce_ack_ms": round(produce_ack_ms, 2),
        },
        // An in-runner broker's memory cannot be told apart from the runner's.
        "broker_rss_kb": (!broker.runs_in_runner()).then_some(broker.sample()?.rss_kb),
        "server_alive_at_end": alive,
        "settings": settings_json(&sut, &producer_settings),
        "loadavg_1m": load.finish(),
    });
    subs.stop().await;
    drop(sut);
    drop(broker);
    Ok(out)
}

/// Spawns one worker fleet per proxy (`share` of the connections each, all
/// on `/news/all`) and joins them; set-ups run in the background.
async fn open_subscribers(a: &ConnsFleetArgs, sut: &ProxyFleet) -> Result<Fleet> {
    let o = &a.load;
    let mut fleets = Vec::with_capacity(a.proxies);
    for (k, proxy) in sut.proxies.iter().enumerate() {
        let plan = FleetPlan {
            addr: proxy.http,
            path_prefix: NEWS_PREFIX.to_string(),
            channel_prefix: String::new(),
            channels: 1,
            channel: Some(BROADCAST_KEY.to_string()),
            conns: share(a.connections, a.proxies, k),
            per_worker: o.per_worker,
            min_workers: 1,
            sources: o.sources.clone().unwrap_or_else(fleet::default_sources),
            setup_concurrency: o.setup_concurrency.div_ceil(a.proxies),
            reconnect_concurrency: o.reconnect_concurrency,
            retries: o.retries,
            max_seconds: o.max_seconds + 60,
        };
        fleets.push(Fleet::spawn(&plan)?);
    }
    let fleet = Fleet::join(fleets);
    eprintln!(
        "bench: opening {} SSE connections on {NEWS_PREFIX}{BROADCAST_KEY} over {} proxies with {} worker(s)",
        a.connections,
        a.proxies,
        fleet.len()
    );
    Ok(fleet)
}

/// Produces the one broadcast record and waits for the broker's ack.
/// Returns the ack latency in ms.
async fn produce_broadcast(producer: &FutureProducer, topic: &str) -> Result<f64> {
    let ts = payload::now_us();
    let value = payload::body(0, ts);
    let record = FutureRecord::to(topic).key(BROADCAST_KEY).payload(&value);
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| anyhow::anyhow!("broadcast produce: {e}"))?;
    tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .context("broadcast not acknowledged within 30 s")?
        .context("broadcast delivery cancelled")?
        .map_err(|(e, _)| anyhow::anyhow!("broadcast delivery: {e}"))?;
    Ok(payload::now_us().saturating_sub(ts) as f64 / 1000.0)
}

/// Polls the workers until `want` connections received the broadcast,
/// nothing new arrived for 5 s after the first receipt, or `max_s` passed.
/// The latency histogram in the merged counters is produce call → receipt.
async fn wait_broadcast(subs: &mut Fleet, want: u64, max_s: u64) -> Result<Merged> {
    let end = Instant::now() + Duration::from_secs(max_s);
    let stall = Duration::from_secs(5);
    let mut last = 0;
    let mut last_change = Instant::now();
    loop {
        let m = subs.report().await?;
        if m.events != last {
            last = m.events;
            last_change = Instant::now();
        }
        let now = Instant::now();
        if m.events >= want || now > end || (m.events > 0 && now - last_change > stall) {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One probe stream per proxy on `/news/probe`, one probe record to every
/// partition, until every stream has all of them: the relay has every
/// partition assigned and every proxy's subscription reached its XPUB.
async fn warm_up(
    sut: &mut ProxyFleet,
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let path = format!("{NEWS_PREFIX}{PROBE_KEY}");
    let mut pumps = Vec::new();
    let mut counters = Vec::new();
    for p in &sut.proxies {
        let mut stream = sse::open(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            p.http,
            &path,
            Duration::from_secs(10),
        )
        .await
        .with_context(|| format!("probe subscribe on {}", p.http))?;
        let c = Arc::new(Counters::default());
        counters.push(c.clone());
        pumps.push(tokio::spawn(async move { stream.pump(&c).await }));
    }
    // The proxies subscribe to the relay asynchronously: give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kafka_producer::produce_probe(producer, topic, PROBE_KEY, partitions).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let want = partitions as u64;
    let result = loop {
        sut.check_alive()?;
        let got: Vec<u64> = counters
            .iter()
            .map(|c| c.events.load(Ordering::Relaxed))
            .collect();
        if got.iter().all(|&n| n >= want) {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "warm-up: probe records per proxy {got:?}, {want} each expected within 90 s\n{}",
                sut.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for p in pumps {
        p.abort();
    }
    result
}

fn settings_json(sut: &ProxyFleet, producer: &[(String, String)]) -> Value {
    let map: serde_json::Map<String, Value> = producer
        .iter()
        .map(|(k, v)| (format!("producer {k}"), Value::String(v.clone())))
        .chain(
            sut.configs
                .iter()
                .filter(|(name, _)| name == "relay.toml" || name == "proxy0.toml")
                .map(|(name, text)| (name.clone(), Value::String(text.clone()))),
        )
        .collect();
    map.into()
}

/// Fails unless `proxies` can hold `connections` under the open-files cap.
fn check_capacity(connections: usize, proxies: usize) -> Result<()> {
    let per_proxy = connections.div_ceil(proxies.max(1));
    if per_proxy > PER_PROXY_MAX {
        bail!(
            "{per_proxy} connections per proxy: above the {PER_PROXY_MAX} one process \
             can hold under the 20,000 open-files cap; add --proxies"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_spread_evenly_over_the_proxies() {
        let shares: Vec<usize> = (0..6).map(|k| share(100_000, 6, k)).collect();
        assert_eq!(shares.iter().sum::<usize>(), 100_000);
        assert_eq!(shares, vec![16_667, 16_667, 16_667, 16_667, 16_666, 16_666]);
    }

    #[test]
    fn six_proxies_fit_a_hundred_thousand_under_the_open_files_cap() {
        assert!(check_capacity(100_000, 6).is_ok());
        assert!(check_capacity(100_000, 5).is_err());
    }
}
