//! `parse_publish_request` against the decoder it replaced, which parsed the whole body
//! into a `serde_json::Value` and decoded each item with `PublishItem::from_json`. Both
//! must give the same items or the same error for any body: valid items, items with
//! one part broken, random JSON shapes, duplicate and escaped keys, and text that is
//! not JSON at all.

use std::collections::BTreeSet;

use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::*;

/// The `POST /publish` decoder before the borrowed tree, kept as the reference.
fn parse_via_value(body: &[u8]) -> Result<Vec<PublishItem>, PublishRequestError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| PublishRequestError::NotJson)?;
    let object = document
        .as_object()
        .ok_or(PublishRequestError::NotAnObject)?;
    let items = object
        .get("items")
        .ok_or(PublishRequestError::MissingItems)?
        .as_array()
        .ok_or(PublishRequestError::ItemsWrongType)?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            PublishItem::from_json(item, None)
                .map_err(|source| PublishRequestError::InvalidItem { index, source })
        })
        .collect()
}

/// JSON as written, so that bodies can hold what a `Value` cannot: duplicate keys,
/// escapes in keys, and number spellings that do not survive a round trip.
#[derive(Debug, Clone)]
enum Raw {
    /// A scalar's text, which may be malformed.
    Scalar(String),
    Array(Vec<Raw>),
    /// Keys are quoted string text.
    Object(Vec<(String, Raw)>),
}

impl Raw {
    fn render(&self, out: &mut String) {
        match self {
            Raw::Scalar(text) => out.push_str(text),
            Raw::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Raw::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(key);
                    out.push(':');
                    value.render(out);
                }
                out.push('}');
            }
        }
    }

    fn from_value(value: &serde_json::Value) -> Raw {
        match value {
            serde_json::Value::Array(items) => {
                Raw::Array(items.iter().map(Raw::from_value).collect())
            }
            serde_json::Value::Object(map) => Raw::Object(
                map.iter()
                    .map(|(k, v)| (quoted(k), Raw::from_value(v)))
                    .collect(),
            ),
            scalar => Raw::Scalar(scalar.to_string()),
        }
    }

    fn node_count(&self) -> usize {
        1 + match self {
            Raw::Scalar(_) => 0,
            Raw::Array(items) => items.iter().map(Raw::node_count).sum(),
            Raw::Object(entries) => entries.iter().map(|(_, v)| v.node_count()).sum(),
        }
    }

    /// The `n`th node in pre-order, or how many nodes were still to skip.
    fn nth_mut(&mut self, n: usize) -> Result<&mut Raw, usize> {
        if n == 0 {
            return Ok(self);
        }
        let mut rest = n - 1;
        let children: Vec<&mut Raw> = match self {
            Raw::Scalar(_) => Vec::new(),
            Raw::Array(items) => items.iter_mut().collect(),
            Raw::Object(entries) => entries.iter_mut().map(|(_, v)| v).collect(),
        };
        for child in children {
            match child.nth_mut(rest) {
                Ok(found) => return Ok(found),
                Err(left) => rest = left,
            }
        }
        Err(rest)
    }
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn render(raw: &Raw) -> String {
    let mut out = String::new();
    raw.render(&mut out);
    out
}

/// Every key the decoder reads, plus keys of `body-patch` operations and one unknown.
const KEYS: &[&str] = &[
    "items",
    "channel",
    "id",
    "prev-id",
    "formats",
    "meta",
    "no-seq",
    "size",
    "http-response",
    "http-stream",
    "ws-message",
    "action",
    "code",
    "reason",
    "status",
    "headers",
    "body",
    "body-bin",
    "body-patch",
    "content",
    "content-bin",
    "content-filters",
    "type",
    "op",
    "path",
    "value",
    "unknown",
];

/// `key` quoted, sometimes with its first character escaped so that it decodes to an
/// owned string.
fn spelling(key: &str) -> BoxedStrategy<String> {
    let plain = quoted(key);
    let Some(first) = key.chars().next() else {
        return Just(plain).boxed();
    };
    let escaped = format!(
        "\"\\u{:04x}{}\"",
        u32::from(first),
        &key[first.len_utf8()..]
    );
    prop_oneof![4 => Just(plain), 1 => Just(escaped)].boxed()
}

