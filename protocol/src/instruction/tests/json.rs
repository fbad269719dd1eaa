use super::super::*;
use super::header_map;

const INSTRUCT: (&str, &str) = ("Content-Type", "application/grip-instruct");

fn parse_with(pairs: &[(&str, &str)], body: &str) -> Result<Instruction, InstructionError> {
    let mut all = vec![INSTRUCT];
    all.extend_from_slice(pairs);
    Instruction::parse(StatusCode::OK, &header_map(&all), body.as_bytes())
}

fn parse(body: &str) -> Result<Instruction, InstructionError> {
    parse_with(&[], body)
}

fn field_error(body: &str) -> (String, JsonProblem) {
    match parse(body) {
        Err(InstructionError::InstructField { path, problem }) => (path, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn timeout_of(i: &Instruction) -> Duration {
    match &i.hold {
        Some(Hold::Response(hold)) => hold.timeout(),
        other => panic!("expected a response hold, got {other:?}"),
    }
}

fn keep_alive_of(i: &Instruction) -> Option<&KeepAlive> {
    match &i.hold {
        Some(Hold::Stream(stream)) => stream.keep_alive.as_ref(),
        other => panic!("expected a stream hold, got {other:?}"),
    }
}

#[test]
fn conformance_item_16_response_hold_with_204_timeout_response() {
    let body = r#"{"hold":{"mode":"response","channels":[{"name":"a"}],"timeout":5},"response":{"code":204,"headers":{"X":"y"}}}"#;
    let i = parse(body).unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(5));
    assert_eq!(i.channels.len(), 1);
    assert_eq!(i.channels[0].name, "a");
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (204, "No Content")
    );
    assert_eq!(i.response.headers.len(), 1);
    assert_eq!(i.response.headers["x"], "y");
    assert_eq!(i.response.body, ResponseBody::Replaced(Bytes::new()));
}

/// The example of §2.5 with its annotations removed.
const SPEC_EXAMPLE: &str = r#"{
  "hold": {
    "mode": "response",
    "channels": [ {"name": "a", "prev-id": "7", "filters": ["skip-self"]} ],
    "timeout": 30,
    "keep-alive": {"content": ":\n\n", "timeout": 20},
    "meta": {"user": "u1"}
  },
  "response": {
    "code": 200, "reason": "OK",
    "headers": {"Content-Type": "application/json"},
    "body": "{}\n"
  }
}"#;

#[test]
fn spec_example_body_is_parsed_completely() {
    let i = parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(30));
    assert_eq!(
        i.channels,
        [Channel {
            name: "a".into(),
            prev_id: Some("7".into()),
            filters: vec![Filter::SkipSelf],
            unknown_filters: vec![],
        }]
    );
    assert_eq!(i.meta.get("user").map(String::as_str), Some("u1"));
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (200, "OK")
    );
    assert_eq!(i.response.headers["content-type"], "application/json");
    assert_eq!(
        i.response.body,
        ResponseBody::Replaced(Bytes::from_static(b"{}\n"))
    );
}

