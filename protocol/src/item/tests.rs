//! Unit tests of the item module, split by concern.

use serde_json::json;

use super::*;

mod decode_json;
mod decode_tnetstring;
mod encode;
mod request;

fn from_json(value: serde_json::Value) -> Result<PublishItem, ItemError> {
    PublishItem::from_json(&value, None)
}

fn from_wire(wire: &[u8]) -> Result<PublishItem, ItemError> {
    PublishItem::from_tnetstring(&tnetstring::decode(wire).unwrap(), None)
}

fn problem(result: Result<PublishItem, ItemError>) -> (String, ItemProblem) {
    let err = result.unwrap_err();
    (err.path, err.problem)
}

fn stream_item(channel: &str, content: &'static [u8]) -> PublishItem {
    PublishItem::new(
        channel,
        Formats {
            http_stream: Some(HttpStreamFormat {
                action: StreamAction::Send(Bytes::from_static(content)),
                content_filters: Vec::new(),
            }),
            ..Formats::default()
        },
    )
}

fn response_message(result: Result<PublishItem, ItemError>) -> ResponseMessage {
    match result.unwrap().formats.http_response.unwrap().action {
        ResponseAction::Send(message) => message,
        ResponseAction::Hint => panic!("expected send"),
    }
}

fn ws(result: Result<PublishItem, ItemError>) -> WsMessageFormat {
    result.unwrap().formats.ws_message.unwrap()
}

#[test]
fn new_item_has_no_ids_meta_or_hints() {
    let item = PublishItem::new("a", Formats::default());
    assert_eq!(item.channel, "a");
    assert_eq!((item.id, item.prev_id, item.size), (None, None, None));
    assert!(item.meta.is_empty() && !item.no_seq);
}

#[test]
fn formats_is_empty_only_without_any_format() {
    assert!(Formats::default().is_empty());
    assert!(!stream_item("a", b"x").formats.is_empty());
}

#[test]
fn item_error_renders_path_under_a_root() {
    let err = ItemError {
        path: "formats.http-stream".to_owned(),
        problem: ItemProblem::MissingContent {
            expected: "'content'",
        },
    };
    assert_eq!(
        err.to_string(),
        "item.formats.http-stream: no content (expected 'content')"
    );
    assert_eq!(
        err.render("items[2]"),
        "items[2].formats.http-stream: no content (expected 'content')"
    );
    let root = ItemError {
        path: String::new(),
        problem: ItemProblem::NoFormats,
    };
    assert!(root.to_string().starts_with("item: no format given"));
}
