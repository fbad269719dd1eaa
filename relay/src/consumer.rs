//! The consumer group side (design "Data flow" 1–2, §9): records in, items out, offsets
//! stored only after hand-off.
//!
//! At least once: `enable.auto.offset.store=false`, and a batch's offsets are stored only
//! after [`Outputs::publish`] returned, i.e. every output took its items. Stored offsets
//! are committed every `commit_interval` off the consume loop, and before partitions are
//! revoked, so a rebalance loses nothing and a relay killed with SIGKILL re-sends at
//! most what was handed off but not yet committed. Rebalance callbacks run inside
//! `recv()`, between batches, so a revocation never races a half-published batch; a batch
//! received partly before a revocation is published anyway and its offsets fail to store
//! (the new owner re-sends those records: duplicates, never loss).
//!
//! librdkafka reconnects by itself after a broker outage; the relay keeps polling, and a
//! probe keeps `/readyz` honest about whether the cluster answers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::sync::watch;

use crate::health::Health;
use crate::mapping::Mapper;
use crate::metrics::RelayMetrics;
use crate::output::Outputs;
use crate::record::KafkaRecord;
use crate::skip::RateLimitedWarning;

/// Why the Kafka settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("[kafka] needs {0:?}")]
    Missing(&'static str),
    #[error("[kafka] enable.auto.offset.store must stay false: the relay stores offsets itself after hand-off (at-least-once delivery)")]
    AutoOffsetStore,
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
}

/// The librdkafka settings of the group consumer: `[kafka]` unchanged plus what
/// at-least-once delivery requires.
///
/// `fetch.wait.max.ms` stays at librdkafka's default (500 ms) unless configured: a Kafka
/// broker answers a held fetch as soon as `fetch.min.bytes` (1) has arrived, so the wait
/// costs no latency. Brokers that hold a fetch for the whole wait and answer it empty
/// (tansu, librdkafka's mock cluster) add up to that wait to every record produced
/// while the fetch is held; deployments on them lower it in `[kafka]`.
pub fn group_consumer_config(
    kafka: &BTreeMap<String, String>,
) -> Result<ClientConfig, KafkaConfigError> {
    if !kafka.contains_key("bootstrap.servers") && !kafka.contains_key("metadata.broker.list") {
        return Err(KafkaConfigError::Missing("bootstrap.servers"));
    }
    if !kafka.contains_key("group.id") {
        return Err(KafkaConfigError::Missing("group.id"));
    }
    if kafka
        .get("enable.auto.offset.store")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err(KafkaConfigError::AutoOffsetStore);
    }
    let mut config = ClientConfig::new();
    for (key, value) in kafka {
        config.set(key, value);
    }
    config.set("enable.auto.offset.store", "false");
    if !kafka.contains_key("enable.auto.commit") {
        config.set("enable.auto.commit", "false");
    }
    if !kafka.contains_key("statistics.interval.ms") {
        config.set("statistics.interval.ms", "5000");
    }
    config.set_log_level(RDKafkaLogLevel::Info);
    Ok(config)
}

/// Callbacks of the group consumer: rebalances, errors, statistics, logs.
pub struct RelayContext {
    metrics: RelayMetrics,
    health: Arc<Health>,
}

impl RelayContext {
    pub fn new(metrics: RelayMetrics, health: Arc<Health>) -> Self {
        RelayContext { metrics, health }
    }
}

