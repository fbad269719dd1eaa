//! The relay feeds an unmodified Pushpin (Debian's `pushpin` package, started by
//! `fjord_testkit::Pushpin` from a private configuration): records produced to a real
//! Kafka-protocol broker (tansu) go through the relay's PUSH output into Pushpin's PULL
//! socket, or through its HTTP output into Pushpin's control API (`POST /publish/`), and
//! out of Pushpin to SSE clients of the `eventsource` package (installed by
//! `scripts/test.sh` into `tests/peers/node_modules`). A GRIP origin inside the test
//! holds each client's request as an SSE stream on the channel named by its path.
//!
//! Pushpin keeps no history, so every client first proves that its subscription is live
//! (a probe event published straight to Pushpin reaches it) before the relay starts;
//! from then on every record must arrive, in the order it was produced.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fjord_relay::{HttpTarget, Relay, RelayConfig, SettleConfig, StreamConfig};
use fjord_testkit::{KafkaBroker, Pushpin, TestRecord};
use support::{Origin, Recorded, Reply};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
/// One SSE client per key; the key's records share a partition, so their order is the
/// production order.
const KEYS: [&str; 3] = ["o1", "o2", "o3"];
const RECORDS_PER_KEY: usize = 40;
/// The SSE event name the relay gives records; `sse_client.mjs` prints these.
const EVENT: &str = "m";
/// Bound on each wait for an event or a start-up step.
const WAIT: Duration = Duration::from_secs(30);
/// Probes published before a client's subscription must have shown up.
const MAX_PROBES: usize = 60;

fn node_peers() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    assert!(
        dir.join("node_modules/eventsource").is_dir(),
        "Node test peers missing: run scripts/test.sh, which runs npm install in tests/peers"
    );
    dir
}

/// The GRIP origin: every request becomes an SSE stream hold on the channel named by its
/// path without the leading slash (`/orders.o1` → `orders.o1`).
async fn sse_origin() -> Origin {
    Origin::start(|request: &Recorded| {
        let channel = request.path().trim_start_matches('/').to_owned();
        Reply::ok()
            .header("Content-Type", "text/event-stream")
            .header("Cache-Control", "no-cache")
            .header("Grip-Hold", "stream")
            .header("Grip-Channel", &channel)
    })
    .await
}

async fn start_broker() -> KafkaBroker {
    tokio::task::spawn_blocking(|| KafkaBroker::start().unwrap_or_else(|e| panic!("{e}")))
        .await
        .expect("broker start-up task")
}

async fn start_pushpin(origin: &Origin) -> Pushpin {
    let origin = origin.addr;
    tokio::task::spawn_blocking(move || Pushpin::start(origin).unwrap_or_else(|e| panic!("{e}")))
        .await
        .expect("pushpin start-up task")
}

/// A relay for `broker` with no outputs yet: records of `TOPIC` become items on
/// `orders.{key}` with the SSE event name [`EVENT`].
fn relay_config(broker: &KafkaBroker, group: &str) -> RelayConfig {
    let mut kafka = BTreeMap::new();
    kafka.insert("bootstrap.servers".to_owned(), broker.bootstrap());
    kafka.insert("group.id".to_owned(), group.to_owned());
    kafka.insert("session.timeout.ms".to_owned(), "6000".to_owned());
    kafka.insert("heartbeat.interval.ms".to_owned(), "500".to_owned());
    kafka.insert("auto.offset.reset".to_owned(), "earliest".to_owned());
    let mut stream = StreamConfig::new(TOPIC, "orders.{key}");
    stream.event = Some(EVENT.to_owned());
    RelayConfig {
        kafka,
        streams: vec![stream],
        publish: None,
        control: None,
        commit_interval: Duration::from_millis(200),
        settle: SettleConfig {
            min: Duration::ZERO,
            quiet: Duration::ZERO,
            max: Duration::ZERO,
        },
        ..RelayConfig::default()
    }
}

