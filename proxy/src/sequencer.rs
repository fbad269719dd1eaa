//! Per-channel ordering and de-duplication of published items (§3.7 steps 1–2).
//!
//! Publishers may tag items with `id` and `prev-id`. The proxy remembers the id of the
//! last item it delivered on each channel; an item whose `prev-id` names something
//! else arrived early and waits (up to `message_wait`) for its predecessor. Items seen
//! again within `id_cache_ttl` are duplicates and are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::Delivery;

/// Pushpin's hard-coded cap on buffered out-of-order items per channel (§3.7.2).
pub const MAX_PENDING_PER_CHANNEL: usize = 100;

#[derive(Debug, Clone)]
pub struct SequencerConfig {
    /// How long an out-of-order item waits for its predecessor (`message_wait`).
    pub message_wait: Duration,
    /// How long `(channel, id)` pairs are remembered for de-duplication; zero is off.
    pub id_cache_ttl: Duration,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            message_wait: Duration::from_millis(5000),
            id_cache_ttl: Duration::from_secs(60),
        }
    }
}

/// Sequencing state of one channel; lives as long as the channel has subscribers.
///
/// Most channels never see an `id` or a `prev-id`, and a proxy holds one channel per
/// connection in the common case, so the state lives behind a box created on the first
/// item that needs it and dropped again once it holds nothing (design "Performance
/// principles": small per-connection state).
#[derive(Debug)]
pub struct ChannelSequencer {
    config: Arc<SequencerConfig>,
    state: Option<Box<SequenceState>>,
}

#[derive(Debug, Default)]
struct SequenceState {
    last_id: Option<String>,
    /// Early items keyed by the `prev-id` they wait for.
    pending: HashMap<String, Arc<Delivery>>,
    /// Recently seen ids and when they may be forgotten.
    seen: HashMap<Arc<str>, Instant>,
    /// The same ids in the order they may be forgotten (every id gets the same ttl), so
    /// expiry touches only what expires. An entry whose id was seen again since is
    /// stale: the map holds the later time.
    forget_order: VecDeque<(Instant, Arc<str>)>,
}

impl SequenceState {
    fn is_empty(&self) -> bool {
        self.last_id.is_none() && self.pending.is_empty() && self.seen.is_empty()
    }

