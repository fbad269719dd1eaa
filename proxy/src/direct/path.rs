//! Path and channel templates of direct routes (design "Routes"): `path = "/orders/{id}"`
//! names the parts of a request path, `channel = "orders.{id}"` builds the channel name
//! from them.

use std::collections::BTreeMap;

use fjord_protocol::form::percent_decode;

/// Why a template is not usable; each names the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("template {0:?} has an unclosed or empty '{{}}'")]
    BadBrace(String),
    #[error("path {0:?}: a {{name}} must be a whole path segment")]
    PartialSegment(String),
    #[error("path {0:?} names {{{1}}} twice")]
    Repeated(String, String),
    #[error("channel {0:?} uses {{{1}}}, which the path does not name")]
    UnknownName(String, String),
    #[error("channel template is empty")]
    EmptyChannel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A request path pattern: literal segments and `{name}` segments matching one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    pub fn parse(source: &str) -> Result<PathTemplate, TemplateError> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| TemplateError::NotAbsolute(source.to_owned()))?;
        let mut segments = Vec::new();
        for part in rest.split('/') {
            let segment = match part.strip_prefix('{') {
                Some(inner) => {
                    let name = inner
                        .strip_suffix('}')
                        .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                        .ok_or_else(|| TemplateError::BadBrace(source.to_owned()))?;
                    if segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(TemplateError::Repeated(source.to_owned(), name.to_owned()));
                    }
                    Segment::Param(name.to_owned())
                }
                None if part.contains(['{', '}']) => {
                    return Err(TemplateError::PartialSegment(source.to_owned()))
                }
                None => Segment::Literal(part.to_owned()),
            };
            segments.push(segment);
        }
        Ok(PathTemplate {
            source: source.to_owned(),
            segments,
        })
    }

    /// The literal start of every path this template matches: what the route table
    /// selects the route by.
    pub fn prefix(&self) -> String {
        let mut prefix = String::from("/");
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    prefix.push_str(text);
                    prefix.push('/');
                }
                Segment::Param(_) => return prefix,
            }
        }
        // All literal: the exact path (without the trailing slash added above).
        prefix.pop();
        if prefix.is_empty() {
            prefix.push('/');
        }
        prefix
    }

    /// The names of the template's `{…}` segments.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The values of the `{…}` segments when `path` matches, percent-decoded. A value
    /// must be non-empty UTF-8 without control characters.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut values = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(text) => {
                    if text != part {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = percent_decode(part).ok()?;
                    if value.is_empty() || value.chars().any(char::is_control) {
                        return None;
                    }
                    values.insert(name.clone(), value);
                }
            }
        }
        Some(values)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Name(String),
}

/// A channel name built from the path's values: `orders.{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl ChannelTemplate {
    /// Parses `source`; every name it uses must be one of `path`'s.
    pub fn parse(source: &str, path: &PathTemplate) -> Result<ChannelTemplate, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::EmptyChannel);
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .filter(|&c| c > 0 && !after[..c].contains('{'))
                .ok_or_else(|| TemplateError::BadBrace(source.to_owned()))?;
            let name = &after[..close];
            if !path.names().any(|n| n == name) {
                return Err(TemplateError::UnknownName(
                    source.to_owned(),
                    name.to_owned(),
                ));
            }
            pieces.push(Piece::Name(name.to_owned()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(TemplateError::BadBrace(source.to_owned()));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(ChannelTemplate {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The channel for a matched path's values (every name is there: parse checked).
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Name(name) => out.push_str(values.get(name).map_or("", String::as_str)),
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_fill_the_channel_template() {
        let path = PathTemplate::parse("/orders/{id}").unwrap();
        assert_eq!(path.prefix(), "/orders/");
        let channel = ChannelTemplate::parse("orders.{id}", &path).unwrap();
        let values = path.matches("/orders/2235407").unwrap();
        assert_eq!(channel.render(&values), "orders.2235407");
    }

    #[test]
    fn path_values_are_percent_decoded_and_must_be_whole_segments() {
        let path = PathTemplate::parse("/t/{tenant}/orders/{id}").unwrap();
        let values = path.matches("/t/acme%20co/orders/7").unwrap();
        assert_eq!(values["tenant"], "acme co");
        assert!(path.matches("/t/acme/orders").is_none());
        assert!(path.matches("/t/acme/orders/7/extra").is_none());
        assert!(path.matches("/t//orders/7").is_none(), "empty value");
        assert!(
            path.matches("/t/%0a/orders/7").is_none(),
            "control character"
        );
        assert!(path.matches("/t/%ff/orders/7").is_none(), "not UTF-8");
        assert!(path.matches("/x/acme/orders/7").is_none());
    }

    #[test]
    fn literal_paths_match_exactly() {
        let path = PathTemplate::parse("/prices").unwrap();
        assert_eq!(path.prefix(), "/prices");
        assert!(path.matches("/prices").is_some());
        assert!(path.matches("/prices/x").is_none());
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(matches!(
            PathTemplate::parse("orders/{id}"),
            Err(TemplateError::NotAbsolute(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/orders/{id"),
            Err(TemplateError::BadBrace(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/orders/x{id}"),
            Err(TemplateError::PartialSegment(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/{a}/{a}"),
            Err(TemplateError::Repeated(..))
        ));
        let path = PathTemplate::parse("/orders/{id}").unwrap();
        assert!(matches!(
            ChannelTemplate::parse("orders.{order}", &path),
            Err(TemplateError::UnknownName(..))
        ));
        assert!(matches!(
            ChannelTemplate::parse("orders.{id", &path),
            Err(TemplateError::BadBrace(_))
        ));
        assert!(matches!(
            ChannelTemplate::parse("", &path),
            Err(TemplateError::EmptyChannel)
        ));
    }
}
