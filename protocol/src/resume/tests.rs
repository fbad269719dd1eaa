use super::*;
use proptest::prelude::*;

fn orders_position() -> ResumePosition {
    let mut position = ResumePosition::new();
    position.set_timestamp_ms(1_735_689_600_123);
    position.advance("orders", 0, 1_204_331);
    position.advance("orders", 1, 1_198_870);
    position.advance("orders", 2, 1_210_004);
    position
}

fn raw_id(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn one_topic_three_partitions_encodes_well_under_64_chars() {
    let id = orders_position().encode();
    assert!(id.len() < 48, "{id} is {} chars", id.len());
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[test]
fn decode_returns_the_encoded_position() {
    let position = orders_position();
    assert_eq!(ResumePosition::decode(&position.encode()), Ok(position));
}

#[test]
fn empty_position_round_trips() {
    let empty = ResumePosition::new();
    assert!(empty.is_empty());
    assert_eq!(ResumePosition::decode(&empty.encode()), Ok(empty));
}

#[test]
fn display_and_from_str_use_the_id_form() {
    let position = orders_position();
    let id = position.to_string();
    assert_eq!(id, position.encode());
    assert_eq!(id.parse::<ResumePosition>(), Ok(position));
}

#[test]
fn advance_keeps_the_highest_offset() {
    let mut position = ResumePosition::new();
    assert!(position.advance("orders", 0, 10));
    assert!(!position.advance("orders", 0, 7));
    assert!(!position.advance("orders", 0, 10));
    assert!(position.advance("orders", 0, 11));
    assert_eq!(position.offset_of("orders", 0), Some(11));
}

#[test]
fn advance_ignores_coordinates_kafka_never_produces() {
    let mut position = ResumePosition::new();
    assert!(!position.advance("orders", -1, 5));
    assert!(!position.advance("orders", 0, -1));
    assert!(!position.advance("", 0, 5));
    assert!(!position.advance("or/ders", 0, 5));
    assert!(!position.advance(&"t".repeat(250), 0, 5));
    assert!(position.is_empty());
}

#[test]
fn advance_to_uses_the_record_position() {
    let mut position = ResumePosition::new();
    assert!(position.advance_to(&KafkaPosition::new("drivers", 3, 99)));
    assert_eq!(position.offset_of("drivers", 3), Some(99));
}

#[test]
fn covers_is_true_at_or_below_the_delivered_offset() {
    let position = orders_position();
    assert!(position.covers("orders", 0, 1_204_331));
    assert!(position.covers("orders", 0, 5));
    assert!(!position.covers("orders", 0, 1_204_332));
    assert!(!position.covers("orders", 7, 0));
    assert!(!position.covers("drivers", 0, 0));
}

#[test]
fn covers_position_checks_a_record_position() {
    let position = orders_position();
    assert!(position.covers_position(&KafkaPosition::new("orders", 1, 1_198_870)));
    assert!(!position.covers_position(&KafkaPosition::new("orders", 1, 1_198_871)));
}

#[test]
fn offset_of_unknown_partition_is_none() {
    assert_eq!(orders_position().offset_of("orders", 9), None);
    assert_eq!(orders_position().offset_of("x", 0), None);
}

#[test]
fn timestamp_is_kept_as_set() {
    let mut position = orders_position();
    position.set_timestamp_ms(5);
    assert_eq!(position.timestamp_ms(), 5);
}

#[test]
fn iter_lists_topics_and_partitions_in_order() {
    let mut position = orders_position();
    position.advance("drivers", 4, 1);
    let all: Vec<_> = position.iter().collect();
    assert_eq!(
        all,
        vec![
            ("drivers", 4, 1),
            ("orders", 0, 1_204_331),
            ("orders", 1, 1_198_870),
            ("orders", 2, 1_210_004),
        ]
    );
    assert_eq!(position.len(), 4);
}

#[test]
fn decode_rejects_bad_base64() {
    assert_eq!(
        ResumePosition::decode("a+b/"),
        Err(ResumeError::InvalidBase64)
    );
    assert_eq!(
        ResumePosition::decode("AQA="),
        Err(ResumeError::InvalidBase64)
    );
    assert_eq!(ResumePosition::decode("A"), Err(ResumeError::InvalidBase64));
}

#[test]
fn decode_rejects_empty_input() {
    assert_eq!(ResumePosition::decode(""), Err(ResumeError::Empty));
}

#[test]
fn decode_rejects_overlong_input_before_decoding() {
    let id = "A".repeat(MAX_ENCODED_LEN + 1);
    assert_eq!(ResumePosition::decode(&id), Err(ResumeError::TooLong));
}

#[test]
fn decode_rejects_unknown_version() {
    assert_eq!(
        ResumePosition::decode(&raw_id(&[2, 0, 0])),
        Err(ResumeError::UnknownVersion(2))
    );
}

#[test]
fn decode_rejects_truncated_varint() {
    assert_eq!(
        ResumePosition::decode(&raw_id(&[1, 0x80])),
        Err(ResumeError::Truncated)
    );
}

#[test]
fn decode_rejects_non_shortest_varint() {
    assert_eq!(
        ResumePosition::decode(&raw_id(&[1, 0x81, 0x00, 0])),
        Err(ResumeError::OverlongVarint)
    );
}

#[test]
fn decode_rejects_varint_beyond_64_bits() {
    let mut bytes = vec![1];
    bytes.extend_from_slice(&[0xff; 9]);
    bytes.push(0x02);
    bytes.push(0);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::OverlongVarint)
    );
    let mut eleven = vec![1];
    eleven.extend_from_slice(&[0x80; 10]);
    eleven.push(0x01);
    assert_eq!(
        ResumePosition::decode(&raw_id(&eleven)),
        Err(ResumeError::OverlongVarint)
    );
}

