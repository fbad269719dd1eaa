//! The broker of the Kafka scenarios (`kafka-e2e`, `resume-storm`,
//! `conns-fleet`): the tansu test broker started as a child process
//! (default), a running broker given by `--bootstrap`, or librdkafka's
//! in-memory mock cluster inside the runner (`--broker mock`, see
//! `mock_broker`). Each gives one loopback bootstrap address that the
//! producer and Fjord's relay both use, creates the scenario's topic, and
//! can be sampled for CPU and memory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use fjord_testkit::KafkaBroker;
use serde::Serialize;

use crate::kafka_producer;
use crate::mock_broker::{self, MockBroker};
use crate::procstat::{self, Sample};

/// Which broker a Kafka scenario starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    /// tansu 0.6.0, the test broker of `fjord-testkit` (a child process).
    Tansu,
    /// librdkafka's mock cluster in the runner: in memory, one broker.
    Mock,
}

/// Broker options of every Kafka scenario.
#[derive(Debug, Clone, Args)]
pub struct BrokerOpts {
    /// `tansu`: start the tansu test broker; `mock`: librdkafka's in-memory
    /// mock cluster inside the runner (isolates Fjord's own latency; not
    /// Apache Kafka).
    #[arg(long, value_enum, default_value = "tansu")]
    pub broker: BrokerKind,
    /// Use the broker at this loopback address instead of starting one
    /// (a fresh topic is created on it; not with `--broker mock`).
    #[arg(long)]
    pub bootstrap: Option<SocketAddr>,
    /// The tansu binary for the started broker (default: `FJORD_TANSU_BIN`,
    /// `tansu` on PATH, then ~/.cargo/bin/tansu).
    #[arg(long)]
    pub tansu: Option<PathBuf>,
}

/// Points the broker fixture at `--tansu` (it reads `FJORD_TANSU_BIN`).
/// Call before any other thread starts: the environment is process-wide.
pub fn select_tansu(o: &BrokerOpts) -> Result<()> {
    if let Some(path) = &o.tansu {
        anyhow::ensure!(path.is_file(), "--tansu {}: no such file", path.display());
        std::env::set_var("FJORD_TANSU_BIN", path);
    }
    Ok(())
}

/// What keeps the broker alive; dropping it stops a broker we started.
enum Running {
    Given,
    /// Held only so that dropping it stops tansu.
    Tansu {
        _fixture: KafkaBroker,
    },
    Mock(MockBroker),
}

/// Where the records go.
pub struct Broker {
    pub bootstrap: String,
    running: Running,
}

impl Broker {
    /// Uses the broker at `--bootstrap` (loopback only), else starts the
    /// chosen one.
    pub async fn start(o: &BrokerOpts) -> Result<Broker> {
        if let Some(addr) = o.bootstrap {
            anyhow::ensure!(
                o.broker != BrokerKind::Mock,
                "--bootstrap names a running broker; it cannot be combined with --broker mock"
            );
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "--bootstrap must be a loopback address, got {addr}"
            );
            return Ok(Broker {
                bootstrap: addr.to_string(),
                running: Running::Given,
            });
        }
        match o.broker {
            BrokerKind::Tansu => {
                let fixture = tokio::task::spawn_blocking(KafkaBroker::start)
                    .await
                    .context("broker start task")?
                    .context("starting the test broker")?;
                Ok(Broker {
                    bootstrap: fixture.bootstrap(),
                    running: Running::Tansu { _fixture: fixture },
                })
            }
            BrokerKind::Mock => {
                let mock = tokio::task::spawn_blocking(MockBroker::start)
                    .await
                    .context("broker start task")??;
                Ok(Broker {
                    bootstrap: mock.bootstrap().to_string(),
                    running: Running::Mock(mock),
                })
            }
        }
    }

    /// Creates `topic` with `partitions` partitions (replication 1).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        match &self.running {
            // The mock cluster has no CreateTopics request.
            Running::Mock(mock) => mock.create_topic(topic, partitions).await,
            Running::Given | Running::Tansu { .. } => {
                kafka_producer::create_topic(&self.bootstrap, topic, partitions).await
            }
        }
    }

    /// Short name for the results: `tansu`, `mock` or `given`.
    pub fn kind(&self) -> &'static str {
        match self.running {
            Running::Given => "given",
            Running::Tansu { .. } => "tansu",
            Running::Mock(_) => "mock",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.running {
            Running::Given => "given by --bootstrap",
            Running::Tansu { .. } => "tansu 0.6.0 (testkit fixture, sqlite storage)",
            Running::Mock(_) => {
                "librdkafka mock cluster (in the runner, in memory, 1 broker, no replication)"
            }
        }
    }

    /// True when the broker is a thread of the runner, so the runner's own
    /// CPU includes the broker's.
    pub fn runs_in_runner(&self) -> bool {
        matches!(self.running, Running::Mock(_))
    }

    /// The broker's resources now: tansu's processes among our descendants,
    /// or the mock cluster's I/O thread (CPU only: it shares the runner's
    /// memory). A broker given by `--bootstrap` is not ours to sample.
    pub fn sample(&self) -> Result<Sample> {
        match self.running {
            Running::Given => Ok(Sample::default()),
            Running::Tansu { .. } => procstat::sample_pids(&tansu_pids()),
            Running::Mock(_) => {
                procstat::sample_threads(std::process::id(), mock_broker::IO_THREAD)
            }
        }
    }
}

/// Processes of the started broker (tansu) among our own descendants.
fn tansu_pids() -> Vec<u32> {
    let Ok(tree) = procstat::tree(std::process::id()) else {
        return Vec::new();
    };
    tree.into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "tansu")
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(broker: BrokerKind, bootstrap: Option<&str>) -> BrokerOpts {
        BrokerOpts {
            broker,
            bootstrap: bootstrap.map(|b| b.parse().expect("address")),
            tansu: None,
        }
    }

    #[tokio::test]
    async fn mock_cannot_be_combined_with_a_given_broker() {
        let refused = Broker::start(&opts(BrokerKind::Mock, Some("127.0.0.1:9092"))).await;
        assert!(refused.is_err());
        let given = Broker::start(&opts(BrokerKind::Tansu, Some("127.0.0.1:9092")))
            .await
            .expect("given broker");
        assert_eq!(given.kind(), "given");
    }

    #[tokio::test]
    async fn mock_broker_runs_in_the_runner_and_takes_topics() {
        let broker = Broker::start(&opts(BrokerKind::Mock, None))
            .await
            .expect("mock broker");
        assert_eq!(broker.kind(), "mock");
        assert!(broker.runs_in_runner());
        broker.create_topic("orders", 3).await.expect("topic");
        assert_eq!(broker.sample().expect("sample").rss_kb, 0);
    }
}
