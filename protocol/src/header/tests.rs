use super::*;
use proptest::prelude::*;

fn list(values: &[&str]) -> Vec<HeaderElement> {
    parse_list(values.iter().map(|v| v.as_bytes())).unwrap()
}

fn param(name: &str, value: Option<&str>) -> HeaderParam {
    HeaderParam {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    }
}

#[test]
fn comma_list_and_repeated_headers_are_equivalent() {
    let one = list(&["a, b; prev-id=3"]);
    let two = list(&["a", "b; prev-id=3"]);
    assert_eq!(one, two);
    assert_eq!(one.len(), 2);
    assert_eq!(one[0].value, "a");
    assert_eq!(one[1].value, "b");
    assert_eq!(one[1].param_value("prev-id"), Some("3"));
}

#[test]
fn parameters_keep_their_order_and_repeats() {
    let elements = list(&["cherry; filter=f1; filter=f2;prev-id=x"]);
    let filters: Vec<_> = elements[0]
        .params_named("filter")
        .map(|p| p.value.as_deref())
        .collect();
    assert_eq!(filters, [Some("f1"), Some("f2")]);
    assert_eq!(elements[0].param_value("prev-id"), Some("x"));
}

#[test]
fn parameter_names_are_case_insensitive() {
    let elements = list(&["a; Prev-ID=7"]);
    assert_eq!(elements[0].param_value("prev-id"), Some("7"));
}

#[test]
fn bare_parameter_has_no_value() {
    let elements = list(&["a; flag; x="]);
    assert_eq!(
        elements[0].params,
        [param("flag", None), param("x", Some(""))]
    );
    assert_eq!(elements[0].param_value("flag"), None);
    assert!(elements[0].param("flag").is_some());
}

#[test]
fn quoted_values_are_unescaped_and_protect_separators() {
    let elements = list(&[r#"a; id="x,y;z \"q\" \\"; n=1, b"#]);
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0].param_value("id"), Some(r#"x,y;z "q" \"#));
    assert_eq!(elements[0].param_value("n"), Some("1"));
    assert_eq!(elements[1].value, "b");
}

#[test]
fn whitespace_around_tokens_is_ignored() {
    let elements = list(&["  a ;  prev-id = 3 ;filter= \"f\"  ,\tb\t"]);
    assert_eq!(elements[0].value, "a");
    assert_eq!(
        elements[0].params,
        [param("prev-id", Some("3")), param("filter", Some("f"))]
    );
    assert_eq!(elements[1].value, "b");
}

#[test]
fn empty_elements_are_skipped() {
    let elements = list(&[",a,, ,b,", ""]);
    let values: Vec<_> = elements.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, ["a", "b"]);
}

#[test]
fn element_with_only_parameters_keeps_an_empty_value() {
    let elements = list(&["; prev-id=3"]);
    assert_eq!(elements[0].value, "");
    assert_eq!(elements[0].param_value("prev-id"), Some("3"));
}

#[test]
fn angle_bracket_uri_is_not_split_at_commas_or_semicolons() {
    let elements = list(&["</a?x=1,2;y>; rel=next; timeout=3, </g>; rel=gone"]);
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0].uri_reference(), Some("/a?x=1,2;y"));
    assert_eq!(elements[0].param_value("rel"), Some("next"));
    assert_eq!(elements[0].param_value("timeout"), Some("3"));
    assert_eq!(elements[1].uri_reference(), Some("/g"));
}

#[test]
fn angle_bracket_without_closing_is_a_plain_value() {
    let elements = list(&["<abc; rel=next"]);
    assert_eq!(elements[0].value, "<abc");
    assert_eq!(elements[0].uri_reference(), None);
}

#[test]
fn unterminated_quote_is_an_error() {
    let err = parse_list([&b"a; id=\"abc"[..]]).unwrap_err();
    assert_eq!(err, HeaderSyntaxError::UnterminatedQuote);
    let err = parse_list([&b"a; id=\"abc\\"[..]]).unwrap_err();
    assert_eq!(err, HeaderSyntaxError::UnterminatedQuote);
}

#[test]
fn text_after_closing_quote_is_an_error() {
    let err = parse_list([&b"a; id=\"x\"y"[..]]).unwrap_err();
    assert_eq!(err, HeaderSyntaxError::TextAfterQuote { found: 'y' });
}

#[test]
fn value_without_parameter_name_is_an_error() {
    let err = parse_list([&b"a; =3"[..]]).unwrap_err();
    assert_eq!(err, HeaderSyntaxError::EmptyParamName);
}

#[test]
fn non_utf8_value_is_an_error() {
    let err = parse_list([&b"a\xff"[..]]).unwrap_err();
    assert_eq!(err, HeaderSyntaxError::NotUtf8);
}

