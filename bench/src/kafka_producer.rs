//! The Kafka side of `kafka-e2e`: creating the topic and producing records
//! at a paced rate.
//!
//! Record `k` (0-based) has key `k % keys` (decimal) and the value
//! `{"seq":k,"ts":T}` (see `payload`), `T` taken right before the record is
//! handed to the producer, so subscriber latency is produce call → receipt.
//! Like the other publishers it is paced against the wall clock in 5 ms
//! ticks and bounded by a record count and a time cap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::task::JoinSet;

use crate::histogram::{Histogram, LatencySummary};
use crate::payload;
use crate::publisher::{Pacer, PublishReport, TICK};

const FAILED_CAP: usize = 200_000;

/// Creates `topic` with `partitions` partitions (replication 1).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("Kafka admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        if let Err((name, code)) = result {
            bail!("creating topic {name}: {code}");
        }
    }
    Ok(())
}

/// Producer settings, echoed in the results.
pub fn producer_settings(bootstrap: &str, linger_ms: u32) -> Vec<(String, String)> {
    [
        ("bootstrap.servers", bootstrap.to_string()),
        ("acks", "all".into()),
        ("linger.ms", linger_ms.to_string()),
        ("message.timeout.ms", "30000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn producer(settings: &[(String, String)]) -> Result<FutureProducer> {
    let mut config = ClientConfig::new();
    for (k, v) in settings {
        config.set(k, v);
    }
    config.create().context("Kafka producer")
}

/// What to produce.
pub struct ProducePlan {
    pub topic: String,
    pub keys: usize,
    pub rate: f64,
    pub total: u64,
    pub max_duration: Duration,
}

impl ProducePlan {
    /// `rate` records a second for `duration_s` seconds, spread over `keys` keys, with
    /// five seconds of grace before the run is cut off.
    pub fn steady(topic: &str, keys: usize, rate: f64, duration_s: u64) -> ProducePlan {
        ProducePlan {
            topic: topic.to_owned(),
            keys,
            rate,
            total: (rate * duration_s as f64).round() as u64,
            max_duration: Duration::from_secs(duration_s + 5),
        }
    }
}

/// Outcome of a produce run: the shared publish report (attempted, failed
/// sequence numbers, achieved rate) and the produce → broker ack latency.
pub struct Produced {
    pub report: PublishReport,
    pub ack_latency: LatencySummary,
}

/// Sends `probe` records (key `key`) to every partition in turn, one round,
/// and waits for their acknowledgements.
pub async fn produce_probe(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    partitions: i32,
) -> Result<()> {
    let mut pending = Vec::new();
    for p in 0..partitions {
        let value = payload::body(u64::MAX - 1, payload::now_us());
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(&value)
            .partition(p);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("probe produce: {e}"))?;
        pending.push(delivery);
    }
    for delivery in pending {
        delivery
            .await
            .context("probe delivery cancelled")?
            .map_err(|(e, _)| anyhow::anyhow!("probe delivery: {e}"))?;
    }
    Ok(())
}

/// Outcome of the records handed over in one tick.
#[derive(Default)]
struct TickOutcome {
    acked: Vec<u64>,
    failed: Vec<u64>,
    errors: Vec<String>,
}

async fn await_tick(pending: Vec<(u64, u64, DeliveryFuture)>) -> TickOutcome {
    let mut out = TickOutcome::default();
    for (seq, ts, delivery) in pending {
        match delivery.await {
            Ok(Ok(_)) => out.acked.push(payload::now_us().saturating_sub(ts)),
            Ok(Err((e, _))) => {
                out.failed.push(seq);
                out.errors.push(e.to_string());
            }
            Err(_) => {
                out.failed.push(seq);
                out.errors.push("delivery future cancelled".into());
            }
        }
    }
    out
}

fn note_error(report: &mut PublishReport, e: String) {
    if report.errors.len() < 5 && !report.errors.contains(&e) {
        report.errors.push(e);
    }
}

fn note_failed(report: &mut PublishReport, seq: u64) {
    report.failed += 1;
    if report.failed_seqs.len() < FAILED_CAP {
        report.failed_seqs.push(seq);
    }
}

/// Produces `plan.total` records at `plan.rate` and waits for every ack.
/// A record the producer refuses or the broker never acknowledges counts as
/// failed: it is not in the topic, so no subscriber is expected to see it.
/// `progress`, if given, always holds the next `seq` to be handed over.
pub async fn run(
    producer: &FutureProducer,
    plan: &ProducePlan,
    progress: Option<&AtomicU64>,
) -> Result<Produced> {
    anyhow::ensure!(plan.keys > 0 && plan.rate > 0.0, "bad produce plan");
    let mut report = PublishReport::default();
    let mut pacer = Pacer::new(plan.rate, plan.total);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: JoinSet<TickOutcome> = JoinSet::new();
    while pacer.next < plan.total && pacer.start.elapsed() < plan.max_duration {
        tick.tick().await;
        let due = pacer.due();
        let mut pending = Vec::with_capacity((due.end - due.start) as usize);
        for seq in due {
            let key = (seq % plan.keys as u64).to_string();
            let ts = payload::now_us();
            let value = payload::body(seq, ts);
            report.attempted += 1;
            match producer.send_result(FutureRecord::to(&plan.topic).key(&key).payload(&value)) {
                Ok(delivery) => pending.push((seq, ts, delivery)),
                Err((e, _)) => {
                    note_failed(&mut report, seq);
                    note_error(&mut report, e.to_string());
                }
            }
        }
        if let Some(progress) = progress {
            progress.store(pacer.next, Ordering::Relaxed);
        }
        if !pending.is_empty() {
            report.requests += 1;
            ticks.spawn(await_tick(pending));
        }
    }
    report.elapsed_s = pacer.start.elapsed().as_secs_f64();
    let mut ack = Histogram::default();
    let waited = Instant::now();
    while let Some(joined) = ticks.join_next().await {
        let outcome = joined.context("produce tick task")?;
        for v in outcome.acked {
            ack.record(v);
        }
        for seq in outcome.failed {
            note_failed(&mut report, seq);
        }
        for e in outcome.errors {
            note_error(&mut report, e);
        }
    }
    eprintln!(
        "bench: all acks in {:.1} s after the last record",
        waited.elapsed().as_secs_f64()
    );
    report.published = report.attempted - report.failed;
    if report.elapsed_s > 0.0 {
        report.achieved_rate = report.published as f64 / report.elapsed_s;
    }
    Ok(Produced {
        report,
        ack_latency: ack.summary(),
    })
}
