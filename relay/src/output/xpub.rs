//! The XPUB output (§4.3, §9, design "Data flow" 2): the relay binds, proxies connect SUB
//! sockets and subscribe to the channels they have clients for, and each item goes out as
//! `[channel, item tnetstring]` only to the proxies subscribed to its channel.
//!
//! Subscriptions follow ZeroMQ semantics: a subscription is a byte prefix of the channel
//! frame, counted (two subscribes need two unsubscribes), and per connection. Hand-off is
//! strict: `publish` returns once every subscribed proxy's connection has taken the batch
//! (written to the socket), so an offset is never stored for an item that sat in a queue.
//! A proxy that does not take a batch within the write timeout is disconnected; it
//! reconnects, subscribes again, and its clients resume (design "Resume").
//!
//! The subscription-filter window: a freshly bound XPUB socket knows no subscriptions,
//! so records consumed before a proxy's SUB subscriptions arrive would be filtered away
//! and their offsets committed. The relay closes most of it by not consuming until the
//! subscriptions settled ([`XpubOutput::wait_settled`], `SettleConfig`). What remains:
//! - a proxy that connects more than `settle.max` after the relay started (a proxy
//!   started later, or one whose reconnect backoff is longer) misses the records its
//!   channels got in between;
//! - a proxy whose connection drops while the relay runs misses its channels' records
//!   until it has reconnected and resubscribed.
//!
//! In both cases the relay cannot tell (it never knew or no longer knows that proxy).
//! Their clients recover through the resume path: a proxy that (re)connects to a relay can
//! replay its channels from the positions it last delivered (`GET /replay`, design
//! "Resume" 2); clients that reconnect do so with their own `Last-Event-ID`.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjord_protocol::item::PublishItem;
use fjord_protocol::tnetstring;
use fjord_protocol::zmq::{parse_subscription_frame, SubscriptionEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::zmtp::{self, BoxRead, BoxWrite, Endpoint, Incoming, SocketType};
use crate::config::SettleConfig;
use crate::metrics::RelayMetrics;

/// Subscription messages are tiny; anything bigger than this from a proxy is garbage.
const MAX_INBOUND_MESSAGE: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches queued per connection before `publish` waits.
const PEER_QUEUE: usize = 8;

/// One item as it goes on the wire: channel frame, item frame.
type WireMessage = Arc<[Bytes; 2]>;

enum PeerCommand {
    Batch(Vec<WireMessage>, oneshot::Sender<()>),
    Pong(Bytes),
}

struct Peer {
    subscriptions: HashMap<Vec<u8>, u32>,
    commands: mpsc::Sender<PeerCommand>,
    reader: Option<AbortHandle>,
}

impl Peer {
    /// Whether a subscription is a prefix of `channel` (ZeroMQ filtering).
    fn wants(&self, channel: &[u8]) -> bool {
        (0..=channel.len()).any(|end| self.subscriptions.contains_key(&channel[..end]))
    }
}

struct Activity {
    last: Instant,
    handshaking: usize,
}

struct Shared {
    peers: Mutex<HashMap<u64, Peer>>,
    activity: Mutex<Activity>,
    next_id: AtomicU64,
    metrics: RelayMetrics,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Shared {
    fn touch(&self) {
        lock(&self.activity).last = Instant::now();
    }

    fn remove_peer(&self, id: u64) {
        let removed = lock(&self.peers).remove(&id);
        if let Some(peer) = removed {
            if let Some(reader) = peer.reader {
                reader.abort();
            }
            self.metrics.xpub_peers.dec();
            self.update_subscription_gauge();
        }
    }

    fn update_subscription_gauge(&self) {
        let total: usize = lock(&self.peers)
            .values()
            .map(|p| p.subscriptions.len())
            .sum();
        self.metrics.xpub_subscriptions.set(total as i64);
    }

    fn apply(&self, id: u64, event: SubscriptionEvent) {
        {
            let mut peers = lock(&self.peers);
            let Some(peer) = peers.get_mut(&id) else {
                return;
            };
            match event {
                SubscriptionEvent::Subscribe(topic) => {
                    *peer.subscriptions.entry(topic).or_insert(0) += 1;
                }
                SubscriptionEvent::Unsubscribe(topic) => {
                    if let Some(count) = peer.subscriptions.get_mut(&topic) {
                        *count -= 1;
                        if *count == 0 {
                            peer.subscriptions.remove(&topic);
                        }
                    }
                }
            }
        }
        self.touch();
        self.update_subscription_gauge();
    }
}

/// The bound XPUB endpoint and its connected proxies.
pub struct XpubOutput {
    shared: Arc<Shared>,
    endpoint: String,
    write_timeout: Duration,
    started: Instant,
    accept: AbortHandle,
}

impl Drop for XpubOutput {
    fn drop(&mut self) {
        self.accept.abort();
        let peers: Vec<u64> = lock(&self.shared.peers).keys().copied().collect();
        for id in peers {
            self.shared.remove_peer(id);
        }
    }
}

impl XpubOutput {
    /// Binds `endpoint` (`tcp://host:port`, port 0 for any, or `ipc://path`).
    pub async fn bind(
        endpoint: &Endpoint,
        write_timeout: Duration,
        metrics: RelayMetrics,
    ) -> io::Result<XpubOutput> {
        let shared = Arc::new(Shared {
            peers: Mutex::new(HashMap::new()),
            activity: Mutex::new(Activity {
                last: Instant::now(),
                handshaking: 0,
            }),
            next_id: AtomicU64::new(0),
            metrics,
        });
        let (bound, accept) = match endpoint {
            Endpoint::Tcp { host, port } => {
                let listener = tokio::net::TcpListener::bind((host.as_str(), *port)).await?;
                let local = listener.local_addr()?;
                let bound = Endpoint::Tcp {
                    host: local.ip().to_string(),
                    port: local.port(),
                };
                let shared = shared.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                let (read, write) = stream.into_split();
                                spawn_peer(shared.clone(), Box::new(read), Box::new(write));
                            }
                            Err(e) => accept_failed(e).await,
                        }
                    }
                });
                (bound, task.abort_handle())
            }
            Endpoint::Ipc(path) => {
                // ZeroMQ replaces a stale socket file left by a previous run.
                let _ = std::fs::remove_file(path);
                let listener = tokio::net::UnixListener::bind(path)?;
                let shared = shared.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                let (read, write) = stream.into_split();
                                spawn_peer(shared.clone(), Box::new(read), Box::new(write));
                            }
                            Err(e) => accept_failed(e).await,
                        }
                    }
                });
                (endpoint.clone(), task.abort_handle())
            }
        };
        Ok(XpubOutput {
            shared,
            endpoint: bound.to_string(),
            write_timeout,
            started: Instant::now(),
            accept,
        })
    }

    /// The endpoint as bound, with the actual port.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether any connected proxy subscribes to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        lock(&self.shared.peers)
            .values()
            .any(|p| p.wants(channel.as_bytes()))
    }

    pub fn peer_count(&self) -> usize {
        lock(&self.shared.peers).len()
    }

    /// Waits out the subscription-settle window (see [`SettleConfig`]): at least `min`
    /// after binding, then until no proxy connected or subscribed for `quiet` and no
    /// handshake is in progress, at most `max` after binding.
    pub async fn wait_settled(&self, settle: SettleConfig) {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.started);
            if elapsed >= settle.max {
                return;
            }
            if elapsed >= settle.min {
                let activity = lock(&self.shared.activity);
                if activity.handshaking == 0 && now.duration_since(activity.last) >= settle.quiet {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends each item to the proxies subscribed to its channel and returns once all of
    /// them took it (or were disconnected for not taking it in time).
    pub async fn publish(&self, items: &[PublishItem]) {
        let mut batches: HashMap<u64, (mpsc::Sender<PeerCommand>, Vec<WireMessage>)> =
            HashMap::new();
        let mut published = 0u64;
        let mut unsubscribed = 0u64;
        {
            let peers = lock(&self.shared.peers);
            for item in items {
                let channel = item.channel.as_bytes();
                let mut message: Option<WireMessage> = None;
                for (&id, peer) in peers.iter() {
                    if !peer.wants(channel) {
                        continue;
                    }
                    let message = message.get_or_insert_with(|| encode(item)).clone();
                    batches
                        .entry(id)
                        .or_insert_with(|| (peer.commands.clone(), Vec::new()))
                        .1
                        .push(message);
                }
                if message.is_some() {
                    published += 1;
                } else {
                    unsubscribed += 1;
                }
            }
        }
        let metrics = &self.shared.metrics;
        metrics
            .items_published
            .with_label_values(&["xpub"])
            .inc_by(published);
        metrics.items_unsubscribed.inc_by(unsubscribed);
        let deliveries = batches.into_iter().map(|(id, (commands, messages))| {
            let timeout = self.write_timeout;
            async move {
                let (ack, taken) = oneshot::channel();
                let delivered = tokio::time::timeout(timeout, async {
                    commands
                        .send(PeerCommand::Batch(messages, ack))
                        .await
                        .is_ok()
                        && taken.await.is_ok()
                })
                .await;
                (id, delivered)
            }
        });
        for (id, delivered) in futures_util::future::join_all(deliveries).await {
            match delivered {
                Ok(true) => {}
                Ok(false) => self.shared.remove_peer(id),
                Err(_) => {
                    tracing::warn!(
                        peer = id,
                        timeout = ?self.write_timeout,
                        "XPUB peer did not take a batch in time; disconnecting it"
                    );
                    self.shared.remove_peer(id);
                }
            }
        }
    }
}

fn encode(item: &PublishItem) -> WireMessage {
    let body = tnetstring::encode(&item.to_tnetstring_without_channel());
    Arc::new([
        Bytes::copy_from_slice(item.channel.as_bytes()),
        Bytes::from(body),
    ])
}

async fn accept_failed(error: io::Error) {
    // Running out of file descriptors must not spin the accept loop.
    tracing::warn!(%error, "XPUB accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn spawn_peer(shared: Arc<Shared>, read: BoxRead, write: BoxWrite) {
    {
        let mut activity = lock(&shared.activity);
        activity.handshaking += 1;
        activity.last = Instant::now();
    }
    tokio::spawn(async move {
        let handshake = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            zmtp::handshake(read, write, SocketType::XPub, MAX_INBOUND_MESSAGE),
        )
        .await;
        let connection = {
            let mut activity = lock(&shared.activity);
            activity.handshaking -= 1;
            activity.last = Instant::now();
            match handshake {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    tracing::info!(%error, "XPUB peer handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!("XPUB peer handshake timed out");
                    return;
                }
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (commands, queue) = mpsc::channel(PEER_QUEUE);
        lock(&shared.peers).insert(
            id,
            Peer {
                subscriptions: HashMap::new(),
                commands: commands.clone(),
                reader: None,
            },
        );
        shared.metrics.xpub_peers.inc();
        tracing::info!(peer = id, "proxy connected to XPUB");
        tokio::spawn(write_loop(shared.clone(), id, connection.writer, queue));
        let reader = tokio::spawn(read_loop(shared.clone(), id, connection.reader, commands));
        if let Some(peer) = lock(&shared.peers).get_mut(&id) {
            peer.reader = Some(reader.abort_handle());
        }
    });
}

async fn write_loop(
    shared: Arc<Shared>,
    id: u64,
    mut writer: zmtp::FrameWriter,
    mut queue: mpsc::Receiver<PeerCommand>,
) {
    while let Some(command) = queue.recv().await {
        let result = match command {
            PeerCommand::Batch(messages, ack) => {
                for message in &messages {
                    writer.push_message(message.as_ref());
                }
                let result = writer.flush_buffer().await;
                if result.is_ok() {
                    let _ = ack.send(());
                }
                result
            }
            PeerCommand::Pong(ping) => writer.pong(&ping).await,
        };
        if let Err(error) = result {
            tracing::info!(peer = id, %error, "XPUB peer write failed; dropping it");
            break;
        }
    }
    shared.remove_peer(id);
}

async fn read_loop(
    shared: Arc<Shared>,
    id: u64,
    mut reader: zmtp::FrameReader,
    commands: mpsc::Sender<PeerCommand>,
) {
    loop {
        match reader.next().await {
            Ok(Some(Incoming::Message(frames))) => {
                if let [frame] = frames.as_slice() {
                    if let Some(event) = parse_subscription_frame(frame) {
                        shared.apply(id, event);
                    }
                }
            }
            Ok(Some(Incoming::Command { name, data })) => match name.as_ref() {
                b"SUBSCRIBE" => shared.apply(id, SubscriptionEvent::Subscribe(data.to_vec())),
                b"CANCEL" => shared.apply(id, SubscriptionEvent::Unsubscribe(data.to_vec())),
                b"PING" if commands.send(PeerCommand::Pong(data)).await.is_err() => break,
                _ => {}
            },
            Ok(None) => {
                tracing::info!(peer = id, "proxy disconnected from XPUB");
                break;
            }
            Err(error) => {
                tracing::info!(peer = id, %error, "XPUB peer read failed; dropping it");
                break;
            }
        }
    }
    shared.remove_peer(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::item::{Formats, HttpStreamFormat, StreamAction};
    use fjord_protocol::zmq::{decode_sub_message, encode_subscription_frame};

    async fn bind() -> XpubOutput {
        let endpoint = Endpoint::parse("tcp://127.0.0.1:0").unwrap();
        XpubOutput::bind(
            &endpoint,
            Duration::from_secs(5),
            RelayMetrics::new().unwrap(),
        )
        .await
        .unwrap()
    }

    async fn sub(xpub: &XpubOutput) -> zmtp::Connection {
        let endpoint = Endpoint::parse(xpub.endpoint()).unwrap();
        let (read, write) = zmtp::connect(&endpoint).await.unwrap();
        zmtp::handshake(read, write, SocketType::Sub, 1 << 20)
            .await
            .unwrap()
    }

    async fn send_subscription(connection: &mut zmtp::Connection, event: SubscriptionEvent) {
        let frame = encode_subscription_frame(&event);
        connection.writer.push_message(&[frame]);
        connection.writer.flush_buffer().await.unwrap();
    }

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition never held");
    }

    fn item(channel: &str) -> PublishItem {
        PublishItem::new(
            channel,
            Formats {
                http_stream: Some(HttpStreamFormat {
                    action: StreamAction::Send(Bytes::from_static(b"x")),
                    content_filters: Vec::new(),
                }),
                ..Formats::default()
            },
        )
    }

    #[tokio::test]
    async fn subscriptions_are_counted_prefixes_per_peer() {
        let xpub = bind().await;
        let mut peer = sub(&xpub).await;
        send_subscription(&mut peer, SubscriptionEvent::Subscribe(b"orders.".to_vec())).await;
        send_subscription(&mut peer, SubscriptionEvent::Subscribe(b"orders.".to_vec())).await;
        until(|| xpub.is_subscribed("orders.1")).await;
        assert!(!xpub.is_subscribed("drivers.1"));
        xpub.publish(&[item("drivers.1"), item("orders.1")]).await;
        let Some(Incoming::Message(frames)) = peer.reader.next().await.unwrap() else {
            panic!("expected a message");
        };
        assert_eq!(decode_sub_message(&frames).unwrap(), item("orders.1"));
        // Two subscribes need two unsubscribes.
        send_subscription(
            &mut peer,
            SubscriptionEvent::Unsubscribe(b"orders.".to_vec()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(xpub.is_subscribed("orders.1"));
        send_subscription(
            &mut peer,
            SubscriptionEvent::Unsubscribe(b"orders.".to_vec()),
        )
        .await;
        until(|| !xpub.is_subscribed("orders.1")).await;
        drop(peer);
        until(|| xpub.peer_count() == 0).await;
    }

    #[tokio::test]
    async fn settling_waits_for_late_peers_but_not_forever() {
        let settle = SettleConfig {
            min: Duration::from_millis(100),
            quiet: Duration::from_millis(150),
            max: Duration::from_secs(2),
        };
        let xpub = bind().await;
        let started = Instant::now();
        xpub.wait_settled(settle).await;
        let alone = started.elapsed();
        assert!(
            alone >= settle.min && alone < settle.min + settle.quiet + Duration::from_millis(200)
        );

        let xpub = Arc::new(bind().await);
        let started = Instant::now();
        let late = {
            let xpub = xpub.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let mut peer = sub(&xpub).await;
                send_subscription(&mut peer, SubscriptionEvent::Subscribe(b"a".to_vec())).await;
                peer
            })
        };
        let peer = late.await.unwrap();
        xpub.wait_settled(settle).await;
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(xpub.is_subscribed("a"));

        let busy = SettleConfig {
            min: Duration::ZERO,
            quiet: Duration::from_secs(60),
            max: Duration::from_millis(300),
        };
        let xpub = bind().await;
        let started = Instant::now();
        xpub.wait_settled(busy).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(peer);
    }
}
