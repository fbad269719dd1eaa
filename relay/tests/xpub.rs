//! Records through a real broker, out of the relay's XPUB endpoint into a SUB socket of
//! the `zeromq` crate: channels, order, byte-exact content, subscription filtering, and
//! skipped records.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use fjord_protocol::item::{HttpStreamFormat, ResponseAction, ResponseBody, StreamAction};
use fjord_relay::{Relay, StreamConfig};
use fjord_testkit::TestRecord;

fn stream_content(item: &fjord_protocol::item::PublishItem) -> Vec<u8> {
    match &item.formats.http_stream {
        Some(HttpStreamFormat {
            action: StreamAction::Send(bytes),
            ..
        }) => bytes.to_vec(),
        other => panic!("no http-stream content: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_subscribed_channels_in_partition_order_byte_exact() {
    let broker = start_broker().await;
    broker.create_topic("orders", 3).await.unwrap();
    let mut by_key = StreamConfig::new("orders", "orders.{key}");
    by_key.event = Some("order".into());
    let by_tenant = StreamConfig::new("orders", "tenant.{header.tenant}");
    let by_region = StreamConfig::new("orders", "region.{json./region}");
    let config = relay_config(&broker, "xpub-map", vec![by_key, by_tenant, by_region]);
    let relay = Relay::start(config).await.unwrap();
    let subscribed = ["orders.k1", "orders.k2", "tenant.t0", "region.r2"];
    let mut sub = subscriber(&relay, &subscribed).await;

    let records: Vec<TestRecord> = (0..30)
        .map(|i| {
            let value = format!(
                "{{\"region\":\"r{}\",\"n\":{i},\"text\":\"é\"}}\nsecond line",
                i % 3
            );
            TestRecord::keyed(format!("k{}", i % 5), value)
                .with_header("tenant", format!("t{}", i % 2))
                .on_partition(i % 3)
        })
        .collect();
    // Region needs JSON; the second line makes the value invalid JSON for half the
    // records, so build the JSON-valid ones separately.
    let records: Vec<TestRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if i % 2 == 0 {
                let text = String::from_utf8(r.value.clone().unwrap()).unwrap();
                r.value = Some(text.lines().next().unwrap().as_bytes().to_vec());
            }
            r
        })
        .collect();
    let positions = broker.produce("orders", &records).await.unwrap();

    let mut expected: BTreeSet<(String, i32, i64)> = BTreeSet::new();
    for (i, (partition, offset)) in positions.iter().enumerate() {
        let mut channels = vec![format!("orders.k{}", i % 5), format!("tenant.t{}", i % 2)];
        if i % 2 == 0 {
            channels.push(format!("region.r{}", (i as i32) % 3));
        }
        for channel in channels {
            if subscribed.contains(&channel.as_str()) {
                expected.insert((channel, *partition, *offset));
            }
        }
    }

    let mut received = Vec::new();
    while received.len() < expected.len() {
        let (channel, item) = next_item(&mut sub, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("only {} of {} items", received.len(), expected.len()));
        received.push((channel, item));
    }
    assert!(
        next_item(&mut sub, Duration::from_millis(1500))
            .await
            .is_none(),
        "an unsubscribed channel or a duplicate was sent"
    );

    let mut last: HashMap<(String, i32), i64> = HashMap::new();
    let mut got = BTreeSet::new();
    for (channel, item) in &received {
        assert_eq!(&item.channel, channel);
        let (topic, partition, offset) = position(item);
        assert_eq!(topic, "orders");
        assert_eq!(
            item.id.as_deref(),
            Some(&*format!("orders-{partition}-{offset}"))
        );
        assert!(item.no_seq && item.prev_id.is_none());
        let previous = last.insert((channel.clone(), partition), offset);
        assert!(
            previous.is_none_or(|p| p < offset),
            "{channel} partition {partition}: {offset} after {previous:?}"
        );
        let index = positions
            .iter()
            .position(|&p| p == (partition, offset))
            .unwrap();
        let value = records[index].value.clone().unwrap();
        let ResponseAction::Send(response) = &item.formats.http_response.as_ref().unwrap().action
        else {
            panic!("http-response is not a send");
        };
        assert_eq!(response.body, ResponseBody::Bytes(value.clone().into()));
        let mut sse = format!("id: orders-{partition}-{offset}\n");
        if channel.starts_with("orders.") {
            sse.push_str("event: order\n");
        }
        for line in String::from_utf8(value).unwrap().lines() {
            sse.push_str(&format!("data: {line}\n"));
        }
        sse.push('\n');
        assert_eq!(String::from_utf8(stream_content(item)).unwrap(), sse);
        got.insert((channel.clone(), partition, offset));
    }
    assert_eq!(got, expected);
    assert!(relay.metrics().items_unsubscribed.get() > 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_skipped_and_counted_and_later_records_still_arrive() {
    let broker = start_broker().await;
    broker.create_topic("orders", 1).await.unwrap();
    let mut config = relay_config(
        &broker,
        "xpub-bad",
        vec![StreamConfig::new("orders", "orders.{json./id}")],
    );
    config.max_value_bytes = 100;
    config
        .kafka
        .insert("statistics.interval.ms".into(), "200".into());
    let relay = Relay::start(config).await.unwrap();
    let control = relay.control_addr().unwrap();
    let mut sub = subscriber(&relay, &["orders.1", "orders.2", "orders.3"]).await;
    let huge = format!("{{\"id\":2,\"pad\":\"{}\"}}", "x".repeat(200));
    let values: [&[u8]; 6] = [
        br#"{"id":1}"#,
        b"not json",
        br#"{"x":1}"#,
        huge.as_bytes(),
        &[0xff, 0x00],
        br#"{"id":3}"#,
    ];
    let records: Vec<_> = values
        .iter()
        .map(|v| TestRecord {
            value: Some(v.to_vec()),
            ..TestRecord::default()
        })
        .collect();
    broker.produce("orders", &records).await.unwrap();
    let (first, _) = next_item(&mut sub, Duration::from_secs(20)).await.unwrap();
    let (second, item) = next_item(&mut sub, Duration::from_secs(20)).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("orders.1", "orders.3"));
    assert_eq!(position(&item).2, 5);

    let (status, metrics) = http_get(control, "/metrics").await;
    assert_eq!(status, 200);
    let skipped = |reason: &str| {
        metric(
            &metrics,
            &format!("fjord_relay_records_skipped_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(skipped("value_not_json"), 2.0);
    assert_eq!(skipped("missing_json_field"), 1.0);
    assert_eq!(skipped("value_too_large"), 1.0);
    assert_eq!(
        metric(
            &metrics,
            "fjord_relay_records_consumed_total{topic=\"orders\"}"
        ),
        6.0
    );
    assert_eq!(metric(&metrics, "fjord_relay_xpub_peers"), 1.0);
    // Lag (from librdkafka's statistics) drops to zero once everything is handed off,
    // and stored offsets get committed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = http_get(control, "/metrics").await;
        let lag = metrics
            .lines()
            .find(|l| l.starts_with("fjord_relay_consumer_lag{") && l.contains("topic=\"orders\""));
        let committed = metric(&metrics, "fjord_relay_commits_total{result=\"ok\"}");
        let timed = metric(&metrics, "fjord_relay_commit_seconds_count");
        if lag.is_some_and(|l| l.ends_with(" 0")) && committed >= 1.0 && timed >= 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lag/commit metrics never settled: {lag:?}, {committed} commits, {timed} timed\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("commit"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(http_get(control, "/healthz").await.0, 200);
    assert_eq!(http_get(control, "/readyz").await.0, 200);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_rule_consumes_every_matching_topic() {
    let broker = start_broker().await;
    for topic in ["orders.eu", "orders.us", "ordersxus"] {
        broker.create_topic(topic, 1).await.unwrap();
    }
    let mut rule = StreamConfig::new("unused", "{topic}.{key}");
    rule.topic = fjord_relay::TopicSelector::Pattern("orders\\.[a-z]+".into());
    let collected = Collected::default();
    let mut config = relay_config(&broker, "pattern", vec![rule]);
    config.publish = None;
    config.sink = Some(collected.sink());
    config
        .kafka
        .insert("topic.metadata.refresh.interval.ms".into(), "1000".into());
    let relay = Relay::start(config).await.unwrap();
    for topic in ["orders.eu", "orders.us", "ordersxus"] {
        broker
            .produce(topic, &[TestRecord::keyed("k", "v")])
            .await
            .unwrap();
    }
    collected.wait_for(2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut channels: Vec<_> = collected.items().into_iter().map(|i| i.channel).collect();
    channels.sort();
    assert_eq!(channels, ["orders.eu.k", "orders.us.k"]);
    relay.shutdown().await;
}