#[test]
fn spec_example_keep_alive_applies_in_stream_mode_with_interval_behaviour() {
    let i = parse(&SPEC_EXAMPLE.replace(r#""mode": "response""#, r#""mode": "stream""#)).unwrap();
    let ka = keep_alive_of(&i).unwrap();
    assert_eq!(ka.data(), &b":\n\n"[..]);
    assert_eq!(ka.timeout(), Duration::from_secs(20));
    assert_eq!(ka.mode(), KeepAliveMode::Interval);
}

#[test]
fn json_keep_alive_mode_extension_selects_idle() {
    let body =
        r#"{"hold":{"mode":"stream","channels":[],"keep-alive":{"content":"x","mode":"idle"}}}"#;
    let ka = parse(body).unwrap();
    assert_eq!(keep_alive_of(&ka).unwrap().mode(), KeepAliveMode::Idle);
    assert_eq!(
        keep_alive_of(&ka).unwrap().timeout(),
        Duration::from_secs(55)
    );
}

#[test]
fn json_keep_alive_unknown_mode_is_an_error() {
    let body = r#"{"hold":{"channels":[],"keep-alive":{"content":"x","mode":"often"}}}"#;
    assert_eq!(
        field_error(body),
        (
            "hold.keep-alive.mode".into(),
            JsonProblem::UnknownKeepAliveMode("often".into())
        )
    );
}

#[test]
fn json_keep_alive_content_bin_wins_over_content() {
    let body = r#"{"hold":{"mode":"stream","channels":[],"keep-alive":{"content":"x","content-bin":"Og0K","timeout":0}}}"#;
    let i = parse(body).unwrap();
    let ka = keep_alive_of(&i).unwrap();
    assert_eq!(ka.data(), &b":\r\n"[..]);
    assert_eq!(ka.timeout(), Duration::from_secs(1));
}

#[test]
fn json_keep_alive_without_content_is_dropped() {
    let body = r#"{"hold":{"mode":"stream","channels":[],"keep-alive":{"content":""}}}"#;
    assert_eq!(keep_alive_of(&parse(body).unwrap()), None);
}

#[test]
fn json_keep_alive_keeps_header_data_and_mode_when_it_gives_none() {
    let body = r#"{"hold":{"mode":"stream","channels":[],"keep-alive":{"timeout":9}}}"#;
    let i = parse_with(&[("Grip-Keep-Alive", "hb; mode=idle; timeout=3")], body).unwrap();
    let ka = keep_alive_of(&i).unwrap();
    assert_eq!(
        (ka.data().as_ref(), ka.timeout(), ka.mode()),
        (&b"hb"[..], Duration::from_secs(9), KeepAliveMode::Idle)
    );
}

#[test]
fn json_keep_alive_bad_base64_is_an_error() {
    let body = r#"{"hold":{"channels":[],"keep-alive":{"content-bin":"!!"}}}"#;
    let (path, problem) = field_error(body);
    assert_eq!(path, "hold.keep-alive.content-bin");
    assert!(matches!(problem, JsonProblem::Base64(_)));
}

#[test]
fn grip_instruct_with_non_200_status_is_an_error() {
    let map = header_map(&[INSTRUCT]);
    let e = Instruction::parse(StatusCode::INTERNAL_SERVER_ERROR, &map, b"{}").unwrap_err();
    assert_eq!(e, InstructionError::InstructStatus(500));
    assert_eq!(
        e.to_string(),
        "application/grip-instruct: response status must be 200, not 500"
    );
}

#[test]
fn grip_instruct_body_must_be_json() {
    assert!(matches!(
        parse("not json"),
        Err(InstructionError::InstructJson(_))
    ));
    assert!(matches!(parse(""), Err(InstructionError::InstructJson(_))));
}

#[test]
fn grip_instruct_body_must_be_an_object() {
    for body in ["[]", "\"x\"", "1", "null"] {
        assert_eq!(
            parse(body),
            Err(InstructionError::InstructNotObject),
            "{body}"
        );
    }
}

#[test]
fn grip_instruct_content_type_parameters_are_ignored() {
    let map = header_map(&[("Content-Type", "application/grip-instruct; charset=utf-8")]);
    let i = Instruction::parse(
        StatusCode::OK,
        &map,
        br#"{"hold":{"channels":[{"name":"c"}]}}"#,
    )
    .unwrap();
    assert_eq!(i.hold_mode(), Some(HoldMode::Response));
}

#[test]
fn empty_object_discards_origin_headers_and_body() {
    let i = parse_with(&[("X-Origin", "1")], "{}").unwrap();
    assert_eq!(i.hold, None);
    assert!(i.response.headers.is_empty());
    assert_eq!(i.response.body, ResponseBody::Replaced(Bytes::new()));
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (200, "OK")
    );
}

#[test]
fn hold_mode_defaults_to_response_and_overrides_the_header() {
    let i = parse_with(&[("Grip-Hold", "stream")], r#"{"hold":{"channels":[]}}"#).unwrap();
    assert_eq!(i.hold_mode(), Some(HoldMode::Response));
    assert_eq!(timeout_of(&i), Duration::from_secs(55));
}

#[test]
fn hold_mode_stream() {
    let i = parse(r#"{"hold":{"mode":"stream","channels":[{"name":"s"}]}}"#).unwrap();
    assert_eq!(i.hold, Some(Hold::Stream(StreamHold { keep_alive: None })));
}

#[test]
fn hold_unknown_mode_is_an_error() {
    assert_eq!(
        field_error(r#"{"hold":{"mode":"poll","channels":[]}}"#),
        (
            "hold.mode".into(),
            JsonProblem::UnknownHoldMode("poll".into())
        )
    );
}

#[test]
fn hold_without_channels_is_an_error() {
    assert_eq!(
        field_error(r#"{"hold":{"mode":"response"}}"#),
        ("hold.channels".into(), JsonProblem::Missing)
    );
    let e = parse(r#"{"hold":{}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application/grip-instruct: hold.channels: is required"
    );
}

#[test]
fn hold_of_wrong_type_is_an_error() {
    assert_eq!(
        field_error(r#"{"hold":[]}"#),
        ("hold".into(), JsonProblem::WrongType("an object"))
    );
    assert_eq!(
        field_error(r#"{"hold":{"channels":"a"}}"#),
        ("hold.channels".into(), JsonProblem::WrongType("a list"))
    );
}

#[test]
fn hold_channel_entries_need_a_string_name() {
    assert_eq!(
        field_error(r#"{"hold":{"channels":["a"]}}"#),
        (
            "hold.channels[0]".into(),
            JsonProblem::WrongType("an object")
        )
    );
    assert_eq!(
        field_error(r#"{"hold":{"channels":[{"name":"a"},{"prev-id":"1"}]}}"#),
        ("hold.channels[1].name".into(), JsonProblem::Missing)
    );
    assert_eq!(
        field_error(r#"{"hold":{"channels":[{"name":""}]}}"#),
        ("hold.channels[0].name".into(), JsonProblem::Empty)
    );
    assert_eq!(
        field_error(r#"{"hold":{"channels":[{"name":3}]}}"#),
        (
            "hold.channels[0].name".into(),
            JsonProblem::WrongType("a string")
        )
    );
}

#[test]
fn hold_channel_filters_must_be_strings_and_at_most_five() {
    assert_eq!(
        field_error(r#"{"hold":{"channels":[{"name":"a","filters":[1]}]}}"#),
        (
            "hold.channels[0].filters".into(),
            JsonProblem::WrongType("a list of strings")
        )
    );
    let six = r#"{"hold":{"channels":[{"name":"a","filters":["a","b","c","d","e","f"]}]}}"#;
    assert_eq!(
        field_error(six),
        (
            "hold.channels[0].filters".into(),
            JsonProblem::TooManyFilters(6)
        )
    );
}

#[test]
fn hold_channel_unknown_filter_is_ignored() {
    let i =
        parse(r#"{"hold":{"channels":[{"name":"a","filters":["var-subst","nope"]}]}}"#).unwrap();
    assert_eq!(i.channels[0].filters, [Filter::VarSubst]);
    assert_eq!(i.channels[0].unknown_filters, ["nope"]);
}

#[test]
fn json_channels_are_added_to_header_channels() {
    let body = r#"{"hold":{"channels":[{"name":"b"},{"name":"a","prev-id":"9"}]}}"#;
    let i = parse_with(&[("Grip-Channel", "a; prev-id=1")], body).unwrap();
    let names: Vec<_> = i.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(i.channels[0].prev_id.as_deref(), Some("9"));
}

#[test]
fn json_timeout_overrides_header_and_is_clamped() {
    let i = parse_with(
        &[("Grip-Timeout", "40")],
        r#"{"hold":{"channels":[],"timeout":2}}"#,
    )
    .unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(5));
    let i = parse_with(&[("Grip-Timeout", "40")], r#"{"hold":{"channels":[]}}"#).unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(40));
}

#[test]
fn json_timeout_must_be_a_non_negative_number() {
    assert_eq!(
        field_error(r#"{"hold":{"channels":[],"timeout":-1}}"#),
        ("hold.timeout".into(), JsonProblem::NotNonNegativeInteger)
    );
    assert_eq!(
        field_error(r#"{"hold":{"channels":[],"timeout":"30"}}"#),
        ("hold.timeout".into(), JsonProblem::WrongType("a number"))
    );
    let i = parse(r#"{"hold":{"channels":[],"timeout":30.9}}"#).unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(30));
}

#[test]
fn json_meta_is_merged_over_header_meta() {
    let body = r#"{"hold":{"channels":[],"meta":{"user":"json","b":"2"}}}"#;
    let i = parse_with(&[("Grip-Set-Meta", r#"user="hdr", a="1""#)], body).unwrap();
    let meta: Vec<_> = i
        .meta
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(meta, [("a", "1"), ("b", "2"), ("user", "json")]);
}

#[test]
fn json_meta_values_must_be_strings() {
    assert_eq!(
        field_error(r#"{"hold":{"channels":[],"meta":{"n":1}}}"#),
        ("hold.meta.n".into(), JsonProblem::WrongType("a string"))
    );
}

#[test]
fn null_fields_count_as_absent() {
    let body = r#"{"hold":{"mode":null,"channels":[{"name":"a","prev-id":null,"filters":null}],"timeout":null,"keep-alive":null,"meta":null},"response":{"code":null,"headers":null,"body":null}}"#;
    let i = parse(body).unwrap();
    assert_eq!(timeout_of(&i), Duration::from_secs(55));
    assert_eq!(i.channels[0].prev_id, None);
}

#[test]
fn response_headers_as_list_of_pairs_keep_repeats() {
    let body = r#"{"response":{"headers":[["Set-Cookie","a=1"],["Set-Cookie","b=2"],["Grip-Hold","stream"]]}}"#;
    let i = parse(body).unwrap();
    let cookies: Vec<_> = i.response.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert!(!i.response.headers.contains_key("grip-hold"));
}

#[test]
fn response_headers_of_wrong_shape_are_errors() {
    assert_eq!(
        field_error(r#"{"response":{"headers":[["X"]]}}"#),
        (
            "response.headers[0]".into(),
            JsonProblem::WrongType("a list of a name and a value")
        )
    );
    assert_eq!(
        field_error(r#"{"response":{"headers":{"X":1}}}"#),
        (
            "response.headers.X".into(),
            JsonProblem::WrongType("a string")
        )
    );
    assert_eq!(
        field_error(r#"{"response":{"headers":"X: y"}}"#),
        (
            "response.headers".into(),
            JsonProblem::WrongType("an object or a list of pairs")
        )
    );
    assert_eq!(
        field_error(r#"{"response":[]}"#),
        ("response".into(), JsonProblem::WrongType("an object"))
    );
}

#[test]
fn response_headers_must_be_valid_http() {
    assert_eq!(
        field_error(r#"{"response":{"headers":{"Bad Name":"x"}}}"#),
        (
            "response.headers.Bad Name".into(),
            JsonProblem::InvalidHeaderName("Bad Name".into())
        )
    );
    assert_eq!(
        field_error(r#"{"response":{"headers":{"X":"a\r\nY: b"}}}"#),
        ("response.headers.X".into(), JsonProblem::InvalidHeaderValue)
    );
}

#[test]
fn response_body_bin_wins_over_body() {
    let i = parse(r#"{"response":{"body":"text","body-bin":"AAEC"}}"#).unwrap();
    assert_eq!(
        i.response.body,
        ResponseBody::Replaced(Bytes::from_static(&[0, 1, 2]))
    );
}

#[test]
fn response_code_resets_the_grip_status_reason() {
    let i = parse_with(
        &[("Grip-Status", "404 Nope")],
        r#"{"response":{"code":201}}"#,
    )
    .unwrap();
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (201, "Created")
    );
    let i = parse_with(&[("Grip-Status", "404 Nope")], r#"{"response":{}}"#).unwrap();
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (404, "Nope")
    );
}

#[test]
fn response_reason_overrides_and_empty_reason_uses_standard_phrase() {
    let i = parse(r#"{"response":{"code":404,"reason":"Gone Fishing"}}"#).unwrap();
    assert_eq!(i.response.status.reason(), "Gone Fishing");
    let i = parse(r#"{"response":{"code":404,"reason":""}}"#).unwrap();
    assert_eq!(i.response.status.reason(), "Not Found");
}

#[test]
fn response_code_out_of_range_or_bad_reason_is_an_error() {
    assert_eq!(
        field_error(r#"{"response":{"code":1000}}"#),
        (
            "response.code".into(),
            JsonProblem::Status(StatusLineError::CodeOutOfRange(1000))
        )
    );
    let (path, problem) = field_error(r#"{"response":{"reason":"OK\r\nX: y"}}"#);
    assert_eq!(path, "response.reason");
    assert!(matches!(
        problem,
        JsonProblem::Status(StatusLineError::InvalidReason(_))
    ));
}

#[test]
fn response_code_zero_is_allowed() {
    let i = parse(r#"{"response":{"code":0}}"#).unwrap();
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (0, "Undefined Reason")
    );
}

#[test]
fn header_links_survive_a_json_body() {
    let i = parse_with(
        &[("Grip-Link", "</n>; rel=next")],
        r#"{"hold":{"mode":"stream","channels":[]}}"#,
    )
    .unwrap();
    assert_eq!(i.next_link.map(|l| l.uri).as_deref(), Some("/n"));
}