#[test]
fn single_element_keeps_commas_and_quotes_in_its_value() {
    let element = parse_element(br#"a,b "c; format=raw; timeout=5"#)
        .unwrap()
        .unwrap();
    assert_eq!(element.value, r#"a,b "c"#);
    assert_eq!(element.param_value("format"), Some("raw"));
    assert_eq!(element.param_value("timeout"), Some("5"));
}

#[test]
fn single_element_of_empty_value_is_none() {
    assert_eq!(parse_element(b"  ").unwrap(), None);
}

#[test]
fn param_list_reads_leading_pairs() {
    let elements =
        parse_param_list([&br#"user="u1", id_format="a:%(a)s""#[..], b"x=1; y=2"]).unwrap();
    assert_eq!(
        elements,
        [
            vec![param("user", Some("u1"))],
            vec![param("id_format", Some("a:%(a)s"))],
            vec![param("x", Some("1")), param("y", Some("2"))],
        ]
    );
}

#[test]
fn param_list_quotes_protect_commas() {
    let elements = parse_param_list([&br#"k="a,b", j=c"#[..]]).unwrap();
    assert_eq!(
        elements,
        [vec![param("k", Some("a,b"))], vec![param("j", Some("c"))]]
    );
}

#[test]
fn grip_feature_lists_the_implemented_features() {
    let features: Vec<_> = list(&[GRIP_FEATURE_VALUE])
        .into_iter()
        .map(|e| e.value)
        .collect();
    for wanted in [
        "status",
        "session",
        "link:next",
        "link:gone",
        "filter:skip-self",
        "filter:build-id",
    ] {
        assert!(features.iter().any(|f| f == wanted), "{wanted} missing");
    }
    assert_eq!(grip_feature_header_value(), GRIP_FEATURE_VALUE);
}

#[test]
fn grip_last_plain_id_is_not_quoted() {
    let value = GripLast::new("a", "1").to_header_value().unwrap();
    assert_eq!(value, "a; last-id=1");
}

#[test]
fn grip_last_id_with_separators_is_quoted() {
    let value = GripLast::new("a", "x;y \"z\"").to_header_value().unwrap();
    assert_eq!(value, r#"a; last-id="x;y \"z\"""#);
}

#[test]
fn grip_last_rejects_unrepresentable_channels_and_ids() {
    assert_eq!(
        GripLast::new("", "1").to_header_value(),
        Err(GripLastError::EmptyChannel)
    );
    for bad in ["a,b", "a;b", " a", "a\n"] {
        let err = GripLast::new(bad, "1").to_header_value().unwrap_err();
        assert_eq!(err, GripLastError::UnrepresentableChannel(bad.to_owned()));
    }
    let err = GripLast::new("a", "1\r\n").to_header_value().unwrap_err();
    assert_eq!(err, GripLastError::UnrepresentableId("1\r\n".to_owned()));
}

#[test]
fn grip_last_parses_one_entry_per_channel() {
    let parsed = GripLast::parse_all([&b"a; last-id=1, b; last-id=\"x,y\""[..], b"c; last-id=3"]);
    assert_eq!(
        parsed.unwrap(),
        [
            GripLast::new("a", "1"),
            GripLast::new("b", "x,y"),
            GripLast::new("c", "3")
        ]
    );
}

#[test]
fn grip_last_without_last_id_is_an_error() {
    let err = GripLast::parse_all([&b"a"[..]]).unwrap_err();
    assert_eq!(err, GripLastError::MissingLastId("a".to_owned()));
}

#[test]
fn grip_headers_are_recognised_by_prefix() {
    assert!(is_grip_header(&HeaderName::from_static("grip-anything")));
    assert!(!is_grip_header(&HeaderName::from_static("gripe")));
}

proptest! {
    #[test]
    fn grip_last_round_trips(
        channel in "[^,; \\t\\x00-\\x1f\\x7f]([^,;\\x00-\\x1f\\x7f]{0,10}[^,; \\t\\x00-\\x1f\\x7f])?",
        last_id in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,16}",
    ) {
        let written = GripLast::new(channel.clone(), last_id.clone()).to_header_value().unwrap();
        let parsed = GripLast::parse_all([written.as_bytes()]).unwrap();
        prop_assert_eq!(parsed, vec![GripLast::new(channel, last_id)]);
    }

    #[test]
    fn several_grip_last_values_round_trip_as_one_list(
        ids in proptest::collection::vec("[ -~]{0,8}", 1..5),
    ) {
        let entries: Vec<GripLast> =
            ids.iter().enumerate().map(|(i, id)| GripLast::new(format!("ch{i}"), id.clone())).collect();
        let values: Vec<HeaderValue> = entries.iter().map(|e| e.to_header_value().unwrap()).collect();
        let joined = values.iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>().join(", ");
        prop_assert_eq!(GripLast::parse_all([joined.as_bytes()]).unwrap(), entries.clone());
        prop_assert_eq!(GripLast::parse_all(values.iter().map(|v| v.as_bytes())).unwrap(), entries);
    }

    #[test]
    fn list_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_list([&input[..]]);
        let _ = parse_element(&input);
        let _ = parse_param_list([&input[..]]);
    }
}
