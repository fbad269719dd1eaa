//! Resume without loss in direct mode, end to end with a real Kafka-protocol broker, the
//! relay and the proxy (design "Resume"): a client cut off after N of M records
//! reconnects with its Last-Event-ID and receives exactly the missing records, in
//! per-partition order, without duplicates — from the proxy's history, from a relay
//! replay, across a SIGKILL of the proxy, and with several partitions feeding a channel.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fjord_testkit::{free_loopback_port, KafkaBroker, TestRecord};
use support::direct::{parse_sse, SseEvent};
use support::HttpConn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

/// Ports and config of one deployment under test.
struct Deployment {
    dir: tempfile::TempDir,
    config: PathBuf,
    http: u16,
    control: u16,
    relay_control: u16,
}

impl Deployment {
    /// `split`: a relay process publishing over ZeroMQ to a separate proxy process;
    /// otherwise `fjord run`.
    fn new(broker: &KafkaBroker, group: &str, history: usize, split: bool) -> Deployment {
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
                 auth = \"public\"\nhistory = {history}\npoll_timeout = 2\n\n\
                 [relay]\n{publish_line}control = \"127.0.0.1:{relay_control}\"\n\n\
                 [kafka]\n\"bootstrap.servers\" = \"{}\"\n\"group.id\" = \"{group}\"\n\
                 \"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = 6000\n\n\
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

    fn spawn(&self, command: &str) -> Child {
        spawn(command, &self.config, self.dir.path())
    }

    fn http_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.http).into()
    }
}

fn spawn(command: &str, config: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join(format!("{command}.log"))).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg(command)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start fjord")
}

async fn http_get(port: u16, path: &str) -> Option<String> {
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

async fn wait_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if http_get(port, "/readyz")
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} never became ready");
}

