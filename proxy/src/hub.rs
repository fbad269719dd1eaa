//! The hub owns subscriptions: which held connections listen on which channel.
//!
//! Publishing is the hot path. An item arrives once, is wrapped in one
//! `Arc<Delivery>`, and every subscriber of its channel gets a clone of that `Arc`
//! through a non-blocking `try_send` on its bounded queue — no per-subscriber
//! allocation, encoding or waiting. A subscriber whose queue is full is marked
//! overflowed and removed; its connection closes itself (design "Limits and
//! back-pressure"), so one slow reader never slows the publisher or anyone else.
//!
//! Channels are spread over shards, each behind its own lock, so subscribe and
//! unsubscribe on one channel do not stall fan-out on the others.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fjord_protocol::item::PublishItem;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::queue::{ConnectionQueue, PushError};
use crate::sequencer::{ChannelSequencer, SequencerConfig};

const SHARDS: usize = 32;

/// Where a published item came in; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishInput {
    Http,
    ZmqPull,
    ZmqSub,
    Relay,
}

impl PublishInput {
    pub fn label(self) -> &'static str {
        match self {
            PublishInput::Http => "http",
            PublishInput::ZmqPull => "zmq_pull",
            PublishInput::ZmqSub => "zmq_sub",
            PublishInput::Relay => "relay",
        }
    }
}

/// One published item as subscribers receive it: shared by all of them, never copied.
#[derive(Debug)]
pub struct Delivery {
    pub channel: Arc<str>,
    pub item: PublishItem,
    pub received_at: Instant,
}

/// Identifies a held connection in logs and metrics.
pub type ConnectionId = u64;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A held connection's side of the hub: its identity and its bounded queue.
#[derive(Debug)]
pub struct Subscriber {
    id: ConnectionId,
    route: Arc<str>,
    queue: ConnectionQueue<Arc<Delivery>>,
}

impl Subscriber {
    /// A new subscriber whose queue holds at most `capacity` undelivered items.
    pub fn new(route: Arc<str>, capacity: usize) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            route,
            queue: ConnectionQueue::new(capacity),
        })
    }

    pub fn id(&self) -> ConnectionId {
        self.id
    }

    pub fn route(&self) -> &str {
        &self.route
    }

    /// The connection's end of its queue.
    pub fn queue(&self) -> &ConnectionQueue<Arc<Delivery>> {
        &self.queue
    }

    pub fn is_overflowed(&self) -> bool {
        self.queue.is_overflowed()
    }
}

/// A channel gaining its first or losing its last local subscriber; the ZeroMQ SUB
/// inputs turn these into `ZMQ_SUBSCRIBE`/`ZMQ_UNSUBSCRIBE` (§4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    Subscribed(Arc<str>),
    Unsubscribed(Arc<str>),
}

struct ChannelState {
    name: Arc<str>,
    subscribers: Vec<Arc<Subscriber>>,
    sequencer: ChannelSequencer,
}

#[derive(Default)]
struct Shard {
    channels: HashMap<Arc<str>, ChannelState>,
}

/// What happened to one publish, for the caller's metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Items handed to subscriber queues (an item released from the reorder buffer
    /// counts once per subscriber it reached).
    pub deliveries: usize,
    /// Subscribers dropped because their queue was full.
    pub overflows: usize,
    /// Whether the item was held back for reordering or dropped as a duplicate.
    pub held_or_dropped: bool,
}

/// Settings of the hub.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    pub sequencer: SequencerConfig,
}