#[test]
fn decode_accepts_u64_max_timestamp() {
    let mut position = ResumePosition::new();
    position.set_timestamp_ms(u64::MAX);
    assert_eq!(ResumePosition::decode(&position.encode()), Ok(position));
}

#[test]
fn decode_rejects_trailing_bytes() {
    let mut bytes = URL_SAFE_NO_PAD.decode(orders_position().encode()).unwrap();
    bytes.push(0);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::TrailingBytes)
    );
}

#[test]
fn decode_rejects_absurd_topic_count_without_allocating() {
    let mut bytes = vec![1, 0];
    put_varint(&mut bytes, u64::MAX);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::CountTooLarge)
    );
}

#[test]
fn decode_rejects_absurd_partition_count() {
    let mut bytes = vec![1, 0, 1, 1, b't'];
    put_varint(&mut bytes, 1 << 40);
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::CountTooLarge)
    );
}

#[test]
fn decode_rejects_name_longer_than_the_input() {
    let bytes = [1, 0, 1, 100, b't', 1, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::CountTooLarge)
    );
}

#[test]
fn decode_rejects_empty_topic_name() {
    let bytes = [1, 0, 1, 0, 1, 0, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::InvalidTopic)
    );
}

#[test]
fn decode_rejects_topic_with_forbidden_characters() {
    let bytes = [1, 0, 1, 2, b'a', b'/', 1, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::InvalidTopic)
    );
}

#[test]
fn decode_rejects_topic_without_partitions() {
    let bytes = [1, 0, 1, 1, b't', 0, 0, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::EmptyTopic)
    );
}

#[test]
fn decode_rejects_duplicate_topics() {
    let bytes = [1, 0, 2, 1, b't', 1, 0, 0, 1, b't', 1, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::UnsortedTopics)
    );
}

#[test]
fn decode_rejects_unsorted_topics() {
    let bytes = [1, 0, 2, 1, b'u', 1, 0, 0, 1, b't', 1, 0, 0];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::UnsortedTopics)
    );
}

#[test]
fn decode_rejects_duplicate_partitions() {
    let bytes = [1, 0, 1, 1, b't', 2, 3, 0, 3, 1];
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::UnsortedPartitions)
    );
}

