//! Systems under test: how to configure, start, probe and stop each one.
//!
//! A system is a [`SystemKind`]; [`SystemKind::prepare`] writes its private
//! configuration into a temporary directory and returns a [`Launch`] (command
//! line, client address, subscribe path, publish endpoints). Everything else —
//! spawning in its own process group, readiness probing, /proc accounting of
//! the whole process tree, and killing it at the end — is shared. Adding a
//! system means adding a variant and one `prepare_*` function.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use serde::Serialize;

use crate::child::GroupChild;
use crate::publisher::{PublisherKind, Target};
use crate::sse;

/// Largest connection count any scenario asks of one server.
const CLIENT_MAXCONN: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// Debian's pushpin 1.36 (runner + condure + zurl + proxy + handler).
    Pushpin,
    /// Debian's nginx with libnginx-mod-nchan.
    Nchan,
    /// Fjord's own proxy (`fjord proxy`), once it exists.
    Fjord,
}

/// Everything the harness needs to run and drive one system.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Where subscribers connect.
    pub client: SocketAddr,
    /// Subscribe URL path is `{sub_prefix}{channel}`.
    pub sub_prefix: String,
    /// Pushpin-format HTTP publish endpoint (`POST /publish/`), if any.
    pub grip_http: Option<SocketAddr>,
    /// ZeroMQ PULL publish input, if any.
    pub grip_zmq: Option<SocketAddr>,
    /// Nchan publisher address and path prefix, if any.
    pub nchan_pub: Option<(SocketAddr, String)>,
    /// The settings that matter for fairness, echoed in every result line.
    pub settings: Vec<(String, String)>,
}

/// Picks a currently free loopback TCP port below the ephemeral range.
pub fn free_port() -> Result<u16> {
    free_port_range(12_000, 32_000, 1)
}

