//! Runner side of the load generator: spawns `fjord-bench worker` children
//! (each process is capped at 20,000 open files, so large connection counts
//! are split), talks to them over stdin/stdout and merges their reports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::histogram::{Histogram, LatencySummary};
use crate::worker::{Line, Ready, Report};

/// How subscribers are laid out.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    pub addr: SocketAddr,
    pub path_prefix: String,
    pub channel_prefix: String,
    pub channels: usize,
    /// Every connection on this one channel instead of
    /// `{channel_prefix}{i % channels}` (a broadcast channel).
    pub channel: Option<String>,
    pub conns: usize,
    pub per_worker: usize,
    pub min_workers: usize,
    pub sources: Vec<IpAddr>,
    /// Connection set-ups in flight across all workers together.
    pub setup_concurrency: usize,
    /// Forced reconnects in flight across all workers together.
    pub reconnect_concurrency: usize,
    pub retries: u32,
    pub max_seconds: u64,
}

/// Default loopback source addresses: 127.0.0.2 ..= 127.0.0.17.
pub fn default_sources() -> Vec<IpAddr> {
    (2..18)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect()
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Running worker processes; dropping the fleet kills them.
pub struct Fleet {
    workers: Vec<Worker>,
}

/// Merged `ready` lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupSummary {
    pub workers: usize,
    pub opened: u64,
    pub failed: u64,
    pub failed_attempts: u64,
    pub setup_s: f64,
    #[serde(skip)]
    pub failed_idx: Vec<usize>,
    pub errors: Vec<String>,
}

/// Merged `report` lines.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub opened: u64,
    pub closed: u64,
    pub events: u64,
    pub bad_events: u64,
    /// Events not above their connection's previous `seq`.
    pub regressions: u64,
    pub bytes: u64,
    pub latency: Histogram,
    pub reconnects: u64,
    pub reconnect_failures: u64,
    pub reconnect_latency: Histogram,
    pub catch_up_latency: Histogram,
}

impl Merged {
    pub fn latency_summary(&self) -> LatencySummary {
        self.latency.summary()
    }
}

