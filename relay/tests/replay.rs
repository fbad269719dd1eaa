//! `GET /replay` against a real broker: exactly the channel's records after the given
//! offsets, and an explicit gap when the offsets are no longer retained.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fjord_protocol::item::PublishItem;
use fjord_protocol::resume::ResumePosition;
use fjord_relay::{Relay, RunningRelay, StreamConfig};
use fjord_testkit::{KafkaBroker, TestRecord};

struct Replay {
    gaps: Vec<serde_json::Value>,
    items: Vec<PublishItem>,
    end: serde_json::Value,
}

async fn replay(relay: &RunningRelay, query: &str) -> Replay {
    let (status, body) = http_get(relay.control_addr().unwrap(), &format!("/replay?{query}")).await;
    assert_eq!(status, 200, "{body}");
    let mut replay = Replay {
        gaps: Vec::new(),
        items: Vec::new(),
        end: serde_json::Value::Null,
    };
    for line in body.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(replay.end.is_null(), "a line after the end line: {line}");
        if let Some(gap) = value.get("gap") {
            assert!(replay.items.is_empty(), "gap after items");
            replay.gaps.push(gap.clone());
        } else if let Some(end) = value.get("end") {
            replay.end = end.clone();
        } else if let Some(error) = value.get("error") {
            panic!("replay failed: {error}");
        } else {
            replay
                .items
                .push(PublishItem::from_json(&value, None).unwrap());
        }
    }
    assert!(!replay.end.is_null(), "no end line in {body}");
    replay
}

fn config(broker: &KafkaBroker, topic: &str) -> fjord_relay::RelayConfig {
    let mut by_key = StreamConfig::new(topic, "orders.{key}");
    by_key.name = Some("by-key".into());
    let mut config = relay_config(
        broker,
        "replay",
        vec![StreamConfig::new(topic, "{topic}"), by_key],
    );
    config.publish = None;
    config.sink = Some(Collected::default().sink());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_exactly_the_channels_records_after_the_offsets() {
    let broker = start_broker().await;
    broker.create_topic("orders", 3).await.unwrap();
    let relay = Relay::start(config(&broker, "orders")).await.unwrap();
    let records: Vec<_> = (0..60)
        .map(|i| {
            TestRecord::keyed(format!("k{}", i % 4), format!("v{i}\nmore")).on_partition(i % 3)
        })
        .collect();
    let positions = broker.produce("orders", &records).await.unwrap();
    let after = [(0, 4i64), (1, 0), (2, 12)];
    let query_after = after
        .iter()
        .map(|(p, o)| format!("orders-{p}-{o}"))
        .collect::<Vec<_>>()
        .join(",");

    let got = replay(
        &relay,
        &format!("channel=orders.k1&stream=by-key&after={query_after}"),
    )
    .await;
    let mut expected: Vec<(i32, i64)> = positions
        .iter()
        .enumerate()
        .filter(|(i, (p, o))| i % 4 == 1 && after.iter().any(|(ap, ao)| ap == p && o > ao))
        .map(|(_, &position)| position)
        .collect();
    expected.sort_unstable();
    let mut received: Vec<(i32, i64)> = got
        .items
        .iter()
        .map(|item| {
            assert_eq!(item.channel, "orders.k1");
            let (_, p, o) = position(item);
            (p, o)
        })
        .collect();
    received.sort_unstable();
    assert_eq!(received, expected);
    assert!(got.gaps.is_empty());
    // The end position covers every partition to its last record.
    let end = ResumePosition::decode(got.end["position"].as_str().unwrap()).unwrap();
    for partition in 0..3 {
        assert_eq!(end.offset_of("orders", partition), Some(19));
    }

    // A resume id works as well, and `partitions=listed` reads only the named ones.
    let mut position = ResumePosition::new();
    position.advance("orders", 2, 15);
    let got = replay(
        &relay,
        &format!("channel=orders&stream=0&position={position}&partitions=listed"),
    )
    .await;
    let offsets: Vec<_> = got.items.iter().map(position_of).collect();
    assert_eq!(offsets, [(2, 16), (2, 17), (2, 18), (2, 19)]);

    // By default the partitions the position does not name are read too, from the log
    // start when the position has no timestamp (the client saw nothing from them).
    let got = replay(
        &relay,
        &format!("channel=orders&stream=0&position={position}"),
    )
    .await;
    let mut offsets: Vec<_> = got.items.iter().map(position_of).collect();
    offsets.sort_unstable();
    let mut expected: Vec<_> = (0..2).flat_map(|p| (0..20).map(move |o| (p, o))).collect();
    expected.extend((16..20).map(|o| (2, o)));
    assert_eq!(offsets, expected);

    // Bad requests are answered before anything streams.
    let (status, _) = http_get(
        relay.control_addr().unwrap(),
        "/replay?channel=x&stream=9&after=orders-0-1",
    )
    .await;
    assert_eq!(status, 400);
    relay.shutdown().await;
}

fn position_of(item: &PublishItem) -> (i32, i64) {
    let (_, p, o) = position(item);
    (p, o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_a_gap_for_offsets_no_longer_retained() {
    let broker = tokio::task::spawn_blocking(|| KafkaBroker::start_with_fast_retention().unwrap())
        .await
        .unwrap();
    broker
        .create_topic_with(
            "expiring",
            1,
            &[("cleanup.policy", "delete"), ("retention.ms", "2000")],
        )
        .await
        .unwrap();
    let relay = Relay::start(config(&broker, "expiring")).await.unwrap();
    let old: Vec<_> = (0..10)
        .map(|i| TestRecord::keyed("k", format!("old{i}")))
        .collect();
    broker.produce("expiring", &old).await.unwrap();
    // The test broker reports (0, 0) once every record of a partition expired (Kafka
    // would keep the high watermark), so wait for that or for a moved log start.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (low, high) = broker.watermarks("expiring", 1).await.unwrap()[0];
        if low > 1 || high < 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention never removed the old records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh: Vec<_> = (0..3)
        .map(|i| TestRecord::keyed("k", format!("new{i}")))
        .collect();
    let fresh_positions = broker.produce("expiring", &fresh).await.unwrap();
    let (low, _) = broker.watermarks("expiring", 1).await.unwrap()[0];

    let got = replay(&relay, "channel=expiring&stream=0&after=expiring-0-0").await;
    assert_eq!(got.gaps.len(), 1, "{:?}", got.gaps);
    let gap = &got.gaps[0];
    assert_eq!(gap["topic"], "expiring");
    assert_eq!(gap["partition"], 0);
    assert_eq!(gap["from"], 1);
    assert!(gap["to"].as_i64().unwrap() >= low - 1);
    let offsets: Vec<_> = got.items.iter().map(|i| position_of(i).1).collect();
    let gap_end = gap["to"].as_i64().unwrap();
    assert!(offsets.iter().all(|&o| o > gap_end));
    // Fresh records may expire too while the test runs; those still retained when the
    // replay ran (above the gap) must all be there.
    for (_, offset) in fresh_positions.iter().filter(|(_, o)| *o > gap_end) {
        assert!(
            offsets.contains(offset),
            "fresh record {offset} not replayed"
        );
    }
    relay.shutdown().await;
}