/// A key the decoder reads, or any other.
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_flat_map(spelling),
        1 => "\\PC{0,4}".prop_map(|k| quoted(&k)),
    ]
}

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-0.0",
    "1.0",
    "2.5",
    "-1",
    "200",
    "999",
    "1000",
    "65535",
    "65536",
    "1e2",
    "1e-400",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1e19",
    "-1e19",
    "\"\"",
    "\"send\"",
    "\"hint\"",
    "\"close\"",
    "\"refresh\"",
    "\"text\"",
    "\"binary\"",
    "\"ping\"",
    "\"pong\"",
    "\"add\"",
    "\"/a\"",
    "\"aGk=\"",
    "\"aGk\"",
    "\"aG k=\\n\"",
    "\"a===\"",
    "\"!!\"",
    "\"data: {\\\"n\\\":1}\\n\\n\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
];

/// Scalars the parser refuses: out of range, malformed, or with a bad escape.
const MALFORMED: &[&str] = &[
    "1E400",
    "-1e400",
    "01",
    "1.",
    "-",
    "NaN",
    "\"\\ud800\"",
    "\"\\x\"",
    "\"tab\there\"",
    "\"unterminated",
];

/// Mostly well-formed, so that a body with many scalars still parses more often than
/// not; byte-level damage covers the rest.
fn arb_scalar() -> impl Strategy<Value = Raw> {
    let text = |s: &&str| Raw::Scalar((*s).to_owned());
    prop_oneof![
        40 => proptest::sample::select(SCALARS).prop_map(move |s| text(&s)),
        10 => any::<i64>().prop_map(|i| Raw::Scalar(i.to_string())),
        10 => any::<f64>().prop_map(|f| Raw::Scalar(serde_json::Value::from(f).to_string())),
        20 => "\\PC{0,6}".prop_map(|s| Raw::Scalar(quoted(&s))),
        1 => proptest::sample::select(MALFORMED).prop_map(move |s| text(&s)),
    ]
}

fn arb_raw() -> impl Strategy<Value = Raw> {
    arb_scalar().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Raw::Array),
            proptest::collection::vec((arb_key(), inner), 0..5).prop_map(Raw::Object),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Raw),
    RemoveChild(Index),
    /// A new entry, or for an array a new element, with this value.
    AddChild(String, Raw),
    /// The same key again, before or after the entry it repeats.
    DuplicateEntry(Index, bool, Raw),
    NullChild(Index),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => arb_raw().prop_map(Mutation::Replace),
        2 => any::<Index>().prop_map(Mutation::RemoveChild),
        2 => (arb_key(), arb_raw()).prop_map(|(k, v)| Mutation::AddChild(k, v)),
        2 => (any::<Index>(), any::<bool>(), arb_raw())
            .prop_map(|(at, before, v)| Mutation::DuplicateEntry(at, before, v)),
        1 => any::<Index>().prop_map(Mutation::NullChild),
    ]
}

impl Mutation {
    fn apply(self, node: &mut Raw) {
        match (self, node) {
            (Mutation::Replace(raw), node) => *node = raw,
            (Mutation::RemoveChild(at), Raw::Array(items)) if !items.is_empty() => {
                items.remove(at.index(items.len()));
            }
            (Mutation::RemoveChild(at), Raw::Object(entries)) if !entries.is_empty() => {
                entries.remove(at.index(entries.len()));
            }
            (Mutation::AddChild(_, raw), Raw::Array(items)) => items.push(raw),
            (Mutation::AddChild(key, raw), Raw::Object(entries)) => entries.push((key, raw)),
            (Mutation::DuplicateEntry(at, before, raw), Raw::Object(entries))
                if !entries.is_empty() =>
            {
                let i = at.index(entries.len());
                let key = entries[i].0.clone();
                entries.insert(if before { i } else { i + 1 }, (key, raw));
            }
            (Mutation::NullChild(at), Raw::Array(items)) if !items.is_empty() => {
                let i = at.index(items.len());
                items[i] = Raw::Scalar("null".to_owned());
            }
            (Mutation::NullChild(at), Raw::Object(entries)) if !entries.is_empty() => {
                let i = at.index(entries.len());
                entries[i].1 = Raw::Scalar("null".to_owned());
            }
            _ => {}
        }
    }
}

/// A valid item in the wrapped or flat form.
fn arb_valid_item() -> impl Strategy<Value = Raw> {
    (arb_item(), any::<bool>()).prop_map(|(item, flat)| {
        let mut json = item.to_json();
        if flat {
            if let Some(formats) = json.as_object_mut().and_then(|o| o.remove("formats")) {
                if let (Some(item), serde_json::Value::Object(formats)) =
                    (json.as_object_mut(), formats)
                {
                    item.extend(formats);
                }
            }
        }
        Raw::from_value(&json)
    })
}

fn strings(words: &'static [&'static str]) -> BoxedStrategy<Raw> {
    proptest::sample::select(words)
        .prop_map(|w| Raw::Scalar(quoted(w)))
        .boxed()
}

