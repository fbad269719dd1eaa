//! `fjord-bench worker`: one load-generator process holding a share of the
//! subscriber connections.
//!
//! Connection `i` (global index, `first..first+count`) subscribes to channel
//! `{channel_prefix}{i % channels}` at `{path_prefix}{channel}` and connects
//! from `sources[i % sources.len()]`.
//!
//! Protocol with the runner (one JSON object per stdout line):
//! - after every connection attempt has finished: `{"type":"ready",...}`;
//! - stdin `reset`  → zero event counters and the latency histogram;
//! - stdin `report` → one `{"type":"report",...}` line;
//! - stdin `storm NEXT_SEQ T_US` → every connection drops its stream at once
//!   and reconnects with `lastEventId=<its last event id>`; it counts as
//!   caught up once it has the last record of its channel below `NEXT_SEQ`
//!   (record `k` goes to channel `k % channels`); times are from `T_US`;
//! - stdin `stop` or end of stdin → exit. The process also exits by itself
//!   after `--max-seconds`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::histogram::SparseHistogram;
use crate::resume::{self, CatchUp};
use crate::sse::{self, Counters, OpenStream};

/// Arguments of `fjord-bench worker` (normally passed by the runner).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Client address of the system under test.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Path prefix before the channel name ("/" or "/sub/").
    #[arg(long, default_value = "/")]
    pub path_prefix: String,
    #[arg(long, default_value = "c")]
    pub channel_prefix: String,
    /// Number of distinct channels; connection i uses channel i % channels.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Every connection subscribes to this one channel instead (a broadcast
    /// channel); `seq` order and catch-up still use `i % channels`.
    #[arg(long)]
    pub channel: Option<String>,
    /// Global index of this worker's first connection.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Number of connections this worker opens.
    #[arg(long)]
    pub count: usize,
    /// Comma-separated loopback source addresses to bind before connecting.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.2")]
    pub sources: Vec<IpAddr>,
    /// Connection set-ups in flight at once (this worker).
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,
    /// Extra attempts for a connection whose set-up failed.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Per-attempt set-up timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub setup_timeout: u64,
    /// Forced reconnects in flight at once (this worker).
    #[arg(long, default_value_t = 128)]
    pub reconnect_concurrency: usize,
    /// Hard lifetime cap in seconds.
    #[arg(long, default_value_t = 1800)]
    pub max_seconds: u64,
}

/// First line a worker prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    pub opened: u64,
    pub failed: u64,
    pub failed_attempts: u64,
    pub setup_s: f64,
    /// Global indices of connections that never opened (capped).
    pub failed_idx: Vec<usize>,
    /// A few distinct error messages, for diagnosis.
    pub errors: Vec<String>,
}

/// A counters snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub opened: u64,
    pub closed: u64,
    pub events: u64,
    pub bad_events: u64,
    /// Events not above their connection's previous `seq` (duplicates or
    /// reordering).
    #[serde(default)]
    pub regressions: u64,
    pub bytes: u64,
    pub latency: SparseHistogram,
    #[serde(default)]
    pub reconnects: u64,
    #[serde(default)]
    pub reconnect_failures: u64,
    #[serde(default)]
    pub reconnect_latency: SparseHistogram,
    #[serde(default)]
    pub catch_up_latency: SparseHistogram,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Ready(Ready),
    Report(Report),
}

const IDX_CAP: usize = 50_000;

#[derive(Default)]
struct Shared {
    counters: Counters,
    opened: AtomicU64,
    closed: AtomicU64,
}

/// A forced disconnect, as ordered by the runner.
#[derive(Debug, Clone, Copy)]
struct Storm {
    next_seq: u64,
    since_us: u64,
}

