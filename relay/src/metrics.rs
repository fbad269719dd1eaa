//! The relay's Prometheus metrics (design "Observability"), in a registry of its own so
//! several relays can live in one process (`fjord run`, tests).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::skip::SkipReason;

/// Every metric the relay exports.
#[derive(Clone)]
pub struct RelayMetrics {
    registry: Registry,
    /// Records received from Kafka, by topic.
    pub records_consumed: IntCounterVec,
    /// Records a rule had to skip, by reason (`SkipReason::label`).
    pub records_skipped: IntCounterVec,
    /// Records a rule's filter did not select, by rule.
    pub records_filtered: IntCounterVec,
    /// Items handed to an output, by output (`xpub`, `push`, `http`, `sink`).
    pub items_published: IntCounterVec,
    /// XPUB items no connected proxy subscribed to, dropped by design (§9).
    pub items_unsubscribed: IntCounter,
    /// Items an output gave up on (a refused HTTP publish, an oversized body).
    pub items_dropped: IntCounterVec,
    /// High watermark minus the next offset to hand off, per assigned partition.
    pub consumer_lag: IntGaugeVec,
    /// Latency of offset commits, request to broker answer.
    pub commit_seconds: Histogram,
    /// Offset commits by result (`ok`, `error`).
    pub commits: IntCounterVec,
    /// Consumer group rebalances by kind (`assign`, `revoke`, `error`).
    pub rebalances: IntCounterVec,
    /// Proxies connected to the XPUB endpoint.
    pub xpub_peers: IntGauge,
    /// Distinct subscriptions over all XPUB peers.
    pub xpub_subscriptions: IntGauge,
    /// Replay requests by result (`ok`, `gap`, `error`).
    pub replays: IntCounterVec,
    /// 1 while the Kafka cluster answers, 0 otherwise.
    pub kafka_up: IntGauge,
}

impl RelayMetrics {
    pub fn new() -> Result<RelayMetrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let records_consumed = counter_vec(
            "fjord_relay_records_consumed_total",
            "Records received from Kafka.",
            &["topic"],
        )?;
        let records_skipped = counter_vec(
            "fjord_relay_records_skipped_total",
            "Records a mapping rule skipped, by reason.",
            &["reason"],
        )?;
        for reason in SkipReason::ALL {
            records_skipped.with_label_values(&[reason.label()]);
        }
        let records_filtered = counter_vec(
            "fjord_relay_records_filtered_total",
            "Records a rule's filter did not select.",
            &["stream"],
        )?;
        let items_published = counter_vec(
            "fjord_relay_items_published_total",
            "Items handed to an output.",
            &["output"],
        )?;
        let items_unsubscribed = IntCounter::new(
            "fjord_relay_items_unsubscribed_total",
            "XPUB items dropped because no proxy subscribed to their channel.",
        )?;
        registry.register(Box::new(items_unsubscribed.clone()))?;
        let items_dropped = counter_vec(
            "fjord_relay_items_dropped_total",
            "Items an output gave up on.",
            &["output", "reason"],
        )?;
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "fjord_relay_consumer_lag",
                "Records behind the high watermark, per assigned partition.",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(consumer_lag.clone()))?;
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "fjord_relay_commit_seconds",
                "Offset commit latency, request to broker answer.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(commit_seconds.clone()))?;
        let commits = counter_vec(
            "fjord_relay_commits_total",
            "Offset commits by result.",
            &["result"],
        )?;
        let rebalances = counter_vec(
            "fjord_relay_rebalances_total",
            "Consumer group rebalances by kind.",
            &["kind"],
        )?;
        let xpub_peers = gauge(
            "fjord_relay_xpub_peers",
            "Proxies connected to the XPUB endpoint.",
        )?;
        let xpub_subscriptions = gauge(
            "fjord_relay_xpub_subscriptions",
            "Subscriptions over all XPUB peers.",
        )?;
        let replays = counter_vec(
            "fjord_relay_replays_total",
            "Replay requests by result.",
            &["result"],
        )?;
        let kafka_up = gauge("fjord_relay_kafka_up", "1 while the Kafka cluster answers.")?;
        Ok(RelayMetrics {
            registry,
            records_consumed,
            records_skipped,
            records_filtered,
            items_published,
            items_unsubscribed,
            items_dropped,
            consumer_lag,
            commit_seconds,
            commits,
            rebalances,
            xpub_peers,
            xpub_subscriptions,
            replays,
            kafka_up,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
