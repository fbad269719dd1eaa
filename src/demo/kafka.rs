//! The demo's Kafka: librdkafka's built-in mock cluster (zero setup), or a real broker
//! given with `--kafka`; and the producer loop that feeds the SuperEats records into it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tokio::sync::watch;

use super::supereats::{DemoRecord, SuperEats, DRIVERS_TOPIC, ORDERS_TOPIC};

/// One partition per topic: every order event then has a place in one total order,
/// which keeps the demo's "nothing missed" story easy to check by eye.
const PARTITIONS: i32 = 1;

/// librdkafka's in-process mock cluster: a real Kafka-protocol listener on a loopback
/// port, good for producers, consumer groups and offset commits — enough for the relay.
/// It lives as long as this value (it is not `Send`, so it stays on the main thread).
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster with the demo's topics.
    pub fn start() -> anyhow::Result<EmbeddedKafka> {
        let cluster = MockCluster::new(1).context("starting the embedded Kafka (mock cluster)")?;
        for topic in [ORDERS_TOPIC, DRIVERS_TOPIC] {
            cluster
                .create_topic(topic, PARTITIONS, 1)
                .with_context(|| format!("creating topic {topic} in the embedded Kafka"))?;
        }
        Ok(EmbeddedKafka { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// Creates the demo's topics on a real broker unless they exist already.
pub async fn ensure_topics(bootstrap: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .create()
        .with_context(|| format!("connecting to Kafka at {bootstrap}"))?;
    let topics = [ORDERS_TOPIC, DRIVERS_TOPIC]
        .map(|name| NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1)));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics(&topics, &options),
    )
    .await
    .map_err(|_| anyhow!("Kafka at {bootstrap} did not answer within 15 s"))?
    .with_context(|| format!("creating topics on Kafka at {bootstrap}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating topic {topic} on {bootstrap}: {code}"),
        }
    }
    Ok(())
}

/// A producer for the generator.
pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "1")
        .create()
        .context("creating the demo's Kafka producer")
}

/// Runs the simulation: one [`SuperEats::tick`] every `every`, each record produced
/// and acknowledged before the next (so per-key order is Kafka's order), until
/// `stop` turns true. A failed produce is logged and the simulation goes on: the demo
/// keeps running through a broker hiccup, like the real thing would.
pub async fn run_generator(
    producer: FutureProducer,
    mut eats: SuperEats,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for record in eats.tick(now_ms) {
            if let Err(e) = produce(&producer, &record).await {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(topic = record.topic, failures, "demo produce failed: {e:#}");
                }
            }
        }
    }
}

async fn produce(producer: &FutureProducer, record: &DemoRecord) -> anyhow::Result<()> {
    producer
        .send(
            FutureRecord::to(record.topic)
                .key(&record.key)
                .payload(&record.value),
            Duration::from_secs(5),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| anyhow!(e))
}
