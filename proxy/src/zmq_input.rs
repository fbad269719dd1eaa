//! The ZeroMQ publish inputs: the PULL socket (§4.2) and the SUB socket (§4.3), the
//! latter both bound for publishers to connect to and connected to Fjord relays,
//! which bind XPUB (§9).
//!
//! Both speak ZMTP through [`crate::zmtp`]; its module documentation says why the
//! `zeromq` crate is not used here. Each connection runs in its own task, so a
//! publisher that sends garbage, stalls, or disconnects affects only itself: a
//! malformed message is counted in `publish_errors`, logged (at most once a second
//! per input) and skipped; a protocol violation closes that one connection.
//!
//! Subscriptions follow the hub (§4.3): the [`ChannelEvent`] stream updates one
//! shared set of channels, every live SUB connection (accepted or connected) is told
//! of each change, and a connection made later first receives the whole set. The
//! set is snapshotted and the connection registered under one lock, so no change can
//! fall between the two. Relay connections are re-established with back-off whenever
//! they end, and TCP keep-alive (30 s idle, 5 s interval, 6 probes, as §4.3 gives for
//! `push_in_sub_connect`) notices a relay host that vanished without closing.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjord_protocol::item::PublishItem;
use fjord_protocol::zmq::{
    decode_pull_message, decode_sub_message, encode_subscription_frame, FrameError,
    SubscriptionEvent,
};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::hub::{ChannelEvent, Hub, PublishInput};
use crate::log_limit::LogLimiter;
use crate::zmtp::{self, BoxRead, BoxWrite, Endpoint, EndpointError, Incoming, SocketType};

/// The largest message a publisher may send; a connection that exceeds it is closed.
/// Generous next to the HTTP API's 1,000,000-byte body limit, since one ZeroMQ
/// message carries one item of any format.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// A relay connection that lasted this long resets the reconnection back-off.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 6;
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ZmqInputError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("cannot bind {endpoint}: {source}")]
    Bind { endpoint: String, source: io::Error },
}

