//! Sets of field paths in the shape of `managedFields[].fieldsV1`, and the walks over objects
//! that produce them (structured-merge-diff's `fieldpath` and `typed` packages, reduced to what
//! server-side apply needs here).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::lists::{ListSemantics, ListType};

/// One step of a field path: `f:name`, `k:{"name":"app"}`, `v:"value"` or `i:3`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pe {
    /// A field of an object.
    Field(String),
    /// An item of a map list, by its key fields (canonical JSON object, keys sorted).
    Key(String),
    /// An item of a set list, by its value (canonical JSON).
    Value(String),
    /// A list position; only read from fieldsV1 written elsewhere, never produced here.
    Index(usize),
}

impl Pe {
    fn parse(s: &str) -> Result<Pe, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("unexpected field path element {s:?}"))?;
        match kind {
            "f" => Ok(Pe::Field(rest.to_owned())),
            "k" | "v" => {
                let value: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("invalid field path element {s:?}: {e}"))?;
                if kind == "k" {
                    if !value.is_object() {
                        return Err(format!(
                            "invalid field path element {s:?}: key is not an object"
                        ));
                    }
                    Ok(Pe::Key(canonical_json(&value)))
                } else {
                    Ok(Pe::Value(canonical_json(&value)))
                }
            }
            "i" => rest
                .parse()
                .map(Pe::Index)
                .map_err(|_| format!("invalid field path element {s:?}")),
            _ => Err(format!("unexpected field path element {s:?}")),
        }
    }

    fn encode(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(key) => format!("k:{key}"),
            Pe::Value(value) => format!("v:{value}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    /// The element as structured-merge-diff prints paths in conflict messages:
    /// `.image`, `[name="app"]`, `[="finalizer"]`, `[0]`.
    fn write_display(&self, out: &mut String) {
        match self {
            Pe::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            Pe::Key(key) => {
                out.push('[');
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) {
                    let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(b.0));
                    for (i, (name, value)) in sorted.into_iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{name}={}", canonical_json(value));
                    }
                }
                out.push(']');
            }
            Pe::Value(value) => {
                let _ = write!(out, "[={value}]");
            }
            Pe::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

/// `.spec.containers[name="app"].image`
pub(crate) fn display_path(path: &[Pe]) -> String {
    let mut out = String::new();
    for pe in path {
        pe.write_display(&mut out);
    }
    out
}

/// JSON with object keys sorted at every level, so equal values give equal path elements
/// whatever order a client wrote them in.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A set of field paths as a trie; `member` marks a path that is itself in the set (the `.`
/// of fieldsV1), as opposed to only leading to members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Set {
    member: bool,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn insert(&mut self, path: &[Pe]) {
        // The empty path is the object itself, whose ownership is not tracked.
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = self.children.entry(first.clone()).or_default();
        if rest.is_empty() {
            child.member = true;
        } else {
            child.insert(rest);
        }
    }

    pub(crate) fn child(&self, pe: &Pe) -> Option<&Set> {
        self.children.get(pe)
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&Pe, &Set)> {
        self.children.iter()
    }

    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    pub(crate) fn union_with(&mut self, other: &Set) {
        self.member |= other.member;
        for (pe, theirs) in &other.children {
            self.children
                .entry(pe.clone())
                .or_default()
                .union_with(theirs);
        }
    }

    /// Members of `self` that are not members of `other`.
    pub(crate) fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, mine) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => mine.difference(theirs),
                None => mine.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// Members of both.
    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, mine) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = mine.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub(crate) fn members(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_members(&mut Vec::new(), &mut out);
        out
    }

    fn collect_members(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_members(prefix, out);
            prefix.pop();
        }
    }

    /// Reads `fieldsV1`.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<Set, String> {
        let Value::Object(fields) = value else {
            return Err("fieldsV1 must be an object".to_owned());
        };
        let mut set = Set::default();
        for (key, child) in fields {
            if key == "." {
                set.member = true;
                continue;
            }
            let pe = Pe::parse(key)?;
            let mut child_set = Set::from_fields_v1(child)?;
            // `"f:x": {}` is a leaf: the path itself is the member.
            if child_set.children.is_empty() {
                child_set.member = true;
            }
            set.children.insert(pe, child_set);
        }
        Ok(set)
    }

    /// Writes `fieldsV1`.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        if self.member && !self.children.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if !child.is_empty() {
                out.insert(pe.encode(), child.to_fields_v1());
            }
        }
        Value::Object(out)
    }
}

