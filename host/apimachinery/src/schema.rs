//! Structural schemas of custom resources: validation, pruning, defaulting.
//!
//! The API server runs these in the order defaulting → pruning → validation on every write of a
//! custom resource (`apiextensions-apiserver`); the messages follow kube-openapi's so a user sees
//! the same 422 from the emulator as from a cluster.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// One validation finding, as in a 422 Status's `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Path of the offending field, e.g. `spec.backup.cron` or `spec.items[1].name`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueTypeInvalid`, `FieldValueTooLong`, `FieldValueTooMany`, `FieldValueDuplicate`,
    /// `FieldValueForbidden`.
    pub reason: &'static str,
    /// The message as the API server words it (without the leading field path).
    pub message: String,
}

impl std::fmt::Display for Cause {
    /// `spec.port: Invalid value: ...`, the form a 422 Status message lists its causes in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Validates a custom resource against its CRD version's `openAPIV3Schema` the way the API
/// server does for structural schemas. `metadata` is only checked to be an object; the rules for
/// names are the server's.
pub fn validate(object: &Value, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    Validator::new(&mut causes).value(object, schema, &mut String::new());
    causes
}

/// Drops fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields` or
/// `additionalProperties` allows them), as the API server prunes; returns the dropped paths
/// (`spec.typo`, `spec.items[0].typo`) so the server can reject them under
/// `fieldValidation=Strict` or warn about them. Never prunes `apiVersion`, `kind`, `metadata`.
pub fn prune(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut dropped = Vec::new();
    prune_value(object, schema, &mut String::new(), &mut dropped);
    dropped
}

/// Applies the `default:` values of the schema, as the API server does when it reads or writes
/// a custom resource: a missing property with a default gets it (and defaults inside it), a
/// `null` where the schema does not allow null is replaced by the default, and such a `null`
/// without a default is dropped (so a client's explicit null reads as "not set").
pub fn apply_defaults(object: &mut Value, schema: &Value) {
    match object {
        Value::Object(fields) => {
            fields.retain(|key, value| {
                let Some(prop) = property_schema(schema, key) else {
                    return true;
                };
                !value.is_null()
                    || prop.get("nullable").and_then(Value::as_bool) == Some(true)
                    || prop.get("default").is_some()
            });
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    let Some(default) = prop.get("default") else {
                        continue;
                    };
                    let nullable = prop.get("nullable").and_then(Value::as_bool) == Some(true);
                    match fields.get(key) {
                        None => {
                            fields.insert(key.clone(), default.clone());
                        }
                        Some(Value::Null) if !nullable => {
                            fields.insert(key.clone(), default.clone());
                        }
                        Some(_) => {}
                    }
                }
            }
            for (key, value) in fields.iter_mut() {
                if let Some(child) = property_schema(schema, key) {
                    apply_defaults(value, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// The schema of property `key`: a declared property, else a schema-valued
/// `additionalProperties`.
fn property_schema<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

/// Whether unknown properties of objects described by `schema` survive pruning.
fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        || schema.get("additionalProperties") == Some(&Value::Bool(true))
        || schema
            .get("additionalProperties")
            .is_some_and(Value::is_object)
}

fn prune_value(value: &mut Value, schema: &Value, path: &mut String, dropped: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            // An embedded resource keeps its type meta and metadata whatever its schema says.
            let embedded = path.is_empty()
                || schema
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
            let preserve = preserves_unknown(schema);
            fields.retain(|key, _| {
                let keep = preserve
                    || property_schema(schema, key).is_some()
                    || (embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
                if !keep {
                    dropped.push(join(path, key));
                }
                keep
            });
            for (key, child) in fields.iter_mut() {
                // metadata is ObjectMeta, which the server prunes by its own rules.
                if embedded && key == "metadata" {
                    continue;
                }
                if let Some(child_schema) = property_schema(schema, key) {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    prune_value(child, child_schema, path, dropped);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    prune_value(item, item_schema, path, dropped);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value the way Kubernetes' field errors print it: strings quoted, numbers and booleans bare,
/// anything else as JSON.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A bound as Go's `%v` prints a float64: `65535`, not `65535.0`.
fn number_display(n: &Value) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

struct Validator<'c> {
    causes: &'c mut Vec<Cause>,
    /// Compiled `pattern`s of this validation, `None` for one that does not compile.
    patterns: HashMap<String, Option<regex::Regex>>,
}

impl<'c> Validator<'c> {
    fn new(causes: &'c mut Vec<Cause>) -> Self {
        Validator {
            causes,
            patterns: HashMap::new(),
        }
    }

    fn push(&mut self, path: &str, reason: &'static str, message: String) {
        self.causes.push(Cause {
            field: path.to_owned(),
            reason,
            message,
        });
    }

    fn invalid(&mut self, path: &str, value: &Value, detail: String) {
        self.push(
            path,
            "FieldValueInvalid",
            format!("Invalid value: {}: {detail}", display_value(value)),
        );
    }

    /// Whether `value` has the type `schema` asks for; reports the mismatch if not.
    fn check_type(&mut self, value: &Value, schema: &Value, path: &str) -> bool {
        let int_or_string = schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            == Some(true);
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if value.is_null() && nullable {
            return true;
        }
        let actual = type_name(value);
        let expected = if int_or_string {
            if matches!(actual, "integer" | "string") {
                return true;
            }
            "integer,string"
        } else {
            match schema.get("type").and_then(Value::as_str) {
                None => return true,
                Some(expected) => {
                    let ok = expected == actual || (expected == "number" && actual == "integer");
                    if ok {
                        return true;
                    }
                    expected
                }
            }
        };
        self.push(
            path,
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: {actual:?}: {path} in body must be of type {expected}: {actual:?}"
            ),
        );
        false
    }

    fn value(&mut self, value: &Value, schema: &Value, path: &mut String) {
        if !self.check_type(value, schema, path) || value.is_null() {
            return;
        }
        self.enumeration(value, schema, path);
        match value {
            Value::String(s) => self.string(value, s, schema, path),
            Value::Number(_) => self.number(value, schema, path),
            Value::Array(items) => self.array(items, schema, path),
            Value::Object(fields) => self.object(fields, schema, path),
            Value::Bool(_) | Value::Null => {}
        }
        self.combinators(value, schema, path);
    }

    fn enumeration(&mut self, value: &Value, schema: &Value, path: &str) {
        let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
            return;
        };
        if allowed.contains(value) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        self.push(
            path,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                display_value(value),
                supported.join(", ")
            ),
        );
    }

    fn string(&mut self, value: &Value, s: &str, schema: &Value, path: &str) {
        let chars = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            self.push(
                path,
                "FieldValueTooLong",
                format!("Too long: may not be more than {max} bytes"),
            );
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            self.invalid(
                path,
                value,
                format!("{path} in body should be at least {min} chars long"),
            );
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            // The API server refuses a CRD whose pattern does not compile; a pattern that slipped
            // through cannot be judged here either, so it is not held against the object.
            && let Some(re) = self
                .patterns
                .entry(pattern.to_owned())
                .or_insert_with(|| regex::Regex::new(pattern).ok())
            && !re.is_match(s)
        {
            self.invalid(
                path,
                value,
                format!("{path} in body should match '{pattern}'"),
            );
        }
        let format_ok = match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => Some(("date-time", is_date_time(s))),
            Some("date") => Some(("date", is_date(s))),
            _ => None,
        };
        if let Some((format, false)) = format_ok {
            self.push(
                path,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: {}: {path} in body must be of type {format}: {}",
                    display_value(value),
                    display_value(value)
                ),
            );
        }
    }

    fn number(&mut self, value: &Value, schema: &Value, path: &str) {
        let Some(x) = value.as_f64() else { return };
        let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
        if let Some(min) = schema.get("minimum")
            && let Some(m) = min.as_f64()
        {
            let (bad, words) = if exclusive("exclusiveMinimum") {
                (x <= m, "greater than")
            } else {
                (x < m, "greater than or equal to")
            };
            if bad {
                self.invalid(
                    path,
                    value,
                    format!("{path} in body should be {words} {}", number_display(min)),
                );
            }
        }
        if let Some(max) = schema.get("maximum")
            && let Some(m) = max.as_f64()
        {
            let (bad, words) = if exclusive("exclusiveMaximum") {
                (x >= m, "less than")
            } else {
                (x > m, "less than or equal to")
            };
            if bad {
                self.invalid(
                    path,
                    value,
                    format!("{path} in body should be {words} {}", number_display(max)),
                );
            }
        }
        if let Some(step) = schema.get("multipleOf")
            && let Some(d) = step.as_f64()
            && d > 0.0
            && (x / d).fract() != 0.0
        {
            self.invalid(
                path,
                value,
                format!(
                    "{path} in body should be a multiple of {}",
                    number_display(step)
                ),
            );
        }
    }

    fn array(&mut self, items: &[Value], schema: &Value, path: &mut String) {
        let len = items.len() as u64;
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            self.push(
                path,
                "FieldValueTooMany",
                format!("Too many: {len}: must have at most {max} items"),
            );
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            self.invalid(
                path,
                &Value::Null,
                format!("{path} in body should have at least {min} items"),
            );
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                let at = path.len();
                let _ = write!(path, "[{i}]");
                self.value(item, item_schema, path);
                path.truncate(at);
            }
        }
        self.list_uniqueness(items, schema, path);
    }