/// Picks `base` such that `base + k` for `k < span` are all free.
fn free_port_range(lo: u16, hi: u16, span: u16) -> Result<u16> {
    let seed = std::process::id() as u64 ^ crate::payload::now_us();
    let width = u64::from(hi - lo - span);
    for i in 0..500u64 {
        let base = lo
            + ((seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i * 7919))
                % width) as u16;
        let all_free =
            (0..span).all(|k| TcpListener::bind((Ipv4Addr::LOCALHOST, base + k)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    bail!("no free port found in {lo}..{hi}")
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl SystemKind {
    pub fn needs_origin(self) -> bool {
        matches!(self, SystemKind::Pushpin | SystemKind::Fjord)
    }

    /// The publisher used when none is given.
    pub fn default_publisher(self) -> PublisherKind {
        match self {
            SystemKind::Pushpin | SystemKind::Fjord => PublisherKind::Http,
            SystemKind::Nchan => PublisherKind::Nchan,
        }
    }

    /// Writes the private configuration into `dir` and returns the launch.
    pub fn prepare(self, dir: &Path, origin: Option<SocketAddr>) -> Result<Launch> {
        match self {
            SystemKind::Pushpin => prepare_pushpin(dir, origin.context("pushpin needs an origin")?),
            SystemKind::Nchan => prepare_nchan(dir),
            SystemKind::Fjord => prepare_fjord(dir, origin.context("fjord needs an origin")?),
        }
    }
}

fn prepare_pushpin(dir: &Path, origin: SocketAddr) -> Result<Launch> {
    let client = loopback(free_port()?);
    // port_offset moves 5560 (PULL), 5561 (HTTP), 5562 (SUB), 5563 (REP).
    let offset = free_port_range(17_000, 32_000, 4)? - 5560;
    let run = dir.join("run");
    let log = dir.join("log");
    fs::create_dir_all(&run)?;
    fs::create_dir_all(&log)?;
    // Debian points pushpin-proxy at the system-wide zurl
    // (ipc:///var/run/zurl/...). Use a private zurl started by pushpin's own
    // runner instead, bound under our rundir.
    let internal = fs::read_to_string("/usr/lib/pushpin/internal.conf")
        .context("read /usr/lib/pushpin/internal.conf (apt-get install -y pushpin)")?
        .replace("ipc:///var/run/zurl/", "ipc://{rundir}/{ipc_prefix}");
    fs::write(dir.join("internal.conf"), internal)?;
    fs::write(dir.join("routes"), format!("* {origin}\n"))?;
    // Warnings only by default (info logs one line per publish and request);
    // FJORD_BENCH_PUSHPIN_LOG_LEVEL=3 for debugging.
    let log_level = std::env::var("FJORD_BENCH_PUSHPIN_LOG_LEVEL").unwrap_or_else(|_| "1".into());
    let settings = [
        (
            "runner.services",
            "condure,zurl,pushpin-proxy,pushpin-handler".to_string(),
        ),
        ("runner.client_maxconn", CLIENT_MAXCONN.to_string()),
        ("runner.client_buffer_size", "8192".into()),
        ("runner.log_level", log_level.clone()),
        ("handler.message_rate", "0".into()),
        ("handler.message_hwm", "1000000".into()),
        (
            "handler.update_on_first_subscription",
            "true (default)".into(),
        ),
        ("global.port_offset", offset.to_string()),
    ];
    let conf = format!(
        "[global]\n\
         include={dir}/internal.conf\n\
         rundir={dir}/run\n\
         ipc_prefix=pushpin-\n\
         port_offset={offset}\n\
         stats_connection_ttl=120\n\
         \n\
         [runner]\n\
         services=condure,zurl,pushpin-proxy,pushpin-handler\n\
         http_port={client}\n\
         logdir={dir}/log\n\
         log_level={log_level}\n\
         client_buffer_size=8192\n\
         client_maxconn={CLIENT_MAXCONN}\n\
         condure_bin=condure\n\
         zurl_bin=zurl\n\
         \n\
         [proxy]\n\
         routesfile=routes\n\
         debug=false\n\
         auto_cross_origin=false\n\
         sig_iss=pushpin\n\
         sig_key=changeme\n\
         updates_check=off\n\
         \n\
         [handler]\n\
         push_in_spec=tcp://127.0.0.1:5560\n\
         push_in_sub_specs=tcp://127.0.0.1:5562\n\
         push_in_sub_connect=false\n\
         push_in_http_addr=127.0.0.1\n\
         push_in_http_port=5561\n\
         stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats\n\
         command_spec=tcp://127.0.0.1:5563\n\
         # 0 (any value <= 0) disables the delivery rate limiter\n\
         message_rate=0\n\
         message_hwm=1000000\n\
         message_wait=5000\n\
         id_cache_ttl=60\n\
         connection_subscription_max=20\n\
         subscription_linger=60\n\
         stats_subscription_ttl=60\n\
         stats_report_interval=10\n",
        dir = dir.display(),
    );
    let conf_path = dir.join("pushpin.conf");
    fs::write(&conf_path, conf)?;
    Ok(Launch {
        program: "pushpin".into(),
        args: vec!["--config".into(), conf_path.display().to_string()],
        env: Vec::new(),
        client,
        sub_prefix: "/".into(),
        grip_http: Some(loopback(5561 + offset)),
        grip_zmq: Some(loopback(5560 + offset)),
        nchan_pub: None,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
}

fn prepare_nchan(dir: &Path) -> Result<Launch> {
    const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
    anyhow::ensure!(
        Path::new(MODULE).exists(),
        "{MODULE} missing (apt-get install -y nginx libnginx-mod-nchan)"
    );
    let client = loopback(free_port()?);
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        fs::create_dir_all(dir.join("tmp").join(sub))?;
    }
    let d = dir.display();
    let conf = format!(
        "load_module {MODULE};\n\
         worker_processes 2;\n\
         worker_rlimit_nofile 20000;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{\n  worker_connections 19000;\n  use epoll;\n}}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         \x20 server {{\n\
         \x20   listen {client} reuseport;\n\
         \x20   location ~ ^/sub/([^/]+)$ {{\n\
         \x20     nchan_subscriber eventsource;\n\
         \x20     nchan_channel_id $1;\n\
         \x20     nchan_subscriber_first_message newest;\n\
         \x20   }}\n\
         \x20   location ~ ^/pub/([^/]+)$ {{\n\
         \x20     nchan_publisher;\n\
         \x20     nchan_channel_id $1;\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    );
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf)?;
    let settings = [
        ("worker_processes", "2"),
        ("worker_connections", "19000"),
        ("worker_rlimit_nofile", "20000"),
        ("listen", "reuseport"),
        ("access_log", "off"),
        ("nchan_subscriber", "eventsource"),
        ("nchan_subscriber_first_message", "newest"),
        ("nchan message buffer", "defaults (10 messages, 1 h)"),
    ];
    Ok(Launch {
        program: "nginx".into(),
        args: vec![
            "-p".into(),
            d.to_string(),
            "-c".into(),
            conf_path.display().to_string(),
            "-g".into(),
            "daemon off; master_process on;".into(),
        ],
        env: Vec::new(),
        client,
        sub_prefix: "/sub/".into(),
        grip_http: None,
        grip_zmq: None,
        nchan_pub: Some((client, "/pub/".into())),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// Fjord's proxy, started as
/// `fjord proxy --listen 127.0.0.1:P --control 127.0.0.1:C --routes FILE
/// --zmq-pull tcp://127.0.0.1:Z --zmq-sub ""` with a Pushpin-syntax routes
/// file (`* 127.0.0.1:<origin>`), so `/<channel>` becomes an SSE stream on
/// `<channel>` through `fjord-bench origin`; the Pushpin-format HTTP publish
/// API (`POST /publish/`) is on the control address and the ZeroMQ PULL input
/// on a private port (the SUB input is disabled). No configuration file: every
/// other setting keeps its default. The binary is `$FJORD_BIN`, else `fjord`
/// next to `fjord-bench` (`target/release/fjord`).
fn prepare_fjord(dir: &Path, origin: SocketAddr) -> Result<Launch> {
    let bin = fjord_binary()?;
    let help = Command::new(&bin).args(["proxy", "--help"]).output();
    let usable = match &help {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            [
                "--listen",
                "--control",
                "--routes",
                "--zmq-pull",
                "--zmq-sub",
            ]
            .iter()
            .all(|flag| text.contains(flag))
        }
        _ => false,
    };
    if !usable {
        bail!(
            "fjord proxy not usable ({} proxy --help must offer --listen, --control, --routes, --zmq-pull and --zmq-sub)",
            bin.display()
        );
    }
    let client = loopback(free_port()?);
    let control = loopback(free_port()?);
    let pull = loopback(free_port()?);
    let routes = dir.join("routes");
    fs::write(&routes, format!("* {origin}\n"))?;
    // Warnings only unless asked otherwise (FJORD_BENCH_FJORD_LOG=debug, …);
    // like Pushpin's log_level=1, nothing is logged per request.
    let log = std::env::var("FJORD_BENCH_FJORD_LOG").unwrap_or_else(|_| "warn".into());
    let settings = [
        ("routes", format!("* {origin}")),
        ("zmq_pull", format!("tcp://{pull}")),
        ("zmq_sub", "disabled".into()),
        ("RUST_LOG", log.clone()),
        (
            "config",
            "none (defaults; tokio runtime with 1 worker per core)".into(),
        ),
    ];
    Ok(Launch {
        program: bin,
        args: vec![
            "proxy".into(),
            "--listen".into(),
            client.to_string(),
            "--control".into(),
            control.to_string(),
            "--routes".into(),
            routes.display().to_string(),
            "--zmq-pull".into(),
            format!("tcp://{pull}"),
            "--zmq-sub".into(),
            String::new(),
        ],
        env: vec![("RUST_LOG".into(), log)],
        client,
        sub_prefix: "/".into(),
        grip_http: Some(control),
        grip_zmq: Some(pull),
        nchan_pub: None,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
}

/// The `fjord` binary: `$FJORD_BIN`, else `fjord` next to `fjord-bench`.
pub fn fjord_binary() -> Result<PathBuf> {
    let sibling = std::env::current_exe()?.with_file_name("fjord");
    Ok(std::env::var_os("FJORD_BIN")
        .map(PathBuf::from)
        .unwrap_or(sibling))
}

/// Starts `fjord-bench origin` on a free loopback port in its own process
/// group, logging to `log`, and waits until it accepts connections.
pub fn spawn_origin(log: &Path) -> Result<(SocketAddr, GroupChild)> {
    let addr = loopback(free_port()?);
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["origin", "--listen", &addr.to_string()]);
    let child = GroupChild::spawn("origin", &mut cmd, log)?;
    wait_tcp(addr, Duration::from_secs(10))?;
    Ok((addr, child))
}

/// A started system (and its origin, if it has one).
pub struct Running {
    pub kind: SystemKind,
    pub launch: Launch,
    server: GroupChild,
    // Field order matters for drop order: server first, then origin, then dir.
    _origin: Option<GroupChild>,
    dir: tempfile::TempDir,
}

impl Running {
    /// Root of the process tree to account (the supervisor process).
    pub fn root_pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.server.check_alive()
    }

    /// Publish target for the chosen publisher kind.
    pub fn target(&self, kind: PublisherKind) -> Result<Target> {
        let l = &self.launch;
        let missing = || anyhow!("{:?} does not support the {kind:?} publisher", self.kind);
        Ok(match kind {
            PublisherKind::Http => Target::GripHttp {
                addr: l.grip_http.ok_or_else(missing)?,
            },
            PublisherKind::Zmq | PublisherKind::ZmqTnet => Target::GripZmq {
                addr: l.grip_zmq.ok_or_else(missing)?,
                tnetstring: kind == PublisherKind::ZmqTnet,
            },
            PublisherKind::Nchan => {
                let (addr, path_prefix) = l.nchan_pub.clone().ok_or_else(missing)?;
                Target::Nchan { addr, path_prefix }
            }
        })
    }

    /// Last lines of every log file in the private directory.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        let mut files = vec![
            self.dir.path().join("server.log"),
            self.dir.path().join("error.log"),
        ];
        if let Ok(rd) = fs::read_dir(self.dir.path().join("log")) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
        for f in files {
            if let Ok(text) = fs::read_to_string(&f) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(8)..];
                if !tail.is_empty() {
                    out.push_str(&format!("== {}\n{}\n", f.display(), tail.join("\n")));
                }
            }
        }
        out
    }
}

fn wait_tcp(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr} not accepting connections after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `kind` (and the origin it needs) and waits until an SSE subscribe
/// succeeds end to end.
pub async fn start(kind: SystemKind) -> Result<Running> {
    let mut dir = tempfile::Builder::new().prefix("fjord-bench-").tempdir()?;
    if std::env::var_os("FJORD_BENCH_KEEP").is_some() {
        // Keep configs and logs for inspection.
        dir.disable_cleanup(true);
        eprintln!("bench: keeping {}", dir.path().display());
    }
    let origin = if kind.needs_origin() {
        Some(spawn_origin(&dir.path().join("origin.log"))?)
    } else {
        None
    };
    let launch = kind.prepare(dir.path(), origin.as_ref().map(|o| o.0))?;
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir.path());
    let server = GroupChild::spawn(
        &format!("{kind:?}"),
        &mut cmd,
        &dir.path().join("server.log"),
    )?;
    let mut running = Running {
        kind,
        launch,
        server,
        _origin: origin.map(|o| o.1),
        dir,
    };
    if let Err(e) = probe(&mut running).await {
        bail!(
            "{kind:?} did not become ready: {e:#}\n{}",
            running.log_tail()
        );
    }
    Ok(running)
}

async fn probe(running: &mut Running) -> Result<()> {
    let l = running.launch.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in [Some(l.client), l.grip_http, l.grip_zmq]
        .into_iter()
        .flatten()
    {
        loop {
            running.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("{addr} not accepting connections");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // One real subscription end to end (the stream is dropped right away).
    let path = format!("{}probe", l.sub_prefix);
    loop {
        running.check_alive()?;
        match sse::open(
            Ipv4Addr::LOCALHOST.into(),
            l.client,
            &path,
            Duration::from_secs(5),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.context("probe subscribe")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
