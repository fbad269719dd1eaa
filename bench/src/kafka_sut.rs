//! Fjord fed by Kafka, as the system under test of `kafka-e2e`: either
//! `fjord run` (the relay feeds the proxy's hub in-process) or `fjord relay`
//! and `fjord proxy` as two processes meeting over ZeroMQ (XPUB → SUB).
//!
//! Both read one private `fjord.toml` written into a temporary directory; the
//! relay maps records of the topic to channel `orders.{key}`. Subscribers
//! reach a channel through one of two routes:
//! - direct (default): `[[proxy.route]] path = "/orders/{id}"`,
//!   `channel = "orders.{id}"`, `auth = "public"` — the proxy answers by
//!   itself, as a SuperEats browser would be served;
//! - origin: every path goes to `fjord-bench origin`, so `GET /orders.17`
//!   is a GRIP stream hold on `orders.17`, as in the GRIP scenarios.
//!
//! Every address is loopback.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::child::GroupChild;
use crate::fjord_group::FjordGroup;
use crate::procstat::{self, Sample};
use crate::systems::{fjord_binary, free_port, loopback, spawn_origin};

/// How the relay reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// `fjord run`: one process, the relay publishes into the hub directly.
    Run,
    /// `fjord relay` + `fjord proxy`: two processes over ZeroMQ.
    Split,
}

/// How subscribers reach a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    /// Direct mode: `GET /orders/{id}` streams channel `orders.{id}`.
    Direct,
    /// GRIP origin mode through `fjord-bench origin`: `GET /orders.{id}`.
    Origin,
}

impl RouteKind {
    /// Subscribe path of the channel of key `key` is `{prefix}{key}`.
    pub fn path_prefix(self) -> &'static str {
        match self {
            RouteKind::Direct => "/orders/",
            RouteKind::Origin => "/orders.",
        }
    }
}

/// What the relay consumes.
pub struct KafkaFeed {
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    /// Extra `[kafka]` settings for the relay's consumer (librdkafka names).
    pub extra: Vec<(String, String)>,
}

/// The `[[proxy.route]]` of a direct-mode run.
const DIRECT_ROUTE: &str =
    "[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n";

/// The running system: its `fjord` process(es) and the origin.
pub struct KafkaSut {
    /// Where subscribers connect.
    pub client: SocketAddr,
    /// The proxy's control address (`/metrics`).
    pub control: SocketAddr,
    /// The configuration file, echoed in the results.
    pub config_text: String,
    // Drop order: fjord processes first, then the origin, then the directory.
    fjord: FjordGroup,
    _origin: Option<GroupChild>,
    /// Removed when the system is dropped, after the processes above.
    _dir: tempfile::TempDir,
}

/// TOML string literal (basic string, escaped).
pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Ports {
    http: SocketAddr,
    control: SocketAddr,
    relay_control: SocketAddr,
    publish: SocketAddr,
}

fn config_text(topology: Topology, route: RouteKind, feed: &KafkaFeed, p: &Ports) -> String {
    let mut proxy = format!(
        "[proxy]\nlisten = \"{}\"\ncontrol = \"{}\"\nzmq_pull = \"\"\nzmq_sub = \"\"\n",
        p.http, p.control
    );
    if route == RouteKind::Origin {
        proxy.push_str("routes_file = \"routes\"\n");
    }
    let mut relay = format!("[relay]\ncontrol = \"{}\"\n", p.relay_control);
    if topology == Topology::Split {
        proxy.push_str(&format!("relays = [\"tcp://{}\"]\n", p.publish));
        if route == RouteKind::Direct {
            // `fjord run` replays from its own relay; the split proxy is told.
            proxy.push_str(&format!("replay = \"http://{}\"\n", p.relay_control));
        }
        relay.push_str(&format!("publish = \"tcp://{}\"\n", p.publish));
    }
    let mut kafka = format!(
        "[kafka]\n\"bootstrap.servers\" = {}\n\"group.id\" = {}\n\
         \"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = \"6000\"\n",
        toml_str(&feed.bootstrap),
        toml_str(&feed.group)
    );
    for (k, v) in &feed.extra {
        kafka.push_str(&format!("{} = {}\n", toml_str(k), toml_str(v)));
    }
    let stream = format!(
        "[[relay.stream]]\ntopic = {}\nchannel = {}\nevent = \"order\"\n",
        toml_str(&feed.topic),
        toml_str("orders.{key}")
    );
    let routes = match route {
        RouteKind::Direct => DIRECT_ROUTE,
        RouteKind::Origin => "",
    };
    format!("{proxy}\n{routes}\n{kafka}\n{relay}\n{stream}")
}