/// Commits the stored offsets and waits for the broker's answer, recording latency and
/// result. Blocks: call it from a blocking thread or a rebalance callback.
pub fn commit_stored<C: Consumer<RelayContext>>(consumer: &C, metrics: &RelayMetrics) {
    let started = Instant::now();
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            metrics.commits.with_label_values(&["ok"]).inc();
        }
        // Nothing stored since the last commit.
        Err(error) if is_no_offset(&error) => {}
        Err(error) => {
            metrics.commits.with_label_values(&["error"]).inc();
            tracing::warn!(%error, "offset commit failed; retrying at the next interval");
        }
    }
}

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, message)
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, message),
        }
    }

    /// Consumer lag per assigned partition: high watermark minus the offset stored after
    /// hand-off (or committed, or the log start when nothing is yet).
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition < 0 || p.fetch_state == "none" || p.hi_offset < 0 {
                    continue;
                }
                let next = [p.stored_offset, p.committed_offset, p.lo_offset]
                    .into_iter()
                    .find(|&o| o >= 0)
                    .unwrap_or(0);
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set((p.hi_offset - next).max(0));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.health.set_kafka_up(false);
            self.metrics.kafka_up.set(0);
        }
        tracing::warn!(%error, reason, "Kafka client error");
    }
}

impl ConsumerContext for RelayContext {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                self.metrics.rebalances.with_label_values(&["revoke"]).inc();
                // Everything handed off is stored; commit it before another member
                // takes the partitions over.
                commit_stored(consumer, &self.metrics);
                for element in partitions.elements() {
                    let _ = self
                        .metrics
                        .consumer_lag
                        .remove_label_values(&[element.topic(), &element.partition().to_string()]);
                }
                tracing::info!(partitions = partitions.count(), "partitions revoked");
            }
            Rebalance::Assign(partitions) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(partitions = partitions.count(), "partitions assigned");
            }
            Rebalance::Error(error) => {
                self.metrics.rebalances.with_label_values(&["error"]).inc();
                tracing::warn!(%error, "rebalance error");
            }
        }
    }
}

/// librdkafka's "nothing new to commit".
fn is_no_offset(error: &KafkaError) -> bool {
    matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::NoOffset))
}

pub type GroupConsumer = StreamConsumer<RelayContext>;

/// The record a message carries, copied out of librdkafka's buffer.
pub fn record_of(message: &BorrowedMessage<'_>) -> KafkaRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice)))
                .collect()
        })
        .unwrap_or_default();
    KafkaRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(Bytes::copy_from_slice),
        value: message.payload().map(Bytes::copy_from_slice),
        headers,
    }
}

/// The consume → map → hand off → store loop.
pub struct ConsumeLoop {
    pub consumer: Arc<GroupConsumer>,
    pub mapper: Arc<Mapper>,
    pub outputs: Arc<Outputs>,
    pub metrics: RelayMetrics,
    pub max_batch: usize,
}

