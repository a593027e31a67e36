//! How lists and maps merge: the `x-kubernetes-list-type` family of schema markers and the
//! `patchMergeKey` / `listType=map` tags of the built-in kinds.

use serde_json::Value;

/// How a list field merges (SSA and strategic merge patch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value: whoever sets it sets all of it.
    Atomic,
    /// Items are scalars and unique; each item is owned separately.
    Set,
    /// Items are objects identified by the values of these key fields.
    Map(Vec<String>),
}

/// Merge semantics of the lists and maps of one kind.
///
/// Path = the field names from the object root to the list, list positions left out,
/// e.g. `["spec", "jobTemplate", "spec", "template", "spec", "containers"]`.
pub trait ListSemantics: Send + Sync {
    /// How the list at `path` merges.
    fn list_type(&self, path: &[&str]) -> ListType;
    /// Whether the map at `path` is atomic (`x-kubernetes-map-type: atomic`; granular is the
    /// default).
    fn map_is_atomic(&self, _path: &[&str]) -> bool {
        false
    }
}

/// The merge keys Kubernetes' built-in kinds declare, recognised by the last path segment(s):
/// containers, initContainers, ephemeralContainers, env, volumes, imagePullSecrets by `name`;
/// volumeMounts by `mountPath`; container ports by `containerPort` + `protocol`, Service ports
/// by `port` + `protocol`; conditions by `type`; ownerReferences by `uid`; finalizers are a set.
/// Every other list is atomic, as in the built-in schemas.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinLists;

impl ListSemantics for BuiltinLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        builtin_list_type(path)
    }
}

fn builtin_list_type(path: &[&str]) -> ListType {
    let keyed = |keys: &[&str]| ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect());
    match path {
        [.., "containers" | "initContainers" | "ephemeralContainers"]
        | [.., "env"]
        | [.., "volumes"]
        | [.., "imagePullSecrets"] => keyed(&["name"]),
        [.., "volumeMounts"] => keyed(&["mountPath"]),
        [
            ..,
            "containers" | "initContainers" | "ephemeralContainers",
            "ports",
        ] => keyed(&["containerPort", "protocol"]),
        ["spec", "ports"] => keyed(&["port", "protocol"]),
        [.., "conditions"] => keyed(&["type"]),
        [.., "ownerReferences"] => keyed(&["uid"]),
        [.., "finalizers"] => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// List and map semantics from a CRD's `openAPIV3Schema` (`x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), falling back to [`BuiltinLists`] for
/// `metadata.*` (which CRD schemas never describe).
#[derive(Clone, Debug)]
pub struct SchemaLists {
    schema: Value,
}

impl SchemaLists {
    /// Keeps a copy of `open_api_v3_schema` (the `openAPIV3Schema` of one CRD version).
    pub fn new(open_api_v3_schema: &Value) -> Self {
        Self {
            schema: open_api_v3_schema.clone(),
        }
    }

    /// The schema node describing the value at `path` (list positions left out).
    fn node(&self, path: &[&str]) -> Option<&Value> {
        let mut node = &self.schema;
        for segment in path {
            node = child_schema(node, segment)?;
        }
        Some(node)
    }
}

/// The schema of field `name` of an object schema, or of an item if `node` is an array schema
/// (list positions are left out of paths, so an array is stepped through transparently).
fn child_schema<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    let node = match node.get("items") {
        Some(items) if node.get("type").and_then(Value::as_str) == Some("array") => items,
        _ => node,
    };
    node.get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
}

impl ListSemantics for SchemaLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        if path.first() == Some(&"metadata") {
            return builtin_list_type(path);
        }
        let Some(node) = self.node(path) else {
            return ListType::Atomic;
        };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                // The API server refuses a map list without keys when the CRD is created; should
                // one slip through, merging it as a whole is the only safe reading.
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        }
    }

    fn map_is_atomic(&self, path: &[&str]) -> bool {
        if path.first() == Some(&"metadata") {
            return false;
        }
        self.node(path)
            .and_then(|n| n.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            == Some("atomic")
    }
}
