//! JSON Pointers (RFC 6901), checked when the definition is loaded.

use std::fmt;

use crate::json::Json;

/// A parsed JSON Pointer: `""` is the whole document, `/a/0/b~1c` walks member `a`,
/// element 0, member `b/c`. `~0` stands for `~` and `~1` for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Parse `text`, or say what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer: it must start with '/' (e.g. \"/{text}\")"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => {
                            return Err(format!(
                                "{text:?} is not a JSON pointer: '~' must be followed by 0 or 1"
                            ))
                        }
                    }
                } else {
                    token.push(c);
                }
            }
            tokens.push(token);
        }
        Ok(Pointer {
            text: text.to_string(),
            tokens,
        })
    }

    /// The value it points at in `doc`, if any. An array index is `0` or a number without
    /// leading zeros; `-` (past the end) and anything else finds nothing.
    pub(crate) fn resolve<'a>(&self, doc: &'a Json) -> Option<&'a Json> {
        let mut at = doc;
        for token in &self.tokens {
            at = match at {
                Json::Object(_) => at.member(token)?,
                Json::Array(items) => items.get(index(token)?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

fn index(token: &str) -> Option<usize> {
    let ok = token == "0"
        || (!token.is_empty()
            && !token.starts_with('0')
            && token.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        token.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Json {
        Json::parse(br#"{"a": {"b/c": [10, 20], "m~n": "x"}, "": 1, "refunds": []}"#).unwrap()
    }

    #[test]
    fn rfc_6901_escapes_and_indexes() {
        let d = doc();
        let p = |s: &str| Pointer::parse(s).unwrap().resolve(&d).cloned();
        assert_eq!(p("/a/b~1c/1"), Some(Json::Number("20".into())));
        assert_eq!(p("/a/m~0n"), Some(Json::String("x".into())));
        assert_eq!(p("/"), Some(Json::Number("1".into())));
        assert_eq!(p(""), Some(d.clone()));
        assert_eq!(p("/a/b~1c/01"), None);
        assert_eq!(p("/a/b~1c/-"), None);
        assert_eq!(p("/a/b~1c/2"), None);
        assert_eq!(p("/refunds/0/id"), None);
        assert_eq!(p("/a/m~0n/0"), None);
    }

    #[test]
    fn bad_pointers_are_refused_with_a_hint() {
        let e = Pointer::parse("id").unwrap_err();
        assert!(
            e.contains("must start with '/'") && e.contains("\"/id\""),
            "{e}"
        );
        assert!(Pointer::parse("/a~2").unwrap_err().contains("'~'"));
        assert!(Pointer::parse("/a~").is_err());
    }
}
