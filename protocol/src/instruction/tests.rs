use super::*;
use http::HeaderValue;

mod json;
mod links;
mod other_headers;

pub(super) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn parse(pairs: &[(&str, &str)]) -> Result<Instruction, InstructionError> {
    Instruction::parse(StatusCode::OK, &header_map(pairs), b"")
}

pub(super) fn ok(pairs: &[(&str, &str)]) -> Instruction {
    parse(pairs).unwrap()
}

fn err(pairs: &[(&str, &str)]) -> InstructionError {
    parse(pairs).unwrap_err()
}

fn response_timeout(instruction: &Instruction) -> Duration {
    match &instruction.hold {
        Some(Hold::Response(hold)) => hold.timeout(),
        other => panic!("expected a response hold, got {other:?}"),
    }
}

pub(super) fn keep_alive(instruction: &Instruction) -> &KeepAlive {
    match &instruction.hold {
        Some(Hold::Stream(StreamHold {
            keep_alive: Some(ka),
        })) => ka,
        other => panic!("expected a stream hold with keep-alive, got {other:?}"),
    }
}

fn channel_names(instruction: &Instruction) -> Vec<&str> {
    instruction
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect()
}

#[test]
fn any_grip_header_marks_a_grip_response() {
    assert!(is_grip_response(&header_map(&[("Grip-Hold", "stream")])));
    assert!(is_grip_response(&header_map(&[("grip-session-id", "x")])));
    assert!(!is_grip_response(&header_map(&[(
        "Content-Type",
        "text/plain"
    )])));
}

#[test]
fn grip_instruct_media_type_marks_a_grip_response_ignoring_case_and_parameters() {
    let map = header_map(&[("Content-Type", " Application/GRIP-Instruct ; charset=utf-8")]);
    assert!(is_grip_response(&map));
    assert!(!is_grip_response(&header_map(&[(
        "Content-Type",
        "application/grip-instructions"
    )])));
}

#[test]
fn stream_hold_keeps_origin_headers_minus_grip_and_the_origin_body() {
    let i = ok(&[
        ("Content-Type", "text/plain"),
        ("Content-Length", "6"),
        ("Grip-Hold", "stream"),
        ("Grip-Channel", "a"),
    ]);
    assert_eq!(i.hold_mode(), Some(HoldMode::Stream));
    assert_eq!(i.hold, Some(Hold::Stream(StreamHold { keep_alive: None })));
    assert_eq!(channel_names(&i), ["a"]);
    assert_eq!(i.response.headers.len(), 2);
    assert_eq!(i.response.headers["content-type"], "text/plain");
    assert!(i
        .response
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("grip-")));
    assert_eq!(i.response.body, ResponseBody::Origin);
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (200, "OK")
    );
}

#[test]
fn grip_hold_response_is_a_response_hold_with_default_timeout() {
    let i = ok(&[("Grip-Hold", "response"), ("Grip-Channel", "a")]);
    assert_eq!(response_timeout(&i), Duration::from_secs(55));
}

#[test]
fn absent_grip_hold_means_no_hold() {
    let i = ok(&[("Grip-Channel", "a")]);
    assert_eq!(i.hold, None);
    assert_eq!(channel_names(&i), ["a"]);
}

#[test]
fn unknown_grip_hold_is_an_error() {
    assert_eq!(
        err(&[("Grip-Hold", "foo")]),
        InstructionError::UnknownHoldMode("foo".into())
    );
    assert_eq!(
        err(&[("Grip-Hold", "foo")]).to_string(),
        r#"Grip-Hold: "foo" is neither "response" nor "stream""#
    );
}

#[test]
fn grip_hold_is_case_sensitive_like_pushpin() {
    assert_eq!(
        err(&[("Grip-Hold", "Stream")]),
        InstructionError::UnknownHoldMode("Stream".into())
    );
}

#[test]
fn empty_grip_hold_is_an_error() {
    assert_eq!(
        err(&[("Grip-Hold", "")]),
        InstructionError::UnknownHoldMode(String::new())
    );
}

