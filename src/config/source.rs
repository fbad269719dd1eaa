//! The text of a configuration file together with the position of every key in it.
//!
//! Serde forgets positions once a value is deserialized, yet a problem found later — a
//! channel template that does not compile, a key file that is missing — must still name
//! its line. This index, built from the same text with `toml_edit`, answers "where is
//! `relay.stream[1].channel`?" and, for recovery after a parse error, "which entry holds
//! byte 812, and which bytes would remove it?".

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value lives in the file: `proxy.route[0].origin`, `kafka."bootstrap.servers"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The path of a top-level key.
    pub fn root(key: &str) -> KeyPath {
        KeyPath(vec![Segment::Key(key.to_owned())])
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        KeyPath(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        KeyPath(segments)
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &KeyPath) -> KeyPath {
        let mut segments = self.0.clone();
        segments.extend(rest.0.iter().cloned());
        KeyPath(segments)
    }

    fn parent(&self) -> Option<KeyPath> {
        let (_, rest) = self.0.split_last()?;
        Some(KeyPath(rest.to_vec()))
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One key (or array element) of the file with its byte ranges.
#[derive(Debug)]
struct Entry {
    path: KeyPath,
    /// The key's text; `None` for array elements and implicit tables.
    key: Option<Range<usize>>,
    /// The value's text, or a table's `[header]`.
    value: Option<Range<usize>>,
    /// A `[table]` or `[[array of tables]]` entry rather than a `key = value` line.
    is_table: bool,
}

impl Entry {
    fn contains(&self, offset: usize) -> bool {
        let inside = |r: &Option<Range<usize>>| r.as_ref().is_some_and(|r| r.contains(&offset));
        inside(&self.key) || inside(&self.value)
    }

    /// The bytes of a `key = value` entry, from the key to the end of the value.
    fn own_range(&self) -> Option<Range<usize>> {
        match (&self.key, &self.value) {
            (Some(key), Some(value)) if !self.is_table => Some(key.start..value.end),
            (_, Some(header)) if self.is_table => Some(header.clone()),
            _ => None,
        }
    }
}

/// A configuration file's name, text and key positions.
#[derive(Debug)]
pub struct ConfigSource {
    pub file: String,
    pub text: String,
    entries: Vec<Entry>,
}

impl ConfigSource {
    /// Indexes `text`. Text that is not valid TOML gets an empty index: its one syntax
    /// error is all there is to report.
    pub fn new(file: &str, text: &str) -> ConfigSource {
        let mut entries = Vec::new();
        if let Ok(document) = ImDocument::parse(text) {
            walk_table_like(document.as_table(), &KeyPath::default(), &mut entries);
        }
        ConfigSource {
            file: file.to_owned(),
            text: text.to_owned(),
            entries,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Where `path` is written: its key (a table's `[header]`), or the value for array
    /// elements; when the path
    /// is not in the file (a default), its nearest ancestor that is.
    pub fn position_of(&self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(entry) = self.entries.iter().find(|e| e.path == path) {
                let (first, second) = if entry.is_table {
                    (&entry.value, &entry.key)
                } else {
                    (&entry.key, &entry.value)
                };
                if let Some(range) = first.as_ref().or(second.as_ref()) {
                    return Some(self.line_column(range.start));
                }
            }
            current = path.parent();
        }
        None
    }

    /// Whether `path` is written in the file.
    pub fn contains(&self, path: &KeyPath) -> bool {
        self.entries.iter().any(|e| &e.path == path)
    }

    /// The deepest entry whose key or value covers `offset`.
    pub fn path_at(&self, offset: usize) -> Option<KeyPath> {
        self.entries
            .iter()
            .filter(|e| e.contains(offset))
            .max_by_key(|e| e.path.0.len())
            .map(|e| e.path.clone())
    }

    /// The byte ranges that make up `path` in the file: a `key = value` line, or a table's
    /// header with everything in it. An array element or inline-table entry is removed
    /// with its whole `key = value`, since removing it alone would leave a dangling comma.
    pub fn ranges_of(&self, path: &KeyPath) -> Vec<Range<usize>> {
        let mut path = path.clone();
        while let Some(parent) = path.parent() {
            let inside_value = self.entries.iter().any(|e| e.path == parent && !e.is_table);
            if !inside_value {
                break;
            }
            path = parent;
        }
        self.entries
            .iter()
            .filter(|e| e.path.starts_with(&path))
            .filter_map(Entry::own_range)
            .collect()
    }
}

fn walk_table_like(table: &dyn toml_edit::TableLike, path: &KeyPath, out: &mut Vec<Entry>) {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        walk_item(item, path.key(name), key.span(), out);
    }
}

fn walk_item(item: &Item, path: KeyPath, key: Option<Range<usize>>, out: &mut Vec<Entry>) {
    match item {
        Item::None => {}
        Item::Value(value) => walk_value(value, path, key, out),
        Item::Table(table) => {
            out.push(Entry {
                path: path.clone(),
                key,
                value: table.span(),
                is_table: true,
            });
            walk_table_like(table, &path, out);
        }
        Item::ArrayOfTables(tables) => {
            out.push(Entry {
                path: path.clone(),
                key,
                value: None,
                is_table: true,
            });
            for (index, table) in tables.iter().enumerate() {
                let element = path.index(index);
                out.push(Entry {
                    path: element.clone(),
                    key: None,
                    value: table.span(),
                    is_table: true,
                });
                walk_table_like(table, &element, out);
            }
        }
    }
}

fn walk_value(value: &Value, path: KeyPath, key: Option<Range<usize>>, out: &mut Vec<Entry>) {
    out.push(Entry {
        path: path.clone(),
        key,
        value: value.span(),
        is_table: false,
    });
    match value {
        Value::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                walk_value(element, path.index(index), None, out);
            }
        }
        Value::InlineTable(table) => walk_table_like(table, &path, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[proxy]\nlisten = \"127.0.0.1:1\"\n\n[kafka]\n\"bootstrap.servers\" = \"h:1\"\n\n[[relay.stream]]\ntopic = \"a\"\n\n[[relay.stream]]\ntopic = \"b\"\nchannels = [\"x\", \"y\"]\nfilter = { header = \"t\", equals = 1 }\n";

    #[test]
    fn paths_are_found_at_their_keys() {
        let source = ConfigSource::new("f.toml", TEXT);
        let path = KeyPath::root("relay").key("stream").index(1).key("topic");
        assert_eq!(source.position_of(&path), Some((11, 1)));
        let kafka = KeyPath::root("kafka").key("bootstrap.servers");
        assert_eq!(source.position_of(&kafka), Some((5, 1)));
        assert_eq!(kafka.to_string(), "kafka.\"bootstrap.servers\"");
        let element = KeyPath::root("relay")
            .key("stream")
            .index(1)
            .key("channels")
            .index(1);
        assert_eq!(element.to_string(), "relay.stream[1].channels[1]");
        assert_eq!(source.position_of(&element), Some((12, 18)));
    }

    #[test]
    fn a_default_is_located_at_its_section() {
        let source = ConfigSource::new("f.toml", TEXT);
        let path = KeyPath::root("proxy").key("control");
        assert_eq!(source.position_of(&path), Some((1, 1)));
    }

    #[test]
    fn the_deepest_entry_covers_an_offset() {
        let source = ConfigSource::new("f.toml", TEXT);
        let offset = TEXT.find("equals").expect("in text");
        let path = source.path_at(offset).expect("found");
        assert_eq!(path.to_string(), "relay.stream[1].filter.equals");
    }

    #[test]
    fn removing_an_array_element_removes_its_array() {
        let source = ConfigSource::new("f.toml", TEXT);
        let element = KeyPath::root("relay")
            .key("stream")
            .index(1)
            .key("channels")
            .index(0);
        let ranges = source.ranges_of(&element);
        assert_eq!(ranges.len(), 1);
        assert_eq!(&TEXT[ranges[0].clone()], "channels = [\"x\", \"y\"]");
    }

    #[test]
    fn removing_a_table_removes_its_header_and_keys() {
        let source = ConfigSource::new("f.toml", TEXT);
        let table = KeyPath::root("relay").key("stream").index(0);
        let ranges = source.ranges_of(&table);
        let texts: Vec<&str> = ranges.iter().map(|r| &TEXT[r.clone()]).collect();
        assert_eq!(texts[0], "[[relay.stream]]\ntopic = \"a\"");
    }
}
