//! librdkafka's mock cluster as the Kafka scenarios' broker (`--broker
//! mock`): a Kafka-protocol listener on a loopback port, served by one
//! thread (`rdk:mock`) inside the runner. Partitions live in memory, there is
//! one broker and no replication; it is librdkafka's test implementation of
//! the protocol, not Apache Kafka. It serves what the benchmark needs:
//! produce with acks, metadata, fetch, watermarks, classic consumer groups
//! with offset commits. Two gaps matter here: it has no CreateTopics request
//! (topics are created through its own API, [`MockBroker::create_topic`]),
//! and ListOffsets by timestamp answers "no offset", so a relay replay of a
//! partition the resume position does not name reads nothing.
//!
//! `MockCluster` is not `Send`, so one thread owns it for its whole life and
//! takes topic requests over a channel; dropping [`MockBroker`] ends that
//! thread, which destroys the cluster.

use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use rdkafka::mocking::MockCluster;
use tokio::sync::oneshot;

/// Name of the thread librdkafka runs the mock cluster's I/O on (its
/// `rd_kafka_set_thread_sysname("rdk:mock")`), where the broker's CPU goes.
pub const IO_THREAD: &str = "rdk:mock";

struct TopicRequest {
    topic: String,
    partitions: i32,
    done: oneshot::Sender<Result<()>>,
}

/// A running one-broker mock cluster.
pub struct MockBroker {
    bootstrap: String,
    requests: Option<mpsc::Sender<TopicRequest>>,
    owner: Option<JoinHandle<()>>,
}

impl MockBroker {
    /// Starts the cluster on its owner thread and waits for its address.
    pub fn start() -> Result<MockBroker> {
        let (requests, inbox) = mpsc::channel::<TopicRequest>();
        let (ready, started) = mpsc::channel::<Result<String>>();
        let owner = std::thread::Builder::new()
            .name("mock-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready.send(Err(anyhow!("starting the mock cluster: {e}")));
                        return;
                    }
                };
                if ready.send(Ok(cluster.bootstrap_servers())).is_err() {
                    return;
                }
                // Ends when the MockBroker drops its sender.
                for request in inbox {
                    let result = cluster
                        .create_topic(&request.topic, request.partitions, 1)
                        .map_err(|e| anyhow!("creating topic {}: {e}", request.topic));
                    let _ = request.done.send(result);
                }
            })
            .context("spawning the mock broker thread")?;
        let bootstrap = started
            .recv()
            .context("the mock broker thread ended during start-up")??;
        Ok(MockBroker {
            bootstrap,
            requests: Some(requests),
            owner: Some(owner),
        })
    }

    /// `bootstrap.servers` of the cluster (a loopback address).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `topic` with `partitions` partitions (replication 1).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .context("mock broker stopped")?
            .send(TopicRequest {
                topic: topic.to_string(),
                partitions,
                done,
            })
            .map_err(|_| anyhow!("the mock broker thread has ended"))?;
        answer
            .await
            .context("the mock broker thread ended before answering")?
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::ClientConfig;

    use super::*;

    fn partitions_of(bootstrap: &str, topic: &str) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("metadata client");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        metadata.topics()[0].partitions().len()
    }

    #[tokio::test]
    async fn created_topic_has_the_asked_partition_count() {
        let broker = MockBroker::start().expect("mock broker");
        assert!(
            broker.bootstrap().starts_with("127.0.0.1:"),
            "{}",
            broker.bootstrap()
        );
        broker
            .create_topic("orders", 7)
            .await
            .expect("create topic");
        assert_eq!(partitions_of(broker.bootstrap(), "orders"), 7);
    }

    #[tokio::test]
    async fn dropping_the_broker_closes_its_listener() {
        let broker = MockBroker::start().expect("mock broker");
        let addr: std::net::SocketAddr = broker.bootstrap().parse().expect("one address");
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop(broker);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