/// The channel → subscribers map.
pub struct Hub {
    shards: Box<[Mutex<Shard>]>,
    config: HubConfig,
    events: mpsc::UnboundedSender<ChannelEvent>,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// A hub and the stream of its channel events (first subscriber / last one gone).
    pub fn new(
        config: HubConfig,
        metrics: Arc<Metrics>,
    ) -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let hub = Arc::new(Hub {
            shards,
            config,
            events,
            metrics,
        });
        (hub, receiver)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn shard(&self, channel: &str) -> MutexGuard<'_, Shard> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        let index = (hasher.finish() as usize) % self.shards.len();
        // A poisoned shard only means a panic happened while it was held; the map
        // itself is still consistent (every mutation is a single insert/remove).
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `subscriber` to `channel`. Returns whether the channel had no local
    /// subscriber before (the hold then may need a first-subscription refresh, §3.7.5).
    pub fn subscribe(&self, channel: &str, subscriber: &Arc<Subscriber>) -> bool {
        let mut shard = self.shard(channel);
        let first = match shard.channels.entry(Arc::from(channel)) {
            Entry::Occupied(mut entry) => {
                let state = entry.get_mut();
                if !state.subscribers.iter().any(|s| s.id == subscriber.id) {
                    state.subscribers.push(Arc::clone(subscriber));
                }
                false
            }
            Entry::Vacant(entry) => {
                let name = Arc::clone(entry.key());
                entry.insert(ChannelState {
                    name: Arc::clone(&name),
                    subscribers: vec![Arc::clone(subscriber)],
                    sequencer: ChannelSequencer::new(self.config.sequencer.clone()),
                });
                let _ = self.events.send(ChannelEvent::Subscribed(name));
                true
            }
        };
        drop(shard);
        self.metrics.subscriptions.inc();
        if first {
            self.metrics.channels.inc();
        }
        first
    }

    /// Removes `subscriber` from `channel`; the channel's state (last id, reorder
    /// buffer) goes with its last subscriber (§3.7).
    pub fn unsubscribe(&self, channel: &str, subscriber: ConnectionId) {
        let mut shard = self.shard(channel);
        let Some(state) = shard.channels.get_mut(channel) else {
            return;
        };
        let before = state.subscribers.len();
        state.subscribers.retain(|s| s.id != subscriber);
        let removed = before != state.subscribers.len();
        let emptied = state.subscribers.is_empty();
        if emptied {
            if let Some(state) = shard.channels.remove(channel) {
                let _ = self.events.send(ChannelEvent::Unsubscribed(state.name));
            }
        }
        drop(shard);
        if removed {
            self.metrics.subscriptions.dec();
        }
        if emptied {
            self.metrics.channels.dec();
        }
    }

