//! Held client connections: what both hold modes share.
//!
//! A hold subscribes the connection to the instruction's channels and then judges each
//! item the hub hands it: the right format for the hold, the subscription's filters
//! (§2.6), and the per-subscription sequence check (§3.7.3). The two hold modes
//! ([`response`] for long-poll, [`stream`] for HTTP streaming and SSE) differ only in
//! what they do with an accepted item.

pub mod response;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::instruction::{Channel, Filter, Instruction};
use fjord_protocol::item::{HttpResponseFormat, HttpStreamFormat};

use crate::filter;
use crate::hub::{Delivery, Hub, Subscriber, SubscriptionSet};

/// One channel of a hold, as the origin named it and as the hub knows it.
#[derive(Debug, Clone)]
struct HeldChannel {
    /// The origin's name, used in `Grip-Last` (§1.6).
    name: String,
    /// With the route's `prefix=` in front; what publishers publish to.
    hub_name: String,
    filters: Vec<Filter>,
    /// The `prev-id` the next item must carry (§3.7.3); only for channels subscribed
    /// with a `prev-id`.
    expected_prev: Option<String>,
}

/// Why a held connection did not write an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotSubscribed,
    Format,
    Filter,
    ContentFilters,
}

impl SkipReason {
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::NotSubscribed => "not_subscribed",
            SkipReason::Format => "format",
            SkipReason::Filter => "filter",
            SkipReason::ContentFilters => "content_filters",
        }
    }
}

/// What a hold does with one delivered item.
#[derive(Debug)]
pub enum Verdict<T> {
    Accept(T),
    Skip(SkipReason),
    /// The item does not follow what this connection expected: recover (§3.7.3).
    Recover,
}

/// The subscriptions of one held connection and the state its filters need.
pub struct HeldChannels {
    set: SubscriptionSet,
    channels: Vec<HeldChannel>,
    meta: BTreeMap<String, String>,
    /// Current id per channel (origin names), for `build-id` (§2.6).
    positions: BTreeMap<String, String>,
}

/// Settings that shape every hold.
#[derive(Debug, Clone)]
pub struct HoldLimits {
    /// `connection_subscription_max` (§3.6): extra channels are silently ignored.
    pub max_channels: usize,
}

impl HeldChannels {
    /// Subscribes `subscriber` to the instruction's channels (plus the target's
    /// implicit `sub=` channels). Returns the hold and whether any channel got its
    /// first local subscriber (§3.7.5).
    pub fn subscribe(
        hub: Arc<Hub>,
        subscriber: Arc<Subscriber>,
        instruction: &Instruction,
        implicit: &[String],
        prefix: &str,
        limits: &HoldLimits,
    ) -> (HeldChannels, bool) {
        let mut held = HeldChannels {
            set: SubscriptionSet::new(hub, subscriber),
            channels: Vec::new(),
            meta: instruction.meta.clone(),
            positions: BTreeMap::new(),
        };
        let first = held.resubscribe(&instruction.channels, implicit, prefix, limits);
        (held, first)
    }

    /// Replaces the subscriptions (a next link's instructions replace the old ones,
    /// §6.4).
    pub fn resubscribe(
        &mut self,
        channels: &[Channel],
        implicit: &[String],
        prefix: &str,
        limits: &HoldLimits,
    ) -> bool {
        self.set.clear();
        self.channels.clear();
        let implicit = implicit.iter().map(|name| Channel {
            name: name.clone(),
            prev_id: None,
            filters: Vec::new(),
            unknown_filters: Vec::new(),
        });
        let mut first = false;
        for channel in channels.iter().cloned().chain(implicit) {
            if self.channels.len() >= limits.max_channels {
                break;
            }
            if self.channels.iter().any(|c| c.name == channel.name) {
                continue;
            }
            let hub_name = format!("{prefix}{}", channel.name);
            first |= self.set.add(&hub_name);
            if let Some(prev) = &channel.prev_id {
                self.positions.insert(channel.name.clone(), prev.clone());
            }
            self.channels.push(HeldChannel {
                name: channel.name,
                hub_name,
                filters: channel.filters,
                expected_prev: channel.prev_id,
            });
        }
        first
    }

    pub fn set_meta(&mut self, meta: &BTreeMap<String, String>) {
        self.meta.clone_from(meta);
    }

