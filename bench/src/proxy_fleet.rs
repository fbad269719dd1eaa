//! The system under test of `conns-fleet`: one `fjord relay` feeding several
//! `fjord proxy` processes over ZeroMQ (the relay's XPUB `publish` endpoint,
//! each proxy's `[proxy] relays`), as a deployment spreads browsers over
//! proxies when one process cannot hold them all (every process here is
//! capped at 20,000 open files).
//!
//! Every process reads its own private `fjord.toml` in one temporary
//! directory: the relay's maps the Kafka topic to `news.{key}`; each proxy's
//! has its own listen and control ports, the relay as its only relay, the
//! relay's control port as its replay source, and one public direct route,
//! `GET /news/{id}` → channel `news.{id}`. Every address is loopback.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::fjord_group::FjordGroup;
use crate::kafka_sut::{toml_str, KafkaFeed};
use crate::procstat::{self, Sample};
use crate::systems::{fjord_binary, free_port, loopback};

/// Subscribe path of the channel of key `key` is `{NEWS_PREFIX}{key}`.
pub const NEWS_PREFIX: &str = "/news/";

/// The direct route every proxy serves.
const NEWS_ROUTE: &str =
    "[[proxy.route]]\npath = \"/news/{id}\"\nchannel = \"news.{id}\"\nauth = \"public\"\n";

/// Addresses of one proxy.
#[derive(Debug, Clone, Copy)]
pub struct ProxyPorts {
    /// Public listener, where subscribers connect.
    pub http: SocketAddr,
    /// Control listener (`/healthz`, `/metrics`).
    pub control: SocketAddr,
}

/// Addresses of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelayPorts {
    pub control: SocketAddr,
    /// The XPUB every proxy subscribes to.
    pub publish: SocketAddr,
}

/// The relay's configuration: Kafka, its control port, its XPUB, one stream.
fn relay_config(feed: &KafkaFeed, relay: RelayPorts) -> String {
    let mut kafka = format!(
        "[kafka]\n\"bootstrap.servers\" = {}\n\"group.id\" = {}\n\
         \"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = \"6000\"\n",
        toml_str(&feed.bootstrap),
        toml_str(&feed.group)
    );
    for (k, v) in &feed.extra {
        kafka.push_str(&format!("{} = {}\n", toml_str(k), toml_str(v)));
    }
    format!(
        "{kafka}\n[relay]\ncontrol = \"{}\"\npublish = \"tcp://{}\"\n\n\
         [[relay.stream]]\ntopic = {}\nchannel = {}\nevent = \"news\"\n",
        relay.control,
        relay.publish,
        toml_str(&feed.topic),
        toml_str("news.{key}")
    )
}

/// One proxy's configuration: its ports, the relay, the public news route.
fn proxy_config(p: ProxyPorts, relay: RelayPorts) -> String {
    format!(
        "[proxy]\nlisten = \"{}\"\ncontrol = \"{}\"\nzmq_pull = \"\"\nzmq_sub = \"\"\n\
         relays = [\"tcp://{}\"]\nreplay = \"http://{}\"\n\n{NEWS_ROUTE}",
        p.http, p.control, relay.publish, relay.control
    )
}

/// The running relay and proxies; dropping it stops them all.
pub struct ProxyFleet {
    pub proxies: Vec<ProxyPorts>,
    /// Every configuration file by name, echoed in the results.
    pub configs: Vec<(String, String)>,
    // Drop order: processes first, then the directory.
    fjord: FjordGroup,
    dir: tempfile::TempDir,
}

