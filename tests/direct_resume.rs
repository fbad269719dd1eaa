//! Resume without loss in direct mode, end to end with a real Kafka-protocol broker, the
//! relay and the proxy (design "Resume"): a client cut off after N of M records
//! reconnects with its Last-Event-ID and receives exactly the missing records, in
//! per-partition order, without duplicates — from the proxy's history, from a relay
//! replay, across a SIGKILL of the proxy, and with several partitions feeding a channel.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_testkit::{KafkaBroker, TestRecord};
use support::deployment::{http_get, metric, wait_metric, wait_ready, Deployment, WAIT};
use support::direct::{parse_sse, SseEvent};
use support::HttpConn;

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
    read_events_within(conn, count, WAIT).await
}

async fn read_events_within(conn: &mut HttpConn, count: usize, limit: Duration) -> Vec<SseEvent> {
    let data = conn
        .read_chunks_until(limit, |d| {
            orders(&String::from_utf8_lossy(d)).len() >= count
        })
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

/// Produces `count` records keyed `7` in the background, one every `every`, cycling
/// over `partitions`; values as [`values`] makes them.
fn steady_traffic(
    broker: &KafkaBroker,
    prefix: &'static str,
    partitions: &'static [i32],
    count: usize,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let bootstrap = broker.bootstrap();
    tokio::spawn(async move {
        let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("producer");
        for (partition, value) in values(prefix, partitions, count) {
            let record = rdkafka::producer::FutureRecord::to("orders")
                .key("7")
                .payload(&value)
                .partition(partition);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("produce");
            tokio::time::sleep(every).await;
        }
    })
}

/// A broker with topic `orders` of `partitions`, and `fjord run` on it, both ready.
async fn run_deployment(
    partitions: i32,
    group: &str,
    history: usize,
) -> (KafkaBroker, Deployment, tokio::process::Child) {
    let broker = start_broker();
    broker
        .create_topic("orders", partitions)
        .await
        .expect("topic");
    let deployment = Deployment::new(&broker, group, history, false);
    let fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;
    (broker, deployment, fjord)
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
        per_partition(&data(&seen)),
        per_partition(&before.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())
    );
    let last_id = seen.last().and_then(|e| e.id.clone()).expect("an id");
    drop(first);

    let after = values("b", partitions, 9);
    produce(broker, &after).await;
    // Reconnect once the proxy has them, so the history (or its end) is what decides.
    wait_metric(
        deployment.control,
        "fjord_proxy_items_received_total",
        (before.len() + after.len()) as f64,
    )
    .await;
    let mut again = open(deployment, Some(&last_id)).await;
    let resumed = data(&read_events(&mut again, after.len()).await);
    let expected: Vec<String> = after.iter().map(|(_, v)| v.clone()).collect();
    // Kafka orders records per partition only.
    assert_eq!(per_partition(&resumed), per_partition(&expected));
    assert_eq!(resumed.len(), expected.len(), "no duplicates: {resumed:?}");

    // And it continues live, with nothing repeated.
    let live = values("c", partitions, 3);
    produce(broker, &live).await;
    // (The bytes read above are consumed: these are only the new events.)
    let more = data(&read_events(&mut again, live.len()).await);
    assert_eq!(
        per_partition(&more),
        per_partition(&live.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_replays_missed_records_from_history() {
    let (broker, deployment, _fjord) = run_deployment(1, "resume-history", 1000).await;
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
    let (broker, deployment, _fjord) = run_deployment(1, "resume-replay", 3).await;
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
    // History: resumed from memory (every partition was seen).
    let (broker, deployment, fjord) = run_deployment(3, "resume-partitions", 1000).await;
    cut_off_and_resume(&deployment, &broker, &[0, 1, 2]).await;
    drop(fjord);

    // Replay: the same across partitions, with a history too small to help.
    let (broker, deployment, _fjord) = run_deployment(3, "resume-partitions-replay", 2).await;
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
    let more = data(&read_events(&mut again, live.len()).await);
    assert_eq!(
        per_partition(&more),
        per_partition(&live.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_walks_the_same_sequence_as_the_stream() {
    let (broker, deployment, _fjord) = run_deployment(2, "resume-poll", 1000).await;
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

/// The offset of partition 0 of `orders` in an event id.
fn offset_in(id: &str) -> i64 {
    fjord_protocol::resume::ResumePosition::decode(id)
        .expect("a resume id")
        .offset_of("orders", 0)
        .expect("partition 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_kafka_no_longer_has_arrive_as_a_gap_event_and_the_stream_goes_on() {
    let broker = tokio::task::spawn_blocking(|| {
        KafkaBroker::start_with_fast_retention().unwrap_or_else(|e| panic!("{e}"))
    })
    .await
    .expect("broker");
    broker
        .create_topic_with(
            "orders",
            1,
            &[("cleanup.policy", "delete"), ("retention.ms", "2000")],
        )
        .await
        .expect("topic");
    let deployment = Deployment::new(&broker, "resume-gap", 1, false);
    let _fjord = deployment.spawn("run");
    wait_ready(deployment.control).await;
    wait_ready(deployment.relay_control).await;

    let mut first = open(&deployment, None).await;
    produce(&broker, &values("a", &[0], 2)).await;
    let seen = read_events(&mut first, 2).await;
    let first_id = seen[0].id.clone().expect("id");
    assert_eq!(offset_in(&first_id), 0);
    drop(first);

    // Steady traffic, so the partition is never empty while its old records expire (the
    // test broker resets an emptied partition's offsets, which Kafka never does).
    let producer = steady_traffic(&broker, "steady", &[0], 400, Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (low, _) = broker.watermarks("orders", 1).await.expect("watermarks")[0];
        if low > 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never removed the first records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Resume from offset 0: offsets 1.. are gone.
    let mut again = open(&deployment, Some(&first_id)).await;
    let data = again
        .read_chunks_until(WAIT, |d| {
            let text = String::from_utf8_lossy(d);
            parse_sse(&text).len() >= 4
        })
        .await
        .map_err(|(e, d)| format!("{e:?} after {:?}", String::from_utf8_lossy(&d)))
        .expect("gap and records");
    let events = parse_sse(&String::from_utf8_lossy(&data));
    assert_eq!(events[0].event.as_deref(), Some("gap"), "{events:?}");
    let gap: serde_json::Value = serde_json::from_str(&events[0].data).expect("gap JSON");
    assert_eq!(gap["topic"], "orders");
    assert_eq!(gap["partition"], 0);
    assert_eq!(gap["from"], 1);
    let gap_end = gap["to"].as_i64().expect("to");
    assert!(gap_end >= 1);
    assert_eq!(offset_in(events[0].id.as_deref().expect("gap id")), gap_end);
    // Then every record after the gap, in order, none missing.
    let offsets: Vec<i64> = events[1..]
        .iter()
        .map(|e| offset_in(e.id.as_deref().expect("id")))
        .collect();
    let expected: Vec<i64> = (gap_end + 1..gap_end + 1 + offsets.len() as i64).collect();
    assert_eq!(offsets, expected);
    assert!(metric(deployment.control, "fjord_proxy_gaps_total").await >= 1.0);
    producer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_and_restarted_under_steady_traffic_loses_nothing_for_connected_clients() {
    let broker = start_broker();
    broker.create_topic("orders", 2).await.expect("topic");
    let deployment = Deployment::new(&broker, "relay-restart", 1000, true);
    let mut relay = deployment.spawn("relay");
    wait_ready(deployment.relay_control).await;
    let _proxy = deployment.spawn("proxy");
    wait_ready(deployment.control).await;
    let mut client = open(&deployment, None).await;
    wait_metric(
        deployment.relay_control,
        "fjord_relay_xpub_subscriptions",
        1.0,
    )
    .await;

    // Steady traffic on both partitions for the whole test.
    let total = 120;
    let producer = steady_traffic(&broker, "s", &[0, 1], total, Duration::from_millis(50));
    let first = read_events(&mut client, 20).await;
    relay.start_kill().expect("SIGKILL the relay");
    relay.wait().await.expect("relay gone");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _relay = deployment.spawn("relay");
    wait_ready(deployment.relay_control).await;
    producer.await.expect("producer");
    // The restarted relay gets its partitions once the group coordinator has given up
    // on the killed member (its session timeout) and rebalanced.
    let started = std::time::Instant::now();
    let rest = read_events_within(&mut client, total - first.len(), Duration::from_secs(120)).await;
    eprintln!("caught up {:?} after the restart", started.elapsed());
    let mut got = data(&first);
    got.extend(data(&rest));
    let expected: Vec<String> = (0..total)
        .map(|i| format!("{{\"v\":\"s{i}\",\"p\":{}}}", i % 2))
        .collect();
    assert_eq!(per_partition(&got), per_partition(&expected));
    assert_eq!(
        got.len(),
        expected.len(),
        "no duplicates reached the client"
    );
}
