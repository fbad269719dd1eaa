//! [`KafkaBroker`]: a real Kafka-protocol broker (tansu) for the test suites.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tempfile::TempDir;

use crate::ports::free_loopback_port;

/// How the suites install the broker; printed whenever the binary cannot be found so a
/// missing broker fails loudly instead of letting the integration tests pass by skipping.
pub const INSTALL_HINT: &str =
    "install it with `cargo install tansu@0.6.0 --locked --features dynostore,libsql` \
     (scripts/test.sh does this), or point FJORD_TANSU_BIN at the binary";

/// How long a start or restart may take before the fixture gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Anything that went wrong while running the test broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the tansu broker binary was not found: {INSTALL_HINT}")]
    BinaryMissing,
    #[error("could not start the tansu broker ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("the tansu broker did not accept connections on port {port} within {READY_TIMEOUT:?}; its log:\n{log}")]
    NotReady { port: u16, log: String },
    #[error("the tansu broker exited during start-up ({status}); its log:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("test broker I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("producing to {topic}: {reason}")]
    Produce { topic: String, reason: String },
    #[error("the broker task panicked or was cancelled: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One record to produce. Empty `headers` and `None` partition are the common case.
#[derive(Debug, Clone, Default)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Explicit partition; `None` lets the producer's partitioner choose by key.
    pub partition: Option<i32>,
}

impl TestRecord {
    /// A record with a UTF-8 key and value, the shape most tests need.
    pub fn keyed(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        TestRecord {
            key: Some(key.into().into_bytes()),
            value: Some(value.into()),
            ..TestRecord::default()
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn on_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// A running tansu broker on `127.0.0.1:<port>` with its data in a temporary directory.
///
/// Dropping the fixture kills the broker and removes its data.
pub struct KafkaBroker {
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    storage: String,
    child: Option<Child>,
}

impl KafkaBroker {
    /// Starts a broker on a free loopback port with a fresh SQLite store.
    pub fn start() -> Result<Self, BrokerError> {
        Self::start_with_storage("sqlite://tansu.db")
    }

    /// Starts a broker whose SQLite store runs retention maintenance every second, for
    /// tests that need records to expire (`cleanup.policy=delete` + small `retention.ms`).
    pub fn start_with_fast_retention() -> Result<Self, BrokerError> {
        Self::start_with_storage("sqlite://tansu.db?maintenance_interval=1s")
    }

    fn start_with_storage(storage: &str) -> Result<Self, BrokerError> {
        let binary = find_binary().ok_or(BrokerError::BinaryMissing)?;
        let dir = tempfile::Builder::new().prefix("fjord-kafka-").tempdir()?;
        let port = free_loopback_port()?;
        let mut broker = KafkaBroker {
            binary,
            dir,
            port,
            storage: storage.to_owned(),
            child: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client configuration pointing at this broker, with the short session timeout
    /// the test broker needs for timely rebalances.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("session.timeout.ms", "6000")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        config
    }

    /// Kills the broker with SIGKILL, as an outage would. Its data stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and the same data.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.kill();
        self.spawn()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Creates a topic with `partitions` partitions and the given topic configs
    /// (e.g. `("retention.ms", "1000")`).
    pub async fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), BrokerError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for (name, value) in configs {
            new_topic = new_topic.set(name, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics([&new_topic], &options).await?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(BrokerError::CreateTopic {
                    topic: name,
                    reason: code.to_string(),
                });
            }
        }
        Ok(())
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BrokerError> {
        self.create_topic_with(topic, partitions, &[]).await
    }

    /// A producer for this broker; `acks=all` and idempotence off keep the test broker's
    /// behaviour simple and deterministic.
    pub fn producer(&self) -> Result<FutureProducer, BrokerError> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()?)
    }

    /// Produces `records` to `topic`, all in flight at once, and returns each record's
    /// `(partition, offset)` in input order.
    pub async fn produce(
        &self,
        topic: &str,
        records: &[TestRecord],
    ) -> Result<Vec<(i32, i64)>, BrokerError> {
        let producer = self.producer()?;
        produce_with(&producer, topic, records).await
    }

    /// Low and high watermarks of every partition of `topic`, indexed by partition.
    pub async fn watermarks(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<(i64, i64)>, BrokerError> {
        let bootstrap = self.bootstrap();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", "fjord-testkit-watermarks")
                .create()?;
            (0..partitions)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Timeout::After(Duration::from_secs(10)))
                        .map_err(BrokerError::from)
                })
                .collect()
        })
        .await?
    }

    /// High watermarks (next offset to be written) of every partition of `topic`.
    pub async fn high_watermarks(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<i64>, BrokerError> {
        Ok(self
            .watermarks(topic, partitions)
            .await?
            .into_iter()
            .map(|(_, high)| high)
            .collect())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn read_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), BrokerError> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<(), BrokerError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(BrokerError::Exited {
                        status,
                        log: self.read_log(),
                    });
                }
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(BrokerError::NotReady {
                    port: self.port,
                    log: self.read_log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Produces through an existing producer; see [`KafkaBroker::produce`].
pub async fn produce_with(
    producer: &FutureProducer,
    topic: &str,
    records: &[TestRecord],
) -> Result<Vec<(i32, i64)>, BrokerError> {
    let produce_error = |reason: String| BrokerError::Produce {
        topic: topic.to_owned(),
        reason,
    };
    let mut in_flight = Vec::with_capacity(records.len());
    for record in records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut future_record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            future_record = future_record.payload(value.as_slice());
        }
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        let delivery = producer
            .send_result(future_record)
            .map_err(|(e, _)| produce_error(e.to_string()))?;
        in_flight.push(delivery);
    }
    let mut positions = Vec::with_capacity(in_flight.len());
    for delivery in in_flight {
        let delivered = delivery
            .await
            .map_err(|_| produce_error("delivery future cancelled".into()))?
            .map_err(|(e, _)| produce_error(e.to_string()))?;
        positions.push((delivered.partition, delivered.offset));
    }
    Ok(positions)
}

/// Where the broker binary is: `FJORD_TANSU_BIN`, then `tansu` on `PATH`, then cargo's
/// install directory.
fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FJORD_TANSU_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let candidate = cargo_home.join("bin").join("tansu");
        candidate.is_file().then_some(candidate)
    })
}