impl ProxyFleet {
    /// Writes the configurations, starts `count` proxies and then the relay,
    /// and waits until every proxy is healthy and the relay ready.
    pub async fn start(count: usize, feed: &KafkaFeed) -> Result<ProxyFleet> {
        anyhow::ensure!(count > 0, "at least one proxy");
        let mut dir = tempfile::Builder::new()
            .prefix("fjord-bench-fleet-")
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
        let relay = RelayPorts {
            control: loopback(free_port()?),
            publish: loopback(free_port()?),
        };
        let mut proxies = Vec::with_capacity(count);
        for _ in 0..count {
            proxies.push(ProxyPorts {
                http: loopback(free_port()?),
                control: loopback(free_port()?),
            });
        }
        let mut configs = Vec::with_capacity(count + 1);
        for (i, p) in proxies.iter().enumerate() {
            configs.push((format!("proxy{i}.toml"), proxy_config(*p, relay)));
        }
        configs.push(("relay.toml".to_string(), relay_config(feed, relay)));
        let log = std::env::var("FJORD_BENCH_FJORD_LOG").unwrap_or_else(|_| "warn".into());
        let mut fleet = ProxyFleet {
            proxies,
            configs,
            fjord: FjordGroup::new(dir.path()),
            dir,
        };
        // Proxies first, so their SUB sockets are there when the relay binds.
        for (file, text) in &fleet.configs {
            let path = fleet.dir.path().join(file);
            fs::write(&path, text)?;
            let (name, command) = match file.strip_suffix(".toml") {
                Some("relay") => ("relay".to_string(), "relay"),
                Some(name) => (name.to_string(), "proxy"),
                None => bail!("config file {file} without .toml"),
            };
            let mut cmd = std::process::Command::new(&bin);
            cmd.args([command, "-c"])
                .arg(&path)
                .env("RUST_LOG", &log)
                .current_dir(fleet.dir.path());
            fleet.fjord.spawn(&name, &mut cmd)?;
        }
        let mut checks: Vec<(SocketAddr, &str)> = fleet
            .proxies
            .iter()
            .map(|p| (p.control, "/healthz"))
            .collect();
        checks.push((relay.control, "/readyz"));
        fleet
            .fjord
            .wait_ready(&checks, Duration::from_secs(60))
            .await?;
        Ok(fleet)
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.fjord.check_alive()
    }

    /// Resources of each proxy (in `proxies` order) and of the relay.
    pub fn sample(&self) -> Result<(Vec<Sample>, Sample)> {
        let mut proxies = Vec::with_capacity(self.proxies.len());
        let mut relay = Sample::default();
        for (name, child) in self.fjord.members() {
            let s = procstat::sample(child.pid())?;
            if name == "relay" {
                relay = s;
            } else {
                proxies.push(s);
            }
        }
        Ok((proxies, relay))
    }

    /// Last lines of every process's log.
    pub fn log_tail(&self) -> String {
        self.fjord.log_tail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> RelayPorts {
        RelayPorts {
            control: loopback(3),
            publish: loopback(4),
        }
    }

    #[test]
    fn proxy_config_points_at_the_relay_and_serves_the_news_route() {
        let p = ProxyPorts {
            http: loopback(1),
            control: loopback(2),
        };
        let text = proxy_config(p, relay());
        assert!(text.contains("listen = \"127.0.0.1:1\""), "{text}");
        assert!(text.contains("relays = [\"tcp://127.0.0.1:4\"]"), "{text}");
        assert!(text.contains("replay = \"http://127.0.0.1:3\""), "{text}");
        assert!(text.contains("path = \"/news/{id}\""), "{text}");
        assert!(text.contains("auth = \"public\""), "{text}");
        assert!(!text.contains("[kafka]"), "{text}");
    }

    #[test]
    fn relay_config_maps_the_topic_to_news_channels() {
        let feed = KafkaFeed {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "news-1".into(),
            group: "g".into(),
            extra: vec![("fetch.wait.max.ms".into(), "10".into())],
        };
        let text = relay_config(&feed, relay());
        assert!(text.contains("publish = \"tcp://127.0.0.1:4\""), "{text}");
        assert!(text.contains("topic = \"news-1\""), "{text}");
        assert!(text.contains("channel = \"news.{key}\""), "{text}");
        assert!(text.contains("\"fetch.wait.max.ms\" = \"10\""), "{text}");
        assert!(!text.contains("[proxy]"), "{text}");
    }
}
