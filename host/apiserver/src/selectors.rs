//! `labelSelector` and `fieldSelector` query parameters.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<LabelReq>);

/// Splits on commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn invalid_label(selector: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "unable to parse requirement: {why} in labelSelector {selector:?}"
    ))
}

fn set_values(selector: &str, rest: &str) -> Result<BTreeSet<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| invalid_label(selector, "expected a parenthesised set of values"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(selector: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(selector) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                LabelReq::NotExists(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().to_owned(), set_values(selector, rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                LabelReq::In(k.trim().to_owned(), set_values(selector, rest)?)
            } else if part.contains(char::is_whitespace) || part.contains(['(', ')']) {
                return Err(invalid_label(selector, "unsupported operator"));
            } else {
                LabelReq::Exists(part.to_owned())
            };
            let key = match &req {
                LabelReq::Equals(k, _)
                | LabelReq::NotEquals(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if key.is_empty() {
                return Err(invalid_label(selector, "a label key is empty"));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.contains(l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| !vs.contains(l)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `field=value` / `field!=value` terms, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `supported` lists the field paths the resource allows (the real server rejects others).
    pub fn parse(selector: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in selector.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual == *value) == *equal
        })
    }
}

/// The string form of a selectable field; absent fields read as "" as in Kubernetes.
fn field_value(object: &Value, field: &str) -> String {
    // `source` on core Events selects by the reporting component.
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut v = object;
    for seg in path.split('.') {
        v = &v[seg];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Fields a resource can be selected by, beyond `metadata.name`/`metadata.namespace`.
pub(crate) fn supported_fields(group: &str, plural: &str) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    match (group, plural) {
        ("", "events") => fields.extend([
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        ("events.k8s.io", "events") => fields.extend([
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ]),
        ("", "secrets") => fields.push("type"),
        ("", "pods") => fields.extend(["spec.nodeName", "spec.restartPolicy", "status.phase"]),
        ("", "namespaces") => fields.push("status.phase"),
        ("batch", "jobs") => fields.push("status.successful"),
        _ => {}
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({ "metadata": { "labels": labels } })
    }

    #[test]
    fn set_based_label_selectors_match_like_kubectl_expects() {
        let sel = LabelSelector::parse("app in (web, db),tier notin (cache),!legacy,env").unwrap();
        assert!(sel.matches(&labelled(json!({ "app": "db", "env": "prod" }))));
        assert!(!sel.matches(&labelled(json!({ "app": "db" }))));
        assert!(!sel.matches(&labelled(json!({ "app": "db", "env": "x", "legacy": "1" }))));
        assert!(!sel.matches(&labelled(
            json!({ "app": "db", "env": "x", "tier": "cache" })
        )));
        assert!(!sel.matches(&labelled(json!({ "app": "ui", "env": "x" }))));
    }

    #[test]
    fn equality_selectors_treat_missing_labels_as_unequal() {
        let sel = LabelSelector::parse("a=1,b!=2").unwrap();
        assert!(sel.matches(&labelled(json!({ "a": "1" }))));
        assert!(!sel.matches(&labelled(json!({ "a": "1", "b": "2" }))));
        assert!(!sel.matches(&labelled(json!({}))));
    }

    #[test]
    fn unknown_field_labels_are_rejected() {
        let err = FieldSelector::parse("spec.foo=1", &supported_fields("", "secrets"));
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("field label not supported: spec.foo")
        );
    }

    #[test]
    fn event_field_selectors_read_the_involved_object() {
        let sel = FieldSelector::parse(
            "involvedObject.name=db1,involvedObject.kind=Database",
            &supported_fields("", "events"),
        )
        .unwrap();
        let event = json!({ "involvedObject": { "name": "db1", "kind": "Database" } });
        assert!(sel.matches(&event));
        assert!(!sel.matches(&json!({ "involvedObject": { "name": "db2", "kind": "Database" } })));
    }
}
