//! Server-side apply and field ownership (`metadata.managedFields`), after
//! structured-merge-diff: every manager owns a set of fields; an apply takes the fields its
//! configuration sets, gives up (and removes) those it no longer sets, and may not change a field
//! another manager owns unless forced.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::fieldpath::{self, Set};
use crate::lists::ListSemantics;

/// Parameters of one server-side apply request.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions<'a> {
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    /// The `force` query parameter: take over conflicting fields instead of failing.
    pub force: bool,
    /// Recorded in `managedFields[].apiVersion`.
    pub api_version: &'a str,
    /// RFC 3339, recorded in `managedFields[].time`.
    pub time: &'a str,
    /// `Some("status")` when applied to the `/status` subresource.
    pub subresource: Option<&'a str>,
}

/// Parameters of a non-apply write (create, update, patch): operation `Update`.
#[derive(Clone, Copy, Debug)]
pub struct UpdateOptions<'a> {
    /// The `fieldManager` query parameter, or the name the server derives from the user agent.
    pub manager: &'a str,
    /// Recorded in `managedFields[].apiVersion`.
    pub api_version: &'a str,
    /// RFC 3339, recorded in `managedFields[].time`.
    pub time: &'a str,
    /// `Some("status")` when written through the `/status` subresource.
    pub subresource: Option<&'a str>,
}

/// A field another manager owns whose value an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The field, e.g. `.spec.cron` or `.spec.containers[name="app"].image`.
    pub field: String,
    /// The owner's operation, `Apply` or `Update`.
    pub operation: String,
    /// The API version the owner wrote with (shown for `Update` owners).
    pub api_version: String,
    /// The owner's subresource, if it wrote through one.
    pub subresource: Option<String>,
}

impl Conflict {
    /// The owner as the API server names it: `"kubectl"`, `"kubectl-edit" using v1`,
    /// `"ctl" with subresource "status"`.
    pub fn owner_description(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            let _ = write!(out, " with subresource {sub:?}");
        }
        if self.operation == "Update" {
            let _ = write!(out, " using {}", self.api_version);
        }
        out
    }

    /// The `message` of this conflict's `FieldManagerConflict` cause in the 409 Status.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner_description())
    }
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict: other managers own fields this apply would change. Apply again with
    /// `force=true` (`kubectl apply --server-side --force-conflicts`) to take them over, or leave
    /// those fields out of the configuration.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is malformed, e.g. a list item without its key (422).
    #[error("{0}")]
    Invalid(String),
}

/// The API server's wording: one conflict on one line, several grouped by owner.
fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner_description(),
            only.field
        );
    }
    let mut owners: Vec<(String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let owner = c.owner_description();
        match owners.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, fields)) => fields.push(&c.field),
            None => owners.push((owner, vec![&c.field])),
        }
    }
    owners.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (owner, fields) in owners {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(fields.into_iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: Set,
}

impl Entry {
    /// Appliers are one entry whatever API version they use; updaters one per version.
    fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    fn decode(value: &Value) -> Result<Entry, String> {
        let Value::Object(fields) = value else {
            return Err("managedFields entries must be objects".to_owned());
        };
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let set = match (text("fieldsType").as_deref(), fields.get("fieldsV1")) {
            (_, None) => Set::default(),
            (Some("FieldsV1") | None, Some(v)) => Set::from_fields_v1(v)?,
            (Some(other), Some(_)) => {
                return Err(format!(
                    "managedFields fieldsType {other:?} is not supported, only \"FieldsV1\""
                ));
            }
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").unwrap_or_default(),
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            set,
        })
    }

    fn encode(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".into(), Value::String(self.manager.clone()));
        out.insert("operation".into(), Value::String(self.operation.clone()));
        out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::String(time.clone()));
        }
        out.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        out.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(sub) = &self.subresource {
            out.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(out)
    }
}

