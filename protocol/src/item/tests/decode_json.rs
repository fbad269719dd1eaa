//! JSON input (§3, §3.5).

use super::*;

#[test]
fn formats_wrapper_item_decodes() {
    let item = from_json(json!({
        "channel": "test",
        "formats": {"http-stream": {"content": "hi\n"}}
    }));
    assert_eq!(item, Ok(stream_item("test", b"hi\n")));
}

#[test]
fn flat_form_without_formats_wrapper_is_accepted() {
    let item = from_json(json!({"channel": "a", "http-stream": {"content": "y"}}));
    assert_eq!(item, Ok(stream_item("a", b"y")));
}

#[test]
fn formats_wrapper_wins_over_top_level_format_keys() {
    let item = from_json(json!({
        "channel": "a",
        "formats": {"http-stream": {"content": "inner"}},
        "http-stream": {"content": "outer"},
        "ws-message": {"content": "ignored"}
    }));
    assert_eq!(item, Ok(stream_item("a", b"inner")));
}

#[test]
fn at_least_one_format_is_required() {
    for value in [
        json!({"channel": "a"}),
        json!({"channel": "a", "formats": {}}),
        json!({"channel": "a", "formats": {"apns": {}}}),
    ] {
        assert_eq!(problem(from_json(value)).1, ItemProblem::NoFormats);
    }
}

#[test]
fn formats_must_be_an_object() {
    let (path, problem) = problem(from_json(json!({"channel": "a", "formats": []})));
    assert_eq!(path, "formats");
    assert!(matches!(
        problem,
        ItemProblem::WrongType { found: "array", .. }
    ));
}

#[test]
fn item_must_be_an_object() {
    let (path, problem) = problem(from_json(json!(["channel"])));
    assert_eq!(path, "");
    assert_eq!(
        problem,
        ItemProblem::WrongType {
            expected: "an object",
            found: "array"
        }
    );
}

#[test]
fn channel_is_required_without_override() {
    let result = from_json(json!({"http-stream": {"content": "x"}}));
    assert_eq!(
        problem(result),
        ("channel".to_owned(), ItemProblem::Missing)
    );
}

#[test]
fn channel_must_be_a_non_empty_string() {
    let empty = from_json(json!({"channel": "", "http-stream": {"content": "x"}}));
    assert_eq!(problem(empty).1, ItemProblem::Empty);
    let number = from_json(json!({"channel": 5, "http-stream": {"content": "x"}}));
    assert!(matches!(problem(number).1, ItemProblem::WrongType { .. }));
}

#[test]
fn channel_override_wins_over_channel_key() {
    let value = json!({"channel": "b", "http-stream": {"content": "x"}});
    assert_eq!(
        PublishItem::from_json(&value, Some("a")),
        Ok(stream_item("a", b"x"))
    );
}

#[test]
fn channel_override_makes_channel_key_optional() {
    let value = json!({"channel": 42, "http-stream": {"content": "x"}});
    assert_eq!(
        PublishItem::from_json(&value, Some("a")),
        Ok(stream_item("a", b"x"))
    );
}

#[test]
fn empty_channel_override_falls_back_to_channel_key() {
    let value = json!({"channel": "b", "http-stream": {"content": "x"}});
    assert_eq!(
        PublishItem::from_json(&value, Some("")),
        Ok(stream_item("b", b"x"))
    );
}

#[test]
fn ids_meta_no_seq_and_size_are_read() {
    let item = from_json(json!({
        "channel": "a", "id": "2", "prev-id": "1",
        "meta": {"sender": "u1", "skip_users": "u2"},
        "no-seq": true, "size": 12,
        "http-stream": {"content": "x"}
    }))
    .unwrap();
    assert_eq!(item.id.as_deref(), Some("2"));
    assert_eq!(item.prev_id.as_deref(), Some("1"));
    assert_eq!(item.meta.get("sender").map(String::as_str), Some("u1"));
    assert_eq!(item.meta.len(), 2);
    assert!(item.no_seq);
    assert_eq!(item.size, Some(12));
}

