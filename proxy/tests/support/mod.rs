//! Helpers shared by the publish-intake tests: a hub with a subscriber to watch.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::item::StreamAction;
use fjord_proxy::hub::{ChannelEvent, Delivery, Hub, HubConfig, Subscriber};
use fjord_proxy::metrics::Metrics;
use fjord_proxy::queue::QueueEvent;
use tokio::sync::mpsc;

/// The hub's channel events, as the SUB input consumes them.
pub type Events = mpsc::UnboundedReceiver<ChannelEvent>;

/// A hub whose channels go with their last subscriber (no `subscription_linger`).
pub fn hub() -> (Arc<Hub>, Events) {
    hub_lingering(Duration::ZERO)
}

/// A hub whose channels linger `linger` after their last subscriber.
pub fn hub_lingering(linger: Duration) -> (Arc<Hub>, Events) {
    let config = HubConfig {
        subscription_linger: linger,
        ..HubConfig::default()
    };
    Hub::new(config, Arc::new(Metrics::new()))
}

/// A subscriber of `channel` with room for 100 items.
pub fn subscribe(hub: &Hub, channel: &str) -> Arc<Subscriber> {
    let subscriber = Subscriber::new(Arc::from("test"), 100);
    hub.subscribe(channel, &subscriber);
    subscriber
}

/// The next delivery, or `None` if nothing arrives within `wait`.
pub async fn next_delivery(subscriber: &Subscriber, wait: Duration) -> Option<Arc<Delivery>> {
    match tokio::time::timeout(wait, subscriber.queue().pop()).await {
        Ok(QueueEvent::Item(delivery)) => Some(delivery),
        Ok(QueueEvent::Overflowed) => panic!("subscriber queue overflowed"),
        Err(_) => None,
    }
}

/// The `http-stream` content of a delivery.
pub fn stream_content(delivery: &Delivery) -> Vec<u8> {
    let format = delivery
        .item
        .formats
        .http_stream
        .as_ref()
        .expect("item has an http-stream format");
    match &format.action {
        StreamAction::Send(content) => content.to_vec(),
        other => panic!("expected content, got {other:?}"),
    }
}

/// The value of a counter with one `input` label in the Prometheus text.
pub fn counter(metrics: &Metrics, name: &str, input: &str) -> u64 {
    let prefix = format!("{name}{{input=\"{input}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .map_or(0, |value| value.trim().parse().expect("counter value"))
}
