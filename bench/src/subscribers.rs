//! The subscriber side of a scenario: a fleet of SSE worker processes opened
//! against one server, the delivery count it should see, and the drain loop
//! that waits for late deliveries. Shared by the GRIP scenarios and the Kafka
//! end-to-end scenario.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use crate::fleet::{self, Fleet, FleetPlan, Merged, SetupSummary};
use crate::publisher::PublishReport;

/// Load-generator options shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct LoadOpts {
    /// Loopback source addresses for subscribers (default 127.0.0.2-17).
    #[arg(long, value_delimiter = ',')]
    pub sources: Option<Vec<IpAddr>>,
    /// Connection set-ups in flight, over all workers.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
    /// Most subscriber connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub per_worker: usize,
    /// Extra attempts for a failed connection set-up.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Forced reconnects in flight, over all workers (resume-storm).
    #[arg(long, default_value_t = 256)]
    pub reconnect_concurrency: usize,
    /// Seconds to let the system settle before memory samples.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Hard cap on the whole scenario, in seconds.
    #[arg(long, default_value_t = 1200)]
    pub max_seconds: u64,
}

/// Open subscriber connections: connection `i` listens on channel
/// `{prefix}{i % channels}`.
pub struct Subscribers {
    pub fleet: Fleet,
    pub setup: SetupSummary,
    pub conns: usize,
    pub channels: usize,
}

/// Where the subscribers connect and how their paths are formed.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Subscribe URL path is `{path_prefix}{channel}`.
    pub path_prefix: String,
}

impl Subscribers {
    /// Spawns the workers and waits until every connection set-up finished.
    pub async fn open(
        o: &LoadOpts,
        endpoint: &Endpoint,
        conns: usize,
        channels: usize,
        prefix: &str,
    ) -> Result<Subscribers> {
        let plan = FleetPlan {
            addr: endpoint.addr,
            path_prefix: endpoint.path_prefix.clone(),
            channel_prefix: prefix.to_string(),
            channels,
            channel: None,
            conns,
            per_worker: o.per_worker,
            min_workers: 2,
            sources: o.sources.clone().unwrap_or_else(fleet::default_sources),
            setup_concurrency: o.setup_concurrency,
            reconnect_concurrency: o.reconnect_concurrency,
            retries: o.retries,
            max_seconds: o.max_seconds + 60,
        };
        let mut fleet = Fleet::spawn(&plan)?;
        eprintln!(
            "bench: opening {conns} SSE connections on {channels} channel(s) with {} worker(s)",
            fleet.len()
        );
        let setup = fleet
            .wait_ready(Duration::from_secs(o.max_seconds))
            .await
            .context("waiting for subscribers")?;
        eprintln!(
            "bench: {} opened, {} failed in {:.1} s",
            setup.opened, setup.failed, setup.setup_s
        );
        Ok(Subscribers {
            fleet,
            setup,
            conns,
            channels,
        })
    }

    /// Deliveries expected when messages `0..attempted` (minus failed ones)
    /// go to channel `seq % channels` and connection `i` listens on
    /// `i % channels`. Every connection that opened counts, including ones
    /// the server closed later: what they missed is loss.
    pub fn expected(&self, report: &PublishReport) -> u64 {
        let ch = self.channels as u64;
        let total = report.attempted;
        let mut per_channel: Vec<u64> = (0..ch)
            .map(|c| total / ch + u64::from(c < total % ch))
            .collect();
        for &seq in &report.failed_seqs {
            per_channel[(seq % ch) as usize] -= 1;
        }
        let mut excluded = vec![false; self.conns];
        for &i in &self.setup.failed_idx {
            if let Some(x) = excluded.get_mut(i) {
                *x = true;
            }
        }
        (0..self.conns)
            .filter(|&i| !excluded[i])
            .map(|i| per_channel[i % self.channels])
            .sum()
    }

    /// Polls the workers until every expected event arrived, progress stalls
    /// for `stall`, or `max` has passed since publishing ended.
    pub async fn drain(
        &mut self,
        report: &PublishReport,
        t0: Instant,
        max: Duration,
        stall: Duration,
    ) -> Result<Drained> {
        let end = Instant::now() + max;
        let mut last_events = u64::MAX;
        let mut last_change = Instant::now();
        loop {
            let merged = self.fleet.report().await?;
            let exp = self.expected(report);
            if merged.events != last_events {
                last_events = merged.events;
                last_change = Instant::now();
            }
            let now = Instant::now();
            if merged.events >= exp || now > end || now - last_change > stall {
                return Ok(Drained {
                    merged,
                    expected: exp,
                    last_progress_s: (last_change - t0).as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// What the subscribers saw once publishing and draining ended.
pub struct Drained {
    pub merged: Merged,
    pub expected: u64,
    /// Seconds from publish start until the last observed delivery progress.
    pub last_progress_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribers(conns: usize, channels: usize, failed_idx: Vec<usize>) -> Subscribers {
        Subscribers {
            fleet: Fleet::empty(),
            setup: SetupSummary {
                failed_idx,
                ..Default::default()
            },
            conns,
            channels,
        }
    }

    #[test]
    fn expected_counts_each_connection_of_a_channel() {
        let s = subscribers(4, 2, vec![]);
        let report = PublishReport {
            attempted: 5,
            ..Default::default()
        };
        // channel 0 gets seqs 0, 2, 4; channel 1 gets 1, 3; two connections each.
        assert_eq!(s.expected(&report), 2 * 3 + 2 * 2);
    }

    #[test]
    fn expected_leaves_out_failed_publishes_and_connections() {
        let s = subscribers(4, 2, vec![3]);
        let report = PublishReport {
            attempted: 5,
            failed_seqs: vec![4],
            ..Default::default()
        };
        // channel 0 now has 2 messages (connections 0, 2), channel 1 has 2
        // (connection 1 only: 3 never opened).
        assert_eq!(s.expected(&report), 2 * 2 + 2);
    }
}
