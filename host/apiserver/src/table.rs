//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for.
//!
//! Columns follow what a real cluster prints for the built-in kinds, and a CRD's
//! `additionalPrinterColumns` (simple JSONPath) for custom resources.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// What a row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

#[derive(Clone)]
enum Cell {
    Name,
    /// Age since the timestamp at a path.
    Age(&'static str),
    /// A CRD column: JSONPath and declared type.
    Path(String, String),
    Computed(fn(&Value) -> Value),
}

#[derive(Clone)]
struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    cell: Cell,
}

fn col(name: &str, type_: &str, cell: Cell) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        cell,
    }
}

fn name_col() -> Column {
    Column {
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        ..col("Name", "string", Cell::Name)
    }
}

fn age_col() -> Column {
    col("Age", "string", Cell::Age("metadata.creationTimestamp"))
}

fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    if rt.custom {
        let declared = rt
            .version(version)
            .map(|v| v.columns.clone())
            .unwrap_or_default();
        if declared.is_empty() {
            return vec![name_col(), age_col()];
        }
        let mut cols = vec![name_col()];
        cols.extend(declared.into_iter().map(|c| Column {
            name: c.name,
            type_: c.type_.clone(),
            format: c.format,
            description: c.description,
            priority: c.priority,
            cell: Cell::Path(c.json_path, c.type_),
        }));
        return cols;
    }
    let mut cols = vec![name_col()];
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => cols.push(col("Status", "string", Cell::Computed(ns_status))),
        ("", "secrets") => {
            cols.push(col("Type", "string", Cell::Computed(|o| o["type"].clone())));
            cols.push(col("Data", "integer", Cell::Computed(data_count)));
        }
        ("", "configmaps") => cols.push(col("Data", "integer", Cell::Computed(config_count))),
        ("", "serviceaccounts") => cols.push(col(
            "Secrets",
            "integer",
            Cell::Computed(|o| json!(o["secrets"].as_array().map_or(0, Vec::len))),
        )),
        ("", "pods") => {
            cols.push(col("Ready", "string", Cell::Computed(pod_ready)));
            cols.push(col(
                "Status",
                "string",
                Cell::Computed(|o| o["status"]["phase"].clone()),
            ));
            cols.push(col("Restarts", "string", Cell::Computed(pod_restarts)));
        }
        ("batch", "jobs") => {
            cols.push(col("Status", "string", Cell::Computed(job_status)));
            cols.push(col(
                "Completions",
                "string",
                Cell::Computed(job_completions),
            ));
            cols.push(col("Duration", "string", Cell::Computed(job_duration)));
        }
        ("batch", "cronjobs") => {
            cols.push(col(
                "Schedule",
                "string",
                Cell::Computed(|o| o["spec"]["schedule"].clone()),
            ));
            cols.push(col(
                "Timezone",
                "string",
                Cell::Computed(|o| match o["spec"]["timeZone"].as_str() {
                    Some(tz) => json!(tz),
                    None => json!("<none>"),
                }),
            ));
            cols.push(col(
                "Suspend",
                "boolean",
                Cell::Computed(|o| json!(o["spec"]["suspend"].as_bool().unwrap_or(false))),
            ));
            cols.push(col(
                "Active",
                "integer",
                Cell::Computed(|o| json!(o["status"]["active"].as_array().map_or(0, Vec::len))),
            ));
            cols.push(col(
                "Last Schedule",
                "string",
                Cell::Age("status.lastScheduleTime"),
            ));
        }
        ("coordination.k8s.io", "leases") => cols.push(col(
            "Holder",
            "string",
            Cell::Computed(|o| o["spec"]["holderIdentity"].clone()),
        )),
        ("", "events") | ("events.k8s.io", "events") => {
            // kubectl get events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
            return vec![
                col("Last Seen", "string", Cell::Computed(event_last_seen)),
                col("Type", "string", Cell::Computed(|o| o["type"].clone())),
                col("Reason", "string", Cell::Computed(|o| o["reason"].clone())),
                col("Object", "string", Cell::Computed(event_object)),
                col("Message", "string", Cell::Computed(event_message)),
                Column {
                    priority: 1,
                    ..name_col()
                },
            ];
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            cols.push(col(
                "Created At",
                "date",
                Cell::Computed(|o| o["metadata"]["creationTimestamp"].clone()),
            ));
            return cols;
        }
        _ => {}
    }
    cols.push(age_col());
    cols
}

fn ns_status(o: &Value) -> Value {
    o["status"]["phase"].clone()
}

fn data_count(o: &Value) -> Value {
    json!(o["data"].as_object().map_or(0, serde_json::Map::len))
}

fn config_count(o: &Value) -> Value {
    let n = o["data"].as_object().map_or(0, serde_json::Map::len)
        + o["binaryData"].as_object().map_or(0, serde_json::Map::len);
    json!(n)
}

fn pod_ready(o: &Value) -> Value {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
    json!(format!("{ready}/{total}"))
}

fn pod_restarts(o: &Value) -> Value {
    let n: i64 = o["status"]["containerStatuses"].as_array().map_or(0, |s| {
        s.iter()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum()
    });
    json!(n.to_string())
}

fn condition_true(o: &Value, type_: &str) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