    fn remember(&mut self, id: &str, until: Instant) {
        let id: Arc<str> = Arc::from(id);
        self.seen.insert(Arc::clone(&id), until);
        self.forget_order.push_back((until, id));
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.forget_order.front() {
            if *until > now {
                return;
            }
            if let Some((_, id)) = self.forget_order.pop_front() {
                if self.seen.get(&id).is_some_and(|&latest| latest <= now) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    /// Records the last item of `ready` as delivered and appends every buffered item
    /// that was waiting for it, transitively.
    fn advance_from(&mut self, ready: &mut Vec<Arc<Delivery>>) {
        loop {
            let Some(last) = ready.last() else { return };
            self.last_id.clone_from(&last.item.id);
            let Some(next) = self.last_id.as_ref().and_then(|id| self.pending.remove(id)) else {
                return;
            };
            ready.push(next);
        }
    }
}

impl ChannelSequencer {
    pub fn new(config: impl Into<Arc<SequencerConfig>>) -> Self {
        ChannelSequencer {
            config: config.into(),
            state: None,
        }
    }

    pub fn last_id(&self) -> Option<&str> {
        self.state.as_ref()?.last_id.as_deref()
    }

    pub fn clear_last_id(&mut self) {
        if let Some(state) = self.state.as_mut() {
            state.last_id = None;
        }
        self.release_if_empty();
    }

    /// When something of this channel next falls due: an early item's `message_wait`
    /// ends (§3.7.2) or a remembered id may be forgotten. `None` when nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let state = self.state.as_ref()?;
        let wait = self.config.message_wait;
        let pending = state.pending.values().map(|d| d.received_at + wait).min();
        let forget = state.forget_order.front().map(|(until, _)| *until);
        pending.into_iter().chain(forget).min()
    }

    /// Drops the state once it holds nothing, so an idle channel costs no allocation.
    fn release_if_empty(&mut self) {
        if self.state.as_ref().is_some_and(|state| state.is_empty()) {
            self.state = None;
        }
    }

    /// Takes one published item and returns the items now ready for delivery, in
    /// order: none (held back or duplicate), the item itself, or the item followed by
    /// buffered successors it unblocked.
    pub fn accept(&mut self, delivery: Arc<Delivery>, now: Instant) -> Vec<Arc<Delivery>> {
        let item = &delivery.item;
        if item.id.is_none() && item.prev_id.is_none() {
            // Nothing to order or remember; it only ends the known sequence.
            if let Some(state) = self.state.as_mut() {
                state.last_id = None;
            }
            self.release_if_empty();
            return vec![delivery];
        }
        let config = Arc::clone(&self.config);
        let state = self.state.get_or_insert_with(Box::default);
        if let Some(id) = &item.id {
            if !config.id_cache_ttl.is_zero() {
                if state
                    .seen
                    .get(id.as_str())
                    .is_some_and(|&until| until > now)
                {
                    return Vec::new();
                }
                state.remember(id, now + config.id_cache_ttl);
            }
        }
        let early = !item.no_seq
            && match (&state.last_id, &item.prev_id) {
                (Some(last), Some(prev)) => last != prev,
                _ => false,
            };
        if early {
            if let Some(prev) = &item.prev_id {
                if state.pending.len() < MAX_PENDING_PER_CHANNEL
                    && !state.pending.contains_key(prev)
                {
                    state.pending.insert(prev.clone(), delivery);
                }
            }
            return Vec::new();
        }
        let mut ready = vec![delivery];
        state.advance_from(&mut ready);
        // An item with a prev-id but no id ends the sequence like a plain one.
        self.release_if_empty();
        ready
    }

    /// Releases items that waited longer than `message_wait`, oldest first, each
    /// followed by whatever it unblocks.
    pub fn release_expired(&mut self, now: Instant) -> Vec<Arc<Delivery>> {
        let wait = self.config.message_wait;
        let Some(state) = self.state.as_mut() else {
            return Vec::new();
        };
        let mut expired: Vec<String> = state
            .pending
            .iter()
            .filter(|(_, d)| now.duration_since(d.received_at) >= wait)
            .map(|(prev, _)| prev.clone())
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        expired.sort_by_key(|prev| state.pending.get(prev).map(|d| d.received_at));
        let mut ready = Vec::new();
        for prev in expired {
            if let Some(delivery) = state.pending.remove(&prev) {
                ready.push(delivery);
                state.advance_from(&mut ready);
            }
        }
        self.release_if_empty();
        ready
    }

    /// Forgets de-duplication entries whose time has passed, and the whole state once
    /// it holds nothing.
    pub fn expire_ids(&mut self, now: Instant) {
        if let Some(state) = self.state.as_mut() {
            state.forget_expired(now);
        }
        self.release_if_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: Option<&str>, prev: Option<&str>, at: Instant) -> Arc<Delivery> {
        let mut item = crate::hub::stream_item("a", bytes::Bytes::from_static(b"x"));
        item.id = id.map(str::to_owned);
        item.prev_id = prev.map(str::to_owned);
        Arc::new(Delivery {
            kafka: None,
            channel: Arc::from("a"),
            item,
            received_at: at,
        })
    }

    fn ids(ready: &[Arc<Delivery>]) -> Vec<Option<String>> {
        ready.iter().map(|d| d.item.id.clone()).collect()
    }

    fn no_dedup() -> SequencerConfig {
        SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::ZERO,
        }
    }

    #[test]
    fn first_item_is_never_delayed() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        let ready = seq.accept(item(Some("9"), Some("8"), now), now);
        assert_eq!(ids(&ready), vec![Some("9".to_owned())]);
        assert_eq!(seq.last_id(), Some("9"));
    }

