use super::*;
use proptest::prelude::*;

fn both_ways(value: Value, wire: &[u8]) {
    assert_eq!(encode(&value), wire, "encoding");
    assert_eq!(decode(wire), Ok(value), "decoding");
    assert_eq!(encoded_len(&decode(wire).unwrap()), wire.len());
}

// §4.6 worked examples, verbatim.

#[test]
fn spec_example_byte_string_hello() {
    both_ways(Value::str("hello"), b"5:hello,");
}

#[test]
fn spec_example_integer_42() {
    both_ways(Value::Int(42), b"2:42#");
}

#[test]
fn spec_example_boolean_true() {
    both_ways(Value::Bool(true), b"4:true!");
}

#[test]
fn spec_example_null() {
    both_ways(Value::Null, b"0:~");
}

#[test]
fn spec_example_list_of_string_and_integer() {
    both_ways(
        Value::List(vec![Value::str("a"), Value::Int(1)]),
        b"8:1:a,1:1#]",
    );
}

#[test]
fn spec_example_dict_with_content() {
    both_ways(
        Value::dict([("content", Value::str("hi\n"))]),
        b"16:7:content,3:hi\n,}",
    );
}

#[test]
fn spec_example_pull_frame_item() {
    let wire = b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
    assert_eq!(wire.len(), 70);
    both_ways(
        Value::dict([
            ("channel", Value::str("test")),
            (
                "formats",
                Value::dict([(
                    "http-stream",
                    Value::dict([("content", Value::str("hi\n"))]),
                )]),
            ),
        ]),
        wire,
    );
}

#[test]
fn spec_example_sub_frame_item_without_channel() {
    both_ways(
        Value::dict([(
            "formats",
            Value::dict([(
                "http-stream",
                Value::dict([("content", Value::str("hi\n"))]),
            )]),
        )]),
        b"49:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}",
    );
}

#[test]
fn spec_example_http_response_with_list_headers() {
    both_ways(
        Value::dict([
            ("code", Value::Int(200)),
            (
                "headers",
                Value::List(vec![Value::List(vec![
                    Value::str("Content-Type"),
                    Value::str("text/plain"),
                ])]),
            ),
            ("body", Value::str("ok\n")),
        ]),
        b"74:4:code,3:200#7:headers,34:30:12:Content-Type,10:text/plain,]]4:body,3:ok\n,}",
    );
}

// Remaining scalar forms.

#[test]
fn false_and_negative_integer_round_trip() {
    both_ways(Value::Bool(false), b"5:false!");
    both_ways(Value::Int(-7), b"2:-7#");
    both_ways(Value::Int(i64::MIN), b"20:-9223372036854775808#");
}

#[test]
fn floats_use_shortest_round_trip_text() {
    both_ways(Value::Float(1.5), b"3:1.5^");
    both_ways(Value::Float(1.0), b"3:1.0^");
    both_ways(Value::Float(1e300), b"5:1e300^");
}

#[test]
fn non_finite_floats_are_written_as_python_does() {
    both_ways(Value::Float(f64::INFINITY), b"3:inf^");
    both_ways(Value::Float(f64::NEG_INFINITY), b"4:-inf^");
    assert_eq!(encode(&Value::Float(f64::NAN)), b"3:nan^");
    assert!(matches!(decode(b"3:nan^"), Ok(Value::Float(f)) if f.is_nan()));
}

#[test]
fn nan_values_compare_equal_to_each_other() {
    assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    assert_ne!(Value::Float(1.0), Value::Int(1));
}

#[test]
fn float_payload_may_be_written_as_integer_or_exponent() {
    assert_eq!(decode(b"1:2^"), Ok(Value::Float(2.0)));
    assert_eq!(decode(b"5:1E+02^"), Ok(Value::Float(100.0)));
}

#[test]
fn integer_payload_accepts_explicit_plus_sign() {
    assert_eq!(decode(b"2:+5#"), Ok(Value::Int(5)));
}

#[test]
fn byte_strings_are_binary_safe() {
    both_ways(
        Value::Bytes(Bytes::from_static(&[0, 0xff, b':', b','])),
        b"4:\x00\xff:,,",
    );
}

#[test]
fn empty_containers_round_trip() {
    both_ways(Value::List(vec![]), b"0:]");
    both_ways(Value::Dict(vec![]), b"0:}");
    both_ways(Value::str(""), b"0:,");
}