impl KafkaSut {
    /// Writes the configuration, starts the origin and the `fjord`
    /// process(es), and waits until the proxy is healthy and the relay ready.
    pub async fn start(topology: Topology, route: RouteKind, feed: &KafkaFeed) -> Result<KafkaSut> {
        let mut dir = tempfile::Builder::new()
            .prefix("fjord-bench-kafka-")
            .tempdir()?;
        if std::env::var_os("FJORD_BENCH_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("bench: keeping {}", dir.path().display());
        }
        let bin = fjord_binary()?;
        anyhow::ensure!(
            bin.is_file(),
            "{} missing (cargo build --release -p fjord, or set FJORD_BIN)",
            bin.display()
        );
        let origin = match route {
            RouteKind::Direct => None,
            RouteKind::Origin => {
                let (addr, child) = spawn_origin(&dir.path().join("origin.log"))?;
                fs::write(dir.path().join("routes"), format!("* {addr}\n"))?;
                Some(child)
            }
        };
        let ports = Ports {
            http: loopback(free_port()?),
            control: loopback(free_port()?),
            relay_control: loopback(free_port()?),
            publish: loopback(free_port()?),
        };
        let text = config_text(topology, route, feed, &ports);
        let config = dir.path().join("fjord.toml");
        fs::write(&config, &text)?;
        let log = std::env::var("FJORD_BENCH_FJORD_LOG").unwrap_or_else(|_| "warn".into());
        let commands: &[(&'static str, &str)] = match topology {
            Topology::Run => &[("run", "run")],
            // The proxy first, so its SUB socket is there when the relay binds.
            Topology::Split => &[("proxy", "proxy"), ("relay", "relay")],
        };
        let mut fjord = FjordGroup::new(dir.path());
        for &(role, command) in commands {
            let mut cmd = std::process::Command::new(&bin);
            cmd.args([command, "-c"])
                .arg(&config)
                .env("RUST_LOG", &log)
                .current_dir(dir.path());
            fjord.spawn(role, &mut cmd)?;
        }
        let mut sut = KafkaSut {
            client: ports.http,
            control: ports.control,
            config_text: text,
            fjord,
            _origin: origin,
            _dir: dir,
        };
        let checks = [
            (ports.control, "/healthz"),
            (ports.relay_control, "/readyz"),
        ];
        sut.fjord
            .wait_ready(&checks, Duration::from_secs(60))
            .await?;
        Ok(sut)
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.fjord.check_alive()
    }

    /// Resources of every `fjord` process (and descendants), summed, plus
    /// each process on its own by role.
    pub fn sample(&self) -> Result<(Sample, Vec<(String, Sample)>)> {
        let mut total = Sample::default();
        let mut each = Vec::new();
        for (role, child) in self.fjord.members() {
            let s = procstat::sample(child.pid())?;
            total.processes += s.processes;
            total.rss_kb += s.rss_kb;
            total.pss_kb += s.pss_kb;
            total.cpu_s += s.cpu_s;
            each.push((role.to_owned(), s));
        }
        Ok((total, each))
    }

    /// Last lines of the processes' logs.
    pub fn log_tail(&self) -> String {
        self.fjord.log_tail()
    }
}

/// The proxy's Prometheus samples whose metric name starts with one of
/// `prefixes`, as `{"name{labels}": value}`.
pub async fn proxy_metrics(control: SocketAddr, prefixes: &[&str]) -> Result<serde_json::Value> {
    let (status, text) = http_get(control, "/metrics").await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    let mut out = serde_json::Map::new();
    for line in text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.starts_with('#'))
    {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if prefixes.iter().any(|p| name.starts_with(p)) {
            if let Ok(v) = value.parse::<f64>() {
                out.insert(name.to_string(), v.into());
            }
        }
    }
    Ok(out.into())
}

/// Status code and body of `GET path` on `addr` (one request, connection
/// closed; the body as sent, chunked framing included).
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status code")?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .context("timed out")?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> KafkaFeed {
        KafkaFeed {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "orders".into(),
            group: "g".into(),
            extra: vec![("fetch.wait.max.ms".into(), "10".into())],
        }
    }

    fn ports() -> Ports {
        Ports {
            http: loopback(1),
            control: loopback(2),
            relay_control: loopback(3),
            publish: loopback(4),
        }
    }

    #[test]
    fn run_config_has_no_zeromq_hop() {
        let text = config_text(Topology::Run, RouteKind::Origin, &feed(), &ports());
        assert!(!text.contains("relays"), "{text}");
        assert!(text.contains("routes_file"), "{text}");
        assert!(!text.contains("[[proxy.route]]"), "{text}");
        assert!(!text.contains("publish ="), "{text}");
        assert!(text.contains("channel = \"orders.{key}\""), "{text}");
        assert!(text.contains("\"fetch.wait.max.ms\" = \"10\""), "{text}");
    }

    #[test]
    fn split_config_points_the_proxy_at_the_relay() {
        let text = config_text(Topology::Split, RouteKind::Direct, &feed(), &ports());
        assert!(text.contains("path = \"/orders/{id}\""), "{text}");
        assert!(text.contains("replay = \"http://127.0.0.1:3\""), "{text}");
        assert!(!text.contains("routes_file"), "{text}");
        assert!(text.contains("relays = [\"tcp://127.0.0.1:4\"]"), "{text}");
        assert!(text.contains("publish = \"tcp://127.0.0.1:4\""), "{text}");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
