//! The body of a direct SSE or raw stream: what the catch-up produced, then live items
//! from the connection's queue, keep-alives while idle, and a final `close` event with
//! the resume id when the proxy ends the stream (queue overflow, token expiry).
//!
//! Like the held streams of origin mode, the body is polled on the connection's own task:
//! no task or channel of its own per connection.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::cursor::{close_sse, Cursor, Transport};
use crate::body::BodyError;
use crate::hub::{Subscriber, SubscriptionSet};
use crate::metrics::{ConnectionGauge, Metrics};
use crate::queue::QueueEvent;

/// Why the proxy ends a stream (the `reason` of the final `close` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Overflow,
    TokenExpired,
    /// A catch-up larger than one round: the client reconnects for the rest.
    MoreToReplay,
    /// The relay could not replay what the client missed; it retries later.
    ReplayFailed,
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Overflow => "overflow",
            CloseReason::TokenExpired => "token-expired",
            CloseReason::MoreToReplay => "more-to-replay",
            CloseReason::ReplayFailed => "replay-failed",
        }
    }
}

/// A direct stream in progress.
pub struct DirectStream {
    transport: Transport,
    out: VecDeque<Bytes>,
    cursor: Cursor,
    subscriber: Arc<Subscriber>,
    /// Unsubscribes every channel when the stream is dropped.
    _subscriptions: SubscriptionSet,
    metrics: Arc<Metrics>,
    keep_alive: Option<(Duration, Pin<Box<Sleep>>)>,
    expiry: Option<Pin<Box<Sleep>>>,
    /// Set when the stream is to end once `out` is written.
    done: bool,
    _gauge: ConnectionGauge,
}

/// What a stream starts with.
pub struct StreamStart {
    pub transport: Transport,
    /// Bytes to write first (retry hint, caught-up events).
    pub initial: VecDeque<Bytes>,
    pub cursor: Cursor,
    pub subscriptions: SubscriptionSet,
    pub metrics: Arc<Metrics>,
    pub keep_alive: Option<Duration>,
    /// When the client's token expires.
    pub expires_in: Option<Duration>,
    /// End right after `initial` with this reason (catch-up was cut short or failed).
    pub close_now: Option<CloseReason>,
}

impl DirectStream {
    pub fn new(start: StreamStart) -> DirectStream {
        let gauge_kind = match start.transport {
            Transport::Sse => "direct_sse",
            Transport::Raw => "direct_stream",
            Transport::Poll => "direct_poll",
        };
        let subscriber = Arc::clone(start.subscriptions.subscriber());
        let mut stream = DirectStream {
            transport: start.transport,
            out: start.initial,
            cursor: start.cursor,
            subscriber,
            _subscriptions: start.subscriptions,
            _gauge: ConnectionGauge::new(&start.metrics, gauge_kind),
            metrics: start.metrics,
            keep_alive: start
                .keep_alive
                .filter(|_| start.transport == Transport::Sse)
                .map(|period| (period, Box::pin(tokio::time::sleep(period)))),
            expiry: start
                .expires_in
                .map(|left| Box::pin(tokio::time::sleep(left))),
            done: false,
        };
        if let Some(reason) = start.close_now {
            stream.close(reason);
        }
        stream
    }

    /// Ends the stream: SSE clients get a last event carrying the resume id.
    fn close(&mut self, reason: CloseReason) {
        if self.done {
            return;
        }
        self.done = true;
        self.metrics
            .direct_closes
            .with_label_values(&[reason.label()])
            .inc();
        if self.transport == Transport::Sse {
            self.out
                .push_back(close_sse(reason.label(), &self.cursor.resume_id()));
        }
    }

    fn on_item(&mut self, delivery: Arc<crate::hub::Delivery>) {
        let received_at = delivery.received_at;
        let Some(event) = self.cursor.accept(&delivery) else {
            self.metrics
                .dropped
                .with_label_values(&["already_delivered"])
                .inc();
            return;
        };
        if !event.is_writable() {
            self.metrics.dropped.with_label_values(&["format"]).inc();
            return;
        }
        let bytes = match self.transport {
            Transport::Raw => event.raw_line(),
            _ => event.sse(),
        };
        self.metrics.publish_to_write.observe(received_at);
        self.out.push_back(bytes);
    }

    fn wrote(&mut self) {
        if let Some((period, sleep)) = self.keep_alive.as_mut() {
            sleep.as_mut().reset(Instant::now() + *period);
        }
    }

    /// Polls the timers; true when one fired.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(expiry) = self.expiry.as_mut() {
            if expiry.as_mut().poll(cx).is_ready() {
                self.expiry = None;
                self.close(CloseReason::TokenExpired);
                return true;
            }
        }
        if let Some((period, sleep)) = self.keep_alive.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                sleep.as_mut().reset(Instant::now() + *period);
                self.out.push_back(Bytes::from_static(b":\n"));
                return true;
            }
        }
        false
    }
}

impl Body for DirectStream {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                this.wrote();
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.subscriber.queue().poll_pop(cx) {
                Poll::Ready(QueueEvent::Item(delivery)) => {
                    this.on_item(delivery);
                    continue;
                }
                Poll::Ready(QueueEvent::Overflowed) => {
                    this.close(CloseReason::Overflow);
                    continue;
                }
                Poll::Pending => {}
            }
            if this.poll_timers(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
