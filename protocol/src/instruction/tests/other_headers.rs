use super::super::*;
use super::{header_map, keep_alive, ok};
use crate::header::names;
use http::HeaderValue;

fn err(pairs: &[(&str, &str)]) -> InstructionError {
    Instruction::parse(StatusCode::OK, &header_map(pairs), b"").unwrap_err()
}

#[test]
fn grip_keep_alive_cstring_with_timeout() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Keep-Alive", r"\n; format=cstring; timeout=2"),
    ]);
    let ka = keep_alive(&i);
    assert_eq!(ka.data(), &b"\n"[..]);
    assert_eq!(ka.timeout(), Duration::from_secs(2));
    assert_eq!(ka.mode(), KeepAliveMode::Idle);
}

#[test]
fn grip_keep_alive_sse_comment_example() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Keep-Alive", r":\n\n; format=cstring; timeout=55"),
    ]);
    assert_eq!(keep_alive(&i).data(), &b":\n\n"[..]);
}

#[test]
fn grip_keep_alive_base64_data() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Keep-Alive", "Og0K; format=base64; timeout=2"),
    ]);
    assert_eq!(keep_alive(&i).data(), &b":\r\n"[..]);
}

#[test]
fn grip_keep_alive_defaults_to_raw_idle_and_55_seconds() {
    let i = ok(&[("Grip-Hold", "stream"), ("Grip-Keep-Alive", r"ping\n")]);
    let ka = keep_alive(&i);
    assert_eq!(ka.data(), &br"ping\n"[..]);
    assert_eq!(ka.timeout(), Duration::from_secs(55));
    assert_eq!(ka.mode(), KeepAliveMode::Idle);
}

#[test]
fn grip_keep_alive_interval_mode() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        (
            "Grip-Keep-Alive",
            r"\n; format=cstring; timeout=2; mode=interval",
        ),
    ]);
    assert_eq!(keep_alive(&i).mode(), KeepAliveMode::Interval);
}

#[test]
fn grip_keep_alive_quoted_parameters_are_accepted() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        (
            "Grip-Keep-Alive",
            r#"\n; format="cstring"; mode="interval""#,
        ),
    ]);
    assert_eq!(keep_alive(&i).data(), &b"\n"[..]);
    assert_eq!(keep_alive(&i).mode(), KeepAliveMode::Interval);
}

#[test]
fn grip_keep_alive_timeout_zero_is_raised_to_one() {
    let i = ok(&[("Grip-Hold", "stream"), ("Grip-Keep-Alive", "x; timeout=0")]);
    assert_eq!(keep_alive(&i).timeout(), Duration::from_secs(1));
}

#[test]
fn grip_keep_alive_data_may_contain_commas() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Keep-Alive", "a,b; timeout=3"),
    ]);
    assert_eq!(keep_alive(&i).data(), &b"a,b"[..]);
}

#[test]
fn grip_keep_alive_empty_data_is_an_error() {
    assert_eq!(
        err(&[("Grip-Keep-Alive", "; format=raw")]),
        InstructionError::EmptyKeepAlive
    );
    assert_eq!(
        err(&[("Grip-Keep-Alive", r"\q; format=cstring")]),
        InstructionError::EmptyKeepAlive
    );
}

#[test]
fn grip_keep_alive_entirely_empty_header_is_ignored() {
    let i = ok(&[("Grip-Hold", "stream"), ("Grip-Keep-Alive", "")]);
    assert_eq!(i.hold, Some(Hold::Stream(StreamHold { keep_alive: None })));
}

#[test]
fn grip_keep_alive_unknown_format_or_mode_is_an_error() {
    assert_eq!(
        err(&[("Grip-Keep-Alive", "x; format=hex")]),
        InstructionError::UnknownKeepAliveFormat("hex".into())
    );
    assert_eq!(
        err(&[("Grip-Keep-Alive", "x; mode=often")]),
        InstructionError::UnknownKeepAliveMode("often".into())
    );
}

#[test]
fn grip_keep_alive_bad_timeout_is_an_error() {
    for value in ["x; timeout=-1", "x; timeout=soon", "x; timeout"] {
        assert!(matches!(
            err(&[("Grip-Keep-Alive", value)]),
            InstructionError::NotNonNegativeInteger {
                what: "Grip-Keep-Alive timeout",
                ..
            }
        ));
    }
}

#[test]
fn grip_keep_alive_bad_encoding_is_an_error() {
    assert!(matches!(
        err(&[("Grip-Keep-Alive", r"x\; format=cstring")]),
        InstructionError::KeepAliveData(_)
    ));
    assert!(matches!(
        err(&[("Grip-Keep-Alive", "!!; format=base64")]),
        InstructionError::KeepAliveData(_)
    ));
}

#[test]
fn grip_keep_alive_only_applies_to_stream_holds() {
    let i = ok(&[("Grip-Hold", "response"), ("Grip-Keep-Alive", "x")]);
    assert_eq!(
        i.hold,
        Some(Hold::Response(ResponseHold::new(DEFAULT_RESPONSE_TIMEOUT)))
    );
}

