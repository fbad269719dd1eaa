//! Round-trip properties: every representable item survives encode→decode in both
//! encodings. Generators stay inside the documented normal forms (non-empty reasons,
//! filters only on `send`, sizes within i64).

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        "[ -~\n]{0,12}".prop_map(Bytes::from),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{0,8}"
}

fn arb_filters() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z-]{1,10}", 0..3)
}

fn arb_patch() -> impl Strategy<Value = json_patch::Patch> {
    let value = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|i| json!(i)),
        (-1000i32..1000).prop_map(|i| json!(f64::from(i) / 4.0)),
        arb_text().prop_map(|s| json!(s)),
        proptest::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..3).prop_map(|m| json!(m)),
    ];
    let pointer = "(/[a-z0-9~]{0,4}){0,3}".prop_filter("valid pointer", |p| {
        serde_json::from_value::<json_patch::Patch>(json!([{"op": "remove", "path": p}])).is_ok()
    });
    let op =
        (0..4usize, pointer.clone(), pointer, value).prop_map(
            |(kind, path, from, value)| match kind {
                0 => json!({"op": "add", "path": path, "value": value}),
                1 => json!({"op": "replace", "path": path, "value": value}),
                2 => json!({"op": "move", "from": from, "path": path}),
                _ => json!({"op": "test", "path": path, "value": value}),
            },
        );
    proptest::collection::vec(op, 0..3).prop_filter_map("valid patch", |ops| {
        serde_json::from_value(serde_json::Value::Array(ops)).ok()
    })
}

fn arb_response(utf8_headers: bool) -> impl Strategy<Value = HttpResponseFormat> {
    let header_value = if utf8_headers {
        "[ -~]{0,8}".prop_map(Bytes::from).boxed()
    } else {
        arb_bytes().boxed()
    };
    let body = prop_oneof![
        arb_bytes().prop_map(ResponseBody::Bytes),
        arb_patch().prop_map(ResponseBody::Patch),
    ];
    let message = (
        0u16..=999,
        proptest::option::of("[A-Za-z ]{1,12}"),
        proptest::collection::vec(("[A-Za-z-]{1,12}", header_value), 0..3),
        body,
    )
        .prop_map(|(code, reason, headers, body)| ResponseMessage {
            code,
            reason,
            headers,
            body,
        });
    prop_oneof![
        (message, arb_filters()).prop_map(|(m, content_filters)| HttpResponseFormat {
            action: ResponseAction::Send(m),
            content_filters,
        }),
        Just(HttpResponseFormat {
            action: ResponseAction::Hint,
            content_filters: Vec::new(),
        }),
    ]
}

fn arb_stream() -> impl Strategy<Value = HttpStreamFormat> {
    let bare = |action| HttpStreamFormat {
        action,
        content_filters: Vec::new(),
    };
    prop_oneof![
        (arb_bytes(), arb_filters()).prop_map(|(c, content_filters)| HttpStreamFormat {
            action: StreamAction::Send(c),
            content_filters,
        }),
        Just(bare(StreamAction::Close)),
        Just(bare(StreamAction::Hint)),
    ]
}

fn arb_ws() -> impl Strategy<Value = WsMessageFormat> {
    let kind = prop_oneof![
        Just(WsMessageKind::Text),
        Just(WsMessageKind::Binary),
        Just(WsMessageKind::Ping),
        Just(WsMessageKind::Pong),
    ];
    prop_oneof![
        (kind, arb_bytes(), arb_filters()).prop_map(|(kind, content, content_filters)| {
            WsMessageFormat::Message {
                kind,
                content,
                content_filters,
            }
        }),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of("\\PC{1,8}")
        )
            .prop_map(|(code, reason)| WsMessageFormat::Close { code, reason }),
        Just(WsMessageFormat::Refresh),
    ]
}

fn arb_formats(utf8_headers: bool) -> impl Strategy<Value = Formats> {
    (
        proptest::option::of(arb_response(utf8_headers)),
        proptest::option::of(arb_stream()),
        proptest::option::of(arb_ws()),
    )
        .prop_map(|(http_response, http_stream, ws_message)| Formats {
            http_response,
            http_stream,
            ws_message,
        })
        .prop_filter("at least one format", |f| !f.is_empty())
}

/// Items whose header values are UTF-8, so that JSON can carry them exactly.
pub(crate) fn arb_item() -> impl Strategy<Value = PublishItem> {
    arb_item_with(true)
}

fn arb_item_with(utf8_headers: bool) -> impl Strategy<Value = PublishItem> {
    (
        "\\PC{1,8}",
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        arb_formats(utf8_headers),
        proptest::collection::btree_map(arb_text(), arb_text(), 0..3),
        any::<bool>(),
        proptest::option::of(0..=i64::MAX as u64),
    )
        .prop_map(
            |(channel, id, prev_id, formats, meta, no_seq, size)| PublishItem {
                channel,
                id,
                prev_id,
                formats,
                meta,
                no_seq,
                size,
            },
        )
}

proptest! {
    #[test]
    fn json_round_trip_restores_the_item(item in arb_item()) {
        prop_assert_eq!(PublishItem::from_json(&item.to_json(), None), Ok(item));
    }

    #[test]
    fn json_text_round_trip_restores_the_item(item in arb_item()) {
        let text = item.to_json().to_string();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(PublishItem::from_json(&value, None), Ok(item));
    }

    #[test]
    fn tnetstring_round_trip_restores_the_item(item in arb_item_with(false)) {
        prop_assert_eq!(PublishItem::from_tnetstring(&item.to_tnetstring(), None), Ok(item));
    }

    #[test]
    fn tnetstring_bytes_round_trip_restores_the_item(item in arb_item_with(false)) {
        let wire = tnetstring::encode(&item.to_tnetstring());
        let value = tnetstring::decode(&wire).unwrap();
        prop_assert_eq!(PublishItem::from_tnetstring(&value, None), Ok(item));
    }

    #[test]
    fn decoding_arbitrary_tnetstring_values_never_panics(
        value in crate::tnetstring::tests::arb_value(),
    ) {
        if let Ok(item) = PublishItem::from_tnetstring(&value, None) {
            prop_assert_eq!(PublishItem::from_tnetstring(&item.to_tnetstring(), None), Ok(item));
        }
    }
}

mod publish_request;
