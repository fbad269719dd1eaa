//! Per-channel ordering and de-duplication of published items (§3.7 steps 1–2).
//!
//! Publishers may tag items with `id` and `prev-id`. The proxy remembers the id of the
//! last item it delivered on each channel; an item whose `prev-id` names something
//! else arrived early and waits (up to `message_wait`) for its predecessor. Items seen
//! again within `id_cache_ttl` are duplicates and are dropped.

use std::collections::HashMap;
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
    seen: HashMap<String, Instant>,
}

impl SequenceState {
    fn is_empty(&self) -> bool {
        self.last_id.is_none() && self.pending.is_empty() && self.seen.is_empty()
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
            return vec![delivery];
        }
        let config = Arc::clone(&self.config);
        let state = self.state.get_or_insert_with(Box::default);
        if let Some(id) = &item.id {
            if !config.id_cache_ttl.is_zero() {
                if state.seen.get(id).is_some_and(|&until| until > now) {
                    return Vec::new();
                }
                state.seen.insert(id.clone(), now + config.id_cache_ttl);
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
        ready
    }

    /// Forgets de-duplication entries whose time has passed, and the whole state once
    /// it holds nothing.
    pub fn expire_ids(&mut self, now: Instant) {
        if let Some(state) = self.state.as_mut() {
            if !state.seen.is_empty() {
                state.seen.retain(|_, until| *until > now);
            }
            if state.is_empty() {
                self.state = None;
            }
        }
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
}