/// A running input: the endpoints it bound (ports resolved) and its accept tasks.
#[derive(Debug)]
pub struct ZmqInput {
    endpoints: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl ZmqInput {
    /// The bound endpoints, with the port the system chose where `:0` was asked.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Stops accepting and connecting; established connections end on their own.
    pub fn abort(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// Binds the PULL input (§4.2) at `endpoint`; publishers connect PUSH sockets and send
/// one-frame messages, one item each.
pub async fn bind_pull(endpoint: &str, hub: Arc<Hub>) -> Result<ZmqInput, ZmqInputError> {
    let listener = Listener::bind(&Endpoint::parse(endpoint)?).await?;
    let endpoints = vec![listener.endpoint()];
    let role = Arc::new(Role::new(hub, PublishInput::ZmqPull, None));
    let tasks = vec![tokio::spawn(accept_loop(listener, role))];
    Ok(ZmqInput { endpoints, tasks })
}

/// Where the SUB input listens and which relays it subscribes to.
#[derive(Debug, Clone, Default)]
pub struct SubInputConfig {
    /// Endpoints to bind; publishers connect PUB or XPUB sockets (`push_in_sub_specs`).
    pub bind: Vec<String>,
    /// Relay XPUB endpoints to connect to.
    pub relays: Vec<String>,
}

/// Starts the SUB input (§4.3): binds every `config.bind` endpoint, connects to every
/// relay, and keeps all of them subscribed to the channels `events` reports. Bind
/// errors are returned; relays that are down are retried until they come up.
pub async fn start_sub(
    config: &SubInputConfig,
    hub: Arc<Hub>,
    events: mpsc::UnboundedReceiver<ChannelEvent>,
) -> Result<ZmqInput, ZmqInputError> {
    let relays = config
        .relays
        .iter()
        .map(|relay| Endpoint::parse(relay))
        .collect::<Result<Vec<_>, _>>()?;
    let mut listeners = Vec::new();
    for endpoint in &config.bind {
        listeners.push(Listener::bind(&Endpoint::parse(endpoint)?).await?);
    }
    let board = Arc::new(SubscriptionBoard::default());
    let mut tasks = vec![tokio::spawn(follow_hub(events, Arc::clone(&board)))];
    let endpoints = listeners.iter().map(Listener::endpoint).collect();
    let bound = Arc::new(Role::new(
        Arc::clone(&hub),
        PublishInput::ZmqSub,
        Some(Arc::clone(&board)),
    ));
    for listener in listeners {
        tasks.push(tokio::spawn(accept_loop(listener, Arc::clone(&bound))));
    }
    let relayed = Arc::new(Role::new(hub, PublishInput::Relay, Some(board)));
    for relay in relays {
        tasks.push(tokio::spawn(relay_loop(relay, Arc::clone(&relayed))));
    }
    Ok(ZmqInput { endpoints, tasks })
}

/// The channels the proxy is subscribed to, and the subscription queues of all live
/// SUB connections.
#[derive(Default)]
struct SubscriptionBoard {
    state: Mutex<BoardState>,
}

#[derive(Default)]
struct BoardState {
    channels: BTreeSet<Arc<str>>,
    peers: HashMap<u64, mpsc::UnboundedSender<Outgoing>>,
    next_peer: u64,
}

impl SubscriptionBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a hub event and passes it to every connection, once per actual change.
    fn apply(&self, event: ChannelEvent) {
        let mut state = self.lock();
        let outgoing = match event {
            ChannelEvent::Subscribed(channel) if state.channels.insert(Arc::clone(&channel)) => {
                Outgoing::Subscribe(channel)
            }
            ChannelEvent::Unsubscribed(channel) if state.channels.remove(&channel) => {
                Outgoing::Unsubscribe(channel)
            }
            _ => return,
        };
        state
            .peers
            .retain(|_, peer| peer.send(outgoing.clone()).is_ok());
    }

    /// Queues the current channel set for a new connection and adds it to the board,
    /// atomically with respect to [`SubscriptionBoard::apply`].
    fn register(self: &Arc<Self>, peer: mpsc::UnboundedSender<Outgoing>) -> Registration {
        let mut state = self.lock();
        for channel in &state.channels {
            let _ = peer.send(Outgoing::Subscribe(Arc::clone(channel)));
        }
        let id = state.next_peer;
        state.next_peer += 1;
        state.peers.insert(id, peer);
        Registration {
            board: Arc::clone(self),
            id,
        }
    }
}

/// Removes a connection from the board when it ends.
struct Registration {
    board: Arc<SubscriptionBoard>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.board.lock().peers.remove(&self.id);
    }
}

async fn follow_hub(
    mut events: mpsc::UnboundedReceiver<ChannelEvent>,
    board: Arc<SubscriptionBoard>,
) {
    while let Some(event) = events.recv().await {
        board.apply(event);
    }
}

/// What a connection sends to its peer.
#[derive(Debug, Clone)]
enum Outgoing {
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    Pong(Bytes),
}

/// How one input treats its connections.
struct Role {
    hub: Arc<Hub>,
    input: PublishInput,
    /// Present for SUB connections, which follow the proxy's subscriptions.
    board: Option<Arc<SubscriptionBoard>>,
    warnings: LogLimiter,
}

impl Role {
    fn new(hub: Arc<Hub>, input: PublishInput, board: Option<Arc<SubscriptionBoard>>) -> Role {
        Role {
            hub,
            input,
            board,
            warnings: LogLimiter::new(WARNING_INTERVAL),
        }
    }

    fn socket_type(&self) -> SocketType {
        match self.input {
            PublishInput::ZmqPull => SocketType::Pull,
            _ => SocketType::Sub,
        }
    }

    fn decode(&self, frames: &[Bytes]) -> Result<PublishItem, FrameError> {
        match self.input {
            PublishInput::ZmqPull => decode_pull_message(frames),
            _ => decode_sub_message(frames),
        }
    }

