//! A relay process killed with SIGKILL mid-stream: the relay that takes over re-sends at
//! most the uncommitted tail, and after de-duplication by (topic, partition, offset)
//! every record arrives exactly once.
//!
//! The killed relay runs in a child process (this test binary re-executed on the ignored
//! helper below) so that nothing of it can commit or leave the group on the way out.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fjord_protocol::zmq::decode_pull_message;
use fjord_relay::{Relay, StreamConfig};
use fjord_testkit::TestRecord;
use zeromq::{PullSocket, Socket, SocketRecv};

const CHILD_BOOTSTRAP: &str = "FJORD_RELAY_CHILD_BOOTSTRAP";
const CHILD_PUSH: &str = "FJORD_RELAY_CHILD_PUSH";

fn config(bootstrap: String, push: String) -> fjord_relay::RelayConfig {
    let mut config = relay_config_for(
        bootstrap,
        "sigkill",
        vec![StreamConfig::new("orders", "orders.{key}")],
    );
    config.publish = None;
    config.control = None;
    config.push = vec![push];
    config.max_batch_records = 50;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of a_relay_killed_with_sigkill_resends_only_the_uncommitted_tail"]
async fn relay_child_process() {
    let (Ok(bootstrap), Ok(push)) = (std::env::var(CHILD_BOOTSTRAP), std::env::var(CHILD_PUSH))
    else {
        return;
    };
    let _relay = Relay::start(config(bootstrap, push)).await.unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_with_sigkill_resends_only_the_uncommitted_tail() {
    let broker = start_broker().await;
    broker.create_topic("orders", 3).await.unwrap();
    let records: Vec<_> = (0..4000)
        .map(|i| TestRecord::keyed(format!("k{}", i % 101), format!("{{\"n\":{i}}}")))
        .collect();
    let produced = broker.produce("orders", &records).await.unwrap();
    let mut pull = PullSocket::new();
    let endpoint = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["relay_child_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_BOOTSTRAP, broker.bootstrap())
        .env(CHILD_PUSH, &endpoint)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut counts: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    let mut received = 0;
    let receive = |counts: &mut BTreeMap<_, usize>, message: zeromq::ZmqMessage| {
        let item = decode_pull_message(&message.into_vec()).unwrap();
        *counts.entry(position(&item)).or_default() += 1;
    };
    while received < 1500 {
        let message = tokio::time::timeout(Duration::from_secs(60), pull.recv())
            .await
            .expect("the child relay published nothing")
            .unwrap();
        receive(&mut counts, message);
        received += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Drain what the child wrote before it died.
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(300), pull.recv()).await
    {
        receive(&mut counts, message);
        received += 1;
    }
    let before_kill = received;

    let successor = Relay::start(config(broker.bootstrap(), endpoint))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while counts.len() < produced.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, pull.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} records", counts.len(), produced.len()))
            .unwrap();
        receive(&mut counts, message);
        received += 1;
    }
    let expected: BTreeSet<_> = produced
        .iter()
        .map(|&(p, o)| ("orders".to_owned(), p, o))
        .collect();
    let got: BTreeSet<_> = counts.keys().cloned().collect();
    assert_eq!(got, expected);
    let duplicates = received - produced.len();
    println!("sigkill: {before_kill} items before the kill, {duplicates} re-sent after it");
    assert!(
        duplicates < before_kill,
        "re-sent more than the uncommitted tail could hold"
    );
    successor.shutdown().await;
}
