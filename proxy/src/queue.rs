//! The bounded outgoing queue of one held connection.
//!
//! The hub pushes, the connection pops. A push never waits: when the connection is
//! behind, the queue is marked overflowed and the connection is woken to close itself
//! (design "Limits and back-pressure"). The queue holds no allocation while empty,
//! which is the normal state of an idle connection.
//!
//! "Behind" means slow, not merely not yet scheduled. One publish of many items, or a
//! burst read from one ZeroMQ connection, is handed to the hub in a single run of the
//! publishing task, before any connection task has had a turn; counting those items
//! against the capacity alone would close clients that read perfectly well. So a
//! queue at capacity overflows only once it has been non-empty for [`BURST_GRACE`]
//! (its connection has had time to write and did not catch up: the client does not
//! read), and in any case at [`BURST_FACTOR`] times its capacity, which bounds memory.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long a queue at capacity may stay non-empty before its connection counts as
/// slow. Far above a connection task's scheduling delay, even on a loaded proxy; a
/// client that stopped reading is still closed within about this long of its socket
/// buffer filling.
pub const BURST_GRACE: Duration = Duration::from_millis(500);

/// A queue never holds more than this many times its capacity. Entries are shared
/// pointers, so even the limit costs a connection little memory.
pub const BURST_FACTOR: usize = 10;

/// Why a push did not enqueue the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue just overflowed (or had before); the connection will close.
    Full,
    /// The connection is gone.
    Closed,
}

/// What the connection side gets from the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueEvent<T> {
    Item(T),
    /// The queue overflowed; everything queued before the overflow was already taken.
    Overflowed,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// When the queue last went from empty to non-empty.
    filled_at: Option<Instant>,
    overflowed: bool,
    closed: bool,
    waker: Option<Waker>,
}

/// A bounded single-consumer queue with an overflow flag.
#[derive(Debug)]
pub struct ConnectionQueue<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