fn job_status(o: &Value) -> Value {
    let status = if condition_true(o, "Complete") {
        "Complete"
    } else if condition_true(o, "Failed") {
        "Failed"
    } else if condition_true(o, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if condition_true(o, "Suspended") {
        "Suspended"
    } else {
        "Running"
    };
    json!(status)
}

fn job_completions(o: &Value) -> Value {
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    let cell = match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = o["spec"]["parallelism"].as_i64().unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    json!(cell)
}

fn job_duration(o: &Value) -> Value {
    let Some(start) = o["status"]["startTime"].as_str().and_then(parse_time) else {
        return json!("");
    };
    let end = o["status"]["completionTime"]
        .as_str()
        .and_then(parse_time)
        .unwrap_or_else(chrono::Utc::now);
    json!(human_duration((end - start).num_seconds()))
}

fn event_last_seen(o: &Value) -> Value {
    let t = ["lastTimestamp", "deprecatedLastTimestamp", "eventTime"]
        .iter()
        .find_map(|k| o[*k].as_str())
        .or_else(|| o["series"]["lastObservedTime"].as_str());
    match t.and_then(parse_time) {
        Some(t) => json!(age_since(t)),
        None => json!("<unknown>"),
    }
}

fn event_object(o: &Value) -> Value {
    let r = if o["involvedObject"].is_object() {
        &o["involvedObject"]
    } else {
        &o["regarding"]
    };
    let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
    json!(format!("{kind}/{}", r["name"].as_str().unwrap_or_default()))
}

fn event_message(o: &Value) -> Value {
    if o["message"].is_string() {
        o["message"].clone()
    } else {
        o["note"].clone()
    }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn age_since(t: chrono::DateTime<chrono::Utc>) -> String {
    human_duration((chrono::Utc::now() - t).num_seconds())
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: `5s`, `3m20s`, `4h`, `2d3h`, `400d`.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let days = hours / 24;
        let d = days % 365;
        if d == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{d}d", days / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn cell(c: &Column, o: &Value) -> Value {
    match &c.cell {
        Cell::Name => o["metadata"]["name"].clone(),
        Cell::Age(path) => {
            let mut v = o;
            for seg in path.split('.') {
                v = &v[seg];
            }
            match v.as_str().and_then(parse_time) {
                Some(t) => json!(age_since(t)),
                None => json!("<none>"),
            }
        }
        Cell::Computed(f) => f(o),
        Cell::Path(path, type_) => {
            let found = jsonpath(o, path);
            let Some(first) = found.first() else {
                return Value::Null;
            };
            if type_ == "date" {
                return match first.as_str().and_then(parse_time) {
                    Some(t) => json!(age_since(t)),
                    None => Value::Null,
                };
            }
            if found.len() > 1 {
                let parts: Vec<String> = found.iter().map(|v| plain(v)).collect();
                return json!(parts.join(","));
            }
            match (type_.as_str(), first) {
                ("string", v) if !v.is_string() => json!(plain(v)),
                (_, v) => (*v).clone(),
            }
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The subset of kubectl's JSONPath CRD columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status`.
pub(crate) fn jsonpath<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![root];
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = current.into_iter().flat_map(|v| index(v, inner)).collect();
        } else {
            return Vec::new();
        }
    }
    current.into_iter().filter(|v| !v.is_null()).collect()
}

fn index<'a>(v: &'a Value, inner: &str) -> Vec<&'a Value> {
    let inner = inner.trim();
    if inner == "*" {
        return match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => Vec::new(),
        };
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let Some((lhs, rhs)) = filter.split_once("==") else {
            return Vec::new();
        };
        let field = lhs.trim().trim_start_matches('@');
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|item| {
                        jsonpath(item, field)
                            .first()
                            .is_some_and(|x| plain(x) == want)
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    if let Some(key) = inner.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
        return v.get(key).into_iter().collect();
    }
    match inner.parse::<i64>() {
        Ok(i) => {
            let Some(a) = v.as_array() else {
                return Vec::new();
            };
            let i = if i < 0 { a.len() as i64 + i } else { i };
            usize::try_from(i)
                .ok()
                .and_then(|i| a.get(i))
                .into_iter()
                .collect()
        }
        Err(_) => Vec::new(),
    }
}

fn row(cols: &[Column], o: &Value, include: Include) -> Value {
    let cells: Vec<Value> = cols.iter().map(|c| cell(c, o)).collect();
    let mut row = json!({ "cells": cells });
    match include {
        Include::None => {}
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            });
        }
        Include::Object => row["object"] = o.clone(),
    }
    row
}

/// A Table of `objects`; `headers: false` leaves out the column definitions (watch events
/// after the first).
pub(crate) fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Value],
    include: Include,
    list_meta: Value,
    headers: bool,
) -> Value {
    let cols = columns(rt, version);
    let defs: Vec<Value> = if headers {
        cols.iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects.iter().map(|o| row(&cols, o, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl_prints_them() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600), "4h");
        assert_eq!(human_duration(4 * 3600 + 600), "4h10m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
        assert_eq!(human_duration(400 * 86400), "400d");
    }

    #[test]
    fn crd_columns_can_filter_conditions() {
        let o = json!({ "status": { "conditions": [
            { "type": "Synced", "status": "False" },
            { "type": "Ready", "status": "True" },
        ] } });
        let found = jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status");
        assert_eq!(found, vec![&json!("True")]);
        assert!(jsonpath(&o, ".status.phase").is_empty());
        assert_eq!(
            jsonpath(&o, ".status.conditions[0].type"),
            vec![&json!("Synced")]
        );
    }

    #[test]
    fn job_status_and_completions_follow_its_conditions() {
        let done = json!({
            "spec": { "completions": 1 },
            "status": { "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] }
        });
        assert_eq!(job_status(&done), "Complete");
        assert_eq!(job_completions(&done), "1/1");
        let running = json!({ "spec": {}, "status": {} });
        assert_eq!(job_status(&running), "Running");
        assert_eq!(job_completions(&running), "0/1");
    }
}