    /// Number of local subscribers of `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.shard(channel)
            .channels
            .get(channel)
            .map_or(0, |state| state.subscribers.len())
    }

    /// The id of the last item delivered on `channel`, if known (§3.7).
    pub fn last_id(&self, channel: &str) -> Option<String> {
        self.shard(channel)
            .channels
            .get(channel)
            .and_then(|state| state.sequencer.last_id().map(str::to_owned))
    }

    /// Forgets the channel's last id, as a per-subscription sequence mismatch requires
    /// (§3.7.3).
    pub fn clear_last_id(&self, channel: &str) {
        if let Some(state) = self.shard(channel).channels.get_mut(channel) {
            state.sequencer.clear_last_id();
        }
    }

    /// Names of every channel that has local subscribers.
    pub fn channels(&self) -> Vec<Arc<str>> {
        self.shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                shard.channels.keys().cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    /// Publishes one item to its channel's subscribers. Never blocks.
    pub fn publish(&self, item: PublishItem, input: PublishInput) -> PublishOutcome {
        self.metrics
            .items_received
            .with_label_values(&[input.label()])
            .inc();
        let now = Instant::now();
        let delivery = Arc::new(Delivery {
            channel: Arc::from(item.channel.as_str()),
            item,
            received_at: now,
        });
        let mut shard = self.shard(&delivery.channel);
        let Some(state) = shard.channels.get_mut(&delivery.channel) else {
            return PublishOutcome::default();
        };
        let ready = state.sequencer.accept(delivery, now);
        let held_or_dropped = ready.is_empty();
        let mut outcome = fan_out(state, &ready, &self.metrics);
        outcome.held_or_dropped = held_or_dropped;
        Self::forget_if_empty(&mut shard, &self.events, &self.metrics, &ready);
        outcome
    }

    /// Releases reordered items that waited longer than `message_wait` (§3.7.2).
    /// Called periodically by [`Hub::run_maintenance`].
    pub fn release_expired(&self, now: Instant) -> usize {
        let mut delivered = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let mut emptied = Vec::new();
            for state in shard.channels.values_mut() {
                let ready = state.sequencer.release_expired(now);
                if !ready.is_empty() {
                    delivered += fan_out(state, &ready, &self.metrics).deliveries;
                    if state.subscribers.is_empty() {
                        emptied.push(Arc::clone(&state.name));
                    }
                }
            }
            for name in emptied {
                shard.channels.remove(&name);
                self.metrics.channels.dec();
                let _ = self.events.send(ChannelEvent::Unsubscribed(name));
            }
            shard
                .channels
                .values_mut()
                .for_each(|s| s.sequencer.expire_ids(now));
        }
        delivered
    }

    /// Runs periodic upkeep (reorder timeouts, id cache expiry) until the hub is dropped.
    pub async fn run_maintenance(self: Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(&self);
        drop(self);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hub) = weak.upgrade() else { return };
            hub.release_expired(Instant::now());
        }
    }

    fn forget_if_empty(
        shard: &mut Shard,
        events: &mpsc::UnboundedSender<ChannelEvent>,
        metrics: &Metrics,
        ready: &[Arc<Delivery>],
    ) {
        let Some(first) = ready.first() else { return };
        let empty = shard
            .channels
            .get(&first.channel)
            .is_some_and(|state| state.subscribers.is_empty());
        if empty {
            if let Some(state) = shard.channels.remove(&first.channel) {
                metrics.channels.dec();
                let _ = events.send(ChannelEvent::Unsubscribed(state.name));
            }
        }
    }
}

/// Hands each ready item to every subscriber of the channel; drops subscribers whose
/// queue is full or closed.
fn fan_out(state: &mut ChannelState, ready: &[Arc<Delivery>], metrics: &Metrics) -> PublishOutcome {
    let mut outcome = PublishOutcome::default();
    for delivery in ready {
        let mut index = 0;
        while index < state.subscribers.len() {
            let subscriber = &state.subscribers[index];
            match subscriber.queue.push(Arc::clone(delivery)) {
                Ok(()) => {
                    outcome.deliveries += 1;
                    index += 1;
                }
                Err(PushError::Full) => {
                    tracing::warn!(
                        connection = subscriber.id,
                        route = %subscriber.route,
                        channel = %state.name,
                        "connection queue full; closing the slow connection"
                    );
                    outcome.overflows += 1;
                    state.subscribers.swap_remove(index);
                    metrics.subscriptions.dec();
                }
                Err(PushError::Closed) => {
                    state.subscribers.swap_remove(index);
                    metrics.subscriptions.dec();
                }
            }
        }
    }
    metrics.deliveries.inc_by(outcome.deliveries as u64);
    metrics.overflows.inc_by(outcome.overflows as u64);
    outcome
}

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

/// An `http-stream` item carrying `content`, for tests.
#[cfg(test)]
pub(crate) fn stream_item(channel: &str, content: bytes::Bytes) -> PublishItem {
    use fjord_protocol::item::{Formats, HttpStreamFormat, StreamAction};
    PublishItem {
        channel: channel.to_owned(),
        id: None,
        prev_id: None,
        formats: Formats {
            http_stream: Some(HttpStreamFormat {
                action: StreamAction::Send(content),
                content_filters: Vec::new(),
            }),
            ..Formats::default()
        },
        meta: Default::default(),
        no_seq: false,
        size: None,
    }
}

#[cfg(test)]
mod tests;