#[test]
fn first_grip_hold_header_wins() {
    let i = ok(&[("Grip-Hold", "stream"), ("Grip-Hold", "bogus")]);
    assert_eq!(i.hold_mode(), Some(HoldMode::Stream));
}

#[test]
fn grip_channel_comma_list_and_repeated_headers_subscribe_to_all() {
    let listed = ok(&[("Grip-Hold", "stream"), ("Grip-Channel", "a, b")]);
    let repeated = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Channel", "a"),
        ("Grip-Channel", "b"),
    ]);
    assert_eq!(channel_names(&listed), ["a", "b"]);
    assert_eq!(listed.channels, repeated.channels);
}

#[test]
fn grip_channel_prev_id_and_filters_are_read_per_channel() {
    let i = ok(&[
        ("Grip-Channel", "apple; prev-id=item1; filter=skip-self"),
        (
            "Grip-Channel",
            "banana; filter=var-subst, cherry; filter=build-id; filter=skip-users",
        ),
    ]);
    assert_eq!(
        i.channels,
        [
            Channel {
                name: "apple".into(),
                prev_id: Some("item1".into()),
                filters: vec![Filter::SkipSelf],
                unknown_filters: vec![],
            },
            Channel {
                name: "banana".into(),
                prev_id: None,
                filters: vec![Filter::VarSubst],
                unknown_filters: vec![],
            },
            Channel {
                name: "cherry".into(),
                prev_id: None,
                filters: vec![Filter::BuildId, Filter::SkipUsers],
                unknown_filters: vec![],
            },
        ]
    );
}

#[test]
fn grip_channel_libraries_emit_prev_id_in_a_comma_list() {
    let i = ok(&[("Grip-Channel", "a, b; prev-id=3")]);
    assert_eq!(i.channels[0].prev_id, None);
    assert_eq!(i.channels[1].prev_id.as_deref(), Some("3"));
}

