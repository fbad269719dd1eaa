//! A JSON tree that borrows its strings from the input, for decoding `POST /publish`
//! bodies (§4.1) without the allocations of a `serde_json::Value`: strings without
//! escapes point into the body, and objects are flat entry lists instead of maps.
//!
//! It reads exactly what `serde_json::Value` reads, from the same parser, and answers
//! the decoder as a `Value` would: the last of duplicate keys wins, and entries come
//! in key order (the order of `serde_json::Map` without `preserve_order`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::Utf8Error;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::decode::{self, Node};

#[derive(Debug)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Entries in input order, duplicates included.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value under `key` of an object, `null` included; the last duplicate wins.
    pub(super) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|e| &e.1),
            _ => None,
        }
    }
}

impl Node for Json<'_> {
    const TNETSTRING: bool = false;

    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key).filter(|v| !matches!(v, Json::Null))
    }

    fn entries(&self) -> Option<Vec<(&[u8], &Self)>> {
        let Json::Object(entries) = self else {
            return None;
        };
        let unique: BTreeMap<&[u8], &Self> =
            entries.iter().map(|(k, v)| (k.as_bytes(), v)).collect();
        Some(unique.into_iter().collect())
    }

    fn as_text(&self) -> Option<Result<&str, Utf8Error>> {
        match self {
            Json::String(s) => Some(Ok(s)),
            _ => None,
        }
    }

    fn as_bytes(&self) -> Option<Bytes> {
        match self {
            Json::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
            _ => None,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Json::Number(n) => decode::json_int(n),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_list(&self) -> Option<&[Self]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn to_json(&self) -> Result<serde_json::Value, String> {
        Ok(serde_json::Value::from(self))
    }
}

impl From<&Json<'_>> for serde_json::Value {
    fn from(json: &Json<'_>) -> Self {
        use serde_json::Value as V;
        match json {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(*b),
            Json::Number(n) => V::Number(n.clone()),
            Json::String(s) => V::String(s.clone().into_owned()),
            Json::Array(items) => V::Array(items.iter().map(V::from).collect()),
            // `Map`'s insert lets the last duplicate win, as when parsing into `Value`.
            Json::Object(entries) => V::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone().into_owned(), V::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Each method mirrors `serde_json::Value`'s visitor, so that both accept and reject
/// the same documents.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((Key(key), value)) = map.next_entry()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// An object key, borrowed when it has no escapes (`Cow`'s own impl always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(value)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}
