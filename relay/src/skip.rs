//! Why a record produced no item for a rule. A bad record never stops the relay (§9): it
//! is skipped, counted by reason, and logged at a limited rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The typed reason a record could not be turned into an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SkipReason {
    #[error("the record has no key")]
    MissingKey,
    #[error("the record key is not UTF-8")]
    KeyNotUtf8,
    #[error("a header named in a template is missing or has no value")]
    MissingHeader,
    #[error("a header used in a template is not UTF-8")]
    HeaderNotUtf8,
    #[error("the record has no value (tombstone)")]
    NoValue,
    #[error("the record value is not JSON")]
    ValueNotJson,
    #[error("a JSON field named in a template is missing")]
    MissingJsonField,
    #[error("a JSON field used in a template is an object, array or null")]
    JsonNotScalar,
    #[error("the channel rendered empty")]
    EmptyChannel,
    #[error("the SSE event name contains a line break")]
    InvalidEvent,
    #[error("the record value exceeds the configured maximum size")]
    ValueTooLarge,
}

impl SkipReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [SkipReason; 11] = [
        SkipReason::MissingKey,
        SkipReason::KeyNotUtf8,
        SkipReason::MissingHeader,
        SkipReason::HeaderNotUtf8,
        SkipReason::NoValue,
        SkipReason::ValueNotJson,
        SkipReason::MissingJsonField,
        SkipReason::JsonNotScalar,
        SkipReason::EmptyChannel,
        SkipReason::InvalidEvent,
        SkipReason::ValueTooLarge,
    ];

    /// The `reason` label of the skipped-records metric.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::MissingKey => "missing_key",
            SkipReason::KeyNotUtf8 => "key_not_utf8",
            SkipReason::MissingHeader => "missing_header",
            SkipReason::HeaderNotUtf8 => "header_not_utf8",
            SkipReason::NoValue => "no_value",
            SkipReason::ValueNotJson => "value_not_json",
            SkipReason::MissingJsonField => "missing_json_field",
            SkipReason::JsonNotScalar => "json_not_scalar",
            SkipReason::EmptyChannel => "empty_channel",
            SkipReason::InvalidEvent => "invalid_event",
            SkipReason::ValueTooLarge => "value_too_large",
        }
    }
}

/// Lets one warning through per interval and counts what it held back, so a topic full
/// of bad records cannot flood the log.
#[derive(Debug)]
pub struct RateLimitedWarning {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedWarning {
    pub fn new(interval: Duration) -> Self {
        RateLimitedWarning {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were suppressed
    /// since the last one; `None` when this one should be suppressed.
    pub fn admit(&self) -> Option<u64> {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = SkipReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), SkipReason::ALL.len());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let limiter = RateLimitedWarning::new(Duration::from_secs(60));
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), None);
        assert_eq!(limiter.admit(), None);
        let zero = RateLimitedWarning::new(Duration::ZERO);
        assert_eq!(zero.admit(), Some(0));
        assert_eq!(zero.admit(), Some(0));
    }
}