    /// `x-kubernetes-list-type: set | map` forbid duplicates (by value, by key).
    fn list_uniqueness(&mut self, items: &[Value], schema: &Value, path: &str) {
        let identity = |item: &Value| -> Option<Value> {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => Some(item.clone()),
                Some("map") => {
                    let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
                    let mut id = Map::new();
                    for key in keys.iter().filter_map(Value::as_str) {
                        if let Some(v) = item.get(key) {
                            id.insert(key.to_owned(), v.clone());
                        }
                    }
                    Some(Value::Object(id))
                }
                _ => None,
            }
        };
        let mut seen: Vec<Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(id) = identity(item) else { return };
            if seen.contains(&id) {
                self.push(
                    &format!("{path}[{i}]"),
                    "FieldValueDuplicate",
                    format!("Duplicate value: {}", display_value(&id)),
                );
            } else {
                seen.push(id);
            }
        }
    }

    fn object(&mut self, fields: &Map<String, Value>, schema: &Value, path: &mut String) {
        let len = fields.len() as u64;
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && len > max
        {
            self.push(
                path,
                "FieldValueTooMany",
                format!("Too many: {len}: must have at most {max} items"),
            );
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && len < min
        {
            self.invalid(
                path,
                &Value::Null,
                format!("{path} in body should have at least {min} properties"),
            );
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    let field = join(path, name);
                    self.push(&field, "FieldValueRequired", "Required value".to_owned());
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, child) in fields {
            let at = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            match (props.and_then(|p| p.get(key)), additional) {
                // The root's metadata is ObjectMeta: only its type is the schema's business.
                (Some(_), _) if at == 0 && key == "metadata" => {
                    self.check_type(child, &serde_json::json!({"type": "object"}), path);
                }
                (Some(child_schema), _) => self.value(child, child_schema, path),
                (None, Some(extra @ Value::Object(_))) => self.value(child, extra, path),
                (None, Some(Value::Bool(false))) => {
                    let field = path.clone();
                    self.push(
                        &field,
                        "FieldValueForbidden",
                        format!("Forbidden: {field} in body is a forbidden property"),
                    );
                }
                // Unknown fields are pruned before validation; with preserve-unknown-fields they
                // are not the schema's business.
                _ => {}
            }
            path.truncate(at);
        }
    }

    /// `allOf`, `anyOf`, `oneOf`, `not`: value validations in structural schemas, each branch
    /// judged on its own without reporting the branch's findings.
    fn combinators(&mut self, value: &Value, schema: &Value, path: &mut String) {
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            // Each branch's own findings say more than "failed allOf", so they are reported.
            for branch in all {
                self.value(value, branch, path);
            }
        }
        let passes = |branch: &Value| {
            let mut scratch = Vec::new();
            Validator::new(&mut scratch).value(value, branch, &mut path.clone());
            scratch.is_empty()
        };
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(passes)
        {
            let detail = format!("{path} in body must validate at least one schema (anyOf)");
            self.invalid(path, value, detail);
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
            && one.iter().filter(|b| passes(b)).count() != 1
        {
            let detail = format!("{path} in body must validate one and only one schema (oneOf)");
            self.invalid(path, value, detail);
        }
        if let Some(not) = schema.get("not")
            && passes(not)
        {
            let detail = format!("{path} in body must not validate the schema (not)");
            self.invalid(path, value, detail);
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

/// `YYYY-MM-DD` with plausible month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if !(digits(&b[0..4]) && digits(&b[5..7]) && digits(&b[8..10])) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// RFC 3339 date-time: `2024-01-31T12:00:00Z`, optional fraction, `Z` or `±hh:mm` (a lowercase
/// `t`/`z` and a space separator are accepted, as Go's strfmt does).
fn is_date_time(s: &str) -> bool {
    if s.len() < 20 || !s.is_char_boundary(10) || !is_date(&s[..10]) {
        return false;
    }
    let b = s.as_bytes();
    if !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    let time = &b[11..];
    if time.len() < 9 || time[2] != b':' || time[5] != b':' {
        return false;
    }
    if !(digits(&time[0..2]) && digits(&time[3..5]) && digits(&time[6..8])) {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}