    fn dispatch(&self, peer: &str, frames: &[Bytes]) {
        match self.decode(frames) {
            Ok(item) => {
                self.hub.publish(item, self.input);
            }
            Err(e) => self.reject(peer, &e),
        }
    }

    fn reject(&self, peer: &str, error: &dyn std::fmt::Display) {
        self.hub
            .metrics()
            .publish_errors
            .with_label_values(&[self.input.label()])
            .inc();
        if let Some(suppressed) = self.warnings.admit(Instant::now()) {
            tracing::warn!(
                input = self.input.label(),
                peer,
                suppressed,
                "skipping ZeroMQ message: {error}"
            );
        }
    }
}

/// Serves one connection from handshake to close.
async fn serve_connection(read: BoxRead, write: BoxWrite, peer: &str, role: &Role) {
    let handshake = zmtp::handshake(read, write, role.socket_type(), MAX_MESSAGE_SIZE);
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::info!(
                input = role.input.label(),
                peer,
                "ZeroMQ handshake failed: {e}"
            );
            return;
        }
        Err(_) => {
            tracing::info!(
                input = role.input.label(),
                peer,
                "ZeroMQ handshake timed out"
            );
            return;
        }
    };
    tracing::debug!(
        input = role.input.label(),
        peer,
        peer_type = connection.peer_type.name(),
        "ZeroMQ peer connected"
    );
    let zmtp::Connection {
        mut reader,
        mut writer,
        ..
    } = connection;
    let (outgoing, mut queue) = mpsc::unbounded_channel();
    let _registration = role
        .board
        .as_ref()
        .map(|board| board.register(outgoing.clone()));
    let read_side = async {
        loop {
            match reader.next().await {
                Ok(Some(Incoming::Message(frames))) => role.dispatch(peer, &frames),
                Ok(Some(Incoming::Command { name, data })) if name.as_ref() == b"PING" => {
                    // ZMTP 3.1 heartbeat: the PONG echoes the context after the TTL.
                    let context = data.get(2..).map(Bytes::copy_from_slice);
                    let _ = outgoing.send(Outgoing::Pong(context.unwrap_or_default()));
                }
                Ok(Some(Incoming::Command { .. })) => {}
                Ok(None) => return,
                Err(e @ zmtp::ZmtpError::TooLarge { .. }) => {
                    role.reject(peer, &e);
                    return;
                }
                Err(e) => {
                    tracing::debug!(
                        input = role.input.label(),
                        peer,
                        "ZeroMQ connection failed: {e}"
                    );
                    return;
                }
            }
        }
    };
    let write_side = async {
        while let Some(message) = queue.recv().await {
            let sent = match message {
                Outgoing::Subscribe(channel) => {
                    let event = SubscriptionEvent::Subscribe(channel.as_bytes().to_vec());
                    writer
                        .send_message(&[&encode_subscription_frame(&event)])
                        .await
                }
                Outgoing::Unsubscribe(channel) => {
                    let event = SubscriptionEvent::Unsubscribe(channel.as_bytes().to_vec());
                    writer
                        .send_message(&[&encode_subscription_frame(&event)])
                        .await
                }
                Outgoing::Pong(context) => writer.send_command(b"PONG", &context).await,
            };
            if let Err(e) = sent {
                tracing::debug!(input = role.input.label(), peer, "ZeroMQ write failed: {e}");
                return;
            }
        }
    };
    tokio::select! {
        () = read_side => {}
        () = write_side => {}
    }
    tracing::debug!(input = role.input.label(), peer, "ZeroMQ peer disconnected");
}

