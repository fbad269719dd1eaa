//! tnetstring input (§3.5, §4.6).

use super::*;
use crate::tnetstring::Value;

fn item_with(format: &str, body: Value) -> Value {
    Value::dict([
        ("channel", Value::str("a")),
        ("formats", Value::dict([(format, body)])),
    ])
}

fn decode(value: &Value) -> Result<PublishItem, ItemError> {
    PublishItem::from_tnetstring(value, None)
}

#[test]
fn spec_example_pull_item_decodes() {
    let wire = b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
    assert_eq!(from_wire(wire), Ok(stream_item("test", b"hi\n")));
}

#[test]
fn spec_example_http_response_with_list_headers_decodes() {
    let format = b"74:4:code,3:200#7:headers,34:30:12:Content-Type,10:text/plain,]]4:body,3:ok\n,}";
    let value = item_with("http-response", tnetstring::decode(format).unwrap());
    let message = response_message(decode(&value));
    assert_eq!(message.code, 200);
    assert_eq!(
        message.headers,
        vec![("Content-Type".to_owned(), Bytes::from_static(b"text/plain"))]
    );
    assert_eq!(
        message.body,
        ResponseBody::Bytes(Bytes::from_static(b"ok\n"))
    );
}

#[test]
fn dict_key_order_is_irrelevant() {
    let wire = b"66:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}7:channel,4:test,}";
    assert_eq!(from_wire(wire), Ok(stream_item("test", b"hi\n")));
}

#[test]
fn byte_strings_are_taken_raw() {
    let value = item_with(
        "http-stream",
        Value::dict([("content", Value::Bytes(Bytes::from_static(b"\xff\x00")))]),
    );
    assert_eq!(decode(&value), Ok(stream_item("a", b"\xff\x00")));
}

#[test]
fn http_bin_keys_are_ignored() {
    let only_bin = item_with(
        "http-stream",
        Value::dict([("content-bin", Value::str("AAEC"))]),
    );
    assert_eq!(
        problem_of(decode(&only_bin)),
        ItemProblem::MissingContent {
            expected: "'content'"
        }
    );
    let both = item_with(
        "http-response",
        Value::dict([
            ("body-bin", Value::str("AAEC")),
            ("body", Value::str("raw")),
        ]),
    );
    assert_eq!(
        response_message(decode(&both)).body,
        ResponseBody::Bytes(Bytes::from_static(b"raw"))
    );
    let no_body = item_with(
        "http-response",
        Value::dict([("body-bin", Value::str("AAEC"))]),
    );
    assert_eq!(
        problem_of(decode(&no_body)),
        ItemProblem::MissingContent {
            expected: "'body' or 'body-patch'"
        }
    );
}

fn problem_of(result: Result<PublishItem, ItemError>) -> ItemProblem {
    result.unwrap_err().problem
}

#[test]
fn ws_content_bin_is_raw_bytes_and_implies_binary() {
    let value = item_with(
        "ws-message",
        Value::dict([("content-bin", Value::str("AAEC"))]),
    );
    assert_eq!(
        ws(decode(&value)),
        WsMessageFormat::Message {
            kind: WsMessageKind::Binary,
            content: Bytes::from_static(b"AAEC"),
            content_filters: Vec::new()
        }
    );
}

#[test]
fn ws_content_bin_must_be_a_byte_string() {
    let value = item_with("ws-message", Value::dict([("content-bin", Value::Int(1))]));
    assert_eq!(
        decode(&value).unwrap_err().path,
        "formats.ws-message.content-bin"
    );
}

#[test]
fn ws_content_may_be_any_bytes_as_text() {
    let value = item_with(
        "ws-message",
        Value::dict([("content", Value::Bytes(Bytes::from_static(b"\xff")))]),
    );
    assert!(matches!(
        ws(decode(&value)),
        WsMessageFormat::Message {
            kind: WsMessageKind::Text,
            ..
        }
    ));
}

