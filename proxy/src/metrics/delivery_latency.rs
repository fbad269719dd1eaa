//! The publish-to-write latency histogram, observed once per delivery.
//!
//! Every connection task observes it for every item it writes, from every worker
//! thread. Observing the shared histogram directly costs four atomic updates on cache
//! lines that then bounce between cores once per delivery — a visible share of fan-out
//! CPU. Instead each thread gathers observations in a local histogram and adds them to
//! the shared one when [`FLUSH_AFTER`] has passed, when the thread is about to park
//! (see [`flush_thread`], installed as the runtime's `on_thread_park` hook by the
//! binary), or when the thread ends. A scrape therefore lags by at most that much.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::local::LocalHistogram;
use prometheus::Histogram;

/// Longest time an observation waits in a thread's local histogram while the thread
/// keeps busy.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// `fjord_proxy_publish_to_write_seconds`, batched per thread.
#[derive(Clone)]
pub struct DeliveryLatency {
    shared: Histogram,
    /// Tells the histograms of several proxies in one process (tests) apart in the
    /// thread-local cache.
    id: usize,
}

struct Pending {
    id: usize,
    local: LocalHistogram,
    since: Instant,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.local.flush();
    }
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

impl DeliveryLatency {
    pub fn new(shared: Histogram) -> DeliveryLatency {
        DeliveryLatency {
            shared,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The shared histogram, for registration and tests.
    pub fn histogram(&self) -> &Histogram {
        &self.shared
    }

    /// Records one delivery of an item the hub received at `received_at`.
    pub fn observe(&self, received_at: Instant) {
        let now = Instant::now();
        let seconds = now.saturating_duration_since(received_at).as_secs_f64();
        // A thread-local being torn down (thread exit) cannot cache: observe directly.
        let cached = PENDING.try_with(|pending| {
            let mut pending = pending.borrow_mut();
            match pending.as_mut() {
                Some(p) if p.id == self.id => {
                    p.local.observe(seconds);
                    if now.saturating_duration_since(p.since) >= FLUSH_AFTER {
                        p.local.flush();
                        p.since = now;
                    }
                }
                _ => {
                    // Replacing flushes the other histogram's observations (Drop).
                    let local = self.shared.local();
                    local.observe(seconds);
                    *pending = Some(Pending {
                        id: self.id,
                        local,
                        since: now,
                    });
                }
            }
        });
        if cached.is_err() {
            self.shared.observe(seconds);
        }
    }
}

/// Adds this thread's gathered observations to their shared histogram. Cheap when
/// there are none; meant for the runtime's `on_thread_park` hook.
pub fn flush_thread() {
    let _ = PENDING.try_with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            if let Some(p) = pending.as_mut() {
                p.local.flush();
                p.since = Instant::now();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::HistogramOpts;

    fn histogram() -> Histogram {
        Histogram::with_opts(HistogramOpts::new("t", "t")).expect("valid")
    }

    #[test]
    fn observations_reach_the_shared_histogram_when_the_thread_flushes() {
        let latency = DeliveryLatency::new(histogram());
        let at = Instant::now();
        latency.observe(at);
        latency.observe(at);
        flush_thread();
        assert_eq!(latency.histogram().get_sample_count(), 2);
    }

    #[test]
    fn switching_histograms_on_one_thread_loses_no_observation() {
        let first = DeliveryLatency::new(histogram());
        let second = DeliveryLatency::new(histogram());
        let at = Instant::now();
        first.observe(at);
        second.observe(at);
        first.observe(at);
        flush_thread();
        assert_eq!(first.histogram().get_sample_count(), 2);
        assert_eq!(second.histogram().get_sample_count(), 1);
    }

    #[test]
    fn a_thread_that_ends_flushes_what_it_gathered() {
        let latency = DeliveryLatency::new(histogram());
        let on_thread = latency.clone();
        std::thread::spawn(move || on_thread.observe(Instant::now()))
            .join()
            .expect("thread ran");
        assert_eq!(latency.histogram().get_sample_count(), 1);
    }
}