#[test]
fn size_with_leading_zeros_is_accepted() {
    assert_eq!(decode(b"05:hello,"), Ok(Value::str("hello")));
}

// Rejections.

#[test]
fn size_overrunning_the_buffer_is_rejected() {
    assert_eq!(
        decode(b"6:hello,"),
        Err(TnetstringError::Overrun {
            offset: 0,
            size: 6,
            available: 6
        })
    );
}

#[test]
fn missing_type_byte_is_an_overrun() {
    assert!(matches!(
        decode(b"5:hello"),
        Err(TnetstringError::Overrun { .. })
    ));
}

#[test]
fn element_overrunning_its_container_is_rejected() {
    // The list payload is 4 bytes; the element inside claims 3 bytes of payload.
    assert_eq!(
        decode(b"4:3:ab]"),
        Err(TnetstringError::Overrun {
            offset: 2,
            size: 3,
            available: 2
        })
    );
}

#[test]
fn size_with_ten_digits_is_rejected() {
    assert_eq!(
        decode(b"0000000005:hello,"),
        Err(TnetstringError::SizeTooLong { offset: 0 })
    );
}

#[test]
fn nine_digit_size_is_parsed_then_checked_against_the_buffer() {
    assert!(matches!(
        decode(b"999999999:x,"),
        Err(TnetstringError::Overrun {
            size: 999_999_999,
            ..
        })
    ));
}

#[test]
fn non_digit_size_is_rejected() {
    assert_eq!(
        decode(b"5a:hello,"),
        Err(TnetstringError::InvalidSize { offset: 0 })
    );
    assert_eq!(
        decode(b":hello,"),
        Err(TnetstringError::InvalidSize { offset: 0 })
    );
    assert_eq!(
        decode(b"-1:,"),
        Err(TnetstringError::InvalidSize { offset: 0 })
    );
}

#[test]
fn input_ending_inside_size_is_truncated() {
    assert_eq!(decode(b""), Err(TnetstringError::Truncated { offset: 0 }));
    assert_eq!(decode(b"12"), Err(TnetstringError::Truncated { offset: 2 }));
}

#[test]
fn unknown_type_byte_is_rejected_with_its_offset() {
    assert_eq!(
        decode(b"5:hello?"),
        Err(TnetstringError::UnknownType {
            offset: 7,
            byte: b'?'
        })
    );
}

