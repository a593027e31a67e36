//! Strategic merge patch, as `kubectl apply` (client-side three-way patches) and
//! `kubectl patch`/`edit` send it for built-in kinds (`k8s.io/apimachinery`'s `strategicpatch`,
//! with the server's options: parallel deletion lists are merged and unmatched nulls ignored).
//!
//! Lists merge per [`ListSemantics`]: a map list by its first key (the `patchMergeKey`), a set
//! list as deduplicated scalars, anything else is replaced whole.

use serde_json::{Map, Value};

use super::PatchError;
use crate::lists::{ListSemantics, ListType};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Strategic merge patch (`application/strategic-merge-patch+json`): lists with merge keys
/// merge by key, `$patch: delete|replace`, `$deleteFromPrimitiveList/<field>`,
/// `$setElementOrder/<field>`, `$retainKeys`, `null` deletes a key; atomic lists are replaced.
/// All or nothing: on error `target` is unchanged.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    lists: &dyn ListSemantics,
) -> Result<(), PatchError> {
    let (Value::Object(original), Value::Object(patch)) = (&*target, patch) else {
        return Err(PatchError::InvalidStrategicPatch(
            "invalid JSON document".to_owned(),
        ));
    };
    let merged = merge_map(
        Some(original.clone()),
        patch.clone(),
        lists,
        &mut Vec::new(),
    )?;
    *target = Value::Object(merged);
    Ok(())
}

fn bad_request(message: impl Into<String>) -> PatchError {
    PatchError::InvalidStrategicPatch(message.into())
}

/// Go's `%v` of a map, as the API server's messages show patch fragments.
fn show(value: &Value) -> String {
    match value {
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", show(v))).collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list_type(lists: &dyn ListSemantics, path: &[String]) -> ListType {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    lists.list_type(&names)
}

fn merge_map(
    original: Option<Map<String, Value>>,
    mut patch: Map<String, Value>,
    lists: &dyn ListSemantics,
    path: &mut Vec<String>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            // The map becomes exactly the patch's content.
            Some("replace") => return merge_map(None, patch, lists, path),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                patch.insert(DIRECTIVE.to_owned(), directive.clone());
                return Err(bad_request(format!(
                    "unknown patch type: {} in map: {}",
                    show(&directive),
                    show(&Value::Object(patch))
                )));
            }
        }
    }
    let mut original = original.unwrap_or_default();

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(bad_request("invalid patch format of retainKeys"));
        };
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        if patch
            .keys()
            .any(|k| !k.starts_with('$') && !keys.contains(&k.as_str()))
        {
            return Err(PatchError::StrategicPatchFailed(
                "patch content doesn't match retainKeys list".to_owned(),
            ));
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    // Ordered lists first: the list and its order directive are merged together.
    let ordered: Vec<String> = patch
        .keys()
        .filter_map(|k| k.strip_prefix(SET_ELEMENT_ORDER).map(str::to_owned))
        .collect();
    for field in ordered {
        let Some(Value::Array(order)) = patch.remove(&format!("{SET_ELEMENT_ORDER}{field}")) else {
            return Err(bad_request("invalid patch format of setElementOrder list"));
        };
        let patch_list = match patch.remove(&field) {
            Some(Value::Array(items)) => Some(items),
            Some(Value::Null) => {
                original.remove(&field);
                continue;
            }
            Some(other) => {
                // Not a list after all: handled as an ordinary value below.
                patch.insert(field.clone(), other);
                continue;
            }
            None => None,
        };
        let original_list = match original.get(&field) {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        if original_list.is_empty() && patch_list.as_ref().is_none_or(Vec::is_empty) {
            continue;
        }
        path.push(field.clone());
        let kind = list_type(lists, path);
        let merged = match patch_list {
            Some(items) => merge_list(original_list, items, &kind, lists, path)?,
            None => original_list,
        };
        let sorted = sort_by_order(merged, &order, &kind);
        path.pop();
        original.insert(field, Value::Array(sorted));
    }

    let mut deletions = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            deletions.push((field.to_owned(), value));
            continue;
        }
        if key.starts_with('$') {
            // Directives this server does not know are dropped rather than stored as fields.
            continue;
        }
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        path.push(key.clone());
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(a)), Value::Object(b)) if !lists_map_atomic(lists, path) => {
                Value::Object(merge_map(Some(a), b, lists, path)?)
            }
            (Some(Value::Array(a)), Value::Array(b)) => {
                let kind = list_type(lists, path);
                Value::Array(merge_list(a, b, &kind, lists, path)?)
            }
            (_, value) => clean(value, lists, path)?,
        };
        path.pop();
        original.insert(key, merged);
    }

    for (field, values) in deletions {
        let Value::Array(values) = values else {
            return Err(bad_request("invalid patch format of primitive list"));
        };
        if let Some(Value::Array(items)) = original.get_mut(&field) {
            items.retain(|item| !values.contains(item));
        }
    }
    Ok(original)
}

fn lists_map_atomic(lists: &dyn ListSemantics, path: &[String]) -> bool {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    lists.map_is_atomic(&names)
}

