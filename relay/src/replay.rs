//! Replay of one channel from stored offsets (design "Resume" 2, §9): a proxy whose history
//! ring does not reach back far enough asks the relay for the items of a channel after a
//! resume position. The relay reads Kafka with its own assigned, non-group consumer up to
//! the high watermarks captured when the request arrived, applies the channel's rule, and
//! streams back only that channel's items.
//!
//! Whether an offset is still retained is decided up front by comparing it with the
//! partition's log start (low watermark), not by waiting for an out-of-range error: some
//! brokers answer a fetch below the log start with the retained records instead. A lost
//! range becomes an explicit gap line before the items. (The test broker, tansu, also
//! resets a partition's watermarks to (0, 0) once every record in it expired, where Kafka
//! keeps the high watermark; a position beyond the high watermark then reads nothing and
//! reports no gap, since nothing distinguishes it from a topic that was recreated.)
//!
//! Output: newline-delimited JSON, written as it is read:
//! `{"gap":{"topic":…,"partition":…,"from":…,"to":…}}` lines (missing offsets, both
//! ends inclusive), then one item per line (the item JSON of §3.1), then
//! `{"end":{"position":"<resume id>","offsets":[{"topic":…,"partition":…,"offset":…}]}}`
//! with the last offset covered per partition. A failure midway ends the stream with
//! `{"error":"…"}` instead of `end`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjord_protocol::resume::ResumePosition;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::mpsc;

use crate::consumer::record_of;
use crate::mapping::{RuleOutcome, StreamRule, TopicMatcher};
use crate::record::RecordView;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// A replay that reads nothing for this long while records remain is abandoned.
const STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Which partitions a replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionScope {
    /// Only the partitions named in the position.
    Listed,
    /// Every partition of the rule's topics. One the position does not name starts at the
    /// first offset at or after the position's timestamp, or at the log start when the
    /// position has none (the client saw nothing from it).
    All,
}

/// One replay request.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub channel: String,
    /// The last offset delivered per partition; the replay returns what lies above.
    pub after: ResumePosition,
    pub scope: PartitionScope,
}

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("no record arrived for {0:?} although records remain; giving up")]
    Stalled(Duration),
    #[error("the client went away")]
    ClientGone,
}