#[test]
fn integers_arrive_as_tnetstring_integers() {
    let value = item_with(
        "http-response",
        Value::dict([("code", Value::Int(204)), ("body", Value::str(""))]),
    );
    assert_eq!(response_message(decode(&value)).code, 204);
    let float_code = item_with(
        "http-response",
        Value::dict([("code", Value::Float(204.0)), ("body", Value::str(""))]),
    );
    assert!(matches!(
        problem_of(decode(&float_code)),
        ItemProblem::WrongType { .. }
    ));
}

#[test]
fn header_values_keep_raw_bytes() {
    let headers = Value::List(vec![Value::List(vec![
        Value::str("X-Bin"),
        Value::Bytes(Bytes::from_static(b"\x80")),
    ])]);
    let value = item_with(
        "http-response",
        Value::dict([("headers", headers), ("body", Value::str(""))]),
    );
    assert_eq!(
        response_message(decode(&value)).headers,
        vec![("X-Bin".to_owned(), Bytes::from_static(b"\x80"))]
    );
}

#[test]
fn headers_as_dict_are_accepted() {
    let value = item_with(
        "http-response",
        Value::dict([
            ("headers", Value::dict([("X-A", Value::str("1"))])),
            ("body", Value::str("")),
        ]),
    );
    assert_eq!(
        response_message(decode(&value)).headers,
        vec![("X-A".to_owned(), Bytes::from_static(b"1"))]
    );
}

#[test]
fn text_fields_must_be_utf8() {
    let bad = Value::Bytes(Bytes::from_static(b"\xff"));
    let channel = Value::dict([
        ("channel", bad.clone()),
        ("http-stream", Value::dict([("content", Value::str(""))])),
    ]);
    assert_eq!(
        decode(&channel).unwrap_err(),
        ItemError {
            path: "channel".to_owned(),
            problem: ItemProblem::NotUtf8
        }
    );
    let meta = Value::dict([
        ("channel", Value::str("a")),
        ("meta", Value::dict([("k", bad)])),
        ("http-stream", Value::dict([("content", Value::str(""))])),
    ]);
    assert_eq!(decode(&meta).unwrap_err().path, "meta.k");
}

#[test]
fn body_patch_is_converted_from_tnetstring() {
    let op = Value::dict([
        ("op", Value::str("replace")),
        ("path", Value::str("/n")),
        ("value", Value::Int(2)),
    ]);
    let value = item_with(
        "http-response",
        Value::dict([("body-patch", Value::List(vec![op]))]),
    );
    let ResponseBody::Patch(patch) = response_message(decode(&value)).body else {
        panic!("expected a patch");
    };
    let mut doc = json!({"n": 1});
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, json!({"n": 2}));
}

#[test]
fn body_patch_with_non_utf8_strings_is_rejected() {
    let op = Value::dict([
        ("op", Value::str("add")),
        ("path", Value::str("/n")),
        ("value", Value::Bytes(Bytes::from_static(b"\xff"))),
    ]);
    let value = item_with(
        "http-response",
        Value::dict([("body-patch", Value::List(vec![op]))]),
    );
    assert!(matches!(
        problem_of(decode(&value)),
        ItemProblem::InvalidValue(_)
    ));
}

#[test]
fn channel_override_applies_to_tnetstring_items() {
    let wire = b"49:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
    let value = tnetstring::decode(wire).unwrap();
    assert_eq!(
        PublishItem::from_tnetstring(&value, Some("test")),
        Ok(stream_item("test", b"hi\n"))
    );
}

#[test]
fn no_seq_and_size_use_native_types() {
    let value = Value::dict([
        ("channel", Value::str("a")),
        ("no-seq", Value::Bool(true)),
        ("size", Value::Int(7)),
        ("http-stream", Value::dict([("content", Value::str(""))])),
    ]);
    let item = decode(&value).unwrap();
    assert!(item.no_seq);
    assert_eq!(item.size, Some(7));
}

#[test]
fn item_that_is_not_a_dict_is_rejected() {
    assert_eq!(
        decode(&Value::List(vec![])).unwrap_err().problem,
        ItemProblem::WrongType {
            expected: "an object",
            found: "list"
        }
    );
}