fn numbers(range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<Raw> {
    range.prop_map(|i| Raw::Scalar(i.to_string())).boxed()
}

fn string_list() -> BoxedStrategy<Raw> {
    proptest::collection::vec(strings(&["a", "b-c", ""]), 0..3)
        .prop_map(Raw::Array)
        .boxed()
}

type Entry = BoxedStrategy<Option<(String, Raw)>>;

/// `key` present half of the time, mostly with a value from `plausible`.
fn entry(key: &'static str, plausible: BoxedStrategy<Raw>) -> Entry {
    entry_present(0.5, key, plausible)
}

fn entry_present(probability: f64, key: &'static str, plausible: BoxedStrategy<Raw>) -> Entry {
    let value = prop_oneof![8 => plausible, 1 => arb_scalar(), 1 => arb_raw()];
    proptest::option::weighted(probability, (spelling(key), value)).boxed()
}

fn object(entries: Vec<Entry>) -> BoxedStrategy<Raw> {
    entries
        .prop_map(|entries| entries.into_iter().flatten().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(Raw::Object)
        .boxed()
}

const BASE64: &[&str] = &["aGk=", "aGk", "aG k=\n", "", "a===", "!!", "AP8="];
const TEXT: &[&str] = &["x", "", "data: {\"n\":1}\n\n", "\u{e9}"];

fn arb_patch_raw() -> BoxedStrategy<Raw> {
    let op = object(vec![
        entry(
            "op",
            strings(&["add", "remove", "replace", "move", "copy", "test", "nop"]),
        ),
        entry("path", strings(&["/a", "", "/a/0", "a"])),
        entry("from", strings(&["/b", "x"])),
        entry("value", arb_scalar().boxed()),
    ]);
    proptest::collection::vec(op, 0..3)
        .prop_map(Raw::Array)
        .boxed()
}

fn arb_headers_raw() -> BoxedStrategy<Raw> {
    let pair = proptest::collection::vec(strings(&["X-A", "x-a", "", "Content-Type"]), 0..4)
        .prop_map(Raw::Array);
    prop_oneof![
        proptest::collection::vec(pair, 0..3).prop_map(Raw::Array),
        object(vec![
            entry("X-A", strings(TEXT)),
            entry("x-a", strings(TEXT)),
            entry("Content-Type", strings(TEXT)),
        ]),
    ]
    .boxed()
}

fn arb_http_response_raw() -> BoxedStrategy<Raw> {
    object(vec![
        entry("action", strings(&["send", "hint", "close"])),
        entry("code", numbers(-1..=1000)),
        entry("reason", strings(&["OK", ""])),
        entry("status", strings(&["Gone", ""])),
        entry("headers", arb_headers_raw()),
        entry("body", strings(TEXT)),
        entry("body-bin", strings(BASE64)),
        entry("body-patch", arb_patch_raw()),
        entry("content-filters", string_list()),
    ])
}

fn arb_http_stream_raw() -> BoxedStrategy<Raw> {
    object(vec![
        entry("action", strings(&["send", "close", "hint", "refresh"])),
        entry("content", strings(TEXT)),
        entry("content-bin", strings(BASE64)),
        entry("content-filters", string_list()),
    ])
}

fn arb_ws_message_raw() -> BoxedStrategy<Raw> {
    object(vec![
        entry("action", strings(&["send", "close", "refresh", "hint"])),
        entry(
            "type",
            strings(&["text", "binary", "ping", "pong", "Text", "close", "bin"]),
        ),
        entry("content", strings(TEXT)),
        entry("content-bin", strings(BASE64)),
        entry("code", numbers(-1..=65536)),
        entry("reason", strings(&["bye", ""])),
        entry("content-filters", string_list()),
    ])
}

fn format_entries() -> Vec<Entry> {
    vec![
        entry_present(0.3, "http-response", arb_http_response_raw()),
        entry_present(0.3, "http-stream", arb_http_stream_raw()),
        entry_present(0.5, "ws-message", arb_ws_message_raw()),
    ]
}

/// An item assembled key by key from plausible values, so that every check of the
/// decoder sees both values it accepts and values it refuses.
fn arb_assembled_item() -> BoxedStrategy<Raw> {
    let mut entries = vec![
        entry_present(0.95, "channel", strings(&["c123", "a", ""])),
        entry("id", strings(TEXT)),
        entry("prev-id", strings(TEXT)),
        entry("formats", object(format_entries())),
        entry(
            "meta",
            object(vec![entry("user", strings(TEXT)), entry("", strings(TEXT))]),
        ),
        entry(
            "no-seq",
            any::<bool>()
                .prop_map(|b| Raw::Scalar(b.to_string()))
                .boxed(),
        ),
        entry("size", numbers(-1..=100)),
    ];
    entries.extend(format_entries());
    object(entries)
}

/// An item, valid or assembled, half of them with up to three mutations at random
/// nodes.
fn arb_item_raw() -> impl Strategy<Value = Raw> {
    (
        prop_oneof![3 => arb_valid_item().boxed(), 2 => arb_assembled_item()],
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec((any::<Index>(), arb_mutation()), 1..4),
        ],
    )
        .prop_map(|(mut raw, mutations)| {
            for (at, mutation) in mutations {
                let n = at.index(raw.node_count());
                if let Ok(node) = raw.nth_mut(n) {
                    mutation.apply(node);
                }
            }
            raw
        })
}

fn items_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(quoted("items")),
        1 => Just("\"it\\u0065ms\"".to_owned()),
        1 => arb_key(),
    ]
}

