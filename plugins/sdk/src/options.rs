//! Reading the engine-specific `spec.options` object with diagnostics that name the field.
//!
//! The host passes options as a JSON object string (`{}` when the user set none). These helpers
//! turn each problem into a [`Diagnostic`] at `spec.options.<key>` so that a user sees exactly
//! which key to fix, instead of a serde error about "line 1 column 17".

use serde_json::{Map, Value};

use crate::Diagnostic;

/// Root of the options object in both `DbInstance` and `Database`.
pub const FIELD: &str = "spec.options";

/// The field path of one option key.
pub fn field(key: &str) -> String {
    format!("{FIELD}.{key}")
}

/// A parsed options object, with typed getters that record a diagnostic per bad value.
#[derive(Debug, Clone, Default)]
pub struct Options {
    map: Map<String, Value>,
}

impl Options {
    /// Parses `json`, which must be a JSON object (or empty / `null`, meaning no options).
    pub fn parse(json: &str) -> Result<Self, Diagnostic> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => Ok(Self { map }),
            Ok(Value::Null) => Ok(Self::default()),
            Ok(other) => Err(Diagnostic::error(
                FIELD,
                format!("must be an object of options, got {}", kind(&other)),
            )),
            Err(e) => Err(Diagnostic::error(FIELD, format!("is not valid JSON: {e}"))),
        }
    }

    /// The preamble of reading an options object: parses `json` and reports every key not in
    /// `known`. JSON that does not parse is reported and read as no options, so the caller
    /// goes on with its defaults and the user sees every other problem in the same round.
    pub fn read(json: &str, known: &[&str], diagnostics: &mut Vec<Diagnostic>) -> Self {
        let options = Self::parse(json).unwrap_or_else(|e| {
            diagnostics.push(e);
            Self::default()
        });
        options.reject_unknown(known, diagnostics);
        options
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// One error per key not in `known`, listing the keys that are.
    pub fn reject_unknown(&self, known: &[&str], diagnostics: &mut Vec<Diagnostic>) {
        for key in self.map.keys().filter(|k| !known.contains(&k.as_str())) {
            let hint = if known.is_empty() {
                "this engine takes no options here; remove it".to_string()
            } else {
                format!("unknown option; the known ones are {}", known.join(", "))
            };
            diagnostics.push(Diagnostic::error(field(key), hint));
        }
    }

    /// The boolean at `key`; `None` when absent or null. A value of another type is reported.
    pub fn bool(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<bool> {
        match self.map.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            other => {
                diagnostics.push(wrong_type(key, "true or false", other));
                None
            }
        }
    }

    /// The string at `key`; `None` when absent or null.
    pub fn string(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
        match self.map.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => {
                diagnostics.push(wrong_type(key, "a string", other));
                None
            }
        }
    }

    /// The list of strings at `key` (empty when absent), with the index of each non-string
    /// element in its diagnostic.
    pub fn strings(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        diagnostics.push(Diagnostic::error(
                            format!("{}[{i}]", field(key)),
                            format!("must be a string, got {}", kind(other)),
                        ));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                diagnostics.push(wrong_type(key, "a list of strings", other));
                Vec::new()
            }
        }
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> Diagnostic {
    Diagnostic::error(field(key), format!("must be {expected}, got {}", kind(got)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_mean_no_options() {
        for json in ["", "{}", "null", "  "] {
            assert!(Options::parse(json).expect(json).is_empty(), "{json:?}");
        }
    }

    #[test]
    fn a_non_object_is_reported_at_the_options_root() {
        let d = Options::parse("[1]").expect_err("a list is not an object");
        assert_eq!(d.field, "spec.options");
        assert!(d.message.contains("got a list"), "{}", d.message);
        let d = Options::parse("{").expect_err("broken JSON");
        assert!(d.message.contains("not valid JSON"), "{}", d.message);
    }

    #[test]
    fn getters_name_the_key_and_the_expected_type() {
        let o = Options::parse(r#"{"flag": "yes", "name": 3, "list": ["a", 1], "extra": 1}"#)
            .expect("object");
        let mut d = Vec::new();
        assert_eq!(o.bool("flag", &mut d), None);
        assert_eq!(o.string("name", &mut d), None);
        assert_eq!(o.strings("list", &mut d), vec!["a".to_string()]);
        assert_eq!(o.string("absent", &mut d), None);
        o.reject_unknown(&["flag", "name", "list"], &mut d);
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.options.flag",
                "spec.options.name",
                "spec.options.list[1]",
                "spec.options.extra"
            ]
        );
        assert!(d[0].message.contains("true or false"), "{}", d[0].message);
        assert!(
            d[3].message.contains("flag, name, list"),
            "{}",
            d[3].message
        );
    }

    #[test]
    fn read_reports_broken_json_and_unknown_keys_and_goes_on() {
        let mut d = Vec::new();
        let o = Options::read("{", &["a"], &mut d);
        assert!(o.is_empty());
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("not valid JSON"), "{}", d[0].message);

        let mut d = Vec::new();
        let o = Options::read(r#"{"a": true, "b": 1}"#, &["a"], &mut d);
        assert_eq!(o.bool("a", &mut d), Some(true));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "spec.options.b");
    }
}