#[test]
fn bad_integer_payloads_are_rejected() {
    for wire in [&b"2:4a#"[..], b"0:#", b"1:-#", b"3: 42#"] {
        assert_eq!(
            decode(wire),
            Err(TnetstringError::InvalidInteger { offset: 2 }),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn integer_outside_i64_is_rejected() {
    assert_eq!(
        decode(b"20:99999999999999999999#"),
        Err(TnetstringError::InvalidInteger { offset: 3 })
    );
}

#[test]
fn bad_float_payloads_are_rejected() {
    for wire in [&b"3:1.x^"[..], b"0:^", b"4: 1.0^", b"3:0x1^"] {
        assert!(
            matches!(decode(wire), Err(TnetstringError::InvalidFloat { .. })),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn bad_boolean_payloads_are_rejected() {
    assert_eq!(
        decode(b"4:TRUE!"),
        Err(TnetstringError::InvalidBool { offset: 2 })
    );
    assert_eq!(
        decode(b"1:1!"),
        Err(TnetstringError::InvalidBool { offset: 2 })
    );
}

#[test]
fn null_with_payload_is_rejected() {
    assert_eq!(
        decode(b"1:x~"),
        Err(TnetstringError::InvalidNull { offset: 2 })
    );
}

#[test]
fn dict_with_non_string_key_is_rejected() {
    assert_eq!(
        decode(b"8:1:1#1:a,}"),
        Err(TnetstringError::NonStringKey { offset: 2 })
    );
}

#[test]
fn dict_with_odd_element_count_is_rejected() {
    assert_eq!(
        decode(b"4:1:a,}"),
        Err(TnetstringError::MissingValue { offset: 2 })
    );
}

#[test]
fn nesting_beyond_the_depth_limit_is_rejected() {
    let mut wire = b"0:]".to_vec();
    for _ in 0..MAX_DEPTH {
        let mut outer = format!("{}:", wire.len()).into_bytes();
        outer.extend_from_slice(&wire);
        outer.push(b']');
        wire = outer;
    }
    assert!(matches!(
        decode(&wire),
        Err(TnetstringError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
}

#[test]
fn nesting_at_the_depth_limit_is_accepted() {
    let mut wire = b"0:]".to_vec();
    for _ in 1..MAX_DEPTH {
        let mut outer = format!("{}:", wire.len()).into_bytes();
        outer.extend_from_slice(&wire);
        outer.push(b']');
        wire = outer;
    }
    assert!(decode(&wire).is_ok());
}

#[test]
fn hostile_deep_prefix_does_not_overflow_the_stack() {
    // 100,000 correctly sized nested lists; only the depth check stops the descent.
    let levels = 100_000;
    let mut lens = vec![3usize];
    for _ in 0..levels {
        let inner = *lens.last().unwrap();
        lens.push(inner.to_string().len() + 1 + inner + 1);
    }
    let mut wire = Vec::with_capacity(*lens.last().unwrap());
    for inner in lens[..levels].iter().rev() {
        wire.extend_from_slice(format!("{inner}:").as_bytes());
    }
    wire.extend_from_slice(b"0:]");
    wire.resize(wire.len() + levels, b']');
    assert_eq!(wire.len(), *lens.last().unwrap());
    assert!(matches!(
        decode(&wire),
        Err(TnetstringError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
}

#[test]
fn decode_rejects_trailing_bytes() {
    assert_eq!(
        decode(b"0:~0:~"),
        Err(TnetstringError::TrailingBytes {
            offset: 3,
            count: 3
        })
    );
}

#[test]
fn decode_prefix_returns_the_rest() {
    let (value, rest) = decode_prefix(b"2:42#tail").unwrap();
    assert_eq!(value, Value::Int(42));
    assert_eq!(rest, b"tail");
}

#[test]
fn error_messages_name_the_byte_offset() {
    let err = decode(b"5:hello?").unwrap_err();
    assert_eq!(err.to_string(), "unknown type byte 0x3f at byte 7");
}

// Accessors.

#[test]
fn get_resolves_duplicate_keys_to_the_last() {
    let value = decode(b"16:1:a,1:1#1:a,1:2#}").unwrap();
    assert_eq!(value.get(b"a"), Some(&Value::Int(2)));
    assert_eq!(value.get(b"b"), None);
    assert_eq!(Value::Null.get(b"a"), None);
}

#[test]
fn accessors_return_only_matching_types() {
    assert_eq!(Value::str("x").as_bytes(), Some(&Bytes::from_static(b"x")));
    assert_eq!(Value::Int(1).as_bytes(), None);
    assert_eq!(Value::str("x").as_str(), Some("x"));
    assert_eq!(Value::Bytes(Bytes::from_static(b"\xff")).as_str(), None);
    assert_eq!(Value::Int(3).as_int(), Some(3));
    assert_eq!(Value::Int(3).as_bool(), None);
    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    assert_eq!(Value::List(vec![]).as_list(), Some(&[][..]));
    assert_eq!(Value::Dict(vec![]).as_dict(), Some(&[][..]));
    assert!(Value::Null.is_null());
    assert_eq!(Value::Float(0.5).type_name(), "float");
}

#[test]
fn conversions_build_the_expected_variants() {
    assert_eq!(Value::from("a"), Value::str("a"));
    assert_eq!(Value::from(5i64), Value::Int(5));
    assert_eq!(Value::from(true), Value::Bool(true));
    assert_eq!(
        Value::from(vec![Value::Null]),
        Value::List(vec![Value::Null])
    );
    assert_eq!(
        Value::from(Bytes::from_static(b"b")),
        Value::Bytes(Bytes::from_static(b"b"))
    );
}

#[test]
fn encode_into_appends_to_existing_buffer() {
    let mut out = b"T".to_vec();
    encode_into(&Value::Int(1), &mut out);
    assert_eq!(out, b"T1:1#");
}

pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| Value::Bytes(b.into())),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from),
                    inner
                ),
                0..6
            )
            .prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(value in arb_value()) {
        let wire = encode(&value);
        prop_assert_eq!(wire.len(), encoded_len(&value));
        prop_assert_eq!(decode(&wire), Ok(value));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = decode(&bytes) {
            prop_assert_eq!(decode(&encode(&value)), Ok(value));
        }
    }
}