impl Fleet {
    /// Spawns the workers; returns once all are started (not yet connected).
    pub fn spawn(plan: &FleetPlan) -> Result<Fleet> {
        let exe = std::env::current_exe().context("locate own executable")?;
        let n = plan
            .conns
            .div_ceil(plan.per_worker.max(1))
            .max(plan.min_workers)
            .min(plan.conns.max(1));
        let per_setup = plan.setup_concurrency.div_ceil(n).max(1);
        let per_reconnect = plan.reconnect_concurrency.div_ceil(n).max(1);
        let sources = plan
            .sources
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut workers = Vec::with_capacity(n);
        let mut first = 0;
        for k in 0..n {
            let count = plan.conns / n + usize::from(k < plan.conns % n);
            let mut cmd = Command::new(&exe);
            cmd.arg("worker")
                .args(["--addr", &plan.addr.to_string()])
                .args(["--path-prefix", &plan.path_prefix])
                .args(["--channel-prefix", &plan.channel_prefix])
                .args(["--channels", &plan.channels.to_string()])
                .args(["--first", &first.to_string()])
                .args(["--count", &count.to_string()])
                .args(["--sources", &sources])
                .args(["--setup-concurrency", &per_setup.to_string()])
                .args(["--reconnect-concurrency", &per_reconnect.to_string()])
                .args(["--retries", &plan.retries.to_string()])
                .args(["--max-seconds", &plan.max_seconds.to_string()]);
            if let Some(channel) = &plan.channel {
                cmd.args(["--channel", channel]);
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            // SAFETY: prctl is async-signal-safe; it only asks the kernel to
            // kill the child if the runner dies without cleaning up.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().context("spawn worker")?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            workers.push(Worker {
                child,
                stdin,
                lines: BufReader::new(stdout).lines(),
            });
            first += count;
        }
        Ok(Fleet { workers })
    }

    /// One fleet of all the workers of `fleets` (e.g. one fleet per server
    /// of a scenario with several): every command goes to all of them and
    /// their reports are merged.
    pub fn join(fleets: Vec<Fleet>) -> Fleet {
        Fleet {
            workers: fleets.into_iter().flat_map(|f| f.workers).collect(),
        }
    }

    /// A fleet without workers (for unit tests of the bookkeeping around it).
    #[cfg(test)]
    pub fn empty() -> Fleet {
        Fleet {
            workers: Vec::new(),
        }
    }

    /// Process ids of the live workers.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    async fn read_line(w: &mut Worker, timeout: Duration) -> Result<Line> {
        let line = tokio::time::timeout(timeout, w.lines.next_line())
            .await
            .map_err(|_| anyhow!("worker did not answer within {timeout:?}"))??;
        let Some(line) = line else {
            let status = w.child.try_wait()?;
            bail!("worker exited early ({status:?})");
        };
        serde_json::from_str(&line).with_context(|| format!("bad worker line {line:?}"))
    }

    /// Waits until every worker has finished its connection set-ups.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<SetupSummary> {
        let mut sum = SetupSummary {
            workers: self.workers.len(),
            ..Default::default()
        };
        for w in &mut self.workers {
            match Self::read_line(w, timeout).await? {
                Line::Ready(Ready {
                    opened,
                    failed,
                    failed_attempts,
                    setup_s,
                    failed_idx,
                    errors,
                }) => {
                    sum.opened += opened;
                    sum.failed += failed;
                    sum.failed_attempts += failed_attempts;
                    sum.setup_s = sum.setup_s.max(setup_s);
                    sum.failed_idx.extend(failed_idx);
                    for e in errors {
                        if sum.errors.len() < 8 && !sum.errors.contains(&e) {
                            sum.errors.push(e);
                        }
                    }
                }
                Line::Report(_) => bail!("worker sent a report before ready"),
            }
        }
        Ok(sum)
    }

    async fn send_all(&mut self, cmd: &str) -> Result<()> {
        for w in &mut self.workers {
            w.stdin.write_all(cmd.as_bytes()).await?;
            w.stdin.write_all(b"\n").await?;
            w.stdin.flush().await?;
        }
        Ok(())
    }

    /// Orders every connection to drop its stream and reconnect with its
    /// last event id; `next_seq` is the first record produced after the
    /// order, `since_us` the wall clock of the order.
    pub async fn storm(&mut self, next_seq: u64, since_us: u64) -> Result<()> {
        self.send_all(&format!("storm {next_seq} {since_us}")).await
    }

    /// Zeroes every worker's event counters and latency histogram.
    pub async fn reset(&mut self) -> Result<()> {
        self.send_all("reset").await
    }

    /// Collects and merges one report from every worker.
    pub async fn report(&mut self) -> Result<Merged> {
        self.send_all("report").await?;
        let mut m = Merged::default();
        for w in &mut self.workers {
            match Self::read_line(w, Duration::from_secs(30)).await? {
                Line::Report(Report {
                    opened,
                    closed,
                    events,
                    bad_events,
                    regressions,
                    bytes,
                    latency,
                    reconnects,
                    reconnect_failures,
                    reconnect_latency,
                    catch_up_latency,
                }) => {
                    m.opened += opened;
                    m.closed += closed;
                    m.events += events;
                    m.bad_events += bad_events;
                    m.regressions += regressions;
                    m.bytes += bytes;
                    m.latency.merge(&latency);
                    m.reconnects += reconnects;
                    m.reconnect_failures += reconnect_failures;
                    m.reconnect_latency.merge(&reconnect_latency);
                    m.catch_up_latency.merge(&catch_up_latency);
                }
                Line::Ready(_) => bail!("unexpected ready line"),
            }
        }
        Ok(m)
    }

    /// Asks the workers to exit and waits briefly; stragglers are killed.
    pub async fn stop(mut self) {
        let _ = self.send_all("stop").await;
        for w in &mut self.workers {
            if tokio::time::timeout(Duration::from_secs(5), w.child.wait())
                .await
                .is_err()
            {
                let _ = w.child.kill().await;
            }
        }
    }
}
