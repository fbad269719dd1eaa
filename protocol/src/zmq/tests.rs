use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::item::{Formats, HttpStreamFormat, StreamAction};

const PULL_TNETSTRING: &[u8] =
    b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
const SUB_ITEM: &[u8] = b"49:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
const PULL_JSON: &[u8] = br#"J{"channel":"test","formats":{"http-stream":{"content":"hi\n"}}}"#;

fn hi_item(channel: &str) -> PublishItem {
    PublishItem::new(
        channel,
        Formats {
            http_stream: Some(HttpStreamFormat {
                action: StreamAction::Send(Bytes::from_static(b"hi\n")),
                content_filters: Vec::new(),
            }),
            ..Formats::default()
        },
    )
}

#[test]
fn spec_example_pull_frame_decodes_to_the_item() {
    assert_eq!(decode_pull_message(&[PULL_TNETSTRING]), Ok(hi_item("test")));
}

#[test]
fn spec_example_pull_frame_is_what_the_encoder_writes() {
    assert_eq!(
        encode_pull_frame(&hi_item("test"), PullEncoding::Tnetstring),
        PULL_TNETSTRING
    );
}

#[test]
fn spec_example_json_pull_frame_decodes_to_the_item() {
    assert_eq!(decode_pull_message(&[PULL_JSON]), Ok(hi_item("test")));
}

#[test]
fn spec_example_json_pull_frame_is_what_the_encoder_writes() {
    assert_eq!(
        encode_pull_frame(&hi_item("test"), PullEncoding::Json),
        PULL_JSON
    );
}

#[test]
fn t_prefixed_pull_frame_decodes_and_encodes() {
    let mut frame = b"T".to_vec();
    frame.extend_from_slice(PULL_TNETSTRING);
    assert_eq!(decode_pull_message(&[&frame]), Ok(hi_item("test")));
    assert_eq!(
        encode_pull_frame(&hi_item("test"), PullEncoding::TPrefixed),
        frame
    );
}

#[test]
fn spec_example_sub_message_decodes_with_channel_from_frame() {
    let frames: [&[u8]; 2] = [b"test", SUB_ITEM];
    assert_eq!(decode_sub_message(&frames), Ok(hi_item("test")));
}

#[test]
fn spec_example_sub_message_is_what_the_encoder_writes() {
    let [channel, item] = encode_sub_message(&hi_item("test"));
    assert_eq!(channel, b"test");
    assert_eq!(item, SUB_ITEM);
}

#[test]
fn sub_channel_frame_overrides_channel_key() {
    let frames: [&[u8]; 2] = [b"a", PULL_TNETSTRING];
    assert_eq!(decode_sub_message(&frames), Ok(hi_item("a")));
}