/// The entries of `object`'s `metadata.managedFields`; `Err` when they are not readable.
fn decode_entries(object: Option<&Value>) -> Result<Vec<Entry>, String> {
    let Some(list) = object.and_then(|o| o.pointer("/metadata/managedFields")) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return Err("metadata.managedFields must be a list".to_owned());
    };
    let mut entries: Vec<Entry> = Vec::new();
    for item in items {
        let entry = Entry::decode(item)?;
        match entries.iter_mut().find(|e| e.same_owner(&entry)) {
            Some(existing) => existing.set.union_with(&entry.set),
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

/// Writes `entries` into `object`, in the API server's order: appliers first, then by time,
/// manager, API version, subresource. No entries, no field.
fn store_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Value::Object(root) = object else { return };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

/// Applies `applied` (the manager's full intent) onto `live` (None = the object does not exist
/// yet: create) and returns the new object with `metadata.managedFields` updated.
///
/// Fields this manager owned before and no longer applies are removed unless another manager
/// also owns them; fields another manager owns whose value would change are conflicts unless
/// `force` (then ownership moves to this manager); applying the value another manager set makes
/// both co-owners. The caller strips what apply must not touch before calling and sets name,
/// uid, resourceVersion and the like afterwards; those are never tracked.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions<'_>,
    lists: &dyn ListSemantics,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be an object".to_owned(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let empty = Value::Object(Map::new());
    let live_object = live.unwrap_or(&empty);
    // Unreadable ownership on the live object cannot be honoured; Kubernetes starts afresh too.
    let mut entries = decode_entries(live).unwrap_or_default();

    let new_set = fieldpath::applied_set(applied, lists).map_err(ApplyError::Invalid)?;
    let mut merged = fieldpath::merge(live_object, applied, lists).map_err(ApplyError::Invalid)?;

    let me = Entry {
        manager: opts.manager.to_owned(),
        operation: "Apply".to_owned(),
        api_version: opts.api_version.to_owned(),
        time: Some(opts.time.to_owned()),
        subresource: opts.subresource.map(str::to_owned),
        set: new_set,
    };
    let previous = entries
        .iter()
        .position(|e| e.same_owner(&me))
        .map(|i| entries.remove(i));

    if let Some(last) = previous.as_ref().filter(|p| !p.set.is_empty()) {
        let mut keep = me.set.clone();
        for e in &entries {
            keep.union_with(&e.set);
        }
        fieldpath::remove_dropped(&mut merged, &last.set, &keep, lists);
    }

    let comparison = fieldpath::compare(live_object, &merged, lists);
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    let mut conflict_sets = Vec::with_capacity(entries.len());
    for e in &entries {
        let taken = e.set.intersection(&changed);
        for path in taken.members() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                field: fieldpath::display_path(&path),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
            });
        }
        conflict_sets.push(taken);
    }
    if !conflicts.is_empty() && !opts.force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (e, taken) in entries.iter_mut().zip(&conflict_sets) {
        e.set = e.set.difference(taken).difference(&comparison.removed);
    }

    let unchanged = merged == *live_object;
    let mut me = me;
    if let Some(prev) = &previous
        && unchanged
        && prev.set == me.set
    {
        // A no-op apply keeps the time of the apply that last changed something.
        me.time.clone_from(&prev.time);
    }
    entries.push(me);

    if let Value::Object(root) = &mut merged
        && let Some(Value::Object(meta)) = root.get_mut("metadata")
    {
        meta.remove("managedFields");
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// Records ownership after a non-apply write (create, update, patch): the fields whose value
/// changed from `old` to `new` (all set fields on create) become owned by `manager` with
/// operation `Update` (one entry per manager, API version and subresource), and are taken from
/// other managers. Entries whose set becomes empty are dropped. Updates `new`'s
/// `metadata.managedFields` in place.
///
/// As in Kubernetes, a client that sends `managedFields` unchanged (or not at all, or `[]`)
/// keeps them; one that sends its own edited entries has them used, and `[{}]` clears them
/// (leaving only what this write changed).
pub fn update(
    old: Option<&Value>,
    new: &mut Value,
    opts: &UpdateOptions<'_>,
    lists: &dyn ListSemantics,
) {
    let sent = new.pointer("/metadata/managedFields");
    let from_client = match sent {
        Some(Value::Array(items)) if !items.is_empty() && opts.subresource.is_none() => {
            decode_entries(Some(new)).ok()
        }
        _ => None,
    };
    let mut entries = from_client.unwrap_or_else(|| decode_entries(old).unwrap_or_default());

    let created = serde_json::json!({"metadata": {}});
    let before = old.unwrap_or(&created);
    let comparison = fieldpath::compare(before, new, lists);
    let changed = comparison.changed();

    let mut me = Entry {
        manager: opts.manager.to_owned(),
        operation: "Update".to_owned(),
        api_version: opts.api_version.to_owned(),
        time: Some(opts.time.to_owned()),
        subresource: opts.subresource.map(str::to_owned),
        set: Set::default(),
    };
    if let Some(i) = entries.iter().position(|e| e.same_owner(&me)) {
        let previous = entries.remove(i);
        me.set = previous.set.difference(&comparison.removed);
        if changed.is_empty() {
            me.time = previous.time;
        }
    }
    me.set.union_with(&changed);
    for e in &mut entries {
        e.set = e.set.difference(&changed).difference(&comparison.removed);
    }
    entries.push(me);
    store_entries(new, entries);
}
