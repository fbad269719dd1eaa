//! Shared helpers of the relay suites: a real tansu broker (fjord-testkit), relays on
//! free ports, a SUB socket from the `zeromq` crate, and a tiny HTTP client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjord_protocol::item::PublishItem;
use fjord_protocol::zmq::decode_sub_message;
use fjord_relay::{ItemSink, RelayConfig, SettleConfig, StreamConfig};
use fjord_testkit::KafkaBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeromq::{Socket, SocketRecv, SubSocket};

/// Starts the broker on a blocking thread (the fixture sleeps while it waits).
pub async fn start_broker() -> KafkaBroker {
    tokio::task::spawn_blocking(|| KafkaBroker::start().unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap()
}

/// A relay config for `broker`: ephemeral ports, short settle and commit intervals.
pub fn relay_config(broker: &KafkaBroker, group: &str, streams: Vec<StreamConfig>) -> RelayConfig {
    relay_config_for(broker.bootstrap(), group, streams)
}

/// [`relay_config`] for a broker known only by its address (a child process).
pub fn relay_config_for(bootstrap: String, group: &str, streams: Vec<StreamConfig>) -> RelayConfig {
    let mut kafka = BTreeMap::new();
    kafka.insert("bootstrap.servers".to_owned(), bootstrap);
    kafka.insert("group.id".to_owned(), group.to_owned());
    kafka.insert("session.timeout.ms".to_owned(), "6000".to_owned());
    kafka.insert("heartbeat.interval.ms".to_owned(), "500".to_owned());
    kafka.insert("auto.offset.reset".to_owned(), "earliest".to_owned());
    RelayConfig {
        kafka,
        streams,
        publish: Some("tcp://127.0.0.1:0".to_owned()),
        control: Some("127.0.0.1:0".parse().unwrap()),
        commit_interval: Duration::from_millis(200),
        settle: SettleConfig {
            min: Duration::from_millis(100),
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        ..RelayConfig::default()
    }
}

/// Items received through an in-process sink.
#[derive(Clone, Default)]
pub struct Collected(pub Arc<Mutex<Vec<PublishItem>>>);

impl Collected {
    pub fn sink(&self) -> ItemSink {
        let items = self.0.clone();
        ItemSink::new(move |item| items.lock().unwrap().push(item))
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn items(&self) -> Vec<PublishItem> {
        self.0.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.len() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} items arrived within {timeout:?}",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// (topic, partition, offset) of an item, from its meta.
pub fn position(item: &PublishItem) -> (String, i32, i64) {
    (
        item.meta["topic"].clone(),
        item.meta["partition"].parse().unwrap(),
        item.meta["offset"].parse().unwrap(),
    )
}

/// A SUB socket connected to the relay, subscribed to `channels`, once the relay has
/// seen every subscription.
pub async fn subscriber(relay: &fjord_relay::RunningRelay, channels: &[&str]) -> SubSocket {
    let mut sub = SubSocket::new();
    sub.connect(relay.publish_endpoint().unwrap())
        .await
        .unwrap();
    for channel in channels {
        sub.subscribe(channel).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !channels.iter().all(|c| relay.is_subscribed(c)) {
        assert!(
            Instant::now() < deadline,
            "subscriptions never reached the relay"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sub
}

/// The next SUB message as (channel frame, decoded item), or `None` after `timeout`.
pub async fn next_item(sub: &mut SubSocket, timeout: Duration) -> Option<(String, PublishItem)> {
    let message = tokio::time::timeout(timeout, sub.recv())
        .await
        .ok()?
        .unwrap();
    let frames: Vec<_> = message.into_vec();
    assert_eq!(frames.len(), 2, "a relay message has two frames");
    let item = decode_sub_message(&frames).unwrap();
    Some((String::from_utf8(frames[0].to_vec()).unwrap(), item))
}

/// Waits until `/readyz` answers `status`.
pub async fn wait_ready(control: SocketAddr, status: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, _) = http_get(control, "/readyz").await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` over HTTP/1.0 (so the body is close-delimited): status and body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: relay\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .expect("HTTP response timed out")
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// The value of a metric line (`name{labels} value`) in Prometheus text, 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
