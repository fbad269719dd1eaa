//! `POST /publish` bodies (§4.1).

use super::*;

fn error_text(body: &[u8]) -> String {
    parse_publish_request(body).unwrap_err().to_string()
}

#[test]
fn conformance_2_single_item_request_parses() {
    let items = parse_publish_request(
        br#"{"items":[{"channel":"a","formats":{"http-stream":{"content":"x"}}}]}"#,
    );
    assert_eq!(items, Ok(vec![stream_item("a", b"x")]));
}

#[test]
fn empty_item_list_publishes_nothing() {
    assert_eq!(parse_publish_request(br#"{"items":[]}"#), Ok(vec![]));
}

#[test]
fn body_that_is_not_json_is_reported_verbatim() {
    assert_eq!(error_text(b"not json"), "Body is not valid JSON.");
    assert_eq!(error_text(b""), "Body is not valid JSON.");
}

#[test]
fn body_that_is_not_an_object_is_invalid_format() {
    assert_eq!(error_text(b"[]"), "Invalid format.");
    assert_eq!(error_text(b"\"items\""), "Invalid format.");
}

#[test]
fn object_without_items_is_reported_verbatim() {
    assert_eq!(
        error_text(b"{}"),
        "Invalid format: object does not contain 'items'"
    );
}

#[test]
fn items_of_wrong_type_are_reported_verbatim() {
    assert_eq!(
        error_text(br#"{"items":{}}"#),
        "Invalid format: object contains 'items' with wrong type"
    );
    assert_eq!(
        error_text(br#"{"items":null}"#),
        "Invalid format: object contains 'items' with wrong type"
    );
}

#[test]
fn conformance_38_one_bad_item_fails_the_whole_request() {
    let body = br#"{"items":[
        {"channel":"a","formats":{"http-stream":{"content":"x"}}},
        {"channel":"a","formats":{"http-stream":{}}}
    ]}"#;
    assert_eq!(
        parse_publish_request(body),
        Err(PublishRequestError::InvalidItem {
            index: 1,
            source: ItemError {
                path: "formats.http-stream".to_owned(),
                problem: ItemProblem::MissingContent {
                    expected: "'content' or 'content-bin'"
                }
            }
        })
    );
    assert_eq!(
        error_text(body),
        "Invalid format: items[1].formats.http-stream: no content (expected 'content' or 'content-bin')"
    );
}

#[test]
fn item_that_is_not_an_object_is_located_by_index() {
    assert_eq!(
        error_text(br#"{"items":[5]}"#),
        "Invalid format: items[0]: expected an object, found number"
    );
}
