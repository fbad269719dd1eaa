//! Serialisation back to JSON and tnetstring.

use super::*;
use crate::tnetstring::Value;

fn with_formats(formats: Formats) -> PublishItem {
    PublishItem::new("a", formats)
}

fn response(message: ResponseMessage) -> PublishItem {
    with_formats(Formats {
        http_response: Some(HttpResponseFormat {
            action: ResponseAction::Send(message),
            content_filters: Vec::new(),
        }),
        ..Formats::default()
    })
}

fn ws_item(format: WsMessageFormat) -> PublishItem {
    with_formats(Formats {
        ws_message: Some(format),
        ..Formats::default()
    })
}

#[test]
fn to_json_writes_the_formats_wrapper() {
    assert_eq!(
        stream_item("test", b"hi\n").to_json(),
        json!({"channel": "test", "formats": {"http-stream": {"content": "hi\n"}}})
    );
}

#[test]
fn to_json_writes_non_utf8_content_as_base64_bin() {
    assert_eq!(
        stream_item("a", &[0, 1, 0xff]).to_json()["formats"]["http-stream"],
        json!({"content-bin": "AAH/"})
    );
    let item = response(ResponseMessage {
        code: 200,
        reason: None,
        headers: Vec::new(),
        body: ResponseBody::Bytes(Bytes::from_static(b"\xff")),
    });
    assert_eq!(
        item.to_json()["formats"]["http-response"],
        json!({"code": 200, "body-bin": "/w=="})
    );
}

#[test]
fn to_json_writes_all_envelope_fields() {
    let mut item = stream_item("a", b"x");
    item.id = Some("2".to_owned());
    item.prev_id = Some("1".to_owned());
    item.meta.insert("sender".to_owned(), "u1".to_owned());
    item.no_seq = true;
    item.size = Some(5);
    assert_eq!(
        item.to_json(),
        json!({
            "channel": "a", "id": "2", "prev-id": "1", "meta": {"sender": "u1"},
            "no-seq": true, "size": 5,
            "formats": {"http-stream": {"content": "x"}}
        })
    );
}

#[test]
fn ws_kinds_are_written_so_that_decoding_restores_them() {
    let message = |kind, content: &'static [u8]| {
        ws_item(WsMessageFormat::Message {
            kind,
            content: Bytes::from_static(content),
            content_filters: Vec::new(),
        })
        .to_json()["formats"]["ws-message"]
            .clone()
    };
    assert_eq!(
        message(WsMessageKind::Text, b"hi"),
        json!({"content": "hi"})
    );
    assert_eq!(
        message(WsMessageKind::Binary, b"hi"),
        json!({"content-bin": "aGk="})
    );
    assert_eq!(
        message(WsMessageKind::Text, b"\xff"),
        json!({"content-bin": "/w==", "type": "text"})
    );
    assert_eq!(message(WsMessageKind::Ping, b""), json!({"type": "ping"}));
    assert_eq!(
        message(WsMessageKind::Pong, b"p"),
        json!({"content": "p", "type": "pong"})
    );
}

#[test]
fn ws_close_and_refresh_are_written_as_actions() {
    let close = ws_item(WsMessageFormat::Close {
        code: Some(1000),
        reason: Some("done".to_owned()),
    });
    assert_eq!(
        close.to_json()["formats"]["ws-message"],
        json!({"action": "close", "code": 1000, "reason": "done"})
    );
    assert_eq!(
        ws_item(WsMessageFormat::Refresh).to_json()["formats"]["ws-message"],
        json!({"action": "refresh"})
    );
}

#[test]
fn content_filters_are_written_only_for_send() {
    let close = with_formats(Formats {
        http_stream: Some(HttpStreamFormat {
            action: StreamAction::Close,
            content_filters: vec!["build-id".to_owned()],
        }),
        ..Formats::default()
    });
    assert_eq!(
        close.to_json()["formats"]["http-stream"],
        json!({"action": "close"})
    );
    let mut send = stream_item("a", b"x");
    if let Some(stream) = &mut send.formats.http_stream {
        stream.content_filters = vec!["build-id".to_owned()];
    }
    assert_eq!(
        send.to_json()["formats"]["http-stream"],
        json!({"content": "x", "content-filters": ["build-id"]})
    );
}

#[test]
fn response_hint_is_written_as_action() {
    let item = with_formats(Formats {
        http_response: Some(HttpResponseFormat {
            action: ResponseAction::Hint,
            content_filters: Vec::new(),
        }),
        ..Formats::default()
    });
    assert_eq!(
        item.to_json()["formats"]["http-response"],
        json!({"action": "hint"})
    );
}

#[test]
fn to_tnetstring_reproduces_the_spec_http_response_bytes() {
    let item = response(ResponseMessage {
        code: 200,
        reason: None,
        headers: vec![("Content-Type".to_owned(), Bytes::from_static(b"text/plain"))],
        body: ResponseBody::Bytes(Bytes::from_static(b"ok\n")),
    });
    let value = item.to_tnetstring();
    let format = value
        .get(b"formats")
        .and_then(|f| f.get(b"http-response"))
        .unwrap();
    assert_eq!(
        tnetstring::encode(format),
        b"74:4:code,3:200#7:headers,34:30:12:Content-Type,10:text/plain,]]4:body,3:ok\n,}"
    );
}

#[test]
fn to_tnetstring_reproduces_the_spec_pull_item_bytes() {
    assert_eq!(
        tnetstring::encode(&stream_item("test", b"hi\n").to_tnetstring()),
        b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}"
    );
}

#[test]
fn to_tnetstring_without_channel_omits_only_the_channel() {
    assert_eq!(
        tnetstring::encode(&stream_item("test", b"hi\n").to_tnetstring_without_channel()),
        b"49:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}"
    );
}

#[test]
fn to_tnetstring_keeps_bytes_raw_and_binary_ws_under_content_bin() {
    let item = ws_item(WsMessageFormat::Message {
        kind: WsMessageKind::Binary,
        content: Bytes::from_static(b"\x00\xff"),
        content_filters: Vec::new(),
    });
    let value = item.to_tnetstring();
    let ws = value
        .get(b"formats")
        .and_then(|f| f.get(b"ws-message"))
        .unwrap();
    assert_eq!(
        ws,
        &Value::dict([("content-bin", Value::Bytes(Bytes::from_static(b"\x00\xff")))])
    );
}

#[test]
fn to_tnetstring_writes_integers_natively_and_saturates_size() {
    let mut item = stream_item("a", b"");
    item.size = Some(u64::MAX);
    item.no_seq = true;
    let value = item.to_tnetstring();
    assert_eq!(value.get(b"size"), Some(&Value::Int(i64::MAX)));
    assert_eq!(value.get(b"no-seq"), Some(&Value::Bool(true)));
}

#[test]
fn body_patch_is_written_as_patch_operations() {
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/n", "value": 2}])).unwrap();
    let item = response(ResponseMessage {
        code: 200,
        reason: Some("OK".to_owned()),
        headers: Vec::new(),
        body: ResponseBody::Patch(patch),
    });
    assert_eq!(
        item.to_json()["formats"]["http-response"],
        json!({"code": 200, "reason": "OK", "body-patch": [{"op": "replace", "path": "/n", "value": 2}]})
    );
    let value = item.to_tnetstring();
    let ops = value
        .get(b"formats")
        .and_then(|f| f.get(b"http-response"))
        .and_then(|r| r.get(b"body-patch"))
        .and_then(Value::as_list)
        .unwrap();
    assert_eq!(ops[0].get(b"value"), Some(&Value::Int(2)));
}