#[test]
fn null_keys_count_as_absent() {
    let item = from_json(json!({
        "channel": "a", "id": null, "prev-id": null, "meta": null, "no-seq": null,
        "size": null, "formats": null, "http-stream": {"content": "x", "action": null}
    }));
    assert_eq!(item, Ok(stream_item("a", b"x")));
}

#[test]
fn meta_values_must_be_strings() {
    let result = from_json(json!({
        "channel": "a", "meta": {"n": 1}, "http-stream": {"content": "x"}
    }));
    let (path, problem) = problem(result);
    assert_eq!(path, "meta.n");
    assert!(matches!(
        problem,
        ItemProblem::WrongType {
            found: "number",
            ..
        }
    ));
}

#[test]
fn no_seq_must_be_boolean() {
    let result =
        from_json(json!({"channel": "a", "no-seq": "yes", "http-stream": {"content": "x"}}));
    assert_eq!(problem(result).0, "no-seq");
}

#[test]
fn size_must_be_a_non_negative_integer() {
    let base = |size| json!({"channel": "a", "size": size, "http-stream": {"content": "x"}});
    assert_eq!(from_json(base(json!(3.0))).unwrap().size, Some(3));
    assert!(matches!(
        problem(from_json(base(json!(-1)))).1,
        ItemProblem::InvalidValue(_)
    ));
    assert!(matches!(
        problem(from_json(base(json!(1.5)))).1,
        ItemProblem::WrongType { .. }
    ));
    assert!(matches!(
        problem(from_json(base(json!("3")))).1,
        ItemProblem::WrongType { .. }
    ));
}

// http-response (§3.2)

#[test]
fn response_code_defaults_to_200_and_reason_to_standard_phrase() {
    let message = response_message(from_json(json!({
        "channel": "a", "http-response": {"body": "x"}
    })));
    assert_eq!(message.code, 200);
    assert_eq!(message.reason, None);
    assert!(message.headers.is_empty());
    assert_eq!(message.body, ResponseBody::Bytes(Bytes::from_static(b"x")));
}

#[test]
fn conformance_13_code_headers_and_body_are_read() {
    let message = response_message(from_json(json!({
        "channel": "a",
        "formats": {"http-response": {"code": 201, "headers": {"X-A": "1"}, "body": "done"}}
    })));
    assert_eq!(message.code, 201);
    assert_eq!(
        message.headers,
        vec![("X-A".to_owned(), Bytes::from_static(b"1"))]
    );
    assert_eq!(
        message.body,
        ResponseBody::Bytes(Bytes::from_static(b"done"))
    );
}

#[test]
fn status_is_accepted_as_reason_alias() {
    let message = response_message(from_json(json!({
        "channel": "a", "http-response": {"code": 404, "status": "Nope", "body": ""}
    })));
    assert_eq!(message.reason.as_deref(), Some("Nope"));
}

#[test]
fn reason_wins_over_status_and_non_string_status_is_ignored() {
    let both = response_message(from_json(json!({
        "channel": "a", "http-response": {"reason": "R", "status": "S", "body": ""}
    })));
    assert_eq!(both.reason.as_deref(), Some("R"));
    let numeric = response_message(from_json(json!({
        "channel": "a", "http-response": {"status": 404, "body": ""}
    })));
    assert_eq!((numeric.code, numeric.reason), (200, None));
}

#[test]
fn empty_reason_means_standard_phrase() {
    let message = response_message(from_json(json!({
        "channel": "a", "http-response": {"reason": "", "body": ""}
    })));
    assert_eq!(message.reason, None);
}

