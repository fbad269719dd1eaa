//! Publishers that drive a target message rate into the system under test.
//!
//! Message `k` (0-based) goes to channel `{prefix}{k % channels}` and carries
//! `{"seq":k,"ts":<now µs>}` (see `payload`), timestamped right before it is
//! handed over. Three wire formats:
//! - `http`: Pushpin's HTTP publish API, `POST /publish/` with
//!   `{"items":[...]}`, batching every item due in a 5 ms tick into one
//!   request (Pushpin closes the connection after each POST);
//! - `zmq`: ZeroMQ PUSH to the PULL input, one item per frame, `J`+JSON or
//!   tnetstring;
//! - `nchan`: Nchan's publisher location, one `POST /pub/<channel>` per
//!   message over pooled keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use zeromq::{Socket, SocketSend, ZmqMessage};

use crate::payload;

pub(crate) const TICK: Duration = Duration::from_millis(5);
const FAILED_CAP: usize = 200_000;

/// Publisher wire format, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublisherKind {
    /// Pushpin-format HTTP publish API (batched items per POST).
    Http,
    /// ZeroMQ PUSH with `J`+JSON frames.
    Zmq,
    /// ZeroMQ PUSH with tnetstring frames.
    ZmqTnet,
    /// Nchan publisher endpoint (one POST per message).
    Nchan,
}

/// Where and how to publish.
#[derive(Debug, Clone)]
pub enum Target {
    GripHttp {
        addr: SocketAddr,
    },
    GripZmq {
        addr: SocketAddr,
        tnetstring: bool,
    },
    Nchan {
        addr: SocketAddr,
        path_prefix: String,
    },
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Plan {
    pub channel_prefix: String,
    pub channels: usize,
    /// Messages per second over all channels.
    pub rate: f64,
    /// Message count cap.
    pub total: u64,
    /// Time cap for dispatching.
    pub max_duration: Duration,
    /// Most items per HTTP publish request.
    pub batch_max: usize,
    /// Most requests in flight.
    pub in_flight: usize,
}

/// Outcome of one publishing run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishReport {
    pub attempted: u64,
    pub published: u64,
    /// Messages the server definitely rejected (error status).
    pub failed: u64,
    /// Messages whose request timed out or lost its connection: the server
    /// may still have published them, so they stay in the expected count.
    pub uncertain: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub elapsed_s: f64,
    pub achieved_rate: f64,
    pub errors: Vec<String>,
    /// Sequence numbers of messages whose publish failed (capped).
    #[serde(skip)]
    pub failed_seqs: Vec<u64>,
}

/// Why a publish request did not succeed.
enum Failure {
    /// The server answered with an error: nothing was published.
    Rejected(String),
    /// No answer (timeout, connection lost): outcome unknown.
    Unknown(String),
}

impl PublishReport {
    fn fail(&mut self, seqs: Vec<u64>, failure: Failure) {
        self.failed_requests += 1;
        let error = match failure {
            Failure::Rejected(e) => {
                self.failed += seqs.len() as u64;
                if self.failed_seqs.len() < FAILED_CAP {
                    self.failed_seqs.extend(seqs);
                }
                e
            }
            Failure::Unknown(e) => {
                self.uncertain += seqs.len() as u64;
                e
            }
        };
        if self.errors.len() < 5 && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }
}

/// Paces message indices against the wall clock.
pub(crate) struct Pacer {
    pub(crate) start: Instant,
    rate: f64,
    total: u64,
    pub(crate) next: u64,
}

impl Pacer {
    /// Starts the clock now: message `k` is due at `k / rate` seconds.
    pub(crate) fn new(rate: f64, total: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate,
            total,
            next: 0,
        }
    }

    /// Indices that are due now and not yet handed out.
    pub(crate) fn due(&mut self) -> std::ops::Range<u64> {
        let target = ((self.start.elapsed().as_secs_f64() * self.rate) as u64 + 1).min(self.total);
        let r = self.next..target.max(self.next);
        self.next = r.end;
        r
    }
}

fn channel(plan: &Plan, seq: u64) -> String {
    format!("{}{}", plan.channel_prefix, seq % plan.channels as u64)
}

/// Runs a bounded publishing session.
pub async fn run(target: &Target, plan: &Plan) -> Result<PublishReport> {
    anyhow::ensure!(plan.channels > 0 && plan.rate > 0.0, "bad publish plan");
    let mut report = match target {
        Target::GripZmq { addr, tnetstring } => run_zmq(*addr, *tnetstring, plan).await?,
        _ => run_http(target, plan).await?,
    };
    report.published = report.attempted - report.failed - report.uncertain;
    if report.elapsed_s > 0.0 {
        report.achieved_rate = report.published as f64 / report.elapsed_s;
    }
    Ok(report)
}

fn grip_item(channel: &str, seq: u64, ts: u64) -> serde_json::Value {
    json!({
        "channel": channel,
        "formats": {"http-stream": {"content": payload::sse_event(seq, ts)}},
    })
}