#[test]
fn grip_channel_quoted_prev_id_is_unescaped() {
    let i = ok(&[("Grip-Channel", r#"a; prev-id="x,y;\"z\"""#)]);
    assert_eq!(i.channels[0].prev_id.as_deref(), Some(r#"x,y;"z""#));
}

#[test]
fn grip_channel_prev_id_without_value_counts_as_absent() {
    let i = ok(&[("Grip-Channel", "a; prev-id")]);
    assert_eq!(i.channels[0].prev_id, None);
}

#[test]
fn grip_channel_with_five_filters_is_accepted() {
    let i = ok(&[("Grip-Channel", "a; filter=skip-self; filter=skip-users; filter=require-sub; filter=build-id; filter=var-subst")]);
    assert_eq!(i.channels[0].filters.len(), 5);
    assert!(i.channels[0]
        .filters
        .iter()
        .all(|f| Filter::from_name(f.name()) == Some(*f)));
}

#[test]
fn grip_channel_with_more_than_five_filters_is_an_error() {
    let e = err(&[("Grip-Channel", "a; filter=skip-self; filter=skip-self; filter=skip-self; filter=skip-self; filter=skip-self; filter=x")]);
    assert_eq!(
        e,
        InstructionError::TooManyFilters {
            channel: "a".into(),
            count: 6
        }
    );
    assert_eq!(
        e.to_string(),
        r#"Grip-Channel: channel "a" has 6 filters, at most 5 are allowed"#
    );
}

#[test]
fn grip_channel_unknown_filter_is_ignored_like_pushpin() {
    let i = ok(&[(
        "Grip-Channel",
        "a; filter=http-check; filter=skip-self; filter",
    )]);
    assert_eq!(i.channels[0].filters, [Filter::SkipSelf]);
    assert_eq!(i.channels[0].unknown_filters, ["http-check", ""]);
}

#[test]
fn grip_channel_filter_names_are_exact() {
    let i = ok(&[("Grip-Channel", "a; filter=Skip-Self")]);
    assert!(i.channels[0].filters.is_empty());
}

#[test]
fn grip_channel_without_name_is_an_error() {
    assert!(matches!(
        err(&[("Grip-Channel", "; prev-id=1")]),
        InstructionError::EmptyChannelName(_)
    ));
}

#[test]
fn grip_channel_empty_list_elements_are_skipped() {
    assert_eq!(
        channel_names(&ok(&[("Grip-Channel", "a,, b,")])),
        ["a", "b"]
    );
}

#[test]
fn grip_channel_repeated_name_updates_the_first_entry() {
    let i = ok(&[(
        "Grip-Channel",
        "a; prev-id=1, b, a; prev-id=2; filter=skip-self",
    )]);
    assert_eq!(channel_names(&i), ["a", "b"]);
    assert_eq!(i.channels[0].prev_id.as_deref(), Some("2"));
    assert_eq!(i.channels[0].filters, [Filter::SkipSelf]);
}

#[test]
fn grip_channel_unterminated_quote_is_an_error() {
    let e = err(&[("Grip-Channel", "a; prev-id=\"1")]);
    assert_eq!(
        e,
        InstructionError::Syntax {
            header: "Grip-Channel",
            source: HeaderSyntaxError::UnterminatedQuote
        }
    );
    assert_eq!(e.to_string(), "Grip-Channel: unterminated quoted string");
}

#[test]
fn content_changing_filters_are_build_id_and_var_subst() {
    let changing: Vec<_> = [
        Filter::SkipSelf,
        Filter::SkipUsers,
        Filter::RequireSub,
        Filter::BuildId,
        Filter::VarSubst,
    ]
    .into_iter()
    .filter(|f| f.changes_content())
    .collect();
    assert_eq!(changing, [Filter::BuildId, Filter::VarSubst]);
}

#[test]
fn grip_timeout_sets_the_response_hold_duration() {
    let i = ok(&[("Grip-Hold", "response"), ("Grip-Timeout", "6")]);
    assert_eq!(response_timeout(&i), Duration::from_secs(6));
}

#[test]
fn grip_timeout_below_five_is_raised_to_five() {
    for value in ["1", "0", "4"] {
        let i = ok(&[("Grip-Hold", "response"), ("Grip-Timeout", value)]);
        assert_eq!(
            response_timeout(&i),
            Duration::from_secs(5),
            "Grip-Timeout: {value}"
        );
    }
}

#[test]
fn grip_timeout_accepts_surrounding_whitespace_and_plus_sign() {
    let i = ok(&[("Grip-Hold", "response"), ("Grip-Timeout", "+30 ")]);
    assert_eq!(response_timeout(&i), Duration::from_secs(30));
}

#[test]
fn grip_timeout_unparseable_is_an_error() {
    let e = err(&[("Grip-Hold", "response"), ("Grip-Timeout", "abc")]);
    assert_eq!(
        e.to_string(),
        r#"Grip-Timeout: "abc" is not a non-negative integer"#
    );
}

#[test]
fn grip_timeout_negative_empty_or_fractional_is_an_error() {
    for value in ["-1", "", "1.5", "99999999999"] {
        let e = err(&[("Grip-Hold", "response"), ("Grip-Timeout", value)]);
        assert_eq!(
            e,
            InstructionError::NotNonNegativeInteger {
                what: "Grip-Timeout",
                value: value.into()
            }
        );
    }
}

#[test]
fn grip_timeout_is_validated_even_without_a_response_hold() {
    assert!(parse(&[("Grip-Hold", "stream"), ("Grip-Timeout", "x")]).is_err());
    assert!(parse(&[("Grip-Hold", "stream"), ("Grip-Timeout", "7")]).is_ok());
}

#[test]
fn grip_channel_long_lists_are_parsed_in_order() {
    let value: Vec<String> = (0..20_000).map(|i| format!("c{}", i % 15_000)).collect();
    let i = ok(&[("Grip-Channel", &value.join(", "))]);
    assert_eq!(i.channels.len(), 15_000);
    assert_eq!(i.channels[14_999].name, "c14999");
}
