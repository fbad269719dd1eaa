//! Proves the broker fixture against a real tansu broker: a consumer group reads every
//! record of a multi-partition topic, also when a second member joins mid-stream.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use fjord_testkit::{KafkaBroker, TestRecord};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use tokio::sync::mpsc;

const TOPIC: &str = "fixture-orders";
const PARTITIONS: i32 = 3;
const TOTAL: usize = 10_000;

struct Seen {
    member: &'static str,
    partition: i32,
    offset: i64,
}

fn spawn_member(
    broker: &KafkaBroker,
    member: &'static str,
    seen: mpsc::UnboundedSender<Seen>,
) -> tokio::task::JoinHandle<()> {
    // No commits: a partition that moves to the joining member is read again from
    // the start, which the distinct-position count below tolerates.
    let config = broker.consumer_config("fixture-group");
    let consumer: StreamConsumer = config.create().expect("consumer config is valid");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(message) => {
                    let record = Seen {
                        member,
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    if seen.send(record).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("{member}: consumer error (retrying): {e}"),
            }
        }
    })
}

fn batch(from: usize, to: usize) -> Vec<TestRecord> {
    (from..to)
        .map(|i| {
            TestRecord::keyed(format!("order-{}", i % 97), format!("{{\"n\":{i}}}"))
                .with_header("source", b"fixture".to_vec())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_reads_every_record_while_a_second_member_joins() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker
        .create_topic(TOPIC, PARTITIONS)
        .await
        .expect("create topic");

    let first_half = broker
        .produce(TOPIC, &batch(0, TOTAL / 2))
        .await
        .expect("produce");
    let partitions_used: BTreeSet<i32> = first_half.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        partitions_used.len(),
        PARTITIONS as usize,
        "keys spread over all partitions"
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = spawn_member(&broker, "first", tx.clone());

    let mut distinct: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut by_member: HashMap<&'static str, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut second = None;
    while distinct.len() < TOTAL {
        let seen = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {TOTAL} records", distinct.len()))
            .expect("members alive");
        distinct.insert((seen.partition, seen.offset));
        *by_member.entry(seen.member).or_default() += 1;
        if second.is_none() && distinct.len() >= TOTAL / 4 {
            // Mid-stream: a second member joins and the rest is produced afterwards.
            second = Some(spawn_member(&broker, "second", tx.clone()));
            let rest = broker
                .produce(TOPIC, &batch(TOTAL / 2, TOTAL))
                .await
                .expect("produce");
            assert_eq!(rest.len(), TOTAL / 2);
        }
    }

    let highs = broker
        .high_watermarks(TOPIC, PARTITIONS)
        .await
        .expect("watermarks");
    assert_eq!(
        highs.iter().sum::<i64>(),
        TOTAL as i64,
        "high watermarks: {highs:?}"
    );
    assert!(
        by_member.get("second").copied().unwrap_or(0) > 0,
        "the joining member received part of the stream: {by_member:?}"
    );
    first.abort();
    if let Some(second) = second {
        second.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_broker_kill_and_restart_on_the_same_data() {
    let mut broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker
        .create_topic("fixture-restart", 2)
        .await
        .expect("create topic");
    broker
        .produce("fixture-restart", &batch(0, 100))
        .await
        .expect("produce");
    broker.kill();
    assert!(!broker.is_running());
    broker.restart().expect("restart");
    let highs = broker
        .high_watermarks("fixture-restart", 2)
        .await
        .expect("watermarks");
    assert_eq!(
        highs.iter().sum::<i64>(),
        100,
        "high watermarks after restart: {highs:?}"
    );
}