/// A patch value taken as is (nothing to merge with): nulls inside it mean nothing and
/// directives are applied against emptiness, so neither ends up stored.
fn clean(
    value: Value,
    lists: &dyn ListSemantics,
    path: &mut Vec<String>,
) -> Result<Value, PatchError> {
    match value {
        Value::Object(m) => Ok(Value::Object(merge_map(None, m, lists, path)?)),
        Value::Array(items) => {
            let kind = list_type(lists, path);
            Ok(Value::Array(merge_list(
                Vec::new(),
                items,
                &kind,
                lists,
                path,
            )?))
        }
        other => Ok(other),
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    kind: &ListType,
    lists: &dyn ListSemantics,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, PatchError> {
    match kind {
        ListType::Atomic => {
            if patch.iter().any(Value::is_object) {
                // Items are taken whole, but `$patch` items still carry no data.
                let mut out = Vec::with_capacity(patch.len());
                for item in patch {
                    match item {
                        Value::Object(m) if m.contains_key(DIRECTIVE) => {}
                        Value::Object(m) => {
                            out.push(Value::Object(merge_map(None, m, lists, path)?))
                        }
                        other => out.push(other),
                    }
                }
                Ok(out)
            } else {
                Ok(patch)
            }
        }
        ListType::Set => {
            if original.iter().chain(&patch).any(|v| v.is_array()) {
                return Err(PatchError::StrategicPatchFailed(
                    "lists of lists are not supported".to_owned(),
                ));
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            Ok(order_like_kubernetes(merged, &patch, &original, |v| {
                Some(v.clone())
            }))
        }
        ListType::Map(keys) => {
            let Some(key) = keys.first() else {
                return Ok(patch);
            };
            merge_keyed(original, patch, key, lists, path)
        }
    }
}

fn merge_keyed(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    lists: &dyn ListSemantics,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, PatchError> {
    let key_of = |item: &Value| item.get(key).cloned();
    let mut items = original.clone();
    let mut replace = false;
    let mut plain = Vec::with_capacity(patch.len());
    for item in patch {
        let Value::Object(fields) = item else {
            return Err(PatchError::StrategicPatchFailed(format!(
                "cannot merge lists without merge key for {}",
                path.join(".")
            )));
        };
        match fields.get(DIRECTIVE).map(|d| d.as_str()) {
            None => plain.push(fields),
            Some(Some("delete")) => {
                let Some(wanted) = fields.get(key) else {
                    return Err(bad_request(format!(
                        "map: {} does not contain declared merge key: {key}",
                        show(&Value::Object(fields))
                    )));
                };
                items.retain(|i| i.get(key) != Some(wanted));
            }
            Some(Some("replace")) => replace = true,
            Some(Some("merge")) => {
                return Err(bad_request(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            Some(_) => {
                let directive = fields.get(DIRECTIVE).cloned().unwrap_or(Value::Null);
                return Err(bad_request(format!(
                    "unknown patch type: {} in map: {}",
                    show(&directive),
                    show(&Value::Object(fields))
                )));
            }
        }
    }
    if replace {
        items.clear();
    }
    let patch_order: Vec<Value> = plain.iter().map(|m| Value::Object(m.clone())).collect();
    for fields in plain {
        let Some(wanted) = fields.get(key).cloned() else {
            return Err(bad_request(format!(
                "map: {} does not contain declared merge key: {key}",
                show(&Value::Object(fields))
            )));
        };
        match items.iter().position(|i| i.get(key) == Some(&wanted)) {
            Some(at) => {
                let current = match std::mem::take(&mut items[at]) {
                    Value::Object(m) => Some(m),
                    _ => None,
                };
                items[at] = Value::Object(merge_map(current, fields, lists, path)?);
            }
            None => items.push(Value::Object(merge_map(None, fields, lists, path)?)),
        }
    }
    Ok(order_like_kubernetes(
        items,
        &patch_order,
        &original,
        key_of,
    ))
}

/// The order Kubernetes gives a merged list: the patch's items in the patch's order, the
/// server-only items in their live order, interleaved where the live order says so.
fn order_like_kubernetes(
    merged: Vec<Value>,
    patch: &[Value],
    original: &[Value],
    id: impl Fn(&Value) -> Option<Value>,
) -> Vec<Value> {
    let position = |list: &[Value], item: &Value| {
        let wanted = id(item)?;
        list.iter().position(|x| id(x).as_ref() == Some(&wanted))
    };
    let (mut from_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|m| position(patch, m).is_some());
    from_patch.sort_by_key(|m| position(patch, m));
    // Insert each server-only item before the first patch item that comes after it live.
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut right = from_patch.into_iter().peekable();
    for left in server_only {
        let left_at = position(original, &left);
        while let Some(next) = right.peek() {
            let before = match (left_at, position(original, next)) {
                (Some(l), Some(r)) => l < r,
                _ => false,
            };
            if before {
                break;
            }
            out.extend(right.next());
        }
        out.push(left);
    }
    out.extend(right);
    out
}

/// Sorts `items` by `$setElementOrder`; items it does not name keep their relative order after
/// the named ones.
fn sort_by_order(items: Vec<Value>, order: &[Value], kind: &ListType) -> Vec<Value> {
    let id = |v: &Value| -> Option<Value> {
        match kind {
            ListType::Map(keys) => keys.first().and_then(|k| v.get(k)).cloned(),
            _ => Some(v.clone()),
        }
    };
    let rank = |item: &Value| {
        let wanted = id(item);
        order
            .iter()
            .position(|o| wanted.is_some() && id(o) == wanted)
            .unwrap_or(usize::MAX)
    };
    let mut items = items;
    items.sort_by_key(|item| rank(item));
    items
}