fn arb_document() -> impl Strategy<Value = Raw> {
    let items = prop_oneof![
        2 => proptest::collection::vec(arb_valid_item(), 1..4).prop_map(Raw::Array),
        6 => proptest::collection::vec(
            prop_oneof![5 => arb_item_raw(), 1 => arb_raw()],
            0..4,
        )
        .prop_map(Raw::Array),
        1 => arb_raw(),
    ];
    let entries = proptest::collection::vec((items_key(), items), 1..3);
    let extra = proptest::collection::vec((arb_key(), arb_raw()), 0..2);
    prop_oneof![
        8 => (entries, extra, any::<bool>()).prop_map(|(mut entries, extra, extra_first)| {
            if extra_first {
                entries.splice(0..0, extra);
            } else {
                entries.extend(extra);
            }
            Raw::Object(entries)
        }),
        1 => arb_raw(),
    ]
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    Insert(Index, u8),
    Remove(Index),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    let byte = prop_oneof![
        proptest::sample::select(&b"\"\\,:{}[] 0\x01\xff\xc3"[..]),
        any::<u8>(),
    ];
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), byte).prop_map(|(at, b)| Damage::Insert(at, b)),
        any::<Index>().prop_map(Damage::Remove),
    ]
}

/// Mostly well-formed documents; one in eight damaged at the byte level.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let damage = proptest::option::weighted(0.125, arb_damage());
    (arb_document(), damage).prop_map(|(document, damage)| {
        let mut body = render(&document).into_bytes();
        match damage {
            None => {}
            Some(Damage::Truncate(at)) => body.truncate(at.index(body.len() + 1)),
            Some(Damage::Insert(at, byte)) => body.insert(at.index(body.len() + 1), byte),
            Some(Damage::Remove(at)) if !body.is_empty() => {
                body.remove(at.index(body.len()));
            }
            Some(Damage::Remove(_)) => {}
        }
        body
    })
}

proptest! {
    #![proptest_config(Config::with_cases(2000))]

    #[test]
    fn publish_request_decodes_as_the_value_tree_decoder_did(body in arb_body()) {
        prop_assert_eq!(
            parse_publish_request(&body),
            parse_via_value(&body),
            "body: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Guards the property above against a generator that stopped reaching the decoder:
/// a sample must contain accepted bodies and every kind of refusal.
#[test]
fn publish_request_bodies_cover_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_body();
    let mut outcomes = std::collections::BTreeMap::new();
    let mut problems = BTreeSet::new();
    let mut accepted_items = 0;
    for _ in 0..3000 {
        let body = strategy
            .new_tree(&mut runner)
            .expect("body strategy has no filters")
            .current();
        let outcome = match parse_via_value(&body) {
            Ok(items) => {
                accepted_items += items.len();
                "accepted"
            }
            Err(PublishRequestError::NotJson) => "not json",
            Err(PublishRequestError::NotAnObject) => "not an object",
            Err(PublishRequestError::MissingItems) => "missing items",
            Err(PublishRequestError::ItemsWrongType) => "items wrong type",
            Err(PublishRequestError::InvalidItem { source, .. }) => {
                let debug = format!("{:?}", source.problem);
                let variant = debug.split([' ', '(', '{']).next().unwrap_or_default();
                problems.insert(variant.to_owned());
                "invalid item"
            }
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    assert_eq!(outcomes.len(), 6, "outcomes reached: {outcomes:?}");
    assert!(
        accepted_items >= 800,
        "{accepted_items} items accepted; {outcomes:?}"
    );
    assert!(problems.len() >= 8, "item problems reached: {problems:?}");
}
