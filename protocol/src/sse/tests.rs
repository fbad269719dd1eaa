use super::*;
use proptest::prelude::*;

/// What a receiver dispatches, per the WHATWG event-stream interpretation rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dispatched {
    last_event_id: String,
    event_type: String,
    data: String,
}

#[derive(Debug, Default)]
struct Received {
    events: Vec<Dispatched>,
    comments: Vec<String>,
    retry_ms: Option<u64>,
}

/// A small receiver following the spec's line rules (CRLF, CR, LF), field parsing (one
/// leading space stripped, no colon = empty value) and dispatch rules.
fn parse_stream(bytes: &[u8]) -> Received {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut received = Received::default();
    let mut last_event_id = String::new();
    let mut event_type = String::new();
    let mut data = String::new();

    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        let line = &rest[..at];
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];

        if line.is_empty() {
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            received.events.push(Dispatched {
                last_event_id: last_event_id.clone(),
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    std::mem::take(&mut event_type)
                },
                data: std::mem::take(&mut data),
            });
            event_type.clear();
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            received.comments.push(comment.to_owned());
            continue;
        }
        let (name, value) = match line.find(':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match name {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_event_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                received.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }
    received
}

fn normalize_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn encode_to_vec(event: &SseEvent<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    event.encode(&mut buf).unwrap();
    buf
}

#[test]
fn event_with_all_fields_encodes_in_field_order() {
    let event = SseEvent::new("hello")
        .with_id("orders-0-7")
        .with_event("order")
        .with_retry_ms(2500);
    assert_eq!(
        encode_to_vec(&event),
        b"id: orders-0-7\nevent: order\nretry: 2500\ndata: hello\n\n"
    );
}

#[test]
fn multi_line_data_becomes_one_data_line_per_line() {
    let event = SseEvent::new("a\nb\r\nc\rd");
    assert_eq!(
        encode_to_vec(&event),
        b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    );
}

#[test]
fn empty_data_still_emits_a_data_field() {
    assert_eq!(encode_to_vec(&SseEvent::new("")), b"data:\n\n");
    let received = parse_stream(&encode_to_vec(&SseEvent::new("")));
    assert_eq!(received.events.len(), 1);
    assert_eq!(received.events[0].data, "");
}

#[test]
fn trailing_line_break_in_data_survives_the_round_trip() {
    let bytes = encode_to_vec(&SseEvent::new("x\n"));
    assert_eq!(bytes, b"data: x\ndata:\n\n");
    assert_eq!(parse_stream(&bytes).events[0].data, "x\n");
}

#[test]
fn data_starting_with_a_space_keeps_it() {
    let bytes = encode_to_vec(&SseEvent::new(" indented"));
    assert_eq!(parse_stream(&bytes).events[0].data, " indented");
}

#[test]
fn id_with_line_break_is_rejected() {
    for id in ["a\nb", "a\rb", "a\r\n"] {
        let err = SseEvent::new("x").with_id(id).validate().unwrap_err();
        assert_eq!(err, SseError::LineBreak { field: "id" });
    }
}

#[test]
fn id_with_nul_is_rejected() {
    let err = SseEvent::new("x").with_id("a\0b").validate().unwrap_err();
    assert_eq!(err, SseError::NulInId);
}

#[test]
fn event_name_with_line_break_is_rejected() {
    let err = SseEvent::new("x")
        .with_event("a\nb")
        .validate()
        .unwrap_err();
    assert_eq!(err, SseError::LineBreak { field: "event" });
}

#[test]
fn rejected_event_leaves_the_buffer_untouched() {
    let mut buf = b"prefix".to_vec();
    let result = SseEvent::new("x").with_event("bad\r").encode(&mut buf);
    assert!(result.is_err());
    assert_eq!(buf, b"prefix");
}

#[test]
fn encode_appends_to_bytes_mut() {
    let mut buf = BytesMut::from(&b": hi\n"[..]);
    SseEvent::new("x").encode(&mut buf).unwrap();
    assert_eq!(&buf[..], b": hi\ndata: x\n\n");
}

#[test]
fn to_bytes_allocates_exactly_encoded_len() {
    let event = SseEvent::new("a\nb").with_id("7").with_retry_ms(0);
    let bytes = event.to_bytes().unwrap();
    assert_eq!(bytes.len(), event.encoded_len());
    assert_eq!(&bytes[..], b"id: 7\nretry: 0\ndata: a\ndata: b\n\n");
}

#[test]
fn to_bytes_reports_invalid_fields() {
    assert_eq!(
        SseEvent::new("x").with_id("\n").to_bytes(),
        Err(SseError::LineBreak { field: "id" })
    );
}

#[test]
fn empty_id_is_allowed_and_resets_the_last_event_id() {
    let mut buf = Vec::new();
    SseEvent::new("1").with_id("a").encode(&mut buf).unwrap();
    SseEvent::new("2").with_id("").encode(&mut buf).unwrap();
    assert_eq!(&buf[buf.len() - 13..], b"id:\ndata: 2\n\n");
    let received = parse_stream(&buf);
    assert_eq!(received.events[1].last_event_id, "");
}

