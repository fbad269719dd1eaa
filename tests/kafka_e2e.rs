//! Kafka to an SSE client, end to end through the `fjord` binary and a real
//! Kafka-protocol broker: `fjord run` (relay feeding the proxy in-process), and
//! `fjord relay` + `fjord proxy` as separate processes meeting over ZeroMQ.

mod support;

use std::time::Duration;

use fjord_testkit::{free_loopback_port, KafkaBroker, TestRecord};
use support::deployment::{spawn_fjord, wait_healthy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// Opens a held SSE-ish stream on the proxy's built-in test origin.
async fn subscribe(port: u16, channel: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET /stream?channel={channel} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    read_until(&mut stream, b"\r\n\r\n").await;
    stream
}

async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let done = timeout(WAIT, async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "did not see {:?} in {:?}",
        String::from_utf8_lossy(needle),
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

fn kafka_section(broker: &KafkaBroker, group: &str) -> String {
    format!(
        "[kafka]\n\"bootstrap.servers\" = \"{}\"\n\"group.id\" = \"{group}\"\n\
         \"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = 6000\n\n\
         [[relay.stream]]\ntopic = \"orders\"\nchannel = \"orders.{{key}}\"\nevent = \"order\"\n",
        broker.bootstrap()
    )
}

async fn produce_orders(broker: &KafkaBroker) -> Vec<(i32, i64)> {
    let records: Vec<TestRecord> = (0..6)
        .map(|i| {
            TestRecord::keyed(
                if i % 2 == 0 { "42" } else { "43" },
                format!("{{\"step\":{i}}}"),
            )
        })
        .collect();
    broker.produce("orders", &records).await.expect("produce")
}

fn expected_events(positions: &[(i32, i64)]) -> Vec<String> {
    positions
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, (p, o))| format!("id: orders-{p}-{o}\nevent: order\ndata: {{\"step\":{i}}}\n\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_kafka_records_of_a_key_to_its_channel_in_order() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 3).await.expect("topic");
    let dir = tempfile::tempdir().expect("dir");
    let (http, control, relay_control) = (
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
    );
    std::fs::write(dir.path().join("routes"), "* test\n").expect("routes");
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{http}\"\ncontrol = \"127.0.0.1:{control}\"\n\
             zmq_pull = \"\"\nzmq_sub = \"\"\nroutes_file = \"routes\"\n\n\
             [relay]\ncontrol = \"127.0.0.1:{relay_control}\"\n\n{}",
            kafka_section(&broker, "e2e-run")
        ),
    )
    .expect("config");
    let _fjord = spawn_fjord(&["run"], &config);
    wait_healthy(control).await;
    let mut client = subscribe(http, "orders.42").await;
    wait_healthy(relay_control).await;
    let positions = produce_orders(&broker).await;
    let expected = expected_events(&positions);
    let seen = read_until(&mut client, expected.last().expect("events").as_bytes()).await;
    let mut at = 0;
    for event in &expected {
        let found = seen[at..]
            .find(event.as_str())
            .unwrap_or_else(|| panic!("missing or out of order: {event:?} in {seen:?}"));
        at += found + event.len();
    }
    assert!(
        !seen.contains("step\":1"),
        "another key's record leaked: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_proxy_processes_meet_over_zeromq() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 3).await.expect("topic");
    let dir = tempfile::tempdir().expect("dir");
    let (http, control, relay_control, publish) = (
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
    );
    std::fs::write(dir.path().join("routes"), "* test\n").expect("routes");
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{http}\"\ncontrol = \"127.0.0.1:{control}\"\n\
             zmq_pull = \"\"\nzmq_sub = \"\"\nroutes_file = \"routes\"\n\
             relays = [\"tcp://127.0.0.1:{publish}\"]\n\n\
             [relay]\npublish = \"tcp://127.0.0.1:{publish}\"\ncontrol = \"127.0.0.1:{relay_control}\"\n\n{}",
            kafka_section(&broker, "e2e-split")
        ),
    )
    .expect("config");
    let _proxy = spawn_fjord(&["proxy"], &config);
    wait_healthy(control).await;
    // The client subscribes before the relay starts: the proxy's SUB subscription must
    // reach the relay's XPUB when it comes up, before it consumes.
    let mut client = subscribe(http, "orders.42").await;
    let _relay = spawn_fjord(&["relay"], &config);
    wait_healthy(relay_control).await;
    let positions = produce_orders(&broker).await;
    let expected = expected_events(&positions);
    let seen = read_until(&mut client, expected.last().expect("events").as_bytes()).await;
    for event in &expected {
        assert!(
            seen.contains(event.as_str()),
            "missing {event:?} in {seen:?}"
        );
    }
}