#[test]
fn response_code_must_be_an_integer_in_0_to_999() {
    let code = |c| json!({"channel": "a", "http-response": {"code": c, "body": ""}});
    assert_eq!(response_message(from_json(code(json!(0)))).code, 0);
    assert_eq!(response_message(from_json(code(json!(999)))).code, 999);
    let (path, too_big) = problem(from_json(code(json!(1000))));
    assert_eq!(path, "http-response.code");
    assert!(matches!(too_big, ItemProblem::InvalidValue(_)));
    assert!(matches!(
        problem(from_json(code(json!("200")))).1,
        ItemProblem::WrongType { .. }
    ));
    assert!(matches!(
        problem(from_json(code(json!(u64::MAX)))).1,
        ItemProblem::InvalidValue(_)
    ));
}

#[test]
fn headers_as_list_of_pairs_keep_order_and_duplicates() {
    let message = response_message(from_json(json!({
        "channel": "a",
        "http-response": {"headers": [["B", "1"], ["A", "2"], ["B", "3"]], "body": ""}
    })));
    let names: Vec<&str> = message.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["B", "A", "B"]);
}

#[test]
fn header_list_entries_must_be_name_value_pairs() {
    let headers = |h| json!({"channel": "a", "http-response": {"headers": h, "body": ""}});
    let (path, problem_kind) = problem(from_json(headers(json!([["A"]]))));
    assert_eq!(path, "http-response.headers[0]");
    assert!(matches!(problem_kind, ItemProblem::InvalidValue(_)));
    assert_eq!(
        problem(from_json(headers(json!(["A: 1"])))).0,
        "http-response.headers[0]"
    );
    assert_eq!(
        problem(from_json(headers(json!([["A", 1]])))).0,
        "http-response.headers[0][1]"
    );
    assert_eq!(
        problem(from_json(headers(json!({"A": 1})))).0,
        "http-response.headers.A"
    );
    assert_eq!(
        problem(from_json(headers(json!("A: 1")))).0,
        "http-response.headers"
    );
}

#[test]
fn body_bin_wins_over_body() {
    let message = response_message(from_json(json!({
        "channel": "a", "http-response": {"body": "text", "body-bin": "AAEC"}
    })));
    assert_eq!(
        message.body,
        ResponseBody::Bytes(Bytes::from_static(&[0, 1, 2]))
    );
}

#[test]
fn base64_padding_is_optional_and_line_breaks_are_skipped() {
    for encoded in ["aGk=", "aGk", "aG\r\nk="] {
        let message = response_message(from_json(json!({
            "channel": "a", "http-response": {"body-bin": encoded}
        })));
        assert_eq!(message.body, ResponseBody::Bytes(Bytes::from_static(b"hi")));
    }
}

#[test]
fn invalid_base64_is_rejected_with_its_key() {
    let (path, problem) = problem(from_json(json!({
        "channel": "a", "http-response": {"body-bin": "not base64!"}
    })));
    assert_eq!(path, "http-response.body-bin");
    assert!(matches!(problem, ItemProblem::InvalidValue(_)));
}

#[test]
fn conformance_15_body_patch_is_parsed() {
    let message = response_message(from_json(json!({
        "channel": "a",
        "http-response": {"body-patch": [{"op": "replace", "path": "/n", "value": 2}]}
    })));
    let ResponseBody::Patch(patch) = message.body else {
        panic!("expected a patch");
    };
    let mut doc = json!({"n": 1});
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, json!({"n": 2}));
}

#[test]
fn body_wins_over_body_patch() {
    let message = response_message(from_json(json!({
        "channel": "a", "http-response": {"body": "b", "body-patch": []}
    })));
    assert_eq!(message.body, ResponseBody::Bytes(Bytes::from_static(b"b")));
}

#[test]
fn malformed_body_patch_is_rejected() {
    let patch = |p| json!({"channel": "a", "http-response": {"body-patch": p}});
    let (path, bad_op) = problem(from_json(patch(json!([{"op": "frobnicate"}]))));
    assert_eq!(path, "http-response.body-patch");
    assert!(matches!(bad_op, ItemProblem::InvalidValue(_)));
    assert!(matches!(
        problem(from_json(patch(json!({"op": "add"})))).1,
        ItemProblem::WrongType { .. }
    ));
}

