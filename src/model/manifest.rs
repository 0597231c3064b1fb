//! Untrusted manifest text (a workflow spec stored as a string, a JobService
//! `workflow_manifest`, a file given to `check`) parsed into JSON with bounds on its size, on
//! what it expands to and on its depth.
//!
//! serde_yaml limits how often an alias may be followed, not what it expands to: a 25 KB
//! document whose anchor is referenced thousands of times becomes tens of millions of nodes.
//! Here every node and every byte of expanded text is counted while the value is built, so
//! such a document fails after `MAX_NODES` nodes, with bounded memory.

use std::{cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The largest manifest text accepted.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// The most nodes (scalars, lists, maps) a manifest may expand to.
pub const MAX_NODES: usize = 200_000;
/// The most bytes of keys and strings a manifest may expand to.
pub const MAX_EXPANDED_BYTES: usize = 8 << 20;
/// The deepest nesting accepted (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    TooLarge {
        bytes: usize,
    },
    /// Neither JSON nor YAML; the message is the parser's that best fits the text.
    Syntax(String),
    /// Parsed, but over a bound while being expanded.
    Bound(String),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooLarge { bytes } => {
                write!(f, "is {bytes} bytes, more than the {MAX_MANIFEST_BYTES} accepted")
            }
            ManifestError::Syntax(m) => write!(f, "is not JSON or YAML: {m}"),
            ManifestError::Bound(m) => f.write_str(m),
        }
    }
}

struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    depth: Cell<usize>,
}

const BOUND_PREFIX: &str = "manifest bound: ";

impl Budget {
    fn new() -> Self {
        Budget {
            nodes: Cell::new(0),
            bytes: Cell::new(0),
            depth: Cell::new(0),
        }
    }

    fn take<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        self.bytes.set(self.bytes.get().saturating_add(bytes));
        if self.nodes.get() > MAX_NODES {
            return Err(E::custom(format!(
                "{BOUND_PREFIX}expands to more than {MAX_NODES} nodes (YAML anchors and aliases?)"
            )));
        }
        if self.bytes.get() > MAX_EXPANDED_BYTES {
            return Err(E::custom(format!(
                "{BOUND_PREFIX}expands to more than {MAX_EXPANDED_BYTES} bytes of text (YAML anchors and aliases?)"
            )));
        }
        Ok(())
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        self.take::<E>(0)?;
        self.depth.set(self.depth.get() + 1);
        if self.depth.get() > MAX_DEPTH {
            return Err(E::custom(format!(
                "{BOUND_PREFIX}is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }
}

#[derive(Clone, Copy)]
struct Bounded<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-compatible value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.take(0).map(|_| Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.take(0).map(|_| Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.take(0).map(|_| Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.take(0).map(|_| Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.take(v.len()).map(|_| Value::String(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.take(0).map(|_| Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        self.0.leave();
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = match key {
                Value::String(s) => s,
                // YAML allows non-string keys; JSON (and Kubernetes) do not.
                other => other.to_string(),
            };
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        self.0.leave();
        Ok(Value::Object(out))
    }
}

fn bound_error(message: &str) -> Option<ManifestError> {
    message
        .find(BOUND_PREFIX)
        .map(|at| ManifestError::Bound(message[at + BOUND_PREFIX.len()..].to_string()))
}

/// Parses `text` as JSON, else as YAML (one document), within the bounds above.
pub fn parse(text: &str) -> Result<Value, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge { bytes: text.len() });
    }
    let json_err = {
        let budget = Budget::new();
        let mut de = serde_json::Deserializer::from_str(text);
        match Bounded(&budget).deserialize(&mut de).and_then(|v| de.end().map(|_| v)) {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        }
    };
    if let Some(bound) = bound_error(&json_err) {
        return Err(bound);
    }
    let budget = Budget::new();
    match Bounded(&budget).deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(v) => Ok(v),
        Err(yaml_err) => {
            let yaml_err = yaml_err.to_string();
            if let Some(bound) = bound_error(&yaml_err) {
                return Err(bound);
            }
            // Report the parser whose syntax the text looks like.
            let looks_json = text.trim_start().starts_with(['{', '[']);
            Err(ManifestError::Syntax(if looks_json { json_err } else { yaml_err }))
        }
    }
}

/// Parses every YAML document of `text` (a file for `check`), each within the bounds.
pub fn parse_yaml_documents(text: &str) -> Vec<Result<Value, ManifestError>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let budget = Budget::new();
        match Bounded(&budget).deserialize(doc) {
            Ok(v) => out.push(Ok(v)),
            Err(e) => {
                let message = e.to_string();
                let bounded = bound_error(&message);
                let is_bound = bounded.is_some();
                out.push(Err(bounded.unwrap_or(ManifestError::Syntax(message))));
                if !is_bound {
                    // A syntax error ends the document stream: it cannot resume after one.
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anchor referenced over and over: ~25 KB of text, billions of nodes expanded.
    fn alias_bomb() -> String {
        include_str!("../../tests/fixtures/bad-input/alias-bomb.yaml").to_string()
    }

    #[test]
    fn alias_bombs_fail_fast_with_a_clear_reason() {
        let bomb = alias_bomb();
        assert!(bomb.len() < 30_000);
        let started = std::time::Instant::now();
        let err = parse(&bomb).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Bound(m) if m.contains("more than 200000 nodes")),
            "{err}"
        );
        // Bounded work: far below what expanding it would take (a generous machine-independent bound).
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn depth_size_and_syntax_are_reported() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(
            parse(&deep).unwrap_err().to_string().contains("recursion limit") || {
                matches!(parse(&deep).unwrap_err(), ManifestError::Bound(_))
            }
        );
        let deep_flow_yaml = format!("x: {}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep_flow_yaml).is_err());
        let big = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_MANIFEST_BYTES));
        assert!(matches!(parse(&big), Err(ManifestError::TooLarge { .. })));
        let err = parse("{\"a\": ").unwrap_err().to_string();
        assert!(err.starts_with("is not JSON or YAML: EOF"), "{err}");
        let err = parse("a: [unclosed").unwrap_err().to_string();
        assert!(
            err.starts_with("is not JSON or YAML:") && !err.contains("EOF while"),
            "{err}"
        );
    }

    #[test]
    fn json_and_yaml_give_the_same_value() {
        let json = parse(r#"{"spec": {"entrypoint": "main", "n": 3, "list": [true, null]}}"#).unwrap();
        let yaml = parse("spec:\n  entrypoint: main\n  n: 3\n  list: [true, null]\n").unwrap();
        assert_eq!(json, yaml);
        let docs = parse_yaml_documents("a: 1\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].as_ref().unwrap()["b"], 2);
    }
}
