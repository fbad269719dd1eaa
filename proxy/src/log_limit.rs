//! Rate limiting for warnings caused by remote input.
//!
//! A publisher that keeps sending malformed messages must not be able to fill the log:
//! each input logs at most one warning per interval and reports how many it held back.
//! The metrics still count every rejection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admits one warning per `interval`; counts the ones it suppresses in between.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            state: Mutex::new(LimiterState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being the number of warnings
    /// suppressed since the previous one; `None` when this one must be dropped.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            state.last = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_with_the_suppressed_count() {
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(limiter.admit(start), Some(0));
        assert_eq!(limiter.admit(start + Duration::from_millis(10)), None);
        assert_eq!(limiter.admit(start + Duration::from_millis(20)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(1)), Some(2));
    }
}