#[test]
fn grip_set_meta_reads_quoted_pairs_from_every_header() {
    let i = ok(&[
        ("Grip-Set-Meta", r#"user="u1", id_format="a:%(a)s""#),
        ("Grip-Set-Meta", "foo=bar"),
    ]);
    let expected: BTreeMap<String, String> =
        [("user", "u1"), ("id_format", "a:%(a)s"), ("foo", "bar")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(i.meta, expected);
}

#[test]
fn grip_set_meta_later_key_wins_and_bare_key_is_empty() {
    let i = ok(&[("Grip-Set-Meta", "a=1, a=2, b")]);
    assert_eq!(i.meta["a"], "2");
    assert_eq!(i.meta["b"], "");
}

#[test]
fn grip_set_meta_quoted_value_keeps_commas() {
    let i = ok(&[("Grip-Set-Meta", r#"k="x, y", j=z"#)]);
    assert_eq!(i.meta["k"], "x, y");
    assert_eq!(i.meta["j"], "z");
}

#[test]
fn grip_status_replaces_code_and_reason() {
    let i = ok(&[("Grip-Hold", "stream"), ("Grip-Status", "404 Nope")]);
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (404, "Nope")
    );
}

#[test]
fn grip_status_reason_may_contain_spaces() {
    let i = ok(&[("Grip-Status", "404 Nothing To See Here")]);
    assert_eq!(i.response.status.reason(), "Nothing To See Here");
}

#[test]
fn grip_status_without_reason_uses_the_standard_phrase() {
    let i = ok(&[("Grip-Status", "404")]);
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (404, "Not Found")
    );
}

#[test]
fn grip_status_code_without_standard_phrase_gets_undefined_reason() {
    let i = ok(&[("Grip-Status", "0")]);
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (0, "Undefined Reason")
    );
    assert_eq!(i.response.status.to_status_code(), None);
    let i = ok(&[("Grip-Status", "999")]);
    assert_eq!(
        i.response.status.to_status_code(),
        Some(StatusCode::from_u16(999).unwrap())
    );
}

#[test]
fn grip_status_code_outside_0_to_999_is_an_error() {
    for value in ["1000", "abc", "-1", "2O0 OK"] {
        assert_eq!(
            err(&[("Grip-Status", value)]),
            InstructionError::InvalidStatusCode(value.into())
        );
    }
}

#[test]
fn grip_status_empty_header_is_ignored() {
    let i = Instruction::parse(
        StatusCode::CREATED,
        &header_map(&[("Grip-Status", "")]),
        b"",
    )
    .unwrap();
    assert_eq!(
        (i.response.status.code(), i.response.status.reason()),
        (201, "Created")
    );
}

#[test]
fn grip_expose_headers_keeps_only_listed_headers() {
    let i = ok(&[
        ("Content-Type", "text/plain"),
        ("X-A", "1"),
        ("X-B", "2"),
        ("Grip-Expose-Headers", "x-a"),
        ("Grip-Expose-Headers", "Content-Type, Grip-Hold"),
    ]);
    let mut names: Vec<_> = i.response.headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-type", "x-a"]);
    assert_eq!(i.expose_headers.as_ref().map(Vec::len), Some(3));
}

#[test]
fn grip_expose_headers_absent_keeps_every_header() {
    let i = ok(&[("X-A", "1"), ("X-A", "2"), ("X-B", "3")]);
    assert_eq!(i.response.headers.len(), 3);
    assert_eq!(i.expose_headers, None);
}

#[test]
fn session_headers_are_parsed_and_ignored() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Session-Id", "s1"),
        ("Grip-Session-Detect", "detect-param=x; foo"),
        ("Grip-Last", "a; last-id=1"),
        ("Grip-Unknown", "whatever"),
    ]);
    assert_eq!(i.hold_mode(), Some(HoldMode::Stream));
    assert!(i.response.headers.is_empty());
}

#[test]
fn non_utf8_header_value_is_an_error_not_a_panic() {
    for name in [
        "Grip-Hold",
        "Grip-Channel",
        "Grip-Timeout",
        "Grip-Set-Meta",
        "Grip-Link",
        "Grip-Status",
    ] {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(b"a\xff").unwrap(),
        );
        let e = Instruction::parse(StatusCode::OK, &map, b"").unwrap_err();
        assert!(
            matches!(e, InstructionError::NotUtf8 { .. }),
            "{name}: {e:?}"
        );
        assert!(e.to_string().starts_with(name), "{e}");
    }
}

#[test]
fn non_utf8_keep_alive_is_an_error() {
    let mut map = header_map(&[("Grip-Hold", "stream")]);
    map.insert(
        names::GRIP_KEEP_ALIVE,
        HeaderValue::from_bytes(b"\xfe\xff").unwrap(),
    );
    let e = Instruction::parse(StatusCode::OK, &map, b"").unwrap_err();
    assert_eq!(
        e,
        InstructionError::NotUtf8 {
            header: "Grip-Keep-Alive"
        }
    );
}

#[test]
fn status_line_rejects_control_characters_in_reason() {
    assert!(matches!(
        StatusLine::new(200, Some("OK\r\nX: y")),
        Err(StatusLineError::InvalidReason(_))
    ));
    assert_eq!(StatusLine::new(200, Some("A\tB")).unwrap().reason(), "A\tB");
    assert_eq!(
        StatusLine::new(1000, None),
        Err(StatusLineError::CodeOutOfRange(1000))
    );
}

#[test]
fn response_hold_body_limit_is_100_000_bytes() {
    assert_eq!(MAX_RESPONSE_HOLD_BODY, 100_000);
}