/// The settings of the replay consumer: `[kafka]` (connection and security settings)
/// without what belongs to the group consumer. It never subscribes or commits, so it
/// never joins the relay's group.
pub fn replay_consumer_config(kafka: &BTreeMap<String, String>) -> ClientConfig {
    const GROUP_ONLY: [&str; 6] = [
        "group.instance.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "statistics.interval.ms",
        "auto.offset.reset",
        "enable.partition.eof",
    ];
    let mut config = ClientConfig::new();
    for (key, value) in kafka {
        if !GROUP_ONLY.contains(&key.as_str()) {
            config.set(key, value);
        }
    }
    let group = kafka.get("group.id").map_or("fjord-relay", String::as_str);
    config
        .set("group.id", format!("{group}.replay"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    config
}

/// Runs a replay on the calling (blocking) thread, sending NDJSON lines to `lines`.
pub fn run_replay(
    config: &ClientConfig,
    rule: &StreamRule,
    request: &ReplayRequest,
    lines: &mpsc::Sender<Bytes>,
) -> bool {
    match replay(config, rule, request, lines) {
        Ok(gaps) => gaps,
        Err(ReplayError::ClientGone) => false,
        Err(error) => {
            send(lines, &json!({ "error": error.to_string() }));
            false
        }
    }
}

fn send(lines: &mpsc::Sender<Bytes>, value: &serde_json::Value) -> bool {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    lines.blocking_send(Bytes::from(line)).is_ok()
}

struct PartitionPlan {
    topic: String,
    partition: i32,
    from: i64,
    high: i64,
}

/// Returns whether a gap was reported.
fn replay(
    config: &ClientConfig,
    rule: &StreamRule,
    request: &ReplayRequest,
    lines: &mpsc::Sender<Bytes>,
) -> Result<bool, ReplayError> {
    let consumer: BaseConsumer<DefaultConsumerContext> = config.create()?;
    let plans = plan(&consumer, rule, request)?;
    let mut gap = false;
    let mut reads = Vec::new();
    for mut plan in plans {
        let (low, high) = consumer.fetch_watermarks(&plan.topic, plan.partition, KAFKA_TIMEOUT)?;
        plan.high = high;
        if plan.from < low {
            gap = true;
            let line = json!({"gap": {
                "topic": plan.topic, "partition": plan.partition,
                "from": plan.from, "to": low - 1,
            }});
            if !send(lines, &line) {
                return Err(ReplayError::ClientGone);
            }
            plan.from = low;
        }
        reads.push(plan);
    }

    let mut end = request.after.clone();
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    for plan in &reads {
        if plan.high > 0 {
            end.advance(&plan.topic, plan.partition, plan.high - 1);
        }
        if plan.from < plan.high {
            assignment.add_partition_offset(
                &plan.topic,
                plan.partition,
                Offset::Offset(plan.from),
            )?;
            remaining.insert((plan.topic.clone(), plan.partition), plan.high);
        }
    }
    if !remaining.is_empty() {
        consumer.assign(&assignment)?;
        read(&consumer, rule, request, &mut remaining, &mut end, lines)?;
    }

    let offsets: Vec<_> = end
        .iter()
        .filter(|(topic, partition, _)| {
            reads
                .iter()
                .any(|p| p.topic == *topic && p.partition == *partition)
        })
        .map(|(topic, partition, offset)| {
            json!({"topic": topic, "partition": partition, "offset": offset})
        })
        .collect();
    let line = json!({"end": {"position": end.encode(), "offsets": offsets}});
    if !send(lines, &line) {
        return Err(ReplayError::ClientGone);
    }
    Ok(gap)
}

/// The partitions to read and where each starts.
fn plan(
    consumer: &BaseConsumer<DefaultConsumerContext>,
    rule: &StreamRule,
    request: &ReplayRequest,
) -> Result<Vec<PartitionPlan>, ReplayError> {
    let topics: Vec<(String, i32)> = match &rule.topics {
        TopicMatcher::Exact(topic) => {
            let metadata = consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT)?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len())
                .filter(|&n| n > 0)
                .ok_or_else(|| ReplayError::UnknownTopic(topic.clone()))?;
            vec![(topic.clone(), partitions as i32)]
        }
        TopicMatcher::Pattern { .. } => {
            let metadata = consumer.fetch_metadata(None, KAFKA_TIMEOUT)?;
            metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && rule.topics.matches(t.name()))
                .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
                .collect()
        }
    };
    let mut plans = Vec::new();
    let mut by_time = TopicPartitionList::new();
    for (topic, partitions) in topics {
        for partition in 0..partitions {
            match request.after.offset_of(&topic, partition) {
                Some(delivered) => plans.push(PartitionPlan {
                    topic: topic.clone(),
                    partition,
                    from: delivered.saturating_add(1),
                    high: 0,
                }),
                None if request.scope == PartitionScope::Listed => {}
                None => {
                    let timestamp = i64::try_from(request.after.timestamp_ms()).unwrap_or(0);
                    by_time.add_partition_offset(&topic, partition, Offset::Offset(timestamp))?;
                }
            }
        }
    }
    if by_time.count() > 0 {
        let found = consumer.offsets_for_times(by_time, KAFKA_TIMEOUT)?;
        for element in found.elements() {
            // No record at or after the timestamp: start at the end (nothing to send).
            let from = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => i64::MAX,
            };
            plans.push(PartitionPlan {
                topic: element.topic().to_owned(),
                partition: element.partition(),
                from,
                high: 0,
            });
        }
    }
    Ok(plans)
}

fn read(
    consumer: &BaseConsumer<DefaultConsumerContext>,
    rule: &StreamRule,
    request: &ReplayRequest,
    remaining: &mut HashMap<(String, i32), i64>,
    end: &mut ResumePosition,
    lines: &mpsc::Sender<Bytes>,
) -> Result<(), ReplayError> {
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        if lines.is_closed() {
            return Err(ReplayError::ClientGone);
        }
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => {
                drop_finished(consumer, remaining);
                if remaining.is_empty() {
                    break;
                }
                if last_progress.elapsed() > STALL_TIMEOUT {
                    return Err(ReplayError::Stalled(STALL_TIMEOUT));
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                drop_finished(consumer, remaining);
                last_progress = Instant::now();
                continue;
            }
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => message,
        };
        last_progress = Instant::now();
        let record = record_of(&message);
        drop(message);
        let key = (record.topic.clone(), record.partition);
        let Some(&high) = remaining.get(&key) else {
            continue;
        };
        if record.offset >= high {
            remaining.remove(&key);
            continue;
        }
        if let RuleOutcome::Items(items) = rule.apply(&RecordView::new(&record)) {
            for item in items.into_iter().filter(|i| i.channel == request.channel) {
                if !send(lines, &item.to_json()) {
                    return Err(ReplayError::ClientGone);
                }
            }
        }
        if let Some(timestamp) = record.timestamp_ms.and_then(|t| u64::try_from(t).ok()) {
            end.set_timestamp_ms(timestamp);
        }
        if record.offset + 1 >= high {
            remaining.remove(&key);
        }
    }
    Ok(())
}

/// Drops from `remaining` the partitions whose read position reached the captured high
/// watermark (the EOF event names only the partition, and a compacted tail may lack the
/// record at `high - 1`).
fn drop_finished(
    consumer: &BaseConsumer<DefaultConsumerContext>,
    remaining: &mut HashMap<(String, i32), i64>,
) {
    let Ok(position) = consumer.position() else {
        return;
    };
    remaining.retain(|(topic, partition), high| {
        !matches!(
            position.find_partition(topic, *partition).map(|p| p.offset()),
            Some(Offset::Offset(at)) if at >= *high
        )
    });
}
