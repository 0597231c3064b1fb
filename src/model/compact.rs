//! A JSON value kept as compact text, parsed where it is used.
//!
//! A run template's `spec` is an object tree, and as a `serde_json::Value` every object of it
//! is a B-tree with room for 11 entries: a 150-byte Job spec held about 2.6 KiB, and with
//! 10,000 schedules in the cache that was most of the operator's memory. The operator reads a
//! template only when it renders a run, so it keeps the text (docs/performance.md, "Memory
//! and start-up"). A JSON string (KFP's workflow manifest) is kept as the string itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Equal when the values are equal: the text is always written from a parsed value, so one
/// value has one text (object keys sorted, numbers as serde_json prints them).
#[derive(Clone, PartialEq, Eq)]
pub struct CompactJson(Text);

#[derive(Clone, PartialEq, Eq)]
enum Text {
    /// A JSON string, unescaped.
    String(Box<str>),
    /// Any other value, as compact JSON.
    Json(Box<str>),
}

impl CompactJson {
    pub fn new(value: &Value) -> Self {
        CompactJson(match value {
            Value::String(s) => Text::String(s.as_str().into()),
            other => Text::Json(other.to_string().into()),
        })
    }

    /// The value. The text was written from a value this process held, so it parses back
    /// without serde_json's 128-level limit (a value built in memory may be deeper; its depth
    /// was already walked when it was written); were it ever not to, the value reads as
    /// `null`, which every user of a template refuses with a message.
    pub fn value(&self) -> Value {
        match &self.0 {
            Text::String(s) => Value::String(s.to_string()),
            Text::Json(text) => {
                let mut de = serde_json::Deserializer::from_str(text);
                de.disable_recursion_limit();
                Value::deserialize(&mut de).unwrap_or(Value::Null)
            }
        }
    }

    /// The value as JSON text.
    pub fn json(&self) -> String {
        match &self.0 {
            Text::String(s) => Value::String(s.to_string()).to_string(),
            Text::Json(text) => text.to_string(),
        }
    }

    /// The string, when the value is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Text::String(s) => Some(s),
            Text::Json(_) => None,
        }
    }
}

impl From<Value> for CompactJson {
    fn from(value: Value) -> Self {
        CompactJson::new(&value)
    }
}

impl fmt::Debug for CompactJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Text::String(s) => write!(f, "{s:?}"),
            Text::Json(text) => f.write_str(text),
        }
    }
}

impl Serialize for CompactJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Text::String(text) => s.serialize_str(text),
            Text::Json(_) => self.value().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CompactJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(CompactJson::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_comes_back_as_it_went_in_and_serializes_the_same() {
        for value in [
            json!({"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}),
            json!("{\"kind\": \"Workflow\"}"),
            json!([1, -2, 3.5, null, true, "x"]),
            json!(null),
        ] {
            let compact = CompactJson::new(&value);
            assert_eq!(compact.value(), value);
            assert_eq!(serde_json::to_value(&compact).unwrap(), value);
            let decoded: CompactJson = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(decoded, compact);
        }
    }

    #[test]
    fn equal_values_are_equal_whatever_the_order_of_their_keys() {
        let a: CompactJson = serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap();
        let b: CompactJson = serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, CompactJson::new(&json!({"a": 1})));
    }

    #[test]
    fn a_value_deeper_than_the_parsers_limit_comes_back() {
        let mut deep = json!("leaf");
        for _ in 0..200 {
            deep = json!([deep]);
        }
        assert_eq!(CompactJson::new(&deep).value(), deep);
    }

    #[test]
    fn a_string_is_kept_as_itself() {
        let compact = CompactJson::new(&json!("apiVersion: v1\nkind: \"x\""));
        assert_eq!(compact.as_str(), Some("apiVersion: v1\nkind: \"x\""));
        assert_eq!(CompactJson::new(&json!({})).as_str(), None);
    }
}
