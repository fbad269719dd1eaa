use super::*;
use crate::config::{DataConfig, FilterConfig, FormatConfig, StreamConfig, TopicSelector};
use fjord_protocol::zmq::{decode_sub_message, encode_sub_message};

fn rule(config: StreamConfig) -> StreamRule {
    StreamRule::compile(&config, 0, 1024).unwrap()
}

fn items(rule: &StreamRule, record: &KafkaRecord) -> Vec<PublishItem> {
    match rule.apply(&RecordView::new(record)) {
        RuleOutcome::Items(items) => items,
        other => panic!("expected items, got {other:?}"),
    }
}

fn stream_content(item: &PublishItem) -> &[u8] {
    match &item.formats.http_stream {
        Some(HttpStreamFormat {
            action: StreamAction::Send(bytes),
            ..
        }) => bytes,
        other => panic!("no http-stream content: {other:?}"),
    }
}

fn order(offset: i64, value: &[u8]) -> KafkaRecord {
    KafkaRecord::new("orders", 1, offset, value)
        .with_key(b"42")
        .with_timestamp(1_700_000_000_123)
}

#[test]
fn an_item_carries_position_id_and_three_formats() {
    let mut config = StreamConfig::new("orders", "orders.{key}");
    config.event = Some("order".into());
    let record = order(7, b"{\"state\":\"cooking\"}");
    let [item] = items(&rule(config), &record).try_into().unwrap();
    assert_eq!(item.channel, "orders.42");
    assert_eq!(item.id.as_deref(), Some("orders-1-7"));
    assert_eq!(item.prev_id, None);
    assert!(item.no_seq);
    assert_eq!(item.meta["topic"], "orders");
    assert_eq!(item.meta["partition"], "1");
    assert_eq!(item.meta["offset"], "7");
    assert_eq!(item.meta["timestamp"], "1700000000123");
    assert_eq!(
        stream_content(&item),
        b"id: orders-1-7\nevent: order\ndata: {\"state\":\"cooking\"}\n\n"
    );
    let Some(HttpResponseFormat {
        action: ResponseAction::Send(response),
        ..
    }) = &item.formats.http_response
    else {
        panic!("no http-response");
    };
    assert_eq!(response.code, 200);
    assert_eq!(
        response.body,
        ResponseBody::Bytes(Bytes::from_static(b"{\"state\":\"cooking\"}"))
    );
    assert!(matches!(
        &item.formats.ws_message,
        Some(WsMessageFormat::Message { kind: WsMessageKind::Text, content, .. })
            if content.as_ref() == b"{\"state\":\"cooking\"}"
    ));
}

#[test]
fn multi_line_values_become_several_data_lines() {
    let record = order(0, b"line one\nline two\r\nline three");
    let [item] = items(&rule(StreamConfig::new("orders", "{topic}")), &record)
        .try_into()
        .unwrap();
    assert_eq!(
        stream_content(&item),
        b"id: orders-1-0\ndata: line one\ndata: line two\ndata: line three\n\n"
    );
}

#[test]
fn binary_values_survive_the_sub_framing_byte_exact() {
    let value = [0u8, 0xff, 0xfe, b'\n', 7];
    let record = order(3, &value);
    let [item] = items(&rule(StreamConfig::new("orders", "{topic}")), &record)
        .try_into()
        .unwrap();
    assert!(matches!(
        &item.formats.ws_message,
        Some(WsMessageFormat::Message {
            kind: WsMessageKind::Binary,
            ..
        })
    ));
    let frames = encode_sub_message(&item);
    let decoded = decode_sub_message(&frames).unwrap();
    assert_eq!(decoded, item);
    // JSON carries the bytes as base64 under the *-bin keys.
    let json = item.to_json();
    assert!(json["formats"]["ws-message"]["content-bin"].is_string());
    assert!(json["formats"]["http-response"]["body-bin"].is_string());
}

