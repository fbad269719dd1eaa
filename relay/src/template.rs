//! Channel and event-name templates over a record (§9, design "Data flow" 1):
//! `orders.{key}`, `{topic}`, `drivers.{json./region}`, `{header.tenant}`.
//!
//! A template is parsed once, at start, into segments, so rendering is a walk over a
//! short list with no string scanning. `{{` and `}}` write literal braces.

use std::fmt::Write as _;

use crate::record::{JsonUnavailable, RecordView};
use crate::skip::SkipReason;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Topic,
    Partition,
    Key,
    Header(String),
    /// An RFC 6901 pointer into the value parsed as JSON.
    Json(String),
}

/// Why a template does not parse; reported at start with the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {template:?}: '{{' at byte {at} is never closed")]
    Unclosed { template: String, at: usize },
    #[error("template {template:?}: '}}' at byte {at} closes nothing (write '}}}}' for a literal brace)")]
    StrayClose { template: String, at: usize },
    #[error("template {template:?}: unknown field {{{field}}} (expected topic, partition, key, header.NAME or json./pointer)")]
    UnknownField { template: String, field: String },
    #[error("template {template:?}: {{header.}} needs a header name")]
    EmptyHeaderName { template: String },
    #[error("template {template:?}: JSON pointer {pointer:?} must be empty or start with '/'")]
    InvalidPointer { template: String, pointer: String },
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut at = 0;
        while let Some(index) = rest.find(['{', '}']) {
            literal.push_str(&rest[..index]);
            let brace = &rest[index..];
            let position = at + index;
            if brace.starts_with("{{") {
                literal.push('{');
                advance(&mut rest, &mut at, index + 2);
            } else if brace.starts_with("}}") {
                literal.push('}');
                advance(&mut rest, &mut at, index + 2);
            } else if brace.starts_with('}') {
                return Err(TemplateError::StrayClose {
                    template: source.to_owned(),
                    at: position,
                });
            } else {
                let close = brace.find('}').ok_or_else(|| TemplateError::Unclosed {
                    template: source.to_owned(),
                    at: position,
                })?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(parse_field(source, &brace[1..close])?);
                advance(&mut rest, &mut at, index + close + 1);
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: source.to_owned(),
            segments,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether rendering needs the value parsed as JSON.
    pub fn uses_json(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Json(_)))
    }

    /// Whether the template renders the same text for every record.
    pub fn is_constant(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The template filled in from `view`, or the reason it cannot be.
    pub fn render(&self, view: &RecordView<'_>) -> Result<String, SkipReason> {
        let record = view.record;
        let mut out = String::with_capacity(self.source.len() + 16);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Topic => out.push_str(&record.topic),
                Segment::Partition => {
                    let _ = write!(out, "{}", record.partition);
                }
                Segment::Key => {
                    let key = record.key.as_ref().ok_or(SkipReason::MissingKey)?;
                    out.push_str(std::str::from_utf8(key).map_err(|_| SkipReason::KeyNotUtf8)?);
                }
                Segment::Header(name) => {
                    let value = record
                        .header(name)
                        .flatten()
                        .ok_or(SkipReason::MissingHeader)?;
                    out.push_str(
                        std::str::from_utf8(value).map_err(|_| SkipReason::HeaderNotUtf8)?,
                    );
                }
                Segment::Json(pointer) => {
                    let field = json_field(view, pointer)?;
                    push_scalar(&mut out, field)?;
                }
            }
        }
        Ok(out)
    }
}

fn advance(rest: &mut &str, at: &mut usize, by: usize) {
    *rest = &rest[by..];
    *at += by;
}

fn parse_field(template: &str, field: &str) -> Result<Segment, TemplateError> {
    match field {
        "topic" => Ok(Segment::Topic),
        "partition" => Ok(Segment::Partition),
        "key" => Ok(Segment::Key),
        _ => {
            if let Some(name) = field.strip_prefix("header.") {
                if name.is_empty() {
                    return Err(TemplateError::EmptyHeaderName {
                        template: template.to_owned(),
                    });
                }
                Ok(Segment::Header(name.to_owned()))
            } else if let Some(pointer) = field.strip_prefix("json.") {
                if !is_valid_pointer(pointer) {
                    return Err(TemplateError::InvalidPointer {
                        template: template.to_owned(),
                        pointer: pointer.to_owned(),
                    });
                }
                Ok(Segment::Json(pointer.to_owned()))
            } else {
                Err(TemplateError::UnknownField {
                    template: template.to_owned(),
                    field: field.to_owned(),
                })
            }
        }
    }
}

/// RFC 6901: the whole document (`""`) or `/`-separated reference tokens.
pub fn is_valid_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

/// The JSON value at `pointer`, with the typed reason when there is none.
pub fn json_field<'v>(
    view: &'v RecordView<'_>,
    pointer: &str,
) -> Result<&'v serde_json::Value, SkipReason> {
    let document = view.json().map_err(|e| match e {
        JsonUnavailable::NoValue => SkipReason::NoValue,
        JsonUnavailable::NotJson => SkipReason::ValueNotJson,
    })?;
    document
        .pointer(pointer)
        .ok_or(SkipReason::MissingJsonField)
}