/// One `eventsource` client reading `/orders.<key>` through Pushpin.
struct SseClient {
    key: &'static str,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl SseClient {
    async fn open(peers: &std::path::Path, pushpin: &Pushpin, key: &'static str) -> SseClient {
        let url = format!("http://{}/orders.{key}", pushpin.http_addr());
        // Never exits by count: the test reads what it needs and the drop kills it.
        let mut child = Command::new("node")
            .current_dir(peers)
            .args(["sse_client.mjs", &url, "1000000"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut client = SseClient {
            key,
            lines: BufReader::new(stdout).lines(),
            _child: child,
        };
        let first = client.next_line(WAIT).await;
        assert_eq!(
            first.as_deref(),
            Some("ready"),
            "client {key} did not connect"
        );
        client
    }

    /// The next line the client printed, `None` on timeout or exit.
    async fn next_line(&mut self, wait: Duration) -> Option<String> {
        timeout(wait, self.lines.next_line()).await.ok()?.ok()?
    }

    /// Publishes probe events to this client's channel straight to Pushpin's control
    /// API until one arrives: from then on Pushpin delivers the channel to this client.
    async fn wait_subscribed(&mut self, pushpin: &Pushpin) {
        let channel = format!("orders.{}", self.key);
        let body = support::items(&[support::stream_item(
            &channel,
            &format!("event: {EVENT}\ndata: probe\n\n"),
        )]);
        for _ in 0..MAX_PROBES {
            let response = support::publish_to(pushpin.control_addr(), &body).await;
            assert_eq!(response.head.status, 200, "Pushpin refused the probe");
            if let Some(line) = self.next_line(Duration::from_millis(500)).await {
                assert_eq!(line, format!("{EVENT} probe"), "unexpected event");
                return;
            }
        }
        panic!("client {} never received a probe", self.key);
    }

    /// Reads `count` record events (late probes are skipped) and returns their data.
    async fn read_records(&mut self, count: usize, pushpin: &Pushpin) -> Vec<String> {
        let mut data = Vec::with_capacity(count);
        while data.len() < count {
            let Some(line) = self.next_line(WAIT).await else {
                panic!(
                    "client {} got {} of {count} records: {data:?}\n{}",
                    self.key,
                    data.len(),
                    pushpin.log_tail()
                );
            };
            let Some(value) = line.strip_prefix(&format!("{EVENT} ")) else {
                panic!("client {} printed {line:?}", self.key);
            };
            if value != "probe" {
                data.push(value.to_owned());
            }
        }
        data
    }
}

fn record_value(key: &str, seq: usize) -> String {
    format!("{{\"order\":\"{key}\",\"seq\":{seq}}}")
}

/// Produces `RECORDS_PER_KEY` records per key, interleaved across keys, and checks that
/// every client receives exactly its key's records in production order.
async fn produce_and_check(broker: &KafkaBroker, pushpin: &Pushpin, clients: &mut [SseClient]) {
    let records: Vec<TestRecord> = (0..RECORDS_PER_KEY)
        .flat_map(|seq| {
            KEYS.iter()
                .map(move |key| TestRecord::keyed(*key, record_value(key, seq)))
        })
        .collect();
    // Two rounds, so some records reach a relay that is already consuming live.
    let (first, second) = records.split_at(records.len() / 2);
    broker.produce(TOPIC, first).await.expect("produce");
    broker.produce(TOPIC, second).await.expect("produce");
    for client in clients.iter_mut() {
        let expected: Vec<String> = (0..RECORDS_PER_KEY)
            .map(|seq| record_value(client.key, seq))
            .collect();
        let got = client.read_records(RECORDS_PER_KEY, pushpin).await;
        assert_eq!(got, expected, "records of {} through Pushpin", client.key);
    }
    // Nothing beyond the records: no duplicates trail behind.
    for client in clients.iter_mut() {
        if let Some(line) = client.next_line(Duration::from_millis(500)).await {
            assert_eq!(
                line,
                format!("{EVENT} probe"),
                "extra event for {}",
                client.key
            );
        }
    }
}

/// Everything but the relay: broker with the topic, origin, Pushpin, and one
/// subscribed client per key.
async fn setup() -> (KafkaBroker, Origin, Pushpin, Vec<SseClient>) {
    let peers = node_peers();
    let broker = start_broker().await;
    broker
        .create_topic(TOPIC, PARTITIONS)
        .await
        .expect("create topic");
    let origin = sse_origin().await;
    let pushpin = start_pushpin(&origin).await;
    let mut clients = Vec::new();
    for key in KEYS {
        let mut client = SseClient::open(&peers, &pushpin, key).await;
        client.wait_subscribed(&pushpin).await;
        clients.push(client);
    }
    (broker, origin, pushpin, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_push_output_reaches_sse_clients_through_pushpin_pull_socket() {
    let (broker, _origin, pushpin, mut clients) = setup().await;
    let mut config = relay_config(&broker, "pushpin-push");
    config.push = vec![pushpin.pull_endpoint()];
    let relay = Relay::start(config).await.expect("relay starts");
    produce_and_check(&broker, &pushpin, &mut clients).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_http_output_reaches_sse_clients_through_pushpin_control_api() {
    let (broker, _origin, pushpin, mut clients) = setup().await;
    let mut config = relay_config(&broker, "pushpin-http");
    config.http = vec![HttpTarget {
        url: format!("http://{}", pushpin.control_addr()),
        authorization: None,
    }];
    // Small batches, so the records take several POSTs whose order must hold.
    config.http_batch.max_items = 7;
    let relay = Relay::start(config).await.expect("relay starts");
    produce_and_check(&broker, &pushpin, &mut clients).await;
    relay.shutdown().await;
}
