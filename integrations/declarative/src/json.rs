//! A JSON tree that keeps every number as the text the sender wrote.
//!
//! `serde_json::Value` stores non-integer numbers as `f64`, so `19.99` could only be read
//! back through a float. Money must never pass through a float, and enabling serde_json's
//! `arbitrary_precision` feature would change `Value` for the whole daemon (features are
//! unified across a build). Instead the body is split with [`RawValue`], which hands back
//! each value's exact text: objects and arrays are split further, strings are unescaped,
//! and numbers stay text until a mapping reads them as a decimal.
//!
//! The cost is that each nesting level re-scans its own text once: O(size × depth), which
//! for webhook bodies (a few kilobytes, a few levels) is nothing. serde_json's recursion
//! limit still bounds the depth.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written (`19.99`, `-5`, `1e3`).
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in document order; a repeated key resolves to its last occurrence, as
    /// serde_json does.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse a whole document. The error is serde_json's description (with line and column).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Json, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("body is not UTF-8: {e}"))?;
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Json::from_raw(raw).map_err(|e| e.to_string())
    }

    fn from_raw(raw: &RawValue) -> Result<Json, serde_json::Error> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'{') => {
                let Members(members) = serde_json::from_str(text)?;
                let mut out = Vec::with_capacity(members.len());
                for (k, v) in members {
                    out.push((k, Json::from_raw(v)?));
                }
                Json::Object(out)
            }
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text)?;
                Json::Array(
                    items
                        .into_iter()
                        .map(Json::from_raw)
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(b'"') => Json::String(serde_json::from_str(text)?),
            Some(b't') => Json::Bool(true),
            Some(b'f') => Json::Bool(false),
            Some(b'n') => Json::Null,
            // serde_json has already checked the syntax: anything else is a number.
            _ => Json::Number(text.to_string()),
        })
    }

    /// The member `key` of an object (the last one if repeated).
    pub(crate) fn member(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// An object's members, borrowed as raw text, in document order.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        let j =
            Json::parse(br#"{"a": 19.90, "b": [1e3, -0.10], "c": 3.3333333333333335}"#).unwrap();
        assert_eq!(j.member("a"), Some(&Json::Number("19.90".into())));
        assert_eq!(
            j.member("b"),
            Some(&Json::Array(vec![
                Json::Number("1e3".into()),
                Json::Number("-0.10".into())
            ]))
        );
        assert_eq!(
            j.member("c"),
            Some(&Json::Number("3.3333333333333335".into()))
        );
    }

    #[test]
    fn strings_are_unescaped_and_nested_values_parsed() {
        let j = Json::parse(br#" {"s": "a\u0026b \"q\"", "o": {"t": true, "n": null}} "#).unwrap();
        assert_eq!(j.member("s"), Some(&Json::String("a&b \"q\"".into())));
        let o = j.member("o").unwrap();
        assert_eq!(o.member("t"), Some(&Json::Bool(true)));
        assert_eq!(o.member("n"), Some(&Json::Null));
    }

    #[test]
    fn a_repeated_key_reads_as_its_last_value() {
        let j = Json::parse(br#"{"k": 1, "k": 2}"#).unwrap();
        assert_eq!(j.member("k"), Some(&Json::Number("2".into())));
    }

    #[test]
    fn truncated_or_non_json_bodies_are_errors() {
        assert!(Json::parse(br#"{"id": "#).is_err());
        assert!(Json::parse(b"webhook_id=12").is_err());
        assert!(Json::parse(b"").is_err());
        assert!(Json::parse(b"{} x").is_err());
        assert!(Json::parse(&[0xff, 0xfe]).is_err());
    }
}