/// What a connection task needs to reconnect.
struct Reconnect {
    source: IpAddr,
    addr: SocketAddr,
    path: String,
    channel_index: u64,
    channels: u64,
    retries: u32,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

enum SetupResult {
    Opened,
    Failed {
        idx: usize,
        attempts: u32,
        error: String,
    },
}

pub fn main(args: WorkerArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let max = Duration::from_secs(args.max_seconds);
    rt.block_on(async move {
        match tokio::time::timeout(max, run(args)).await {
            Ok(r) => r,
            Err(_) => {
                eprintln!("worker: lifetime cap reached, exiting");
                Ok(())
            }
        }
    })?;
    // Do not wait for connection tasks to wind down; the process is done.
    std::process::exit(0);
}

fn emit(line: &Line) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

async fn run(args: WorkerArgs) -> Result<()> {
    anyhow::ensure!(!args.sources.is_empty(), "no source addresses");
    anyhow::ensure!(args.channels > 0, "channels must be > 0");
    let shared = Arc::new(Shared::default());
    let permits = Arc::new(Semaphore::new(args.setup_concurrency.max(1)));
    let reconnect_permits = Arc::new(Semaphore::new(args.reconnect_concurrency.max(1)));
    let (storm_tx, storm_rx) = watch::channel(None::<Storm>);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();

    for idx in args.first..args.first + args.count {
        let channel = match &args.channel {
            Some(name) => name.clone(),
            None => format!("{}{}", args.channel_prefix, idx % args.channels),
        };
        let path = format!("{}{}", args.path_prefix, channel);
        let source = args.sources[idx % args.sources.len()];
        let shared = shared.clone();
        let permits = permits.clone();
        let tx = tx.clone();
        let storms = storm_rx.clone();
        let reconnect = Reconnect {
            source,
            addr: args.addr,
            path: path.clone(),
            channel_index: (idx % args.channels) as u64,
            channels: args.channels as u64,
            retries: args.retries,
            timeout: Duration::from_secs(args.setup_timeout),
            permits: reconnect_permits.clone(),
        };
        let (addr, retries) = (args.addr, args.retries);
        let timeout = Duration::from_secs(args.setup_timeout);
        tokio::spawn(async move {
            let mut attempts = 0;
            let stream = loop {
                attempts += 1;
                let permit = permits.acquire().await.expect("semaphore open");
                let res = sse::open(source, addr, &path, timeout).await;
                drop(permit);
                match res {
                    Ok(s) => break s,
                    Err(e) if attempts > retries => {
                        let _ = tx.send(SetupResult::Failed {
                            idx,
                            attempts,
                            error: format!("{e:#}"),
                        });
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            shared.opened.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(SetupResult::Opened);
            drop(tx);
            let opened_at = Instant::now();
            let res = hold(stream, storms, &reconnect, &shared.counters).await;
            let why = match res {
                Ok(()) => "closed by server".to_string(),
                Err(e) => format!("failed: {e:#}"),
            };
            if shared.closed.fetch_add(1, Ordering::Relaxed) < 10 {
                eprintln!(
                    "worker: connection {idx} {why} after {:.1} s",
                    opened_at.elapsed().as_secs_f64()
                );
            }
        });
    }
    drop(tx);

    let mut ready = Ready::default();
    let mut done = 0;
    while done < args.count {
        match rx.recv().await {
            Some(SetupResult::Opened) => ready.opened += 1,
            Some(SetupResult::Failed {
                idx,
                attempts,
                error,
            }) => {
                ready.failed += 1;
                ready.failed_attempts += u64::from(attempts);
                if ready.failed_idx.len() < IDX_CAP {
                    ready.failed_idx.push(idx);
                }
                if ready.errors.len() < 5 && !ready.errors.contains(&error) {
                    ready.errors.push(error);
                }
            }
            None => break,
        }
        done += 1;
    }
    ready.setup_s = started.elapsed().as_secs_f64();
    emit(&Line::Ready(ready))?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(cmd) = lines.next_line().await? {
        match cmd.trim() {
            "reset" => shared.counters.reset(),
            cmd if cmd.starts_with("storm ") => match parse_storm(cmd) {
                Some(storm) => {
                    let _ = storm_tx.send(Some(storm));
                }
                None => eprintln!("worker: bad storm command {cmd:?}"),
            },
            "report" => emit(&Line::Report(snapshot(&shared)))?,
            "stop" => break,
            "" => {}
            other => eprintln!("worker: unknown command {other:?}"),
        }
    }
    Ok(())
}

fn snapshot(shared: &Shared) -> Report {
    let c = &shared.counters;
    Report {
        opened: shared.opened.load(Ordering::Relaxed),
        closed: shared.closed.load(Ordering::Relaxed),
        events: c.events.load(Ordering::Relaxed),
        bad_events: c.bad_events.load(Ordering::Relaxed),
        regressions: c.regressions.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        latency: c.latency.lock().expect("latency lock").to_sparse(),
        reconnects: c.reconnects.load(Ordering::Relaxed),
        reconnect_failures: c.reconnect_failures.load(Ordering::Relaxed),
        reconnect_latency: c
            .reconnect_latency
            .lock()
            .expect("reconnect lock")
            .to_sparse(),
        catch_up_latency: c
            .catch_up_latency
            .lock()
            .expect("catch-up lock")
            .to_sparse(),
    }
}

fn parse_storm(cmd: &str) -> Option<Storm> {
    let mut parts = cmd.split_whitespace().skip(1);
    let next_seq = parts.next()?.parse().ok()?;
    let since_us = parts.next()?.parse().ok()?;
    Some(Storm { next_seq, since_us })
}

/// Reads the stream until the server closes it; on a storm order, drops it
/// and reconnects with the last event id, then goes on reading. Returns
/// `Ok` when the server closed the stream, an error when reading or
/// reconnecting failed.
async fn hold(
    mut stream: OpenStream,
    mut storms: watch::Receiver<Option<Storm>>,
    r: &Reconnect,
    counters: &Counters,
) -> Result<()> {
    enum Next {
        Closed(Result<()>),
        Storm(Option<Storm>),
    }
    loop {
        let next = tokio::select! {
            res = stream.pump(counters) => Next::Closed(res),
            changed = storms.changed() => match changed {
                Ok(()) => Next::Storm(*storms.borrow_and_update()),
                // The runner is gone: keep reading until the process exits.
                Err(_) => Next::Closed(stream.pump(counters).await),
            },
        };
        let storm = match next {
            Next::Closed(res) => return res,
            Next::Storm(None) => continue,
            Next::Storm(Some(storm)) => storm,
        };
        let mut trail = std::mem::take(&mut stream.trail);
        drop(stream); // the disconnect
        let goal = CatchUp {
            target: resume::last_before(r.channel_index, r.channels, storm.next_seq),
            since_us: storm.since_us,
        };
        let path = resume::resume_path(&r.path, trail.last_id.as_deref());
        let mut attempts = 0;
        stream = loop {
            attempts += 1;
            let permit = r.permits.acquire().await.expect("semaphore open");
            let res = sse::open(r.source, r.addr, &path, r.timeout).await;
            drop(permit);
            match res {
                Ok(s) => break s,
                Err(e) if attempts > r.retries => {
                    counters.reconnect_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e.context("reconnect"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let took = crate::payload::now_us().saturating_sub(storm.since_us);
        counters.reconnects.fetch_add(1, Ordering::Relaxed);
        counters
            .reconnect_latency
            .lock()
            .expect("reconnect lock")
            .record(took);
        if trail.reached(&goal) {
            counters.caught_up(goal.since_us);
        } else {
            trail.catch_up = Some(goal);
        }
        stream.trail = trail;
    }
}