impl<T> ConnectionQueue<T> {
    pub fn new(capacity: usize) -> Self {
        ConnectionQueue {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                items: VecDeque::new(),
                filled_at: None,
                overflowed: false,
                closed: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section leaves the state consistent, so a poisoned lock
        // (a panic elsewhere while held) is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues `item` without waiting; `now` is the publish time, which decides
    /// whether a full queue is a burst still being written or a slow connection.
    pub fn push(&self, item: T, now: Instant) -> Result<(), PushError> {
        let state = self.lock();
        Self::check_open(&state)?;
        if self.is_behind(&state, now) {
            return Err(Self::overflow(state));
        }
        Self::enqueue(state, item, now);
        Ok(())
    }

    /// Whether one more item would leave the connection too far behind (module
    /// documentation).
    fn is_behind(&self, state: &State<T>, now: Instant) -> bool {
        let len = state.items.len();
        len >= self.capacity
            && (len >= self.capacity.saturating_mul(BURST_FACTOR)
                || state
                    .filled_at
                    .is_some_and(|since| now.saturating_duration_since(since) >= BURST_GRACE))
    }

    /// Enqueues `item` like [`ConnectionQueue::push`], except that a full queue first
    /// makes room by dropping the oldest queued item for which `same` holds (the new
    /// item goes to the back, so the queue stays in arrival order). Returns whether an
    /// item was replaced. With nothing to replace, the queue may grow to four times its
    /// capacity before it overflows: conflation bounds it by the number of distinct
    /// keys, and this bounds the keys.
    pub fn push_or_replace(
        &self,
        item: T,
        now: Instant,
        same: impl Fn(&T) -> bool,
    ) -> Result<bool, PushError> {
        let mut state = self.lock();
        Self::check_open(&state)?;
        let mut replaced = false;
        if state.items.len() >= self.capacity {
            if let Some(index) = state.items.iter().position(&same) {
                state.items.remove(index);
                replaced = true;
            } else if state.items.len() >= self.capacity.saturating_mul(4) {
                return Err(Self::overflow(state));
            }
        }
        Self::enqueue(state, item, now);
        Ok(replaced)
    }

    fn check_open(state: &State<T>) -> Result<(), PushError> {
        if state.closed {
            Err(PushError::Closed)
        } else if state.overflowed {
            Err(PushError::Full)
        } else {
            Ok(())
        }
    }

    /// Marks the queue overflowed and wakes the connection to close itself.
    fn overflow(mut state: MutexGuard<'_, State<T>>) -> PushError {
        state.overflowed = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        PushError::Full
    }

    /// Appends `item` and wakes the connection, outside the lock.
    fn enqueue(mut state: MutexGuard<'_, State<T>>, item: T, now: Instant) {
        if state.items.is_empty() {
            state.filled_at = Some(now);
        }
        state.items.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the next item, reports an overflow once the queue is drained, or
    /// registers the task to be woken by the next push.
    pub fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<QueueEvent<T>> {
        let mut state = self.lock();
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(QueueEvent::Item(item));
        }
        if state.overflowed {
            return Poll::Ready(QueueEvent::Overflowed);
        }
        // A poll with the no-op waker only peeks (the writer gathering a burst); it
        // must not displace the task's real waker, which would then be cloned back in
        // on the next poll, once per delivery.
        let peeking = cx.waker().will_wake(Waker::noop());
        if !peeking
            && !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        // Release the memory of a burst once it has been written.
        if state.items.capacity() > self.capacity {
            state.items.shrink_to_fit();
        }
        Poll::Pending
    }

    /// Takes the next item if there is one, without registering for wake-ups.
    pub fn try_pop(&self) -> Option<T> {
        self.lock().items.pop_front()
    }

    /// Waits for the next item or the overflow.
    pub async fn pop(&self) -> QueueEvent<T> {
        std::future::poll_fn(|cx| self.poll_pop(cx)).await
    }

    /// Refuses further pushes; called when the connection ends.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.items.clear();
        state.waker = None;
    }

    pub fn is_overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn items_come_out_in_push_order() {
        let q = ConnectionQueue::new(4);
        q.push(1, now()).unwrap();
        q.push(2, now()).unwrap();
        assert_eq!(q.try_pop(), Some(1));
        assert_eq!(q.try_pop(), Some(2));
        assert_eq!(q.try_pop(), None);
    }

    #[tokio::test]
    async fn overflow_is_reported_after_the_queued_items() {
        let q = ConnectionQueue::new(2);
        let start = now();
        q.push(1, start).unwrap();
        q.push(2, start).unwrap();
        let later = start + BURST_GRACE;
        assert_eq!(q.push(3, later), Err(PushError::Full));
        assert_eq!(q.push(4, later), Err(PushError::Full), "stays overflowed");
        assert_eq!(q.pop().await, QueueEvent::Item(1));
        assert_eq!(q.pop().await, QueueEvent::Item(2));
        assert_eq!(q.pop().await, QueueEvent::Overflowed);
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_connection() {
        let q = Arc::new(ConnectionQueue::new(2));
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move { q.pop().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(7, now()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .expect("task ran");
        assert_eq!(got, QueueEvent::Item(7));
    }

    #[test]
    fn a_peek_with_the_noop_waker_keeps_the_real_waker_registered() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let q = ConnectionQueue::new(2);
        assert!(q.poll_pop(&mut Context::from_waker(&waker)).is_pending());
        assert!(q
            .poll_pop(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        q.push(1, now()).unwrap();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_full_conflating_queue_replaces_the_oldest_item_of_the_same_key() {
        let q = ConnectionQueue::new(2);
        let same = |a: &(char, u32), b: (char, u32)| a.0 == b.0;
        assert_eq!(
            q.push_or_replace(('a', 1), now(), |x| same(x, ('a', 1))),
            Ok(false)
        );
        assert_eq!(
            q.push_or_replace(('b', 2), now(), |x| same(x, ('b', 2))),
            Ok(false)
        );
        assert_eq!(
            q.push_or_replace(('a', 3), now(), |x| same(x, ('a', 3))),
            Ok(true)
        );
        assert_eq!(q.try_pop(), Some(('b', 2)), "arrival order is kept");
        assert_eq!(q.try_pop(), Some(('a', 3)), "only the newest value of a");
        assert_eq!(q.try_pop(), None);
    }

    #[test]
    fn a_conflating_queue_without_repeated_keys_overflows_at_four_times_capacity() {
        let q = ConnectionQueue::new(2);
        for n in 0..8u32 {
            assert_eq!(q.push_or_replace(n, now(), |x| *x == n), Ok(false));
        }
        assert_eq!(
            q.push_or_replace(8, now(), |x| *x == 8),
            Err(PushError::Full)
        );
        assert!(q.is_overflowed());
    }

    #[test]
    fn a_full_queue_takes_a_burst_that_arrives_before_its_connection_runs() {
        let q = ConnectionQueue::new(2);
        let start = now();
        for n in 0..2 * BURST_FACTOR {
            assert_eq!(q.push(n, start + BURST_GRACE / 2), Ok(()), "item {n}");
        }
        assert_eq!(q.push(99, start), Err(PushError::Full), "bounded at 10x");
        assert!(q.is_overflowed());
    }

    #[test]
    fn a_queue_at_capacity_for_the_grace_period_overflows() {
        let q = ConnectionQueue::new(2);
        let start = now();
        q.push(1, start).unwrap();
        q.push(2, start).unwrap();
        q.push(3, start + BURST_GRACE / 2).unwrap();
        assert_eq!(q.push(4, start + BURST_GRACE), Err(PushError::Full));
    }

    #[test]
    fn the_grace_period_restarts_whenever_the_queue_empties() {
        let q = ConnectionQueue::new(2);
        let start = now();
        q.push(1, start).unwrap();
        assert_eq!(q.try_pop(), Some(1));
        let later = start + 2 * BURST_GRACE;
        q.push(2, later).unwrap();
        q.push(3, later).unwrap();
        assert_eq!(q.push(4, later), Ok(()), "full, but filled only now");
        assert_eq!(q.try_pop(), Some(2));
        assert_eq!(
            q.push(5, later + BURST_GRACE),
            Err(PushError::Full),
            "non-empty since `later`"
        );
    }

    #[test]
    fn closed_queue_refuses_pushes() {
        let q = ConnectionQueue::new(2);
        q.close();
        assert_eq!(q.push(1, now()), Err(PushError::Closed));
    }
}