#[test]
fn sub_message_accepts_json_and_t_prefixed_items() {
    let json: [&[u8]; 2] = [b"a", br#"J{"http-stream":{"content":"hi\n"}}"#];
    assert_eq!(decode_sub_message(&json), Ok(hi_item("a")));
    let mut t = b"T".to_vec();
    t.extend_from_slice(SUB_ITEM);
    assert_eq!(decode_sub_message(&[b"a".to_vec(), t]), Ok(hi_item("a")));
}

#[test]
fn empty_sub_channel_frame_falls_back_to_channel_key() {
    let frames: [&[u8]; 2] = [b"", PULL_TNETSTRING];
    assert_eq!(decode_sub_message(&frames), Ok(hi_item("test")));
    let frames: [&[u8]; 2] = [b"", SUB_ITEM];
    assert!(matches!(
        decode_sub_message(&frames),
        Err(FrameError::Item(_))
    ));
}

#[test]
fn sub_channel_frame_must_be_utf8() {
    let frames: [&[u8]; 2] = [b"ab\xff", SUB_ITEM];
    assert_eq!(
        decode_sub_message(&frames),
        Err(FrameError::ChannelNotUtf8 { offset: 2 })
    );
}

#[test]
fn multi_frame_pull_message_is_rejected() {
    let frames: [&[u8]; 2] = [b"test", PULL_TNETSTRING];
    assert_eq!(
        decode_pull_message(&frames),
        Err(FrameError::FrameCount {
            expected: 1,
            got: 2
        })
    );
    let none: [&[u8]; 0] = [];
    assert!(decode_pull_message(&none).is_err());
}

#[test]
fn sub_message_needs_exactly_two_frames() {
    assert_eq!(
        decode_sub_message(&[PULL_TNETSTRING]),
        Err(FrameError::FrameCount {
            expected: 2,
            got: 1
        })
    );
    let three: [&[u8]; 3] = [b"a", SUB_ITEM, b""];
    assert!(decode_sub_message(&three).is_err());
}

#[test]
fn pull_item_without_channel_is_rejected() {
    assert!(matches!(
        decode_pull_message(&[SUB_ITEM]),
        Err(FrameError::Item(_))
    ));
}

#[test]
fn malformed_frames_report_their_encoding() {
    assert!(matches!(
        decode_pull_message(&[b"J{not json".as_slice()]),
        Err(FrameError::Json(_))
    ));
    assert_eq!(
        decode_pull_message(&[b"T5:hello?".as_slice()]),
        Err(FrameError::Tnetstring {
            prefixed: true,
            source: TnetstringError::UnknownType {
                offset: 7,
                byte: b'?'
            }
        })
    );
    assert!(matches!(
        decode_pull_message(&[b"".as_slice()]),
        Err(FrameError::Tnetstring {
            prefixed: false,
            ..
        })
    ));
}

#[test]
fn tnetstring_frame_with_trailing_bytes_is_rejected() {
    let mut frame = PULL_TNETSTRING.to_vec();
    frame.push(b'x');
    assert!(matches!(
        decode_pull_message(&[frame]),
        Err(FrameError::Tnetstring {
            source: TnetstringError::TrailingBytes { .. },
            ..
        })
    ));
}

#[test]
fn frame_errors_read_as_sentences() {
    let err = decode_pull_message(&[SUB_ITEM]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid item: item.channel: required key is missing"
    );
}

#[test]
fn subscription_frames_parse_by_flag_byte() {
    assert_eq!(
        parse_subscription_frame(b"\x01chan"),
        Some(SubscriptionEvent::Subscribe(b"chan".to_vec()))
    );
    assert_eq!(
        parse_subscription_frame(b"\x00chan"),
        Some(SubscriptionEvent::Unsubscribe(b"chan".to_vec()))
    );
    assert_eq!(
        parse_subscription_frame(b"\x01"),
        Some(SubscriptionEvent::Subscribe(Vec::new()))
    );
}

#[test]
fn non_subscription_frames_are_not_events() {
    assert_eq!(parse_subscription_frame(b""), None);
    assert_eq!(parse_subscription_frame(b"\x02chan"), None);
    assert_eq!(parse_subscription_frame(b"chan"), None);
}

#[test]
fn subscription_frames_encode_flag_then_topic() {
    assert_eq!(
        encode_subscription_frame(&SubscriptionEvent::Subscribe(b"a".to_vec())),
        b"\x01a"
    );
    assert_eq!(
        encode_subscription_frame(&SubscriptionEvent::Unsubscribe(b"a".to_vec())),
        b"\x00a"
    );
}

proptest! {
    #[test]
    fn subscription_frame_round_trips(subscribe in any::<bool>(), topic in proptest::collection::vec(any::<u8>(), 0..16)) {
        let event = if subscribe {
            SubscriptionEvent::Subscribe(topic)
        } else {
            SubscriptionEvent::Unsubscribe(topic)
        };
        prop_assert_eq!(parse_subscription_frame(&encode_subscription_frame(&event)), Some(event));
    }

    #[test]
    fn pull_frames_round_trip_in_every_encoding(item in crate::item::proptests::arb_item()) {
        for encoding in [PullEncoding::Tnetstring, PullEncoding::TPrefixed, PullEncoding::Json] {
            let frame = encode_pull_frame(&item, encoding);
            prop_assert_eq!(decode_pull_message(&[frame]), Ok(item.clone()));
        }
    }

    #[test]
    fn sub_messages_round_trip(item in crate::item::proptests::arb_item()) {
        prop_assert_eq!(decode_sub_message(&encode_sub_message(&item)), Ok(item));
    }
}
