//! Starting a proxy: bind every listener, wire the parts together, and report the
//! first problem as one clear error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::sig::VerifyingKey;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::context::{HoldSettings, ProxyContext};
use crate::control::{ControlDeps, ControlLimits, ControlServer};
use crate::direct::DirectSettings;
use crate::hub::{ChannelEvent, Hub, HubConfig};
use crate::metrics::Metrics;
use crate::origin::{OriginClient, SigSettings};
use crate::route::{Route, RouteTable};
use crate::routes_file::RoutesWatcher;
use crate::tls::{TlsError, TlsFiles};
use crate::zmq_input::{bind_pull, start_sub, SubInputConfig, ZmqInput};

/// The ZeroMQ publish inputs (§4.2, §4.3); `None` turns an input off.
#[derive(Debug, Clone)]
pub struct ZmqSettings {
    /// PULL endpoint to bind (`push_in_spec`).
    pub pull: Option<String>,
    /// SUB endpoint to bind (`push_in_sub_specs`).
    pub sub: Option<String>,
    /// Relay PUB endpoints to connect SUB to.
    pub relays: Vec<String>,
}

impl Default for ZmqSettings {
    fn default() -> Self {
        ZmqSettings {
            pull: Some("tcp://127.0.0.1:5560".to_owned()),
            sub: Some("tcp://127.0.0.1:5562".to_owned()),
            relays: Vec::new(),
        }
    }
}

/// Everything a proxy is started with.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Public HTTP listener (Pushpin's `http_port`, default 7999).
    pub listen: SocketAddr,
    /// Serve the public listener over TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Control API, metrics and health (default 127.0.0.1:5561).
    pub control: SocketAddr,
    /// Routes given inline (`[[proxy.route]]`); tried before the routes file's.
    pub routes: Vec<Route>,
    /// A Pushpin routes file, watched and reloaded on change (§7.1).
    pub routes_file: Option<PathBuf>,
    pub zmq: ZmqSettings,
    pub hold: HoldSettings,
    pub hub: HubConfig,
    pub control_limits: ControlLimits,
    pub sig: SigSettings,
    pub upstream_key: Option<VerifyingKey>,
    /// Client token verification and replay source of direct routes.
    pub direct: DirectSettings,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7999)),
            tls: None,
            control: SocketAddr::from(([127, 0, 0, 1], 5561)),
            routes: Vec::new(),
            routes_file: None,
            zmq: ZmqSettings::default(),
            hold: HoldSettings::default(),
            hub: HubConfig::default(),
            control_limits: ControlLimits::default(),
            sig: SigSettings {
                iss: "pushpin".to_owned(),
                key: None,
            },
            upstream_key: None,
            direct: DirectSettings::default(),
        }
    }
}

/// Why a proxy could not start; each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the control port {addr}: {source}")]
    Control {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("routes: {0}")]
    Routes(String),
    #[error("ZeroMQ input: {0}")]
    Zmq(String),
}

/// A proxy that is serving. Dropping it does not stop it; call [`RunningProxy::shutdown`].
pub struct RunningProxy {
    pub listen_addr: SocketAddr,
    pub control_addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub ready: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    zmq_inputs: Vec<ZmqInput>,
}

impl RunningProxy {
    /// Stops accepting and aborts the proxy's tasks.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
        }
        for input in self.zmq_inputs {
            input.abort();
        }
    }
}

/// The multi-threaded runtime a proxy should run on: one worker per core, and each
/// worker flushes its batched latency observations before it parks
/// ([`crate::metrics::DeliveryLatency`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::metrics::flush_thread)
        .build()
}