/// A metric's value (summed over label sets matching `name` exactly or with labels).
async fn metric(port: u16, name: &str) -> f64 {
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

async fn wait_metric(port: u16, name: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(port, name).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `values` for key `7` on the given partitions.
async fn produce(broker: &KafkaBroker, records: &[(i32, String)]) {
    let records: Vec<TestRecord> = records
        .iter()
        .map(|(partition, value)| TestRecord::keyed("7", value.clone()).on_partition(*partition))
        .collect();
    broker.produce("orders", &records).await.expect("produce");
}

fn values(prefix: &str, partitions: &[i32], count: usize) -> Vec<(i32, String)> {
    (0..count)
        .map(|i| {
            let partition = partitions[i % partitions.len()];
            (
                partition,
                format!("{{\"v\":\"{prefix}{i}\",\"p\":{partition}}}"),
            )
        })
        .collect()
}

/// An SSE client of `/orders/7`, from `last_event_id` when given.
async fn open(deployment: &Deployment, last_event_id: Option<&str>) -> HttpConn {
    let mut conn = HttpConn::connect(deployment.http_addr()).await;
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| vec![("Last-Event-ID", id)])
        .unwrap_or_default();
    conn.get("/orders/7", &headers).await;
    let head = conn.read_head(WAIT).await.expect("head");
    assert_eq!(head.status, 200, "{head:?}");
    conn
}

/// Reads until `count` order events arrived; returns them.
async fn read_events(conn: &mut HttpConn, count: usize) -> Vec<SseEvent> {
    let data = conn
        .read_chunks_until(WAIT, |d| orders(&String::from_utf8_lossy(d)).len() >= count)
        .await
        .unwrap_or_else(|(e, d)| {
            panic!(
                "{e:?}: wanted {count} events, got {:?}",
                orders(&String::from_utf8_lossy(&d))
                    .iter()
                    .map(|e| &e.data)
                    .collect::<Vec<_>>()
            )
        });
    orders(&String::from_utf8_lossy(&data))
}

fn orders(text: &str) -> Vec<SseEvent> {
    parse_sse(text)
        .into_iter()
        .filter(|e| e.event.as_deref() == Some("order"))
        .collect()
}

fn data(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

/// The values per partition, in arrival order.
fn per_partition(values: &[String]) -> BTreeMap<i64, Vec<String>> {
    let mut map: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for value in values {
        let json: serde_json::Value = serde_json::from_str(value).expect("JSON value");
        map.entry(json["p"].as_i64().expect("p"))
            .or_default()
            .push(value.clone());
    }
    map
}

fn start_broker() -> KafkaBroker {
    KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"))
}

/// Cut off after the first batch, more records produced, reconnect: exactly the rest.
async fn cut_off_and_resume(deployment: &Deployment, broker: &KafkaBroker, partitions: &[i32]) {
    let mut first = open(deployment, None).await;
    let before = values("a", partitions, 6);
    produce(broker, &before).await;
    let seen = read_events(&mut first, before.len()).await;
    assert_eq!(
        data(&seen),
        before.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );
    let last_id = seen.last().and_then(|e| e.id.clone()).expect("an id");
    drop(first);

    let after = values("b", partitions, 9);
    produce(broker, &after).await;
    let mut again = open(deployment, Some(&last_id)).await;
    let resumed = data(&read_events(&mut again, after.len()).await);
    let expected: Vec<String> = after.iter().map(|(_, v)| v.clone()).collect();
    // Kafka orders records per partition only.
    assert_eq!(per_partition(&resumed), per_partition(&expected));
    assert_eq!(resumed.len(), expected.len(), "no duplicates: {resumed:?}");

    // And it continues live, with nothing repeated.
    let live = values("c", partitions, 3);
    produce(broker, &live).await;
    let more = data(&read_events(&mut again, after.len() + live.len()).await);
    assert_eq!(
        per_partition(&more[after.len()..]),
        per_partition(&live.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_replays_missed_records_from_history() {
    let broker = start_broker();
    broker.create_topic("orders", 1).await.expect("topic");
    let deployment = Deployment::new(&broker, "resume-history", 1000, false);
    let _fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    cut_off_and_resume(&deployment, &broker, &[0]).await;
    assert_eq!(
        metric(
            deployment.control,
            "fjord_proxy_resumes_total{source=\"history\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            deployment.control,
            "fjord_proxy_resumes_total{source=\"replay\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_beyond_the_history_replays_missed_records_from_kafka() {
    let broker = start_broker();
    broker.create_topic("orders", 1).await.expect("topic");
    let deployment = Deployment::new(&broker, "resume-replay", 3, false);
    let _fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    cut_off_and_resume(&deployment, &broker, &[0]).await;
    assert_eq!(
        metric(
            deployment.control,
            "fjord_proxy_resumes_total{source=\"replay\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_to_a_channel_fed_by_several_partitions_misses_nothing() {
    let broker = start_broker();
    broker.create_topic("orders", 3).await.expect("topic");
    // History: resumed from memory (every partition was seen).
    let deployment = Deployment::new(&broker, "resume-partitions", 1000, false);
    let fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    cut_off_and_resume(&deployment, &broker, &[0, 1, 2]).await;
    drop(fjord);

    // Replay: the same across partitions, with a history too small to help.
    let broker = start_broker();
    broker.create_topic("orders", 3).await.expect("topic");
    let deployment = Deployment::new(&broker, "resume-partitions-replay", 2, false);
    let _fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    cut_off_and_resume(&deployment, &broker, &[0, 1, 2]).await;
    assert_eq!(
        metric(
            deployment.control,
            "fjord_proxy_resumes_total{source=\"replay\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_after_the_proxy_was_killed_and_restarted_misses_nothing() {
    let broker = start_broker();
    broker.create_topic("orders", 2).await.expect("topic");
    let deployment = Deployment::new(&broker, "resume-sigkill", 1000, true);
    let _relay = deployment.spawn("relay");
    wait_ready(deployment.relay_control).await;
    let mut proxy = deployment.spawn("proxy");
    wait_ready(deployment.control).await;

    let mut first = open(&deployment, None).await;
    wait_metric(
        deployment.relay_control,
        "fjord_relay_xpub_subscriptions",
        1.0,
    )
    .await;
    let before = values("a", &[0, 1], 4);
    produce(&broker, &before).await;
    let seen = read_events(&mut first, before.len()).await;
    let last_id = seen.last().and_then(|e| e.id.clone()).expect("an id");

    proxy.start_kill().expect("SIGKILL");
    proxy.wait().await.expect("proxy gone");
    drop(first);
    // Consumed and committed by the relay while no proxy subscribed.
    let during = values("b", &[0, 1], 6);
    produce(&broker, &during).await;
    wait_metric(
        deployment.relay_control,
        "fjord_relay_records_consumed_total",
        (before.len() + during.len()) as f64,
    )
    .await;

    let _proxy = deployment.spawn("proxy");
    wait_ready(deployment.control).await;
    let mut again = open(&deployment, Some(&last_id)).await;
    let resumed = data(&read_events(&mut again, during.len()).await);
    let expected: Vec<String> = during.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(per_partition(&resumed), per_partition(&expected));
    assert_eq!(resumed.len(), expected.len());

    wait_metric(
        deployment.relay_control,
        "fjord_relay_xpub_subscriptions",
        1.0,
    )
    .await;
    let live = values("c", &[0, 1], 4);
    produce(&broker, &live).await;
    let more = data(&read_events(&mut again, during.len() + live.len()).await);
    assert_eq!(
        per_partition(&more[during.len()..]),
        per_partition(&live.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_walks_the_same_sequence_as_the_stream() {
    let broker = start_broker();
    broker.create_topic("orders", 2).await.expect("topic");
    let deployment = Deployment::new(&broker, "resume-poll", 1000, false);
    let _fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    let mut stream = open(&deployment, None).await;
    let first = http_get(deployment.http, "/orders/7?mode=poll")
        .await
        .expect("poll");
    let body = &first[first.find("\r\n\r\n").expect("head end") + 4..];
    let answer: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let mut cursor = answer["cursor"].as_str().expect("cursor").to_owned();

    let records = values("a", &[0, 1], 10);
    produce(&broker, &records).await;
    let streamed = read_events(&mut stream, records.len()).await;

    let mut polled: Vec<(String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while polled.len() < records.len() && tokio::time::Instant::now() < deadline {
        let response = http_get(
            deployment.http,
            &format!("/orders/7?mode=poll&since={cursor}"),
        )
        .await
        .expect("poll");
        let body = &response[response.find("\r\n\r\n").expect("head end") + 4..];
        let answer: serde_json::Value = serde_json::from_str(body).expect("JSON");
        for event in answer["events"].as_array().expect("events") {
            polled.push((
                event["id"].as_str().expect("id").to_owned(),
                event["data"].as_str().expect("data").to_owned(),
            ));
        }
        cursor = answer["cursor"].as_str().expect("cursor").to_owned();
    }
    let streamed: Vec<(String, String)> = streamed
        .into_iter()
        .map(|e| (e.id.expect("id"), e.data))
        .collect();
    assert_eq!(polled, streamed, "same events, same ids, same order");
}
