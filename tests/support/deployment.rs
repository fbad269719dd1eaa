//! A Kafka-fed deployment of `fjord` for end-to-end tests: `fjord run`, or `fjord relay`
//! and `fjord proxy` as separate processes meeting over ZeroMQ, with a direct route
//! `/orders/{id}` → `orders.{id}` fed by topic `orders` keyed by order id.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fjord_testkit::{free_loopback_port, KafkaBroker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(30);

/// Ports and config of one deployment under test.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub http: u16,
    pub control: u16,
    pub relay_control: u16,
}

impl Deployment {
    /// `split`: a relay process publishing over ZeroMQ to a separate proxy process;
    /// otherwise `fjord run`.
    pub fn new(broker: &KafkaBroker, group: &str, history: usize, split: bool) -> Deployment {
        Self::with(broker, group, history, split, "auth = \"public\"\n", "")
    }

    /// `route` is added to the direct route's keys, `extra` to the configuration.
    pub fn with(
        broker: &KafkaBroker,
        group: &str,
        history: usize,
        split: bool,
        route: &str,
        extra: &str,
    ) -> Deployment {
        let dir = tempfile::tempdir().expect("dir");
        let port = || free_loopback_port().expect("port");
        let (http, control, relay_control, publish) = (port(), port(), port(), port());
        let relays = if split {
            format!("relays = [\"tcp://127.0.0.1:{publish}\"]\nreplay = \"http://127.0.0.1:{relay_control}\"\n")
        } else {
            String::new()
        };
        let publish_line = if split {
            format!("publish = \"tcp://127.0.0.1:{publish}\"\n")
        } else {
            String::new()
        };
        let config = dir.path().join("fjord.toml");
        std::fs::write(
            &config,
            format!(
                "[proxy]\nlisten = \"127.0.0.1:{http}\"\ncontrol = \"127.0.0.1:{control}\"\n\
                 zmq_pull = \"\"\nzmq_sub = \"\"\n{relays}\n\
                 [[proxy.route]]\npath = \"/orders/{{id}}\"\nchannel = \"orders.{{id}}\"\n\
                 {route}history = {history}\npoll_timeout = 2\n\n{extra}\n\
                 [relay]\n{publish_line}control = \"127.0.0.1:{relay_control}\"\n\n\
                 [kafka]\n\"bootstrap.servers\" = \"{}\"\n\"group.id\" = \"{group}\"\n\
                 \"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\n\
                 [[relay.stream]]\ntopic = \"orders\"\nchannel = \"orders.{{key}}\"\nevent = \"order\"\n",
                broker.bootstrap()
            ),
        )
        .expect("config");
        Deployment {
            dir,
            config,
            http,
            control,
            relay_control,
        }
    }

    pub fn spawn(&self, command: &str) -> Child {
        spawn_fjord(&[command], &self.config)
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.http).into()
    }
}

thread_local! {
    /// Logs of the processes this test started (a test's body runs on one thread).
    static LOGS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// Starts `fjord ARGS -c CONFIG` with its log in CONFIG's directory; if a readiness
/// wait of the same test fails, the tail of that log is part of the failure message.
pub fn spawn_fjord(args: &[&str], config: &Path) -> Child {
    let dir = config.parent().expect("config in a directory");
    let name = args.first().copied().unwrap_or("fjord");
    let mut path = dir.join(format!("{name}.log"));
    for n in 2.. {
        if !path.exists() {
            break;
        }
        path = dir.join(format!("{name}-{n}.log"));
    }
    let log = std::fs::File::create(&path).expect("log file");
    LOGS.with(|logs| logs.borrow_mut().push(path));
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start fjord")
}

/// The last lines of every log [`spawn_fjord`] opened in this test.
fn log_tails() -> String {
    const LINES: usize = 40;
    LOGS.with(|logs| {
        logs.borrow()
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
                format!("---- {} ----\n{tail}\n", path.display())
            })
            .collect()
    })
}

pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}

pub async fn wait_ready(port: u16) {
    wait_for_ok(port, "/readyz", "ready").await;
}

/// Waits until `port` answers `/healthz` with 200 (alive, maybe not ready).
pub async fn wait_healthy(port: u16) {
    wait_for_ok(port, "/healthz", "healthy").await;
}

async fn wait_for_ok(port: u16, path: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if http_get(port, path)
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} never became {what}\n{}", log_tails());
}

/// A metric's value (summed over label sets matching `name` exactly or with labels).
pub async fn metric(port: u16, name: &str) -> f64 {
    let text = http_get(port, "/metrics").await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name || key.starts_with(&format!("{name}{{")))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

pub async fn wait_metric(port: u16, name: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(port, name).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