async fn accept_loop(listener: Listener, role: Arc<Role>) {
    loop {
        match listener.accept().await {
            Ok((read, write, peer)) => {
                let role = Arc::clone(&role);
                tokio::spawn(async move { serve_connection(read, write, &peer, &role).await });
            }
            Err(e) => {
                // Out of file descriptors or a reset before accept: keep accepting.
                tracing::warn!(input = role.input.label(), "ZeroMQ accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Keeps one relay connection up for as long as the input runs.
async fn relay_loop(relay: Endpoint, role: Arc<Role>) {
    let label = relay.to_string();
    let mut backoff = RECONNECT_MIN;
    let mut reported_down = false;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(&relay)).await {
            Ok(Ok((read, write))) => {
                tracing::info!(relay = %label, "connected to relay");
                reported_down = false;
                let started = Instant::now();
                serve_connection(read, write, &label, &role).await;
                tracing::warn!(relay = %label, "relay connection lost; reconnecting");
                if started.elapsed() >= STABLE_CONNECTION {
                    backoff = RECONNECT_MIN;
                }
            }
            Ok(Err(e)) if !reported_down => {
                tracing::warn!(relay = %label, "cannot connect to relay (will keep trying): {e}");
                reported_down = true;
            }
            Err(_) if !reported_down => {
                tracing::warn!(relay = %label, "connecting to relay timed out (will keep trying)");
                reported_down = true;
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

async fn connect(endpoint: &Endpoint) -> io::Result<(BoxRead, BoxWrite)> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_PROBES);
            socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
        Endpoint::Ipc(path) => {
            let (read, write) = UnixStream::connect(path).await?.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
    }
}

/// A bound TCP or Unix listener.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Listener {
    async fn bind(endpoint: &Endpoint) -> Result<Listener, ZmqInputError> {
        let fail = |source| ZmqInputError::Bind {
            endpoint: endpoint.to_string(),
            source,
        };
        match endpoint {
            Endpoint::Tcp { host, port } => TcpListener::bind((host.as_str(), *port))
                .await
                .map(Listener::Tcp)
                .map_err(fail),
            Endpoint::Ipc(path) => {
                remove_stale_socket(path);
                UnixListener::bind(path)
                    .map(|listener| Listener::Unix(listener, path.clone()))
                    .map_err(fail)
            }
        }
    }

    fn endpoint(&self) -> String {
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => Endpoint::Tcp {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                }
                .to_string(),
                Err(_) => "tcp://?".to_owned(),
            },
            Listener::Unix(_, path) => Endpoint::Ipc(path.clone()).to_string(),
        }
    }

    async fn accept(&self) -> io::Result<(BoxRead, BoxWrite, String)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                Ok((Box::new(read), Box::new(write), peer.to_string()))
            }
            Listener::Unix(listener, path) => {
                let (stream, _) = listener.accept().await?;
                let (read, write) = stream.into_split();
                Ok((Box::new(read), Box::new(write), path.display().to_string()))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// libzmq replaces a socket file left behind by a previous process; so do we, but
/// never a file that is not a socket.
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut mpsc::UnboundedReceiver<Outgoing>) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv().ok())
            .map(|outgoing| match outgoing {
                Outgoing::Subscribe(channel) => format!("+{channel}"),
                Outgoing::Unsubscribe(channel) => format!("-{channel}"),
                Outgoing::Pong(_) => "pong".to_owned(),
            })
            .collect()
    }

    #[test]
    fn connections_get_the_current_set_then_each_change_once() {
        let board = Arc::new(SubscriptionBoard::default());
        board.apply(ChannelEvent::Subscribed(Arc::from("a")));
        let (sender, mut queue) = mpsc::unbounded_channel();
        let registration = board.register(sender);
        assert_eq!(drain(&mut queue), ["+a"]);
        board.apply(ChannelEvent::Subscribed(Arc::from("a")));
        board.apply(ChannelEvent::Subscribed(Arc::from("b")));
        board.apply(ChannelEvent::Unsubscribed(Arc::from("a")));
        board.apply(ChannelEvent::Unsubscribed(Arc::from("c")));
        assert_eq!(drain(&mut queue), ["+b", "-a"]);
        drop(registration);
        assert!(board.lock().peers.is_empty());
    }
}
