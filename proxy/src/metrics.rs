//! Prometheus metrics of the proxy, served as text on the control port's `/metrics`.

mod delivery_latency;

pub use delivery_latency::{flush_thread, DeliveryLatency};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the proxy exports. One instance per proxy, shared by all its parts.
pub struct Metrics {
    registry: Registry,
    /// Open client connections by kind (`stream`, `response`, `passthrough`, ...).
    pub connections: IntGaugeVec,
    /// (connection, channel) subscriptions.
    pub subscriptions: IntGauge,
    /// Channels with at least one local subscriber.
    pub channels: IntGauge,
    /// Published items received, by input (`http`, `zmq_pull`, `zmq_sub`, `relay`).
    pub items_received: IntCounterVec,
    /// Publishes rejected as malformed, by input.
    pub publish_errors: IntCounterVec,
    /// Items handed to a connection queue.
    pub deliveries: IntCounter,
    /// Connections closed because their queue was full.
    pub overflows: IntCounter,
    /// Items a connection received but did not write, by reason (filter, format, ...).
    pub dropped: IntCounterVec,
    /// Seconds from the hub receiving an item to a connection writing it.
    pub publish_to_write: DeliveryLatency,
    /// Requests to origins, by outcome.
    pub origin_requests: IntCounterVec,
    /// Kafka items a history channel had delivered already (a relay re-sending).
    pub duplicates: IntCounter,
    /// Queued items replaced by a newer value of the same key (`on_overflow = "conflate"`).
    pub conflations: IntCounter,
    /// Direct-mode resumes, by where the missed items came from (`history`, `replay`).
    pub resumes: IntCounterVec,
    /// `gap` events sent: offsets Kafka no longer had.
    pub gaps: IntCounter,
    /// Direct-mode requests refused by auth, by reason.
    pub auth_failures: IntCounterVec,
    /// Direct streams ended by the proxy, by reason (`overflow`, `token-expired`).
    pub direct_closes: IntCounterVec,
    /// TLS handshakes on the public listener that failed or timed out.
    pub tls_handshake_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new("fjord_proxy_connections", "Open client connections by kind"),
            &["kind"],
        )
        .expect("static metric definition");
        let subscriptions = IntGauge::new(
            "fjord_proxy_subscriptions",
            "Subscriptions of held connections to channels",
        )
        .expect("static metric definition");
        let channels = IntGauge::new(
            "fjord_proxy_channels",
            "Channels with at least one local subscriber",
        )
        .expect("static metric definition");
        let items_received = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_items_received_total",
                "Published items received",
            ),
            &["input"],
        )
        .expect("static metric definition");
        let publish_errors = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_publish_errors_total",
                "Publishes rejected as malformed",
            ),
            &["input"],
        )
        .expect("static metric definition");
        let deliveries = IntCounter::new(
            "fjord_proxy_deliveries_total",
            "Items handed to connection queues",
        )
        .expect("static metric definition");
        let overflows = IntCounter::new(
            "fjord_proxy_queue_overflows_total",
            "Connections closed because their outgoing queue was full",
        )
        .expect("static metric definition");
        let dropped = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_items_dropped_total",
                "Items a connection received but did not write",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let publish_to_write = Histogram::with_opts(
            HistogramOpts::new(
                "fjord_proxy_publish_to_write_seconds",
                "Time from receiving a published item to writing it to a client",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
        )
        .expect("static metric definition");
        let origin_requests = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_origin_requests_total",
                "Requests sent to origins",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        let duplicates = IntCounter::new(
            "fjord_proxy_duplicate_items_total",
            "Kafka items dropped because their channel had delivered them already",
        )
        .expect("static metric definition");
        let conflations = IntCounter::new(
            "fjord_proxy_conflations_total",
            "Queued items replaced by a newer value of the same Kafka key",
        )
        .expect("static metric definition");
        let resumes = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_resumes_total",
                "Direct-mode resumes, by where the missed items came from",
            ),
            &["source"],
        )
        .expect("static metric definition");
        let gaps = IntCounter::new(
            "fjord_proxy_gaps_total",
            "Gap events sent for offsets Kafka no longer retained",
        )
        .expect("static metric definition");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_auth_failures_total",
                "Direct-mode requests refused by auth, by reason",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let direct_closes = IntCounterVec::new(
            Opts::new(
                "fjord_proxy_direct_closes_total",
                "Direct streams ended by the proxy, by reason",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let tls_handshake_failures = IntCounter::new(
            "fjord_proxy_tls_handshake_failures_total",
            "TLS handshakes on the public listener that failed or timed out",
        )
        .expect("static metric definition");
        for collector in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(subscriptions.clone()),
            Box::new(channels.clone()),
            Box::new(items_received.clone()),
            Box::new(publish_errors.clone()),
            Box::new(deliveries.clone()),
            Box::new(overflows.clone()),
            Box::new(dropped.clone()),
            Box::new(publish_to_write.clone()),
            Box::new(origin_requests.clone()),
            Box::new(duplicates.clone()),
            Box::new(conflations.clone()),
            Box::new(resumes.clone()),
            Box::new(gaps.clone()),
            Box::new(auth_failures.clone()),
            Box::new(direct_closes.clone()),
            Box::new(tls_handshake_failures.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            connections,
            subscriptions,
            channels,
            items_received,
            publish_errors,
            deliveries,
            overflows,
            dropped,
            publish_to_write: DeliveryLatency::new(publish_to_write),
            origin_requests,
            duplicates,
            conflations,
            resumes,
            gaps,
            auth_failures,
            direct_closes,
            tls_handshake_failures,
        }
    }

    /// The registry, for components that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts a connection for as long as it is held.
pub struct ConnectionGauge(IntGauge);

impl ConnectionGauge {
    pub fn new(metrics: &Metrics, kind: &str) -> ConnectionGauge {
        let gauge = metrics.connections.with_label_values(&[kind]);
        gauge.inc();
        ConnectionGauge(gauge)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
