//! What one subscriber connection remembers across a reconnect: the last SSE
//! event id (sent back as `lastEventId`), the last `seq` seen (to count
//! duplicates and reordering), and, after a forced reconnect, the record it
//! must reach to count as caught up.

use std::fmt::Write as _;

/// Per-connection resume state; survives reconnects.
#[derive(Debug, Clone, Default)]
pub struct Trail {
    /// Value of the last `id:` field seen.
    pub last_id: Option<String>,
    /// `seq` of the last event.
    pub last_seq: Option<u64>,
    /// Set by a forced reconnect until the connection has caught up.
    pub catch_up: Option<CatchUp>,
}

/// The catch-up goal of a connection after a forced reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Highest `seq` of this connection's channel produced before the
    /// disconnect; `None` when there was none (caught up on reconnect).
    pub target: Option<u64>,
    /// Wall clock (µs) at which the disconnect was ordered.
    pub since_us: u64,
}

impl Trail {
    /// Whether the connection has everything up to its catch-up target.
    pub fn reached(&self, goal: &CatchUp) -> bool {
        match goal.target {
            None => true,
            Some(target) => self.last_seq.is_some_and(|seq| seq >= target),
        }
    }
}

/// Highest `k < next_seq` with `k % channels == channel`: the last record of
/// `channel` among the first `next_seq` records, when record `k` goes to
/// channel `k % channels`.
pub fn last_before(channel: u64, channels: u64, next_seq: u64) -> Option<u64> {
    if channels == 0 || next_seq <= channel {
        return None;
    }
    Some(channel + (next_seq - 1 - channel) / channels * channels)
}

/// `path` with `lastEventId=<id>` appended to its query, percent-encoded.
pub fn resume_path(path: &str, last_id: Option<&str>) -> String {
    let Some(id) = last_id else {
        return path.to_string();
    };
    let mut out = String::with_capacity(path.len() + id.len() + 16);
    out.push_str(path);
    out.push(if path.contains('?') { '&' } else { '?' });
    out.push_str("lastEventId=");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_record_of_a_channel_before_a_sequence_number() {
        // 4 channels: channel 1 gets 1, 5, 9, …
        assert_eq!(last_before(1, 4, 0), None);
        assert_eq!(last_before(1, 4, 1), None);
        assert_eq!(last_before(1, 4, 2), Some(1));
        assert_eq!(last_before(1, 4, 9), Some(5));
        assert_eq!(last_before(1, 4, 10), Some(9));
        assert_eq!(last_before(0, 1, 7), Some(6));
    }

    #[test]
    fn resume_path_encodes_the_id_into_the_query() {
        assert_eq!(resume_path("/orders/7", None), "/orders/7");
        assert_eq!(
            resume_path("/orders/7", Some("a-b_c.d")),
            "/orders/7?lastEventId=a-b_c.d"
        );
        assert_eq!(
            resume_path("/x?mode=sse", Some("a b+/")),
            "/x?mode=sse&lastEventId=a%20b%2B%2F"
        );
    }

    #[test]
    fn a_connection_is_caught_up_once_it_has_the_target() {
        let goal = CatchUp {
            target: Some(9),
            since_us: 0,
        };
        let mut trail = Trail::default();
        assert!(!trail.reached(&goal));
        trail.last_seq = Some(5);
        assert!(!trail.reached(&goal));
        trail.last_seq = Some(9);
        assert!(trail.reached(&goal));
        let nothing_to_wait_for = CatchUp {
            target: None,
            since_us: 0,
        };
        assert!(Trail::default().reached(&nothing_to_wait_for));
    }
}