impl ConsumeLoop {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let skip_warning = RateLimitedWarning::new(Duration::from_secs(10));
        let error_warning = RateLimitedWarning::new(Duration::from_secs(10));
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            let first = tokio::select! {
                _ = stop.changed() => break,
                message = self.consumer.recv() => message,
            };
            self.take(first, &mut batch, &error_warning).await;
            while batch.len() < self.max_batch {
                // Whatever librdkafka already has in its queue joins the batch; the
                // first pending poll ends it.
                let next = tokio::select! {
                    biased;
                    message = self.consumer.recv() => Some(message),
                    _ = std::future::ready(()) => None,
                };
                match next {
                    Some(message) => self.take(message, &mut batch, &error_warning).await,
                    None => break,
                }
            }
            if !batch.is_empty() {
                self.hand_off(&batch, &skip_warning).await;
                batch.clear();
            }
        }
    }

    async fn take(
        &self,
        message: KafkaResult<BorrowedMessage<'_>>,
        batch: &mut Vec<KafkaRecord>,
        warning: &RateLimitedWarning,
    ) {
        match message {
            Ok(message) => batch.push(record_of(&message)),
            Err(error) => {
                if let Some(suppressed) = warning.admit() {
                    tracing::warn!(%error, suppressed, "Kafka consume error");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn hand_off(&self, batch: &[KafkaRecord], skip_warning: &RateLimitedWarning) {
        let mut items = Vec::with_capacity(batch.len());
        let mut next_offsets: HashMap<(&str, i32), i64> = HashMap::new();
        for record in batch {
            self.metrics
                .records_consumed
                .with_label_values(&[record.topic.as_str()])
                .inc();
            let mapping = self.mapper.map(record);
            items.extend(mapping.items);
            for index in mapping.filtered {
                let label = self.mapper.rules()[index].label.as_str();
                self.metrics
                    .records_filtered
                    .with_label_values(&[label])
                    .inc();
            }
            for (index, reason) in mapping.skipped {
                self.metrics
                    .records_skipped
                    .with_label_values(&[reason.label()])
                    .inc();
                if let Some(suppressed) = skip_warning.admit() {
                    tracing::warn!(
                        stream = %self.mapper.rules()[index].label,
                        topic = %record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        %reason,
                        suppressed,
                        "skipping record"
                    );
                }
            }
            let next = next_offsets
                .entry((record.topic.as_str(), record.partition))
                .or_insert(0);
            *next = (*next).max(record.offset + 1);
        }
        self.outputs.publish(&items).await;
        let mut offsets = TopicPartitionList::with_capacity(next_offsets.len());
        for ((topic, partition), next) in next_offsets {
            if offsets
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .is_err()
            {
                continue;
            }
        }
        if let Err(error) = self.consumer.store_offsets(&offsets) {
            // Partitions revoked while the batch was out; their new owner re-sends.
            tracing::debug!(%error, "storing offsets failed");
        }
    }
}

/// Commits stored offsets every `interval` until `stop`. Each commit waits for the
/// broker's answer on a blocking thread, off the consume loop, so latency and failures are
/// measured (librdkafka reports nothing back for `rd_kafka_commit` in async mode without
/// a commit callback queue); a slow commit delays the next one instead of piling up.
pub async fn commit_periodically(
    consumer: Arc<GroupConsumer>,
    metrics: RelayMetrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {}
        }
        let committer = consumer.clone();
        let metrics = metrics.clone();
        let _ = tokio::task::spawn_blocking(move || commit_stored(&*committer, &metrics)).await;
    }
}

/// Probes the cluster every `interval` for `/readyz` and `fjord_relay_kafka_up`.
pub async fn probe_periodically(
    consumer: Arc<GroupConsumer>,
    topic: Option<String>,
    health: Arc<Health>,
    metrics: RelayMetrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = interval.max(Duration::from_secs(2));
    loop {
        let probe = consumer.clone();
        let topic = topic.clone();
        let answered = tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(topic.as_deref(), timeout).is_ok()
        })
        .await
        .unwrap_or(false);
        if answered != health.kafka_up() {
            if answered {
                tracing::info!("Kafka cluster reachable");
            } else {
                tracing::warn!("Kafka cluster unreachable");
            }
        }
        health.set_kafka_up(answered);
        metrics.kafka_up.set(i64::from(answered));
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_settings_pass_through_with_at_least_once_defaults() {
        let config = group_consumer_config(&kafka(&[
            ("bootstrap.servers", "b:9092"),
            ("group.id", "g"),
            ("security.protocol", "SASL_SSL"),
            ("enable.auto.commit", "true"),
        ]))
        .unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("enable.auto.commit"), Some("true"));
        let defaults = group_consumer_config(&kafka(&[
            ("bootstrap.servers", "b:9092"),
            ("group.id", "g"),
        ]))
        .unwrap();
        assert_eq!(defaults.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn settings_that_break_delivery_are_refused() {
        assert!(matches!(
            group_consumer_config(&kafka(&[("group.id", "g")])),
            Err(KafkaConfigError::Missing("bootstrap.servers"))
        ));
        assert!(matches!(
            group_consumer_config(&kafka(&[("bootstrap.servers", "b")])),
            Err(KafkaConfigError::Missing("group.id"))
        ));
        assert!(matches!(
            group_consumer_config(&kafka(&[
                ("bootstrap.servers", "b"),
                ("group.id", "g"),
                ("enable.auto.offset.store", "true"),
            ])),
            Err(KafkaConfigError::AutoOffsetStore)
        ));
    }
}