#[test]
fn several_templates_fan_one_record_out() {
    let mut config = StreamConfig::new("orders", "orders.{key}");
    config
        .channels
        .push("restaurants.{json./restaurant}".into());
    config.channels.push("all".into());
    let record = order(5, br#"{"restaurant":"r9"}"#);
    let channels: Vec<_> = items(&rule(config), &record)
        .into_iter()
        .map(|i| i.channel)
        .collect();
    assert_eq!(channels, ["orders.42", "restaurants.r9", "all"]);
}

#[test]
fn default_channel_is_the_topic() {
    let mut config = StreamConfig::new("orders", "x");
    config.channels.clear();
    let [item] = items(&rule(config), &order(0, b"v")).try_into().unwrap();
    assert_eq!(item.channel, "orders");
}

#[test]
fn projection_keeps_chosen_fields_only() {
    let mut config = StreamConfig::new("orders", "{topic}");
    config.data = DataConfig::Fields(vec![
        ("state".into(), "/status/name".into()),
        ("id".into(), "/id".into()),
        ("absent".into(), "/nope".into()),
    ]);
    config.formats = FormatConfig {
        http_stream: false,
        http_response: false,
        ws_message: true,
    };
    let record = order(0, br#"{"id":9,"status":{"name":"done"},"secret":"x"}"#);
    let [item] = items(&rule(config), &record).try_into().unwrap();
    assert!(item.formats.http_stream.is_none());
    assert!(item.formats.http_response.is_none());
    let Some(WsMessageFormat::Message { content, .. }) = &item.formats.ws_message else {
        panic!("no ws-message");
    };
    let value: serde_json::Value = serde_json::from_slice(content).unwrap();
    assert_eq!(value, serde_json::json!({"state": "done", "id": 9}));
}

#[test]
fn filters_select_by_header_or_json_field() {
    let mut by_header = StreamConfig::new("orders", "{topic}");
    by_header.filter = Some(FilterConfig::Header {
        name: "tenant".into(),
        equals: "acme".into(),
    });
    let by_header = rule(by_header);
    let acme = order(0, b"{}").with_header("tenant", b"acme");
    let other = order(0, b"{}").with_header("tenant", b"other");
    assert_eq!(items(&by_header, &acme).len(), 1);
    assert_eq!(
        by_header.apply(&RecordView::new(&other)),
        RuleOutcome::Filtered
    );
    assert_eq!(
        by_header.apply(&RecordView::new(&order(0, b"{}"))),
        RuleOutcome::Filtered
    );

    let mut by_json = StreamConfig::new("orders", "{topic}");
    by_json.filter = Some(FilterConfig::Json {
        pointer: "/status".into(),
        equals: serde_json::json!("ready"),
    });
    let by_json = rule(by_json);
    assert_eq!(
        items(&by_json, &order(0, br#"{"status":"ready"}"#)).len(),
        1
    );
    assert_eq!(
        by_json.apply(&RecordView::new(&order(0, br#"{"status":"new"}"#))),
        RuleOutcome::Filtered
    );
    assert_eq!(
        by_json.apply(&RecordView::new(&order(0, b"not json"))),
        RuleOutcome::Skipped(SkipReason::ValueNotJson)
    );
}

#[test]
fn bad_records_are_skipped_with_a_reason() {
    let by_field = rule(StreamConfig::new("orders", "d.{json./region}"));
    assert_eq!(
        by_field.apply(&RecordView::new(&order(0, b"{}"))),
        RuleOutcome::Skipped(SkipReason::MissingJsonField)
    );
    assert_eq!(
        by_field.apply(&RecordView::new(&order(0, b"<xml/>"))),
        RuleOutcome::Skipped(SkipReason::ValueNotJson)
    );
    let plain = rule(StreamConfig::new("orders", "{topic}"));
    assert_eq!(
        plain.apply(&RecordView::new(&order(0, &[b'x'; 1025]))),
        RuleOutcome::Skipped(SkipReason::ValueTooLarge)
    );
    let mut tombstone = order(0, b"");
    tombstone.value = None;
    assert_eq!(
        plain.apply(&RecordView::new(&tombstone)),
        RuleOutcome::Skipped(SkipReason::NoValue)
    );
    let empty = rule(StreamConfig::new("orders", "{header.h}"));
    assert_eq!(
        empty.apply(&RecordView::new(&order(0, b"x").with_header("h", b""))),
        RuleOutcome::Skipped(SkipReason::EmptyChannel)
    );
    let mut event = StreamConfig::new("orders", "{topic}");
    event.event = Some("{json./e}".into());
    assert_eq!(
        rule(event).apply(&RecordView::new(&order(0, br#"{"e":"a\nb"}"#))),
        RuleOutcome::Skipped(SkipReason::InvalidEvent)
    );
}

#[test]
fn topics_match_exactly_or_by_whole_name_pattern() {
    let exact = rule(StreamConfig::new("orders", "{topic}"));
    assert_eq!(
        exact.apply(&RecordView::new(&KafkaRecord::new("orders2", 0, 0, b"v"))),
        RuleOutcome::NotMatched
    );
    let mut pattern = StreamConfig::new("x", "{topic}");
    pattern.topic = TopicSelector::Pattern("orders\\.[a-z]+".into());
    let pattern = rule(pattern);
    assert!(pattern.topics.matches("orders.eu"));
    assert!(!pattern.topics.matches("orders.eu2"));
    assert!(!pattern.topics.matches("xorders.eu"));
    assert_eq!(pattern.topics.subscription(), "^(orders\\.[a-z]+)$");
}

#[test]
fn bad_rules_are_refused() {
    let mut bad = StreamConfig::new("orders", "{nope}");
    assert!(matches!(
        StreamRule::compile(&bad, 3, 10),
        Err(RuleError::Template { rule, .. }) if rule == "#3"
    ));
    bad = StreamConfig::new("orders", "{topic}");
    bad.topic = TopicSelector::Pattern("(".into());
    assert!(matches!(
        StreamRule::compile(&bad, 0, 10),
        Err(RuleError::Pattern { .. })
    ));
    bad = StreamConfig::new("orders", "{topic}");
    bad.formats = FormatConfig {
        http_stream: false,
        http_response: false,
        ws_message: false,
    };
    assert!(matches!(
        StreamRule::compile(&bad, 0, 10),
        Err(RuleError::NoFormats { .. })
    ));
    bad = StreamConfig::new("orders", "{topic}");
    bad.data = DataConfig::Fields(vec![("a".into(), "no-slash".into())]);
    assert!(matches!(
        StreamRule::compile(&bad, 0, 10),
        Err(RuleError::Pointer { .. })
    ));
}

#[test]
fn mapper_applies_every_rule_and_reports_skips() {
    let mut named = StreamConfig::new("orders", "a.{key}");
    named.name = Some("by-key".into());
    let by_region = StreamConfig::new("orders", "r.{json./region}");
    let mapper = Mapper::compile(&[named, by_region], 1024).unwrap();
    let mapping = mapper.map(&order(0, b"{}"));
    assert_eq!(mapping.items.len(), 1);
    assert_eq!(mapping.skipped, vec![(1, SkipReason::MissingJsonField)]);
    assert_eq!(mapper.find("by-key").map(|(i, _)| i), Some(0));
    assert_eq!(mapper.find("1").map(|(i, _)| i), Some(1));
    assert!(mapper.find("2").is_none());
    assert_eq!(mapper.subscriptions(), ["orders"]);
}
