//! At-least-once delivery against a real broker: a relay killed mid-stream, a rebalance
//! between two relays in one group, and a broker outage. Items are collected through the
//! in-process sink; after de-duplication by (topic, partition, offset) every record must
//! have arrived exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use fjord_relay::{Relay, StreamConfig};
use fjord_testkit::TestRecord;

fn records(range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range
        .map(|i| TestRecord::keyed(format!("k{}", i % 97), format!("{{\"n\":{i}}}")))
        .collect()
}

/// Every produced position, once, and how many duplicates arrived.
fn check_exactly_once_after_dedup(
    collected: &Collected,
    produced: &[(i32, i64)],
    topic: &str,
) -> usize {
    let items = collected.items();
    let mut counts: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for item in &items {
        *counts.entry(position(item)).or_default() += 1;
    }
    let expected: BTreeSet<_> = produced
        .iter()
        .map(|&(p, o)| (topic.to_owned(), p, o))
        .collect();
    let got: BTreeSet<_> = counts.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "records never delivered, e.g. {missing:?}"
    );
    assert_eq!(got, expected, "unexpected positions delivered");
    items.len() - expected.len()
}

async fn wait_positions(collected: &Collected, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let distinct: BTreeSet<_> = collected.items().iter().map(position).collect();
        if distinct.len() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} distinct records arrived",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_loses_nothing() {
    let broker = start_broker().await;
    broker.create_topic("orders", 3).await.unwrap();
    let produced = broker.produce("orders", &records(0..3000)).await.unwrap();
    let collected = Collected::default();
    let streams = vec![StreamConfig::new("orders", "orders.{key}")];

    let mut config = relay_config(&broker, "kill", streams.clone());
    config.publish = None;
    config.sink = Some(collected.sink());
    config.max_batch_records = 50;
    let first = Relay::start(config.clone()).await.unwrap();
    collected.wait_for(1000, Duration::from_secs(60)).await;
    first.abort();
    let at_kill = collected.len();

    let second = Relay::start(config).await.unwrap();
    wait_positions(&collected, produced.len(), Duration::from_secs(90)).await;
    // Let anything re-sent in flight arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates = check_exactly_once_after_dedup(&collected, &produced, "orders");
    println!("kill: {at_kill} items before the kill, {duplicates} duplicates after restart");
    assert!(
        duplicates <= at_kill,
        "re-sent more than was delivered before the kill"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_between_two_relays_loses_nothing() {
    let broker = start_broker().await;
    broker.create_topic("orders", 4).await.unwrap();
    let collected = Collected::default();
    let mut config = relay_config(
        &broker,
        "rebalance",
        vec![StreamConfig::new("orders", "{topic}")],
    );
    config.publish = None;
    config.sink = Some(collected.sink());
    config.max_batch_records = 100;
    let first = Relay::start(config.clone()).await.unwrap();
    let assigns = |relay: &fjord_relay::RunningRelay| {
        relay
            .metrics()
            .rebalances
            .with_label_values(&["assign"])
            .get()
    };

    // Produce in rounds of 100 while the second relay joins, and keep producing until
    // the group has rebalanced, so the rebalance falls in the middle of the stream.
    let started = Instant::now();
    let mut produced = Vec::new();
    let mut second = None;
    for round in 0..200 {
        produced.extend(
            broker
                .produce("orders", &records(round * 100..(round + 1) * 100))
                .await
                .unwrap(),
        );
        if round == 5 {
            second = Some(Relay::start(config.clone()).await.unwrap());
        }
        let rebalanced = second.as_ref().is_some_and(|s| assigns(s) >= 1) && assigns(&first) >= 2;
        if round >= 49 && rebalanced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = second.unwrap();
    assert!(
        assigns(&first) >= 2,
        "the first relay never saw the rebalance"
    );
    assert!(
        assigns(&second) >= 1,
        "the second relay never got partitions"
    );

    wait_positions(&collected, produced.len(), Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates = check_exactly_once_after_dedup(&collected, &produced, "orders");
    println!(
        "rebalance: {} records in {:?}, {duplicates} duplicates",
        produced.len(),
        started.elapsed()
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_survived_and_readiness_follows_it() {
    let mut broker = start_broker().await;
    broker.create_topic("orders", 2).await.unwrap();
    let collected = Collected::default();
    let mut config = relay_config(
        &broker,
        "outage",
        vec![StreamConfig::new("orders", "{topic}")],
    );
    config.publish = None;
    config.sink = Some(collected.sink());
    config.probe_interval = Duration::from_millis(300);
    let relay = Relay::start(config).await.unwrap();
    let control = relay.control_addr().unwrap();
    let mut produced = broker.produce("orders", &records(0..300)).await.unwrap();
    wait_positions(&collected, 300, Duration::from_secs(60)).await;
    wait_ready(control, 200, Duration::from_secs(10)).await;

    broker.kill();
    wait_ready(control, 503, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = tokio::task::spawn_blocking(move || {
        broker.restart().unwrap();
        broker
    });
    let broker = restarted.await.unwrap();
    wait_ready(control, 200, Duration::from_secs(30)).await;

    produced.extend(broker.produce("orders", &records(300..600)).await.unwrap());
    wait_positions(&collected, 600, Duration::from_secs(90)).await;
    let duplicates = check_exactly_once_after_dedup(&collected, &produced, "orders");
    println!("outage: {duplicates} duplicates");
    relay.shutdown().await;
}

/// The full-size version: 50,000 records, two relays, a rebalance in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_records_through_a_rebalance() {
    let broker = start_broker().await;
    broker.create_topic("orders", 4).await.unwrap();
    let (by_first, by_second) = (Collected::default(), Collected::default());
    let mut config = relay_config(
        &broker,
        "fifty",
        vec![StreamConfig::new("orders", "orders.{key}")],
    );
    config.publish = None;
    config.sink = Some(by_first.sink());
    let started = Instant::now();
    let first = Relay::start(config.clone()).await.unwrap();
    config.sink = Some(by_second.sink());
    let mut produced = Vec::new();
    let mut second = None;
    for round in 0..10 {
        produced.extend(
            broker
                .produce("orders", &records(round * 5000..(round + 1) * 5000))
                .await
                .unwrap(),
        );
        if round == 2 {
            second = Some(Relay::start(config.clone()).await.unwrap());
        }
        if round == 4 {
            // The rest of the stream is produced after the group rebalanced.
            let deadline = Instant::now() + Duration::from_secs(30);
            while second
                .as_ref()
                .is_some_and(|s| s.metrics().rebalances.with_label_values(&["assign"]).get() == 0)
            {
                assert!(Instant::now() < deadline, "the second relay never joined");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let produce_time = started.elapsed();
    let all = Collected::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        *all.0.lock().unwrap() = [by_first.items(), by_second.items()].concat();
        let distinct: BTreeSet<_> = all.items().iter().map(position).collect();
        if distinct.len() >= produced.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {} records", distinct.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duplicates = check_exactly_once_after_dedup(&all, &produced, "orders");
    let second = second.unwrap();
    // Both relays delivered part of the stream: the rebalance fell in its middle.
    assert!(by_first.len() > 0 && by_second.len() > 0);
    println!(
        "fifty: produced in {produce_time:?}, all delivered after {:?}, {duplicates} duplicates, {} / {} items per relay",
        started.elapsed(),
        by_first.len(),
        by_second.len(),
    );
    first.shutdown().await;
    second.shutdown().await;
}