async fn run_http(target: &Target, plan: &Plan) -> Result<PublishReport> {
    // No Nagle: a request's head and body may go out in separate writes, and
    // Nagle plus delayed ACKs would add ~40 ms to every publish.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let sem = Arc::new(Semaphore::new(plan.in_flight.max(1)));
    let mut set: JoinSet<Result<u64, (Vec<u64>, Failure)>> = JoinSet::new();
    let mut report = PublishReport::default();
    let mut pacer = Pacer {
        start: Instant::now(),
        rate: plan.rate,
        total: plan.total,
        next: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let batch = match target {
        Target::Nchan { .. } => 1,
        _ => plan.batch_max.max(1),
    } as u64;

    while pacer.next < plan.total && pacer.start.elapsed() < plan.max_duration {
        tick.tick().await;
        let due = pacer.due();
        let mut seq = due.start;
        while seq < due.end {
            let end = (seq + batch).min(due.end);
            let permit = sem.clone().acquire_owned().await?;
            let ts = payload::now_us();
            let seqs: Vec<u64> = (seq..end).collect();
            let (uri, body) = match target {
                Target::GripHttp { addr } => {
                    let items: Vec<_> = seqs
                        .iter()
                        .map(|&s| grip_item(&channel(plan, s), s, ts))
                        .collect();
                    (
                        format!("http://{addr}/publish/"),
                        serde_json::to_vec(&json!({ "items": items }))?,
                    )
                }
                Target::Nchan { addr, path_prefix } => (
                    format!("http://{addr}{path_prefix}{}", channel(plan, seq)),
                    payload::body(seq, ts).into_bytes(),
                ),
                Target::GripZmq { .. } => unreachable!("zmq handled separately"),
            };
            report.attempted += seqs.len() as u64;
            report.requests += 1;
            let client = client.clone();
            set.spawn(async move {
                let _permit = permit;
                let n = seqs.len() as u64;
                match post(&client, &uri, body).await {
                    Ok(()) => Ok(n),
                    Err(f) => Err((seqs, f)),
                }
            });
            seq = end;
        }
        while let Some(done) = set.try_join_next() {
            if let Err((seqs, e)) = done? {
                report.fail(seqs, e);
            }
        }
    }
    let drain = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(done) = set.join_next().await {
            if let Err((seqs, e)) = done? {
                report.fail(seqs, e);
            }
        }
        anyhow::Ok(())
    })
    .await;
    match drain {
        Ok(r) => r?,
        Err(_) => {
            let left = set.len();
            set.abort_all();
            bail!("{left} publish requests still pending after 90 s");
        }
    }
    report.elapsed_s = pacer.start.elapsed().as_secs_f64();
    Ok(report)
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &str,
    body: Vec<u8>,
) -> Result<(), Failure> {
    let req = hyper::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::Rejected(format!("build request: {e}")))?;
    let exchange = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = match tokio::time::timeout(Duration::from_secs(60), exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(Failure::Unknown(format!("publish request: {e:#}"))),
        Err(_) => return Err(Failure::Unknown("publish request timed out (60 s)".into())),
    };
    if !status.is_success() {
        return Err(Failure::Rejected(format!(
            "publish status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )));
    }
    Ok(())
}

/// tnetstring encoding of one `http-stream` item (§4.6 of the GRIP spec).
fn tnet_item(channel: &str, content: &str) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &[u8]) {
        out.extend_from_slice(format!("{}:", v.len()).as_bytes());
        out.extend_from_slice(v);
        out.push(b',');
    }
    fn dict(out: &mut Vec<u8>, inner: &[u8]) {
        out.extend_from_slice(format!("{}:", inner.len()).as_bytes());
        out.extend_from_slice(inner);
        out.push(b'}');
    }
    let mut stream = Vec::new();
    s(&mut stream, b"content");
    s(&mut stream, content.as_bytes());
    let mut formats = Vec::new();
    s(&mut formats, b"http-stream");
    dict(&mut formats, &stream);
    let mut item = Vec::new();
    s(&mut item, b"channel");
    s(&mut item, channel.as_bytes());
    s(&mut item, b"formats");
    dict(&mut item, &formats);
    let mut out = Vec::new();
    dict(&mut out, &item);
    out
}

async fn run_zmq(addr: SocketAddr, tnetstring: bool, plan: &Plan) -> Result<PublishReport> {
    let mut socket = zeromq::PushSocket::new();
    let endpoint = format!("tcp://{addr}");
    tokio::time::timeout(Duration::from_secs(10), socket.connect(&endpoint))
        .await
        .context("zmq connect timed out")?
        .with_context(|| format!("zmq connect {endpoint}"))?;
    let mut report = PublishReport::default();
    let mut pacer = Pacer {
        start: Instant::now(),
        rate: plan.rate,
        total: plan.total,
        next: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while pacer.next < plan.total && pacer.start.elapsed() < plan.max_duration {
        tick.tick().await;
        for seq in pacer.due() {
            let ts = payload::now_us();
            let ch = channel(plan, seq);
            let frame = if tnetstring {
                tnet_item(&ch, &payload::sse_event(seq, ts))
            } else {
                let mut f = b"J".to_vec();
                f.extend(serde_json::to_vec(&grip_item(&ch, seq, ts))?);
                f
            };
            report.attempted += 1;
            report.requests += 1;
            let sent = tokio::time::timeout(
                Duration::from_secs(5),
                socket.send(ZmqMessage::from(Bytes::from(frame))),
            )
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => report.fail(vec![seq], Failure::Unknown(format!("zmq send: {e}"))),
                Err(_) => report.fail(vec![seq], Failure::Unknown("zmq send timed out".into())),
            }
        }
    }
    report.elapsed_s = pacer.start.elapsed().as_secs_f64();
    // Give the socket a moment to flush before it is dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = socket.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tnetstring_matches_spec_example() {
        let got = tnet_item("test", "hi\n");
        assert_eq!(
            got,
            b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}".to_vec()
        );
    }

    #[test]
    fn pacer_is_bounded() {
        let mut p = Pacer {
            start: Instant::now() - Duration::from_secs(10),
            rate: 100.0,
            total: 50,
            next: 0,
        };
        assert_eq!(p.due(), 0..50);
        assert_eq!(p.due(), 50..50);
    }
}