#[test]
fn comment_is_one_line_per_text_line() {
    let mut buf = Vec::new();
    encode_comment(&mut buf, "keep\r\nalive");
    assert_eq!(buf, b": keep\n: alive\n");
    assert_eq!(parse_stream(&buf).comments, vec![" keep", " alive"]);
}

#[test]
fn empty_comment_is_a_bare_colon() {
    let mut buf = Vec::new();
    encode_comment(&mut buf, "");
    assert_eq!(buf, b":\n");
}

#[test]
fn comment_len_matches_encoded_comment() {
    for text in ["", "a", "a\nb", "x\r\n", "\r\r"] {
        let mut buf = Vec::new();
        encode_comment(&mut buf, text);
        assert_eq!(buf.len(), comment_len(text), "{text:?}");
    }
}

#[test]
fn comment_between_events_does_not_change_them() {
    let mut buf = Vec::new();
    SseEvent::new("1").encode(&mut buf).unwrap();
    encode_comment(&mut buf, "ping\nping");
    SseEvent::new("2").with_event("e").encode(&mut buf).unwrap();
    let received = parse_stream(&buf);
    assert_eq!(received.events.len(), 2);
    assert_eq!(received.events[1].data, "2");
    assert_eq!(received.events[1].event_type, "e");
}

#[test]
fn retry_hint_is_its_own_block_and_dispatches_nothing() {
    let mut buf = Vec::new();
    encode_retry(&mut buf, 3000);
    assert_eq!(buf, b"retry: 3000\n\n");
    let received = parse_stream(&buf);
    assert!(received.events.is_empty());
    assert_eq!(received.retry_ms, Some(3000));
}

#[test]
fn retry_of_u64_max_is_written_in_full() {
    let mut buf = Vec::new();
    encode_retry(&mut buf, u64::MAX);
    assert_eq!(buf, b"retry: 18446744073709551615\n\n");
}

#[test]
fn new_with_id_with_event_and_with_retry_ms_set_the_fields() {
    let event = SseEvent::new(b"raw".as_slice())
        .with_id("i")
        .with_event("e")
        .with_retry_ms(5);
    assert_eq!(event.data, b"raw");
    assert_eq!(event.id, Some("i"));
    assert_eq!(event.event, Some("e"));
    assert_eq!(event.retry_ms, Some(5));
}

fn field_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\r\n\0]{0,12}").unwrap()
}

fn data_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\r\n".to_owned()),
            Just(" ".to_owned()),
            Just(":".to_owned()),
            Just("\0".to_owned()),
            proptest::string::string_regex("[a-zé€ \t:]{1,6}").unwrap(),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn decoded_event_equals_encoded_event(
        id in proptest::option::of(field_text()),
        event_type in proptest::option::of(field_text()),
        retry in proptest::option::of(any::<u64>()),
        data in data_text(),
    ) {
        let event = SseEvent {
            id: id.as_deref(),
            event: event_type.as_deref(),
            retry_ms: retry,
            data: data.as_bytes(),
        };
        let bytes = encode_to_vec(&event);
        prop_assert_eq!(bytes.len(), event.encoded_len());
        let received = parse_stream(&bytes);
        prop_assert_eq!(received.events.len(), 1);
        let got = &received.events[0];
        prop_assert_eq!(&got.data, &normalize_line_breaks(&data));
        prop_assert_eq!(&got.last_event_id, id.as_deref().unwrap_or(""));
        let expected_type = match event_type.as_deref() {
            None | Some("") => "message",
            Some(name) => name,
        };
        prop_assert_eq!(&got.event_type, expected_type);
        prop_assert_eq!(received.retry_ms, retry);
    }

    #[test]
    fn stream_of_events_and_comments_decodes_in_order(
        items in proptest::collection::vec((data_text(), data_text()), 1..6),
    ) {
        let mut buf = Vec::new();
        for (data, comment) in &items {
            encode_comment(&mut buf, comment);
            SseEvent::new(data.as_str()).encode(&mut buf).unwrap();
        }
        let received = parse_stream(&buf);
        let expected: Vec<String> = items.iter().map(|(d, _)| normalize_line_breaks(d)).collect();
        let got: Vec<String> = received.events.into_iter().map(|e| e.data).collect();
        prop_assert_eq!(got, expected);
        let comment_lines: usize = items
            .iter()
            .map(|(_, c)| normalize_line_breaks(c).split('\n').count())
            .sum();
        prop_assert_eq!(received.comments.len(), comment_lines);
    }

    #[test]
    fn fields_with_line_breaks_never_encode(id in data_text()) {
        let event = SseEvent::new("x").with_id(&id);
        let mut buf = Vec::new();
        let result = event.encode(&mut buf);
        if id.contains(['\r', '\n', '\0']) {
            prop_assert!(result.is_err());
            prop_assert!(buf.is_empty());
        } else {
            prop_assert!(result.is_ok());
        }
    }
}