/// Strings render as their content, numbers and booleans as their JSON text; anything
/// else has no sensible place in a channel name.
fn push_scalar(out: &mut String, value: &serde_json::Value) -> Result<(), SkipReason> {
    match value {
        serde_json::Value::String(s) => out.push_str(s),
        serde_json::Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        serde_json::Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        _ => return Err(SkipReason::JsonNotScalar),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KafkaRecord;

    fn render(template: &str, record: &KafkaRecord) -> Result<String, SkipReason> {
        Template::parse(template)
            .unwrap()
            .render(&RecordView::new(record))
    }

    fn order() -> KafkaRecord {
        KafkaRecord::new(
            "orders",
            2,
            17,
            br#"{"region":"north","n":3,"ok":true,"nested":{"a b":"x"},"list":[1],"none":null}"#,
        )
        .with_key(b"2235407")
        .with_header("tenant", b"acme")
    }

    #[test]
    fn renders_every_field_kind() {
        let r = order();
        assert_eq!(render("orders.{key}", &r).unwrap(), "orders.2235407");
        assert_eq!(render("{topic}", &r).unwrap(), "orders");
        assert_eq!(render("{topic}-{partition}", &r).unwrap(), "orders-2");
        assert_eq!(render("t.{header.tenant}", &r).unwrap(), "t.acme");
        assert_eq!(render("d.{json./region}", &r).unwrap(), "d.north");
        assert_eq!(render("{json./n}/{json./ok}", &r).unwrap(), "3/true");
        assert_eq!(render("{json./nested/a b}", &r).unwrap(), "x");
        assert_eq!(render("plain", &r).unwrap(), "plain");
        assert_eq!(render("{{{key}}}", &r).unwrap(), "{2235407}");
    }

    #[test]
    fn missing_fields_give_typed_reasons() {
        let r = order();
        assert_eq!(render("{header.x}", &r), Err(SkipReason::MissingHeader));
        assert_eq!(render("{json./x}", &r), Err(SkipReason::MissingJsonField));
        assert_eq!(render("{json./nested}", &r), Err(SkipReason::JsonNotScalar));
        assert_eq!(render("{json./list}", &r), Err(SkipReason::JsonNotScalar));
        assert_eq!(render("{json./none}", &r), Err(SkipReason::JsonNotScalar));
        let keyless = KafkaRecord::new("t", 0, 0, b"{}");
        assert_eq!(render("{key}", &keyless), Err(SkipReason::MissingKey));
        let binary_key = KafkaRecord::new("t", 0, 0, b"{}").with_key(&[0xff, 0xfe]);
        assert_eq!(render("{key}", &binary_key), Err(SkipReason::KeyNotUtf8));
        let binary_header = KafkaRecord::new("t", 0, 0, b"{}").with_header("h", &[0xc3]);
        assert_eq!(
            render("{header.h}", &binary_header),
            Err(SkipReason::HeaderNotUtf8)
        );
        let not_json = KafkaRecord::new("t", 0, 0, b"{oops");
        assert_eq!(
            render("{json./a}", &not_json),
            Err(SkipReason::ValueNotJson)
        );
        let mut tombstone = KafkaRecord::new("t", 0, 0, b"");
        tombstone.value = None;
        assert_eq!(render("{json./a}", &tombstone), Err(SkipReason::NoValue));
        // Fields that need no JSON render for a value that is not JSON.
        assert_eq!(render("{topic}", &not_json).unwrap(), "t");
    }

    #[test]
    fn the_last_repeated_header_wins() {
        let r = KafkaRecord::new("t", 0, 0, b"")
            .with_header("h", b"first")
            .with_header("h", b"second");
        assert_eq!(render("{header.h}", &r).unwrap(), "second");
    }

    #[test]
    fn bad_templates_are_refused_at_parse_time() {
        assert!(matches!(
            Template::parse("a{key"),
            Err(TemplateError::Unclosed { at: 1, .. })
        ));
        assert!(matches!(
            Template::parse("a}b"),
            Err(TemplateError::StrayClose { at: 1, .. })
        ));
        assert!(matches!(
            Template::parse("{value}"),
            Err(TemplateError::UnknownField { .. })
        ));
        assert!(matches!(
            Template::parse("{header.}"),
            Err(TemplateError::EmptyHeaderName { .. })
        ));
        assert!(matches!(
            Template::parse("{json.region}"),
            Err(TemplateError::InvalidPointer { .. })
        ));
    }

    #[test]
    fn reports_what_it_needs() {
        assert!(Template::parse("{json./a}").unwrap().uses_json());
        assert!(!Template::parse("{key}").unwrap().uses_json());
        assert!(Template::parse("fixed{{}}").unwrap().is_constant());
        assert!(!Template::parse("{topic}").unwrap().is_constant());
    }
}
