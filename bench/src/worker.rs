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
use tokio::sync::{mpsc, Semaphore};

use crate::histogram::SparseHistogram;
use crate::sse::{self, Counters};

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
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();

    for idx in args.first..args.first + args.count {
        let channel = format!("{}{}", args.channel_prefix, idx % args.channels);
        let path = format!("{}{}", args.path_prefix, channel);
        let source = args.sources[idx % args.sources.len()];
        let shared = shared.clone();
        let permits = permits.clone();
        let tx = tx.clone();
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
            let res = stream.pump(&shared.counters).await;
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
    }
}
