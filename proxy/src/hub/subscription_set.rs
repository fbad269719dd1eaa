//! The subscriptions of one connection, released together when the connection ends.

use std::sync::Arc;

use fjord_protocol::resume::ResumePosition;

use super::{DirectStart, Hub, Subscriber};

/// Unsubscribes a connection from all its channels when it ends, however it ends.
pub struct SubscriptionSet {
    hub: Arc<Hub>,
    subscriber: Arc<Subscriber>,
    channels: Vec<String>,
}

impl SubscriptionSet {
    pub fn new(hub: Arc<Hub>, subscriber: Arc<Subscriber>) -> Self {
        SubscriptionSet {
            hub,
            subscriber,
            channels: Vec::new(),
        }
    }

    /// Subscribes to `channel`; returns whether it was the channel's first subscriber.
    pub fn add(&mut self, channel: &str) -> bool {
        if self.channels.iter().any(|c| c == channel) {
            return false;
        }
        self.channels.push(channel.to_owned());
        self.hub.subscribe(channel, &self.subscriber)
    }

    /// Subscribes to a Kafka-fed channel as a direct connection (see
    /// [`Hub::subscribe_direct`]).
    pub fn add_direct(
        &mut self,
        channel: &str,
        history: usize,
        after: Option<&ResumePosition>,
    ) -> DirectStart {
        if !self.channels.iter().any(|c| c == channel) {
            self.channels.push(channel.to_owned());
        }
        self.hub
            .subscribe_direct(channel, &self.subscriber, history, after)
    }

    /// Drops every subscription (instructions of a next link replace the old ones).
    pub fn clear(&mut self) {
        for channel in self.channels.drain(..) {
            self.hub.unsubscribe(&channel, self.subscriber.id);
        }
    }

    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.subscriber
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Drop for SubscriptionSet {
    fn drop(&mut self) {
        self.subscriber.queue.close();
        self.clear();
    }
}
