use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::item::{Formats, HttpStreamFormat, PublishItem, StreamAction};
use fjord_protocol::resume::ResumePosition;

use super::*;

fn record(partition: i32, offset: i64) -> KafkaEvent {
    let mut item = PublishItem::new(
        "orders.1",
        Formats {
            http_stream: Some(HttpStreamFormat {
                action: StreamAction::Send(Bytes::from(format!("data: {offset}\n\n"))),
                content_filters: Vec::new(),
            }),
            ..Formats::default()
        },
    );
    item.meta = BTreeMap::from([
        ("topic".to_owned(), "orders".to_owned()),
        ("partition".to_owned(), partition.to_string()),
        ("offset".to_owned(), offset.to_string()),
    ]);
    KafkaEvent::from_item(&item).expect("a Kafka item")
}

/// Feeds records through the history as the hub does.
fn feed(history: &mut ChannelHistory, records: &[(i32, i64)], now_ms: u64) {
    for &(partition, offset) in records {
        let record = record(partition, offset);
        assert!(!history.is_duplicate(&record));
        let channel_record = Arc::new(history.advance(record));
        history.remember(channel_record, now_ms);
    }
}

fn position(parts: &[(i32, i64)]) -> ResumePosition {
    let mut p = ResumePosition::new();
    for &(partition, offset) in parts {
        p.advance("orders", partition, offset);
    }
    p
}

fn offsets(catchup: Catchup) -> Option<Vec<(i32, i64)>> {
    match catchup {
        Catchup::Items(items) => Some(
            items
                .iter()
                .map(|d| {
                    let p = &d.record.position;
                    (p.partition, p.offset)
                })
                .collect(),
        ),
        Catchup::Replay => None,
    }
}

#[test]
fn a_position_inside_the_ring_gets_exactly_the_later_items() {
    let mut history = ChannelHistory::new(100, 0);
    feed(&mut history, &[(0, 10), (0, 14), (0, 20), (0, 31)], 1);
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 14)]))),
        Some(vec![(0, 20), (0, 31)])
    );
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 31)]))),
        Some(vec![])
    );
    // Ahead of this proxy (came from another one): nothing yet, the rest arrives live.
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 40)]))),
        Some(vec![])
    );
}

#[test]
fn a_position_below_the_first_item_seen_needs_a_replay() {
    let mut history = ChannelHistory::new(100, 0);
    feed(&mut history, &[(0, 10), (0, 14)], 1);
    // Offsets 6..9 may have held items of this channel before the proxy subscribed.
    assert!(offsets(history.catch_up(&position(&[(0, 5)]))).is_none());
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 10)]))),
        Some(vec![(0, 14)])
    );
}

#[test]
fn eviction_raises_the_floor() {
    let mut history = ChannelHistory::new(2, 0);
    feed(&mut history, &[(0, 1), (0, 2), (0, 3), (0, 4)], 1);
    assert_eq!(history.len(), 2);
    assert!(offsets(history.catch_up(&position(&[(0, 1)]))).is_none());
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 2)]))),
        Some(vec![(0, 3), (0, 4)])
    );
}

#[test]
fn partitions_must_match_what_the_ring_knows() {
    let mut history = ChannelHistory::new(100, 0);
    feed(&mut history, &[(0, 5), (1, 7), (0, 6)], 1);
    // The client never saw partition 1: its records before the ring began are unknown.
    assert!(offsets(history.catch_up(&position(&[(0, 5)]))).is_none());
    // A partition the ring never saw.
    assert!(offsets(history.catch_up(&position(&[(0, 5), (1, 7), (2, 1)]))).is_none());
    assert_eq!(
        offsets(history.catch_up(&position(&[(0, 5), (1, 7)]))),
        Some(vec![(0, 6)])
    );
}

#[test]
fn duplicates_are_recognised_by_position() {
    let mut history = ChannelHistory::new(100, 0);
    feed(&mut history, &[(0, 5), (0, 9)], 1);
    assert!(history.is_duplicate(&record(0, 9)));
    assert!(history.is_duplicate(&record(0, 7)));
    assert!(!history.is_duplicate(&record(0, 10)));
    assert!(!history.is_duplicate(&record(1, 0)));
}

#[test]
fn event_ids_carry_the_channel_position() {
    let mut history = ChannelHistory::new(100, 0);
    let first = history.advance(record(0, 5));
    let second = history.advance(record(1, 3));
    assert_eq!(second.channel_position(), position(&[(0, 5), (1, 3)]));
    assert_eq!(first.channel_position(), position(&[(0, 5)]));
    assert!(second
        .sse
        .starts_with(format!("id: {}\n", second.id).as_bytes()));
    assert_ne!(first.id, second.id);
}

#[test]
fn a_timestamp_cursor_gets_what_arrived_after_it_unless_the_ring_is_incomplete() {
    let mut history = ChannelHistory::new(2, 100);
    let mut cursor = ResumePosition::new();
    cursor.set_timestamp_ms(150);
    assert_eq!(offsets(history.catch_up(&cursor)), Some(vec![]));
    feed(&mut history, &[(0, 1)], 140);
    feed(&mut history, &[(0, 2)], 160);
    assert_eq!(offsets(history.catch_up(&cursor)), Some(vec![(0, 2)]));
    // Issued before the ring began: earlier arrivals are unknown.
    let mut early = ResumePosition::new();
    early.set_timestamp_ms(50);
    assert!(offsets(history.catch_up(&early)).is_none());
    feed(&mut history, &[(0, 3)], 170);
    assert!(offsets(history.catch_up(&cursor)).is_none(), "evicted");
}
