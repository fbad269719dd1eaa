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
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fjord_protocol::item::PublishItem;
use fjord_protocol::resume::ResumePosition;
use prometheus::IntCounter;
use tokio::sync::mpsc;

use crate::history::{Catchup, ChannelHistory, ChannelRecord};
use crate::kafka_event::KafkaEvent;
use crate::metrics::Metrics;
use crate::queue::ConnectionQueue;
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
    pub const ALL: [PublishInput; 4] = [
        PublishInput::Http,
        PublishInput::ZmqPull,
        PublishInput::ZmqSub,
        PublishInput::Relay,
    ];

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
    /// The item as a Kafka-fed channel delivers it; set only on channels that keep a
    /// history (direct mode), which keeps this part alone.
    pub kafka: Option<Arc<ChannelRecord>>,
}

/// What a connection does when its queue is full (design "Limits and back-pressure").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The connection is closed; a direct stream ends with its resume id first.
    #[default]
    Close,
    /// A queued item of the same channel and Kafka key is replaced by the newer one,
    /// so a slow reader gets the newest value per key instead of every change.
    Conflate,
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
    policy: OverflowPolicy,
}

impl Subscriber {
    /// A new subscriber whose queue holds at most `capacity` undelivered items.
    pub fn new(route: Arc<str>, capacity: usize) -> Arc<Subscriber> {
        Self::with_policy(route, capacity, OverflowPolicy::Close)
    }

    /// A subscriber whose full queue is handled by `policy`.
    pub fn with_policy(
        route: Arc<str>,
        capacity: usize,
        policy: OverflowPolicy,
    ) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            route,
            queue: ConnectionQueue::new(capacity),
            policy,
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

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceOutcome {
    /// Items released from reorder buffers, counted once per subscriber reached.
    pub deliveries: usize,
    /// Channels the pass looked at: those with something due, not every channel.
    pub channels_visited: usize,
}

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub sequencer: SequencerConfig,
    /// How long a channel outlives its last subscriber (`subscription_linger`).
    pub subscription_linger: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            sequencer: SequencerConfig::default(),
            subscription_linger: Duration::from_secs(60),
        }
    }
}

/// Where a direct connection starts, decided atomically with its subscription.
#[derive(Debug)]
pub struct DirectStart {
    /// The channel's position when the connection joined: a fresh connection has seen
    /// everything up to here.
    pub position: ResumePosition,
    /// For a resuming connection, what the channel's history holds after its position.
    pub catchup: Option<Catchup>,
}

/// The channel → subscribers map.
pub struct Hub {
    shards: Box<[Mutex<Shard>]>,
    config: HubConfig,
    /// `config.sequencer`, shared by every channel's sequencer.
    sequencer: Arc<SequencerConfig>,
    events: mpsc::UnboundedSender<ChannelEvent>,
    metrics: Arc<Metrics>,
    /// `metrics.items_received` per input, indexed by `PublishInput as usize`: looked
    /// up once here rather than by label (a hash and a lock) on every publish.
    received: [IntCounter; PublishInput::ALL.len()],
}

impl Hub {
    /// A hub and the stream of its channel events (first subscriber / last one gone).
    pub fn new(
        config: HubConfig,
        metrics: Arc<Metrics>,
    ) -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let received = PublishInput::ALL
            .map(|input| metrics.items_received.with_label_values(&[input.label()]));
        let hub = Arc::new(Hub {
            shards,
            sequencer: Arc::new(config.sequencer.clone()),
            config,
            events,
            metrics,
            received,
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
        let (_, first) = self.join(&mut shard, channel, subscriber);
        shard.reschedule(channel, self.config.subscription_linger);
        drop(shard);
        self.count_subscription(first);
        first
    }

    /// Adds a direct connection to a Kafka-fed channel, which from now on keeps a
    /// history of `history_capacity` items. Atomically with the subscription, says where
    /// the channel stands and, for a connection resuming `after` a position, what the
    /// history holds beyond it: every later item reaches the connection's queue.
    pub fn subscribe_direct(
        &self,
        channel: &str,
        subscriber: &Arc<Subscriber>,
        history_capacity: usize,
        after: Option<&ResumePosition>,
    ) -> DirectStart {
        let mut shard = self.shard(channel);
        let (state, first) = self.join(&mut shard, channel, subscriber);
        let history = state
            .history
            .get_or_insert_with(|| Box::new(ChannelHistory::new(history_capacity, unix_ms())));
        let start = DirectStart {
            position: history.position().clone(),
            catchup: after.map(|position| history.catch_up(position)),
        };
        shard.reschedule(channel, self.config.subscription_linger);
        drop(shard);
        self.count_subscription(first);
        start
    }

    fn join<'s>(
        &self,
        shard: &'s mut Shard,
        channel: &str,
        subscriber: &Arc<Subscriber>,
    ) -> (&'s mut ChannelState, bool) {
        match shard.channels.entry(Arc::from(channel)) {
            Entry::Occupied(entry) => {
                let state = entry.into_mut();
                if state.idle_since.take().is_some() && state.history.is_none() {
                    // Sequencing state goes with the last subscriber (§3.7); only the
                    // upstream subscription lingered.
                    state.sequencer = ChannelSequencer::new(Arc::clone(&self.sequencer));
                }
                if !state.subscribers.iter().any(|s| s.id == subscriber.id) {
                    state.subscribers.push(Arc::clone(subscriber));
                }
                (state, false)
            }
            Entry::Vacant(entry) => {
                let name = Arc::clone(entry.key());
                let mut state = ChannelState::new(Arc::clone(&name), Arc::clone(&self.sequencer));
                state.subscribers.push(Arc::clone(subscriber));
                let _ = self.events.send(ChannelEvent::Subscribed(name));
                (entry.insert(state), true)
            }
        }
    }

