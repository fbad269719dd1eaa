//! The PUSH output (§4.2, §9): the relay connects to a Pushpin-style PULL endpoint and
//! sends each item as one tnetstring frame, channel included, so an unmodified Pushpin can
//! be fed. Every configured endpoint gets every item (each proxy serves its own clients),
//! unlike a single ZeroMQ PUSH socket that would round-robin between them.
//!
//! Hand-off is "written to the connection": `publish` waits while the endpoint is down and
//! re-sends a batch whose write failed on a fresh connection (at-least-once; the proxy's
//! dedup by item id removes the repeats, §3.7).

use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::item::PublishItem;
use fjord_protocol::zmq::{encode_pull_frame, PullEncoding};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::zmtp::{self, Endpoint, Incoming, SocketType};
use crate::metrics::RelayMetrics;

const MAX_INBOUND_MESSAGE: usize = 64 * 1024;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

struct Batch {
    frames: Vec<Bytes>,
    done: oneshot::Sender<()>,
}

/// A connection manager for one PULL endpoint.
pub struct PushOutput {
    endpoint: String,
    batches: mpsc::Sender<Batch>,
    task: AbortHandle,
    metrics: RelayMetrics,
}

impl Drop for PushOutput {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PushOutput {
    /// Starts connecting to `endpoint` in the background.
    pub fn start(endpoint: Endpoint, metrics: RelayMetrics) -> PushOutput {
        let (batches, queue) = mpsc::channel(1);
        let name = endpoint.to_string();
        let task = tokio::spawn(run(endpoint, queue));
        PushOutput {
            endpoint: name,
            batches,
            task: task.abort_handle(),
            metrics,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Returns once every item was written to the PULL endpoint.
    pub async fn publish(&self, items: &[PublishItem]) {
        if items.is_empty() {
            return;
        }
        let frames = items
            .iter()
            .map(|item| Bytes::from(encode_pull_frame(item, PullEncoding::Tnetstring)))
            .collect();
        let (done, written) = oneshot::channel();
        if self.batches.send(Batch { frames, done }).await.is_err() || written.await.is_err() {
            // Only when the relay is shutting down.
            return;
        }
        self.metrics
            .items_published
            .with_label_values(&["push"])
            .inc_by(items.len() as u64);
    }
}

async fn run(endpoint: Endpoint, mut queue: mpsc::Receiver<Batch>) {
    let mut backoff = RECONNECT_MIN;
    let mut pending: Option<Batch> = None;
    loop {
        let mut connection = match connect(&endpoint).await {
            Ok(connection) => {
                tracing::info!(%endpoint, "PUSH output connected");
                backoff = RECONNECT_MIN;
                connection
            }
            Err(error) => {
                tracing::warn!(%endpoint, %error, retry_in = ?backoff, "PUSH output cannot connect");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        // The PULL side only ever sends heartbeats; a reader task answers them and
        // notices when the connection goes away.
        let (pings, mut ping_queue) = mpsc::channel::<Bytes>(4);
        let (closed_tx, mut closed) = oneshot::channel::<()>();
        let mut reader = connection.reader;
        let reader_task = tokio::spawn(async move {
            loop {
                match reader.next().await {
                    Ok(Some(Incoming::Command { name, data })) if name.as_ref() == b"PING" => {
                        if pings.send(data).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = closed_tx.send(());
        });
        let writer = &mut connection.writer;
        let failed = loop {
            if let Some(batch) = pending.take() {
                for frame in &batch.frames {
                    writer.push_message(&[frame]);
                }
                match writer.flush_buffer().await {
                    Ok(()) => {
                        let _ = batch.done.send(());
                    }
                    Err(error) => {
                        pending = Some(batch);
                        break error.to_string();
                    }
                }
            }
            tokio::select! {
                batch = queue.recv() => match batch {
                    Some(batch) => pending = Some(batch),
                    None => {
                        reader_task.abort();
                        return;
                    }
                },
                Some(ping) = ping_queue.recv() => {
                    if let Err(error) = writer.pong(&ping).await {
                        break error.to_string();
                    }
                }
                _ = &mut closed => break "peer closed the connection".to_owned(),
            }
        };
        reader_task.abort();
        tracing::warn!(%endpoint, error = %failed, "PUSH output lost its connection; reconnecting");
        tokio::time::sleep(RECONNECT_MIN).await;
    }
}

async fn connect(endpoint: &Endpoint) -> Result<zmtp::Connection, String> {
    let (read, write) = zmtp::connect(endpoint).await.map_err(|e| e.to_string())?;
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        zmtp::handshake(read, write, SocketType::Push, MAX_INBOUND_MESSAGE),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())
}