    #[test]
    fn early_item_waits_for_its_predecessor_then_both_go_in_order() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        seq.accept(item(Some("1"), None, now), now);
        assert!(seq.accept(item(Some("3"), Some("2"), now), now).is_empty());
        let ready = seq.accept(item(Some("2"), Some("1"), now), now);
        assert_eq!(ids(&ready), vec![Some("2".into()), Some("3".into())]);
        assert_eq!(seq.last_id(), Some("3"));
    }

    #[test]
    fn early_item_is_released_after_message_wait() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        seq.accept(item(Some("1"), None, now), now);
        assert!(seq.accept(item(Some("9"), Some("8"), now), now).is_empty());
        assert!(seq.release_expired(now + Duration::from_secs(4)).is_empty());
        let ready = seq.release_expired(now + Duration::from_secs(5));
        assert_eq!(ids(&ready), vec![Some("9".into())]);
    }

    #[test]
    fn no_seq_item_bypasses_reordering() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        seq.accept(item(Some("1"), None, now), now);
        let mut early = item(Some("9"), Some("8"), now);
        if let Some(d) = Arc::get_mut(&mut early) {
            d.item.no_seq = true;
        }
        assert_eq!(seq.accept(early, now).len(), 1);
    }

    #[test]
    fn duplicate_id_within_ttl_is_dropped() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::from_secs(60),
        });
        assert_eq!(seq.accept(item(Some("1"), None, now), now).len(), 1);
        assert!(seq.accept(item(Some("1"), None, now), now).is_empty());
        let later = now + Duration::from_secs(61);
        seq.expire_ids(later);
        assert_eq!(seq.accept(item(Some("1"), None, later), later).len(), 1);
    }

    #[test]
    fn item_without_id_clears_last_id() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        seq.accept(item(Some("1"), None, now), now);
        seq.accept(item(None, None, now), now);
        assert_eq!(seq.last_id(), None);
    }

    #[test]
    fn second_early_item_with_same_prev_id_is_dropped() {
        let now = Instant::now();
        let mut seq = ChannelSequencer::new(no_dedup());
        seq.accept(item(Some("1"), None, now), now);
        assert!(seq.accept(item(Some("3"), Some("2"), now), now).is_empty());
        assert!(seq.accept(item(Some("4"), Some("2"), now), now).is_empty());
        let ready = seq.accept(item(Some("2"), Some("1"), now), now);
        assert_eq!(ids(&ready), vec![Some("2".into()), Some("3".into())]);
    }

    #[test]
    fn plain_items_need_no_state_and_an_idle_state_is_released() {
        let mut seq = ChannelSequencer::new(SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::from_secs(1),
        });
        let now = Instant::now();
        assert_eq!(seq.accept(item(None, None, now), now).len(), 1);
        assert!(seq.state.is_none(), "no id, no prev-id: nothing to keep");
        assert_eq!(seq.accept(item(Some("a"), None, now), now).len(), 1);
        assert_eq!(seq.last_id(), Some("a"));
        assert!(
            seq.accept(item(Some("a"), None, now), now).is_empty(),
            "duplicate"
        );
        assert_eq!(seq.accept(item(None, None, now), now).len(), 1);
        assert_eq!(seq.last_id(), None, "an item without id ends the sequence");
        seq.expire_ids(now);
        assert!(seq.state.is_some(), "the id is still remembered");
        seq.expire_ids(now + Duration::from_secs(2));
        assert!(seq.state.is_none(), "released once it holds nothing");
    }

    #[test]
    fn next_deadline_is_the_earliest_of_a_held_item_and_an_id_expiry() {
        let mut seq = ChannelSequencer::new(SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::from_secs(60),
        });
        let now = Instant::now();
        assert_eq!(seq.next_deadline(), None, "nothing waits");
        seq.accept(item(Some("1"), None, now), now);
        assert_eq!(seq.next_deadline(), Some(now + Duration::from_secs(60)));
        let later = now + Duration::from_secs(1);
        assert!(seq
            .accept(item(Some("3"), Some("2"), later), later)
            .is_empty());
        assert_eq!(seq.next_deadline(), Some(later + Duration::from_secs(5)));
        seq.release_expired(later + Duration::from_secs(5));
        assert_eq!(seq.next_deadline(), Some(now + Duration::from_secs(60)));
    }

    #[test]
    fn an_id_seen_again_after_expiry_is_remembered_until_its_new_expiry() {
        let ttl = Duration::from_secs(10);
        let mut seq = ChannelSequencer::new(SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: ttl,
        });
        let now = Instant::now();
        seq.accept(item(Some("a"), None, now), now);
        let again = now + ttl;
        assert_eq!(seq.accept(item(Some("a"), None, again), again).len(), 1);
        seq.expire_ids(again);
        assert!(
            seq.accept(item(Some("a"), None, again), again).is_empty(),
            "the first expiry must not forget the second sighting"
        );
        assert_eq!(seq.next_deadline(), Some(again + ttl));
        seq.expire_ids(again + ttl);
        assert_eq!(seq.next_deadline(), None);
    }

    #[test]
    fn state_holding_nothing_is_released_without_waiting_for_maintenance() {
        let mut seq = ChannelSequencer::new(no_dedup());
        let now = Instant::now();
        seq.accept(item(Some("1"), None, now), now);
        assert!(seq.state.is_some(), "the last id is kept");
        seq.clear_last_id();
        assert!(seq.state.is_none());
        seq.accept(item(Some("1"), None, now), now);
        seq.accept(item(None, None, now), now);
        assert!(seq.state.is_none());
        seq.accept(item(None, Some("1"), now), now);
        assert!(
            seq.state.is_none(),
            "a prev-id alone leaves nothing to keep"
        );
    }
}