    fn count_subscription(&self, first: bool) {
        self.metrics.subscriptions.inc();
        if first {
            self.metrics.channels.inc();
        }
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
        let emptied = state.on_emptied(Instant::now(), &self.config);
        if emptied {
            self.drop_channel(&mut shard, channel);
        } else {
            shard.reschedule(channel, self.config.subscription_linger);
        }
        drop(shard);
        if removed {
            self.metrics.subscriptions.dec();
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
        let mut shard = self.shard(channel);
        if let Some(state) = shard.channels.get_mut(channel) {
            state.sequencer.clear_last_id();
            shard.reschedule(channel, self.config.subscription_linger);
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
        self.publish_at(item, input, Instant::now())
    }

    /// [`Hub::publish`] at a given time, which tests use to play out a slow client.
    pub(crate) fn publish_at(
        &self,
        item: PublishItem,
        input: PublishInput,
        now: Instant,
    ) -> PublishOutcome {
        self.received[input as usize].inc();
        let channel: Arc<str> = Arc::from(item.channel.as_str());
        let mut guard = self.shard(&channel);
        let shard = &mut *guard;
        let Some(state) = shard.channels.get_mut(&channel) else {
            return PublishOutcome::default();
        };
        let kafka = match state.history.as_mut() {
            Some(history) => match KafkaEvent::from_item(&item) {
                Some(record) if history.is_duplicate(&record) => {
                    // A relay re-sending its uncommitted tail after a restart (§9).
                    self.metrics.duplicates.inc();
                    return PublishOutcome {
                        held_or_dropped: true,
                        ..PublishOutcome::default()
                    };
                }
                Some(record) => Some(Arc::new(history.advance(record))),
                None => None,
            },
            None => None,
        };
        let delivery = Arc::new(Delivery {
            channel: Arc::clone(&channel),
            item,
            received_at: now,
            kafka,
        });
        let ready = state.sequencer.accept(delivery, now);
        let held_or_dropped = ready.is_empty();
        let mut outcome = fan_out(state, &ready, &self.metrics, now);
        outcome.held_or_dropped = held_or_dropped;
        if let Some(history) = state.history.as_mut() {
            let now_ms = unix_ms();
            for record in ready.iter().filter_map(|d| d.kafka.as_ref()) {
                history.remember(Arc::clone(record), now_ms);
            }
        }
        // A fan-out may have dropped the last subscribers (full or closed queues).
        if !ready.is_empty() && state.on_emptied(now, &self.config) {
            self.drop_channel(shard, &channel);
        } else {
            state.schedule(&mut shard.wakes, self.config.subscription_linger);
        }
        outcome
    }

    /// Releases reordered items that waited longer than `message_wait` (§3.7.2),
    /// forgets expired ids, and drops channels that lingered long enough without a
    /// subscriber. Only channels with something due at `now` are visited, so an idle
    /// proxy with many channels does no work here. Called periodically by
    /// [`Hub::run_maintenance`].
    pub fn release_expired(&self, now: Instant) -> MaintenanceOutcome {
        let mut outcome = MaintenanceOutcome::default();
        let linger = self.config.subscription_linger;
        for shard in self.shards.iter() {
            let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let shard = &mut *guard;
            for name in shard.take_due(now) {
                let Some(state) = shard.channels.get_mut(&name) else {
                    continue;
                };
                outcome.channels_visited += 1;
                let ready = state.sequencer.release_expired(now);
                if !ready.is_empty() {
                    outcome.deliveries += fan_out(state, &ready, &self.metrics, now).deliveries;
                }
                if state.on_emptied(now, &self.config) || state.lingered_out(now, linger) {
                    self.drop_channel(shard, &name);
                    continue;
                }
                state.sequencer.expire_ids(now);
                state.schedule(&mut shard.wakes, linger);
            }
        }
        outcome
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

    /// Forgets a channel that lost its last subscriber and tells the upstream inputs.
    fn drop_channel(&self, shard: &mut Shard, channel: &str) {
        if let Some(state) = shard.remove(channel) {
            self.metrics.channels.dec();
            let _ = self.events.send(ChannelEvent::Unsubscribed(state.name));
        }
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

mod channel;
mod subscription_set;

use channel::{fan_out, ChannelState, Shard};
pub use subscription_set::SubscriptionSet;

#[cfg(test)]
mod tests;