#[test]
fn response_without_body_names_all_json_alternatives() {
    let (path, problem) = problem(from_json(json!({"channel": "a", "http-response": {}})));
    assert_eq!(path, "http-response");
    assert_eq!(
        problem,
        ItemProblem::MissingContent {
            expected: "'body', 'body-bin' or 'body-patch'"
        }
    );
}

#[test]
fn response_hint_needs_no_body() {
    let format = from_json(json!({"channel": "a", "http-response": {"action": "hint"}}))
        .unwrap()
        .formats
        .http_response
        .unwrap();
    assert_eq!(format.action, ResponseAction::Hint);
}

#[test]
fn actions_not_defined_for_a_format_are_rejected() {
    let (path, problem) = problem(from_json(json!({
        "channel": "a", "http-response": {"action": "close"}
    })));
    assert_eq!(path, "http-response.action");
    assert!(matches!(problem, ItemProblem::UnknownAction { ref action, .. } if action == "close"));
    let ws_hint = from_json(json!({"channel": "a", "ws-message": {"action": "hint"}}));
    assert!(matches!(
        problem_of(ws_hint),
        ItemProblem::UnknownAction { .. }
    ));
}

fn problem_of(result: Result<PublishItem, ItemError>) -> ItemProblem {
    result.unwrap_err().problem
}

#[test]
fn content_filters_are_read_per_format() {
    let item = from_json(json!({
        "channel": "a",
        "formats": {
            "http-response": {"body": "", "content-filters": ["var-subst"]},
            "http-stream": {"content": "id: %I\n", "content-filters": ["build-id"]},
            "ws-message": {"content": "", "content-filters": ["skip-self"]}
        }
    }))
    .unwrap();
    let formats = item.formats;
    assert_eq!(
        formats.http_response.unwrap().content_filters,
        ["var-subst"]
    );
    assert_eq!(formats.http_stream.unwrap().content_filters, ["build-id"]);
    let Some(WsMessageFormat::Message {
        content_filters, ..
    }) = formats.ws_message
    else {
        panic!("expected a message");
    };
    assert_eq!(content_filters, ["skip-self"]);
}

#[test]
fn content_filters_must_be_a_list_of_strings() {
    let filters = |f| json!({"channel": "a", "http-stream": {"content": "", "content-filters": f}});
    assert_eq!(
        problem(from_json(filters(json!("build-id")))).0,
        "http-stream.content-filters"
    );
    assert_eq!(
        problem(from_json(filters(json!(["a", 1])))).0,
        "http-stream.content-filters[1]"
    );
}

// http-stream (§3.3)

#[test]
fn conformance_3_content_bin_is_base64() {
    let item =
        from_json(json!({"channel": "a", "formats": {"http-stream": {"content-bin": "AAEC"}}}));
    assert_eq!(item, Ok(stream_item("a", &[0, 1, 2])));
}

#[test]
fn content_bin_wins_over_content() {
    let item =
        from_json(json!({"channel": "a", "http-stream": {"content": "x", "content-bin": "eQ=="}}));
    assert_eq!(item, Ok(stream_item("a", b"y")));
}

#[test]
fn stream_close_and_hint_need_no_content_and_drop_filters() {
    for (name, action) in [("close", StreamAction::Close), ("hint", StreamAction::Hint)] {
        let format = from_json(json!({
            "channel": "a", "http-stream": {"action": name, "content-filters": 7}
        }))
        .unwrap()
        .formats
        .http_stream
        .unwrap();
        assert_eq!(format.action, action);
        assert!(format.content_filters.is_empty());
    }
}

#[test]
fn stream_send_without_content_is_rejected() {
    let (path, problem) = problem(from_json(json!({"channel": "a", "http-stream": {}})));
    assert_eq!(path, "http-stream");
    assert_eq!(
        problem,
        ItemProblem::MissingContent {
            expected: "'content' or 'content-bin'"
        }
    );
}