/// The fields server-side apply never tracks: the object's identity and what the server sets.
fn untracked(path: &[Pe]) -> bool {
    match path {
        [Pe::Field(f)] => f == "apiVersion" || f == "kind",
        [Pe::Field(m), Pe::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Records `path` unless it is untracked; `metadata` itself always exists and is never owned.
fn record(set: &mut Set, path: &[Pe]) {
    if untracked(path) || matches!(path, [Pe::Field(m)] if m == "metadata") {
        return;
    }
    set.insert(path);
}

/// The list positions of `items` as path elements, or why they cannot be identified.
pub(crate) fn list_elements(
    items: &[Value],
    list_type: &ListType,
) -> Result<Option<Vec<Pe>>, String> {
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let pe = match list_type {
            ListType::Atomic => return Ok(None),
            ListType::Set => {
                if item.is_object() || item.is_array() {
                    return Err(format!(
                        "element {i}: set lists may only hold scalars, got {}",
                        canonical_json(item)
                    ));
                }
                Pe::Value(canonical_json(item))
            }
            ListType::Map(keys) => {
                Pe::Key(item_key(item, keys).map_err(|e| format!("element {i}: {e}"))?)
            }
        };
        if seen.insert(pe.clone(), i).is_some() {
            let mut shown = String::new();
            pe.write_display(&mut shown);
            return Err(format!("duplicate entries for key {shown}"));
        }
        out.push(pe);
    }
    Ok(Some(out))
}

fn item_key(item: &Value, keys: &[String]) -> Result<String, String> {
    let Value::Object(fields) = item else {
        return Err(format!(
            "associative list with keys may only hold objects, got {}",
            canonical_json(item)
        ));
    };
    let mut key = Map::new();
    for name in keys {
        match fields.get(name) {
            Some(v) if !v.is_object() && !v.is_array() && !v.is_null() => {
                key.insert(name.clone(), v.clone());
            }
            // A port's protocol defaults to TCP, and the key of the port with it.
            _ if name == "protocol" && keys.iter().any(|k| k == "containerPort" || k == "port") => {
                key.insert(name.clone(), Value::String("TCP".to_owned()));
            }
            _ => {
                return Err(format!(
                    "associative list with keys has an element that omits key field {name:?} (and doesn't have default value)"
                ));
            }
        }
    }
    Ok(canonical_json(&Value::Object(key)))
}

/// A walk position: field names for [`ListSemantics`] and the full path for sets.
#[derive(Default)]
pub(crate) struct Cursor {
    names: Vec<String>,
    path: Vec<Pe>,
}

impl Cursor {
    pub(crate) fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    pub(crate) fn path(&self) -> &[Pe] {
        &self.path
    }

    fn push_field(&mut self, name: &str) {
        self.names.push(name.to_owned());
        self.path.push(Pe::Field(name.to_owned()));
    }

    fn pop_field(&mut self) {
        self.names.pop();
        self.path.pop();
    }

    fn push_item(&mut self, pe: Pe) {
        self.path.push(pe);
    }

    fn pop_item(&mut self) {
        self.path.pop();
    }

    pub(crate) fn display(&self) -> String {
        display_path(&self.path)
    }
}

/// The fields an applied configuration sets: what its manager will own.
pub(crate) fn applied_set(config: &Value, lists: &dyn ListSemantics) -> Result<Set, String> {
    let mut set = Set::default();
    if let Value::Object(fields) = config {
        owned_in_map(fields, lists, &mut Cursor::default(), &mut set)?;
    }
    Ok(set)
}

fn owned_in_map(
    fields: &Map<String, Value>,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
    set: &mut Set,
) -> Result<(), String> {
    for (key, value) in fields {
        at.push_field(key);
        if !untracked(at.path()) {
            owned_in_value(value, lists, at, set)?;
        }
        at.pop_field();
    }
    Ok(())
}

fn owned_in_value(
    value: &Value,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
    set: &mut Set,
) -> Result<(), String> {
    match value {
        Value::Object(fields) if !fields.is_empty() && !lists.map_is_atomic(&at.names()) => {
            owned_in_map(fields, lists, at, set)
        }
        Value::Array(items) => {
            let list_type = lists.list_type(&at.names());
            let elements =
                list_elements(items, &list_type).map_err(|e| format!("{}: {e}", at.display()))?;
            match elements {
                None => record(set, at.path()),
                Some(elements) => {
                    for (pe, item) in elements.into_iter().zip(items) {
                        at.push_item(pe);
                        record(set, at.path());
                        if let Value::Object(fields) = item {
                            owned_in_map(fields, lists, at, set)?;
                        }
                        at.pop_item();
                    }
                }
            }
            Ok(())
        }
        _ => {
            record(set, at.path());
            Ok(())
        }
    }
}

/// What changed between two versions of an object.
#[derive(Default, Debug)]
pub(crate) struct Comparison {
    pub(crate) added: Set,
    pub(crate) modified: Set,
    pub(crate) removed: Set,
}

impl Comparison {
    /// Fields set anew or to another value.
    pub(crate) fn changed(&self) -> Set {
        let mut out = self.added.clone();
        out.union_with(&self.modified);
        out
    }
}

/// Compares `old` with `new` field by field, lists by their merge keys.
pub(crate) fn compare(old: &Value, new: &Value, lists: &dyn ListSemantics) -> Comparison {
    let mut cmp = Comparison::default();
    compare_value(
        Some(old),
        Some(new),
        lists,
        &mut Cursor::default(),
        &mut cmp,
    );
    cmp
}

fn compare_value(
    old: Option<&Value>,
    new: Option<&Value>,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
    cmp: &mut Comparison,
) {
    if !compare_structure(old, new, lists, at, cmp) {
        match (old, new) {
            (Some(a), Some(b)) if a != b => record(&mut cmp.modified, at.path()),
            _ => {}
        }
    }
    match (old, new) {
        (None, Some(_)) => record(&mut cmp.added, at.path()),
        (Some(_), None) => record(&mut cmp.removed, at.path()),
        _ => {}
    }
}

/// Descends into maps and keyed lists; false when the values are to be compared as leaves.
fn compare_structure(
    old: Option<&Value>,
    new: Option<&Value>,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
    cmp: &mut Comparison,
) -> bool {
    let empty = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    // Both empty: a leaf, so that `{}` versus absent stays visible.
    if empty(old) && empty(new) {
        return false;
    }
    match (old, new) {
        (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None)
            if !lists.map_is_atomic(&at.names()) =>
        {
            let no = Map::new();
            let a = old.and_then(Value::as_object).unwrap_or(&no);
            let b = new.and_then(Value::as_object).unwrap_or(&no);
            let keys: Vec<&String> = a
                .keys()
                .chain(b.keys().filter(|k| !a.contains_key(*k)))
                .collect();
            for key in keys {
                at.push_field(key);
                if !untracked(at.path()) {
                    compare_value(a.get(key), b.get(key), lists, at, cmp);
                }
                at.pop_field();
            }
            true
        }
        (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) => {
            let list_type = lists.list_type(&at.names());
            let no = Vec::new();
            let a = old.and_then(Value::as_array).unwrap_or(&no);
            let b = new.and_then(Value::as_array).unwrap_or(&no);
            let (Ok(Some(pa)), Ok(Some(pb))) =
                (list_elements(a, &list_type), list_elements(b, &list_type))
            else {
                return false;
            };
            let index_a: HashMap<&Pe, &Value> = pa.iter().zip(a).collect();
            let index_b: HashMap<&Pe, &Value> = pb.iter().zip(b).collect();
            let order: Vec<&Pe> = pa
                .iter()
                .chain(pb.iter().filter(|pe| !index_a.contains_key(pe)))
                .collect();
            for pe in order {
                at.push_item(pe.clone());
                compare_item(
                    index_a.get(pe).copied(),
                    index_b.get(pe).copied(),
                    lists,
                    at,
                    cmp,
                );
                at.pop_item();
            }
            true
        }
        _ => false,
    }
}

fn compare_item(
    old: Option<&Value>,
    new: Option<&Value>,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
    cmp: &mut Comparison,
) {
    // A map-list item is compared field by field; a set item is its own value.
    let is_map = |v: Option<&Value>| v.is_none_or(Value::is_object);
    if is_map(old)
        && is_map(new)
        && (old.is_some_and(Value::is_object) || new.is_some_and(Value::is_object))
    {
        let no = Map::new();
        let a = old.and_then(Value::as_object).unwrap_or(&no);
        let b = new.and_then(Value::as_object).unwrap_or(&no);
        let keys: Vec<&String> = a
            .keys()
            .chain(b.keys().filter(|k| !a.contains_key(*k)))
            .collect();
        for key in keys {
            at.push_field(key);
            compare_value(a.get(key), b.get(key), lists, at, cmp);
            at.pop_field();
        }
    } else if let (Some(a), Some(b)) = (old, new)
        && a != b
    {
        record(&mut cmp.modified, at.path());
    }
    match (old, new) {
        (None, Some(_)) => record(&mut cmp.added, at.path()),
        (Some(_), None) => record(&mut cmp.removed, at.path()),
        _ => {}
    }
}

/// Merges an applied configuration into the live object: the configuration wins for scalars and
/// atomic values, maps merge by key, keyed lists by item.
pub(crate) fn merge(
    live: &Value,
    config: &Value,
    lists: &dyn ListSemantics,
) -> Result<Value, String> {
    merge_value(Some(live), config, lists, &mut Cursor::default())
}

fn merge_value(
    live: Option<&Value>,
    config: &Value,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
) -> Result<Value, String> {
    match (live, config) {
        (Some(Value::Object(a)), Value::Object(b)) if !lists.map_is_atomic(&at.names()) => {
            let mut out = a.clone();
            for (key, value) in b {
                at.push_field(key);
                let merged = merge_value(a.get(key), value, lists, at)?;
                at.pop_field();
                out.insert(key.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Some(Value::Array(a)), Value::Array(b)) => {
            let list_type = lists.list_type(&at.names());
            let pb = list_elements(b, &list_type).map_err(|e| format!("{}: {e}", at.display()))?;
            let Some(pb) = pb else {
                return Ok(config.clone());
            };
            // A live list whose items cannot be told apart is replaced, as an atomic one.
            let Ok(Some(pa)) = list_elements(a, &list_type) else {
                return Ok(config.clone());
            };
            let index_a: HashMap<&Pe, &Value> = pa.iter().zip(a).collect();
            let take = |pe: &Pe, item: &Value, at: &mut Cursor| -> Result<Value, String> {
                at.push_item(pe.clone());
                let merged = merge_value(index_a.get(pe).copied(), item, lists, at);
                at.pop_item();
                merged
            };
            let in_config: HashMap<&Pe, ()> = pb.iter().map(|pe| (pe, ())).collect();
            let mut config_items = pb.iter().zip(b);
            let mut out = Vec::with_capacity(a.len().max(b.len()));
            // Live-only items keep their place; shared and new items follow the configuration's
            // order, each new item right after the configuration item before it.
            for (pe, item) in pa.iter().zip(a) {
                if !in_config.contains_key(pe) {
                    out.push(item.clone());
                    continue;
                }
                for (rpe, ritem) in config_items.by_ref() {
                    out.push(take(rpe, ritem, at)?);
                    if index_a.contains_key(rpe) {
                        break;
                    }
                }
            }
            for (rpe, ritem) in config_items {
                out.push(take(rpe, ritem, at)?);
            }
            Ok(Value::Array(out))
        }
        (_, Value::Object(b)) => {
            // Nothing live to merge with; still check the configuration's lists.
            let mut out = Map::new();
            for (key, value) in b {
                at.push_field(key);
                let merged = merge_value(None, value, lists, at)?;
                at.pop_field();
                out.insert(key.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (_, Value::Array(b)) => {
            let list_type = lists.list_type(&at.names());
            list_elements(b, &list_type).map_err(|e| format!("{}: {e}", at.display()))?;
            Ok(config.clone())
        }
        (_, scalar) => Ok(scalar.clone()),
    }
}

/// Removes from `object` what `last` (the applier's previous set) owned and nobody owns any more
/// (`keep`: every manager's set, the applier's new one included). A field on the way to owned
/// fields counts as owned, so emptied parents go too; list items and map entries go only when
/// they were owned themselves.
pub(crate) fn remove_dropped(
    object: &mut Value,
    last: &Set,
    keep: &Set,
    lists: &dyn ListSemantics,
) {
    remove_in(object, last, Some(keep), lists, &mut Cursor::default());
}

fn remove_in(
    value: &mut Value,
    last: &Set,
    keep: Option<&Set>,
    lists: &dyn ListSemantics,
    at: &mut Cursor,
) {
    match value {
        Value::Object(fields) => {
            // A field that leads to owned fields counts as owned itself (both for `last`, where
            // every child does, and for `keep`).
            for (pe, last_child) in last.children() {
                let Pe::Field(name) = pe else { continue };
                let keep_child = keep.and_then(|k| k.child(pe));
                let still_owned = keep_child.is_some_and(|c| !c.is_empty());
                // metadata holds the untracked name and friends: only its contents can go.
                let is_root_metadata = at.path().is_empty() && name == "metadata";
                if !still_owned && !is_root_metadata {
                    fields.remove(name);
                } else if let Some(child) = fields.get_mut(name) {
                    at.push_field(name);
                    remove_in(child, last_child, keep_child, lists, at);
                    at.pop_field();
                }
            }
        }
        Value::Array(items) => {
            let list_type = lists.list_type(&at.names());
            let Ok(Some(elements)) = list_elements(items, &list_type) else {
                return;
            };
            let mut kept = Vec::with_capacity(items.len());
            for (pe, mut item) in elements.into_iter().zip(std::mem::take(items)) {
                if let Some(last_child) = last.child(&pe) {
                    let keep_child = keep.and_then(|k| k.child(&pe));
                    if last_child.is_member() && !keep_child.is_some_and(Set::is_member) {
                        continue;
                    }
                    at.push_item(pe);
                    remove_in(&mut item, last_child, keep_child, lists, at);
                    at.pop_item();
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}