#[test]
fn decode_rejects_partition_beyond_i32() {
    let mut bytes = vec![1, 0, 1, 1, b't', 1];
    put_varint(&mut bytes, 1 << 31);
    bytes.push(0);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::PartitionOutOfRange)
    );
}

#[test]
fn decode_rejects_offset_beyond_i64() {
    let mut bytes = vec![1, 0, 1, 1, b't', 1, 0];
    put_varint(&mut bytes, 1 << 63);
    assert_eq!(
        ResumePosition::decode(&raw_id(&bytes)),
        Err(ResumeError::OffsetOutOfRange)
    );
}

#[test]
fn kafka_position_displays_as_item_id() {
    assert_eq!(
        KafkaPosition::new("orders", 2, 1234).to_string(),
        "orders-2-1234"
    );
}

#[test]
fn kafka_position_parses_topic_with_dashes_from_the_right() {
    assert_eq!(
        "eu-orders-v2-11-0".parse(),
        Ok(KafkaPosition::new("eu-orders-v2", 11, 0))
    );
}

#[test]
fn kafka_position_rejects_malformed_ids() {
    let cases = [
        ("orders-1", KafkaPositionError::Shape),
        ("orders", KafkaPositionError::Shape),
        ("-1-2", KafkaPositionError::InvalidTopic),
        ("a b-1-2", KafkaPositionError::InvalidTopic),
        ("orders--2", KafkaPositionError::InvalidPartition),
        ("orders-01-2", KafkaPositionError::InvalidPartition),
        ("orders-+1-2", KafkaPositionError::InvalidPartition),
        ("orders-2147483648-2", KafkaPositionError::InvalidPartition),
        ("orders-1-", KafkaPositionError::InvalidOffset),
        ("orders-1-007", KafkaPositionError::InvalidOffset),
        (
            "orders-1-9223372036854775808",
            KafkaPositionError::InvalidOffset,
        ),
    ];
    for (id, expected) in cases {
        assert_eq!(id.parse::<KafkaPosition>(), Err(expected), "{id}");
    }
}

fn topic_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9._-]{1,16}").unwrap()
}

fn position() -> impl Strategy<Value = ResumePosition> {
    (
        any::<u64>(),
        proptest::collection::vec((topic_name(), 0..=i32::MAX, 0..=i64::MAX), 0..12),
    )
        .prop_map(|(timestamp_ms, records)| {
            let mut position = ResumePosition::new();
            position.set_timestamp_ms(timestamp_ms);
            for (topic, partition, offset) in records {
                position.advance(&topic, partition, offset);
            }
            position
        })
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(position in position()) {
        let id = position.encode();
        prop_assert_eq!(ResumePosition::decode(&id), Ok(position));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_strings(id in ".{0,64}") {
        let _ = ResumePosition::decode(&id);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(position) = ResumePosition::decode(&raw_id(&bytes)) {
            // Canonical form: a decoded id re-encodes to the same bytes.
            prop_assert_eq!(position.encode(), raw_id(&bytes));
        }
    }

    #[test]
    fn covers_matches_every_advanced_offset(
        records in proptest::collection::vec((0..4i32, 0..1000i64), 1..20),
    ) {
        let mut position = ResumePosition::new();
        for &(partition, offset) in &records {
            position.advance("t", partition, offset);
        }
        for &(partition, offset) in &records {
            prop_assert!(position.covers("t", partition, offset));
            let max = records.iter().filter(|r| r.0 == partition).map(|r| r.1).max();
            prop_assert_eq!(position.offset_of("t", partition), max);
        }
    }

    #[test]
    fn kafka_position_round_trips_through_its_item_id(
        topic in topic_name(),
        partition in 0..=i32::MAX,
        offset in 0..=i64::MAX,
    ) {
        let position = KafkaPosition::new(topic, partition, offset);
        prop_assert_eq!(position.to_string().parse::<KafkaPosition>(), Ok(position));
    }
}
