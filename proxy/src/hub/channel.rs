//! One channel's state in the hub — its subscribers, sequencer, history and linger —
//! the shard that holds channels with their maintenance deadlines, and the fan-out of
//! ready items to a channel's subscriber queues.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Delivery, HubConfig, OverflowPolicy, PublishOutcome, Subscriber};
use crate::history::ChannelHistory;
use crate::metrics::Metrics;
use crate::queue::PushError;
use crate::sequencer::{ChannelSequencer, SequencerConfig};

pub(super) struct ChannelState {
    pub(super) name: Arc<str>,
    pub(super) subscribers: Vec<Arc<Subscriber>>,
    pub(super) sequencer: ChannelSequencer,
    /// Position and recent items of a Kafka-fed channel read by direct connections.
    /// Boxed: most channels have none, and every channel's state is paid per entry.
    pub(super) history: Option<Box<ChannelHistory>>,
    /// When the last subscriber left. The channel lingers `subscription_linger` (§4.3,
    /// §5.6): still subscribed upstream, so a long-poll client that re-polls does not
    /// make publishers flap, and a channel with history keeps recording, so a client
    /// that reconnects soon is served from memory.
    pub(super) idle_since: Option<Instant>,
    /// When the maintenance tick next has to look at this channel; mirrors its entry in
    /// [`Shard::wakes`].
    pub(super) wake_at: Option<Instant>,
}

impl ChannelState {
    pub(super) fn new(name: Arc<str>, sequencer: Arc<SequencerConfig>) -> ChannelState {
        ChannelState {
            name,
            subscribers: Vec::new(),
            sequencer: ChannelSequencer::new(sequencer),
            history: None,
            idle_since: None,
            wake_at: None,
        }
    }

    /// The earliest moment something time-based is due on this channel: a held item's
    /// `message_wait` (§3.7.2), a remembered id's expiry, or the end of its linger.
    pub(super) fn next_wake(&self, linger: Duration) -> Option<Instant> {
        let lingered = self.idle_since.map(|idle| idle + linger);
        self.sequencer
            .next_deadline()
            .into_iter()
            .chain(lingered)
            .min()
    }

    /// Called whenever the channel may have lost its last subscriber; returns whether
    /// to drop it now.
    pub(super) fn on_emptied(&mut self, now: Instant, config: &HubConfig) -> bool {
        if !self.subscribers.is_empty() {
            return false;
        }
        if config.subscription_linger.is_zero() {
            return true;
        }
        if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        false
    }

    /// Brings the channel's entry in its shard's `wakes` in line with its state; called
    /// after every change that may add, move or clear a deadline.
    pub(super) fn schedule(&mut self, wakes: &mut BTreeSet<(Instant, Arc<str>)>, linger: Duration) {
        let wake = self.next_wake(linger);
        if wake == self.wake_at {
            return;
        }
        if let Some(old) = self.wake_at.take() {
            wakes.remove(&(old, Arc::clone(&self.name)));
        }
        if let Some(at) = wake {
            wakes.insert((at, Arc::clone(&self.name)));
        }
        self.wake_at = wake;
    }

    /// Whether a channel without subscribers lingered long enough.
    pub(super) fn lingered_out(&self, now: Instant, linger: Duration) -> bool {
        self.subscribers.is_empty()
            && self
                .idle_since
                .is_some_and(|idle| now.saturating_duration_since(idle) >= linger)
    }
}

#[derive(Default)]
pub(super) struct Shard {
    pub(super) channels: HashMap<Arc<str>, ChannelState>,
    /// Channels with something time-based pending, by when it falls due, so the
    /// maintenance tick visits those alone instead of every channel.
    pub(super) wakes: BTreeSet<(Instant, Arc<str>)>,
}

impl Shard {
    /// [`ChannelState::schedule`] by name.
    pub(super) fn reschedule(&mut self, channel: &str, linger: Duration) {
        if let Some(state) = self.channels.get_mut(channel) {
            state.schedule(&mut self.wakes, linger);
        }
    }

    /// Drops a channel together with its wake-up.
    pub(super) fn remove(&mut self, channel: &str) -> Option<ChannelState> {
        let state = self.channels.remove(channel)?;
        if let Some(at) = state.wake_at {
            self.wakes.remove(&(at, Arc::clone(&state.name)));
        }
        Some(state)
    }

    /// Takes every channel whose wake-up is due at `now` out of the schedule.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut due = Vec::new();
        while self.wakes.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, name)) = self.wakes.pop_first() {
                if let Some(state) = self.channels.get_mut(&name) {
                    state.wake_at = None;
                }
                due.push(name);
            }
        }
        due
    }
}

/// Hands each ready item to every subscriber of the channel; drops subscribers whose
/// queue is full or closed.
pub(super) fn fan_out(
    state: &mut ChannelState,
    ready: &[Arc<Delivery>],
    metrics: &Metrics,
    now: Instant,
) -> PublishOutcome {
    let mut outcome = PublishOutcome::default();
    for delivery in ready {
        let mut index = 0;
        while index < state.subscribers.len() {
            let subscriber = &state.subscribers[index];
            let pushed = match subscriber.policy {
                OverflowPolicy::Close => subscriber.queue.push(Arc::clone(delivery), now),
                OverflowPolicy::Conflate => subscriber
                    .queue
                    .push_or_replace(Arc::clone(delivery), now, |queued| {
                        same_record_key(queued, delivery)
                    })
                    .map(|replaced| {
                        if replaced {
                            metrics.conflations.inc();
                        }
                    }),
            };
            match pushed {
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

/// Whether two deliveries are values of the same Kafka key on the same channel (what
/// [`OverflowPolicy::Conflate`] keeps only the newest of).
fn same_record_key(a: &Delivery, b: &Delivery) -> bool {
    match (&a.kafka, &b.kafka) {
        (Some(x), Some(y)) => a.channel == b.channel && x.record.key == y.record.key,
        _ => false,
    }
}