/// Binds and starts everything; returns once the proxy accepts connections.
pub async fn start(config: ProxyConfig) -> Result<RunningProxy, StartError> {
    let metrics = Arc::new(Metrics::new());
    let (hub, channel_events) = Hub::new(config.hub.clone(), Arc::clone(&metrics));
    let mut tasks = Vec::new();
    // Before any port is bound: a bad certificate is a configuration error.
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;

    let (routes, routes_task) = route_source(&config).await?;
    tasks.extend(routes_task);

    let listener = bind_public(config.listen).map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let listen_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;

    let (recover, _) = broadcast::channel(4);
    let ready = Arc::new(AtomicBool::new(false));
    let recover_hook = {
        let recover = recover.clone();
        Arc::new(move || {
            let _ = recover.send(());
        })
    };
    let (control_addr, control_task) = ControlServer::bind(
        config.control,
        ControlDeps {
            hub: Arc::clone(&hub),
            ready: Arc::clone(&ready),
            recover: recover_hook,
            limits: config.control_limits,
        },
    )
    .await
    .map_err(|source| StartError::Control {
        addr: config.control,
        source,
    })?;
    tasks.push(control_task);

    let zmq_inputs = start_zmq(&config.zmq, &hub, channel_events).await?;

    let ctx = Arc::new(ProxyContext {
        settings: config.hold.clone(),
        hub: Arc::clone(&hub),
        metrics,
        origin: OriginClient::new(),
        sig: config.sig.clone(),
        upstream_key: config.upstream_key.clone(),
        routes,
        recover,
        direct: config.direct.clone(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    tasks.push(tokio::spawn(crate::server::serve(
        listener,
        tls,
        ctx,
        shutdown_rx,
    )));
    tasks.push(tokio::spawn(
        Arc::clone(&hub).run_maintenance(Duration::from_millis(100)),
    ));
    ready.store(true, std::sync::atomic::Ordering::Release);
    Ok(RunningProxy {
        listen_addr,
        control_addr,
        hub,
        ready,
        shutdown,
        tasks,
        zmq_inputs,
    })
}

async fn start_zmq(
    settings: &ZmqSettings,
    hub: &Arc<Hub>,
    events: mpsc::UnboundedReceiver<ChannelEvent>,
) -> Result<Vec<ZmqInput>, StartError> {
    let mut inputs = Vec::new();
    if let Some(pull) = &settings.pull {
        let input = bind_pull(pull, Arc::clone(hub))
            .await
            .map_err(|e| StartError::Zmq(e.to_string()))?;
        inputs.push(input);
    }
    let sub = SubInputConfig {
        bind: settings.sub.iter().cloned().collect(),
        relays: settings.relays.clone(),
    };
    // The SUB side also keeps consuming channel events when nothing is bound or
    // connected, so the hub's event queue never grows without bound.
    let input = start_sub(&sub, Arc::clone(hub), events)
        .await
        .map_err(|e| StartError::Zmq(e.to_string()))?;
    inputs.push(input);
    Ok(inputs)
}

/// The route table: inline routes first, then the routes file's, kept current as the
/// file changes.
async fn route_source(
    config: &ProxyConfig,
) -> Result<(watch::Receiver<Arc<RouteTable>>, Option<JoinHandle<()>>), StartError> {
    let inline = config.routes.clone();
    let combine = move |file: &RouteTable| {
        let mut table = RouteTable::new();
        for route in inline.iter().chain(file.routes()) {
            // A duplicate condition keeps the first route, as Pushpin does (§7.1).
            let _ = table.push(route.clone());
        }
        Arc::new(table)
    };
    let Some(path) = &config.routes_file else {
        let (_tx, rx) = watch::channel(combine(&RouteTable::new()));
        // The sender is dropped: the table never changes, and `borrow` keeps working.
        return Ok((rx, None));
    };
    let (mut file_rx, watcher) =
        RoutesWatcher::start(path.clone()).map_err(|e| StartError::Routes(e.to_string()))?;
    let (tx, rx) = watch::channel(combine(&file_rx.borrow()));
    let task = tokio::spawn(async move {
        while file_rx.changed().await.is_ok() {
            let table = combine(&file_rx.borrow());
            if tx.send(table).is_err() {
                break;
            }
        }
        watcher.abort();
    });
    Ok((rx, Some(task)))
}

/// Pending connections the kernel queues for the public listener. A reconnect storm
/// (every client of a restarted proxy, or all of a cell's phones at once) arrives
/// faster than one accept loop takes it: with the usual 128, most of 10,000
/// simultaneous reconnects overflowed the queue and waited a 1 s SYN retry
/// (bench/RESULTS.md, resume-storm). The kernel caps it at `net.core.somaxconn`.
const PUBLIC_BACKLOG: u32 = 4096;

fn bind_public(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(PUBLIC_BACKLOG)
}