    pub fn subscriber(&self) -> &Arc<Subscriber> {
        self.set.subscriber()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn has_prev_ids(&self) -> bool {
        self.channels.iter().any(|c| c.expected_prev.is_some())
    }

    /// Whether the proxy already knows a different last id for a channel subscribed
    /// with `prev-id`: the hold must recover at once (§3.7.4).
    pub fn behind_at_hold_time(&self) -> bool {
        let hub = self.set.hub();
        self.channels.iter().any(|c| match &c.expected_prev {
            Some(expected) => hub
                .last_id(&c.hub_name)
                .is_some_and(|last| &last != expected),
            None => false,
        })
    }

    /// `Grip-Last` pairs for a recovery request: every channel with an expectation.
    pub fn grip_last(&self) -> Vec<(String, String)> {
        self.channels
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.expected_prev.clone()?)))
            .collect()
    }

    /// Judges an item for a stream hold; the accepted value is the bytes to write, or
    /// the format itself when it carries an action (close, hint).
    pub fn judge_stream(&mut self, delivery: &Delivery) -> Verdict<StreamContent> {
        let Some(format) = delivery.item.formats.http_stream.as_ref() else {
            return Verdict::Skip(SkipReason::Format);
        };
        self.judge(delivery, &format.content_filters, |held, index| {
            held.stream_content(index, format)
        })
    }

    /// Judges an item for a response hold.
    pub fn judge_response<'a>(
        &mut self,
        delivery: &'a Delivery,
    ) -> Verdict<(&'a HttpResponseFormat, ContentFilterContext)> {
        let Some(format) = delivery.item.formats.http_response.as_ref() else {
            return Verdict::Skip(SkipReason::Format);
        };
        self.judge(delivery, &format.content_filters, |held, index| {
            (format, held.content_context(index))
        })
    }

    fn judge<T>(
        &mut self,
        delivery: &Delivery,
        content_filters: &[String],
        accept: impl FnOnce(&Self, usize) -> T,
    ) -> Verdict<T> {
        let Some(index) = self
            .channels
            .iter()
            .position(|c| *c.hub_name == *delivery.channel)
        else {
            return Verdict::Skip(SkipReason::NotSubscribed);
        };
        let channel = &self.channels[index];
        let item = &delivery.item;
        if !filter::content_filters_match(content_filters, &channel.filters) {
            return Verdict::Skip(SkipReason::ContentFilters);
        }
        let channels = &self.channels;
        let is_subscribed = |name: &str| channels.iter().any(|c| c.name == name);
        if !filter::passes_message_filters(&channel.filters, &item.meta, &self.meta, &is_subscribed)
        {
            return Verdict::Skip(SkipReason::Filter);
        }
        if let (Some(expected), Some(prev)) = (&channel.expected_prev, &item.prev_id) {
            if expected != prev {
                self.set.hub().clear_last_id(&channel.hub_name);
                return Verdict::Recover;
            }
        }
        let name = channel.name.clone();
        let channel = &mut self.channels[index];
        if channel.expected_prev.is_some() {
            channel.expected_prev.clone_from(&item.id);
        }
        match &item.id {
            Some(id) => self.positions.insert(name, id.clone()),
            None => self.positions.remove(&name),
        };
        Verdict::Accept(accept(self, index))
    }

    fn content_context(&self, index: usize) -> ContentFilterContext {
        ContentFilterContext {
            filters: self.channels[index].filters.clone(),
            meta: self.meta.clone(),
            positions: self.positions.clone(),
        }
    }

    fn stream_content(&self, index: usize, format: &HttpStreamFormat) -> StreamContent {
        use fjord_protocol::item::StreamAction;
        match &format.action {
            StreamAction::Send(content) => {
                let filters = &self.channels[index].filters;
                if filters.iter().any(|f| f.changes_content()) {
                    StreamContent::Data(filter::apply_content_filters(
                        content,
                        filters,
                        &self.meta,
                        &self.positions,
                    ))
                } else {
                    StreamContent::Data(content.clone())
                }
            }
            StreamAction::Close => StreamContent::Close,
            StreamAction::Hint => StreamContent::Hint,
        }
    }
}

/// What a stream hold does with an accepted `http-stream` item (§3.3).
#[derive(Debug)]
pub enum StreamContent {
    Data(Bytes),
    Close,
    Hint,
}

/// The state content filters of a response hold need, captured at delivery.
#[derive(Debug, Clone)]
pub struct ContentFilterContext {
    pub filters: Vec<Filter>,
    pub meta: BTreeMap<String, String>,
    pub positions: BTreeMap<String, String>,
}

impl ContentFilterContext {
    pub fn apply(&self, content: &Bytes) -> Bytes {
        if self.filters.iter().any(|f| f.changes_content()) {
            filter::apply_content_filters(content, &self.filters, &self.meta, &self.positions)
        } else {
            content.clone()
        }
    }
}
