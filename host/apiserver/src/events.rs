//! Core `v1` Events and `events.k8s.io/v1` Events are one resource seen in two shapes, as in
//! Kubernetes: kube-rs' `Recorder` writes the new shape and `kubectl describe` reads the old
//! one. Storage keeps the core shape; these functions convert both ways.

use serde_json::{Map, Value};

/// Field renames between the shapes: (core/v1, events.k8s.io/v1).
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields both shapes share under the same name.
const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "action",
    "related",
    "reason",
    "type",
    "reportingInstance",
];

/// events.k8s.io/v1 shape of a stored core Event.
pub(crate) fn core_to_events_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "Event".into());
    out.insert("apiVersion".into(), "events.k8s.io/v1".into());
    for key in SHARED {
        if let Some(v) = core.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).into(), v.clone());
        }
    }
    for (old, new) in RENAMES {
        if let Some(v) = core.get(*old).filter(|v| !is_empty(v)) {
            out.insert((*new).into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Core shape of an events.k8s.io/v1 Event, for storage.
///
/// Older readers (kubectl describe's "From" column) look at `source.component`, so an event
/// written only with `reportingController` also gets that, as the real conversion does.
pub(crate) fn events_v1_to_core(event: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "Event".into());
    out.insert("apiVersion".into(), "v1".into());
    for key in SHARED {
        if let Some(v) = event.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).into(), v.clone());
        }
    }
    for (old, new) in RENAMES {
        if let Some(v) = event.get(*new).filter(|v| !v.is_null()) {
            out.insert((*old).into(), v.clone());
        }
    }
    if !out.contains_key("source")
        && let Some(controller) = event.get("reportingController").and_then(Value::as_str)
    {
        let mut source = Map::new();
        source.insert("component".into(), controller.into());
        if let Some(instance) = event.get("reportingInstance").and_then(Value::as_str) {
            source.insert("host".into(), instance.into());
        }
        out.insert("source".into(), Value::Object(source));
    }
    // kubectl describe sorts and ages events by these; an events.k8s.io writer sets only
    // eventTime (and series), so derive them the way the API server's conversion does.
    if let Some(series) = event.get("series").filter(|s| s.is_object()) {
        if !out.contains_key("count")
            && let Some(count) = series.get("count")
        {
            out.insert("count".into(), count.clone());
        }
        if !out.contains_key("lastTimestamp")
            && let Some(last) = series.get("lastObservedTime").and_then(Value::as_str)
        {
            out.insert("lastTimestamp".into(), truncate_micro(last).into());
        }
    }
    if let Some(t) = event.get("eventTime").and_then(Value::as_str) {
        let t = truncate_micro(t);
        out.entry("firstTimestamp")
            .or_insert_with(|| t.clone().into());
        out.entry("lastTimestamp").or_insert_with(|| t.into());
    }
    out.entry("count").or_insert_with(|| 1.into());
    Value::Object(out)
}

/// `metav1.Time` has second precision; `MicroTime` values carry fractions.
fn truncate_micro(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(dt) => dt
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        Err(_) => t.to_owned(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_recorder_event_reads_as_a_core_event_for_kubectl_describe() {
        let event = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": { "name": "db1.1", "namespace": "default" },
            "eventTime": "2026-01-01T10:00:00.123456Z",
            "regarding": { "kind": "Database", "name": "db1", "namespace": "default" },
            "note": "created the Secret",
            "reason": "Created",
            "type": "Normal",
            "action": "Reconcile",
            "reportingController": "db-operator",
            "reportingInstance": "db-operator-0",
            "series": { "count": 3, "lastObservedTime": "2026-01-01T10:05:00.000001Z" },
        });
        let core = events_v1_to_core(&event);
        assert_eq!(core["involvedObject"]["name"], "db1");
        assert_eq!(core["message"], "created the Secret");
        assert_eq!(core["source"]["component"], "db-operator");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2026-01-01T10:00:00Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T10:05:00Z");

        let back = core_to_events_v1(&core);
        assert_eq!(back["regarding"], event["regarding"]);
        assert_eq!(back["note"], event["note"]);
        assert_eq!(back["reportingController"], "db-operator");
        assert_eq!(back["series"], event["series"]);
        assert_eq!(back["apiVersion"], "events.k8s.io/v1");
    }
}