#[test]
fn format_that_is_not_an_object_is_rejected() {
    let (path, _) = problem(from_json(
        json!({"channel": "a", "formats": {"http-stream": "x"}}),
    ));
    assert_eq!(path, "formats.http-stream");
}

// ws-message (§3.4)

#[test]
fn ws_content_means_text_and_content_bin_means_binary() {
    let text = ws(from_json(
        json!({"channel": "a", "ws-message": {"content": "hi"}}),
    ));
    assert!(
        matches!(text, WsMessageFormat::Message { kind: WsMessageKind::Text, ref content, .. } if content == "hi")
    );
    let binary = ws(from_json(
        json!({"channel": "a", "ws-message": {"content-bin": "AAE="}}),
    ));
    assert!(
        matches!(binary, WsMessageFormat::Message { kind: WsMessageKind::Binary, ref content, .. } if content.as_ref() == [0, 1])
    );
}

#[test]
fn ws_type_overrides_the_implied_kind() {
    let message = ws(from_json(json!({
        "channel": "a", "ws-message": {"content-bin": "aGk=", "type": "text"}
    })));
    assert!(matches!(
        message,
        WsMessageFormat::Message {
            kind: WsMessageKind::Text,
            ..
        }
    ));
}

#[test]
fn ws_ping_and_pong_need_no_content() {
    for (name, kind) in [("ping", WsMessageKind::Ping), ("pong", WsMessageKind::Pong)] {
        let message = ws(from_json(
            json!({"channel": "a", "ws-message": {"type": name}}),
        ));
        assert_eq!(
            message,
            WsMessageFormat::Message {
                kind,
                content: Bytes::new(),
                content_filters: Vec::new()
            }
        );
    }
}

#[test]
fn ws_text_without_content_is_rejected() {
    let result = from_json(json!({"channel": "a", "ws-message": {"type": "text"}}));
    assert!(matches!(
        problem_of(result),
        ItemProblem::MissingContent { .. }
    ));
}

#[test]
fn ws_unknown_type_is_rejected() {
    let (path, problem) = problem(from_json(json!({
        "channel": "a", "ws-message": {"type": "close", "content": ""}
    })));
    assert_eq!(path, "ws-message.type");
    assert_eq!(problem, ItemProblem::UnknownMessageType("close".to_owned()));
}

#[test]
fn ws_close_reads_optional_code_and_reason() {
    let close = ws(from_json(json!({
        "channel": "a", "ws-message": {"action": "close", "code": 1001, "reason": "bye"}
    })));
    assert_eq!(
        close,
        WsMessageFormat::Close {
            code: Some(1001),
            reason: Some("bye".to_owned())
        }
    );
    let bare = ws(from_json(json!({
        "channel": "a", "ws-message": {"action": "close", "reason": ""}
    })));
    assert_eq!(
        bare,
        WsMessageFormat::Close {
            code: None,
            reason: None
        }
    );
}

#[test]
fn ws_close_code_must_fit_a_close_frame() {
    let code = |c| json!({"channel": "a", "ws-message": {"action": "close", "code": c}});
    assert!(matches!(
        problem_of(from_json(code(json!(-1)))),
        ItemProblem::InvalidValue(_)
    ));
    assert!(matches!(
        problem_of(from_json(code(json!(65536)))),
        ItemProblem::InvalidValue(_)
    ));
}

#[test]
fn ws_refresh_is_read() {
    let refresh = ws(from_json(
        json!({"channel": "a", "ws-message": {"action": "refresh"}}),
    ));
    assert_eq!(refresh, WsMessageFormat::Refresh);
}

#[test]
fn ws_content_bin_must_be_a_string_in_json() {
    let result = from_json(json!({"channel": "a", "ws-message": {"content-bin": [1]}}));
    assert_eq!(problem(result).0, "ws-message.content-bin");
}
