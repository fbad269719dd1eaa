//! The bounded outgoing queue of one held connection.
//!
//! The hub pushes, the connection pops. A push never waits: when the queue is full the
//! queue is marked overflowed and the connection is woken to close itself (design
//! "Limits and back-pressure"). The queue holds no allocation while empty, which is
//! the normal state of an idle connection.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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

    /// Enqueues `item` without waiting.
    pub fn push(&self, item: T) -> Result<(), PushError> {
        let state = self.lock();
        Self::check_open(&state)?;
        if state.items.len() >= self.capacity {
            return Err(Self::overflow(state));
        }
        Self::enqueue(state, item);
        Ok(())
    }

    /// Enqueues `item` like [`ConnectionQueue::push`], except that a full queue first
    /// makes room by dropping the oldest queued item for which `same` holds (the new
    /// item goes to the back, so the queue stays in arrival order). Returns whether an
    /// item was replaced. With nothing to replace, the queue may grow to four times its
    /// capacity before it overflows: conflation bounds it by the number of distinct
    /// keys, and this bounds the keys.
    pub fn push_or_replace(&self, item: T, same: impl Fn(&T) -> bool) -> Result<bool, PushError> {
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
        Self::enqueue(state, item);
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
    fn enqueue(mut state: MutexGuard<'_, State<T>>, item: T) {
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

    #[test]
    fn items_come_out_in_push_order() {
        let q = ConnectionQueue::new(4);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.try_pop(), Some(1));
        assert_eq!(q.try_pop(), Some(2));
        assert_eq!(q.try_pop(), None);
    }

    #[tokio::test]
    async fn overflow_is_reported_after_the_queued_items() {
        let q = ConnectionQueue::new(2);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.push(3), Err(PushError::Full));
        assert_eq!(q.push(4), Err(PushError::Full), "stays overflowed");
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
        q.push(7).unwrap();
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
        q.push(1).unwrap();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_full_conflating_queue_replaces_the_oldest_item_of_the_same_key() {
        let q = ConnectionQueue::new(2);
        let same = |a: &(char, u32), b: (char, u32)| a.0 == b.0;
        assert_eq!(
            q.push_or_replace(('a', 1), |x| same(x, ('a', 1))),
            Ok(false)
        );
        assert_eq!(
            q.push_or_replace(('b', 2), |x| same(x, ('b', 2))),
            Ok(false)
        );
        assert_eq!(q.push_or_replace(('a', 3), |x| same(x, ('a', 3))), Ok(true));
        assert_eq!(q.try_pop(), Some(('b', 2)), "arrival order is kept");
        assert_eq!(q.try_pop(), Some(('a', 3)), "only the newest value of a");
        assert_eq!(q.try_pop(), None);
    }

    #[test]
    fn a_conflating_queue_without_repeated_keys_overflows_at_four_times_capacity() {
        let q = ConnectionQueue::new(2);
        for n in 0..8u32 {
            assert_eq!(q.push_or_replace(n, |x| *x == n), Ok(false));
        }
        assert_eq!(q.push_or_replace(8, |x| *x == 8), Err(PushError::Full));
        assert!(q.is_overflowed());
    }

    #[test]
    fn closed_queue_refuses_pushes() {
        let q = ConnectionQueue::new(2);
        q.close();
        assert_eq!(q.push(1), Err(PushError::Closed));
    }
}
