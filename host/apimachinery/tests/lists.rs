//! Which lists merge how, for built-in kinds and for this project's CRDs.

use dbo_apimachinery::lists::{BuiltinLists, ListSemantics, ListType, SchemaLists};
use serde_json::{Value, json};

fn keyed(keys: &[&str]) -> ListType {
    ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect())
}

#[test]
fn builtin_kinds_merge_by_their_patch_merge_keys() {
    let b = BuiltinLists;
    let containers = [
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
    ];
    assert_eq!(b.list_type(&containers), keyed(&["name"]));
    assert_eq!(
        b.list_type(&["spec", "template", "spec", "containers", "env"]),
        keyed(&["name"])
    );
    assert_eq!(
        b.list_type(&["spec", "containers", "ports"]),
        keyed(&["containerPort", "protocol"])
    );
    assert_eq!(
        b.list_type(&["spec", "ports"]),
        keyed(&["port", "protocol"])
    );
    assert_eq!(
        b.list_type(&["spec", "containers", "volumeMounts"]),
        keyed(&["mountPath"])
    );
    assert_eq!(b.list_type(&["metadata", "finalizers"]), ListType::Set);
    assert_eq!(
        b.list_type(&["metadata", "ownerReferences"]),
        keyed(&["uid"])
    );
    assert_eq!(b.list_type(&["status", "conditions"]), keyed(&["type"]));
    assert_eq!(
        b.list_type(&["spec", "containers", "args"]),
        ListType::Atomic
    );
    assert_eq!(b.list_type(&["spec", "tolerations"]), ListType::Atomic);
}

fn crd_schema(kind: &str) -> Value {
    dbo_api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("a CRD serializes to JSON"))
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .map(|crd| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("dbo_api::crds() has no {kind}"))
}

#[test]
fn crd_lists_follow_the_schema_markers() {
    let lists = SchemaLists::new(&crd_schema("Database"));
    assert_eq!(lists.list_type(&["status", "conditions"]), keyed(&["type"]));
    assert_eq!(lists.list_type(&["spec", "extensions"]), ListType::Atomic);
    // metadata is never in a CRD schema; the built-in rules apply.
    assert_eq!(lists.list_type(&["metadata", "finalizers"]), ListType::Set);
    assert_eq!(lists.list_type(&["spec", "noSuchField"]), ListType::Atomic);
}

#[test]
fn list_markers_inside_list_items_and_atomic_maps() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "rules": {"type": "array", "items": {"type": "object", "properties": {
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}},
        "selector": {"type": "object", "x-kubernetes-map-type": "atomic"},
        "keyless": {"type": "array", "x-kubernetes-list-type": "map"},
    }}}});
    let lists = SchemaLists::new(&schema);
    assert_eq!(lists.list_type(&["spec", "rules", "hosts"]), ListType::Set);
    assert_eq!(lists.list_type(&["spec", "rules"]), ListType::Atomic);
    assert_eq!(lists.list_type(&["spec", "keyless"]), ListType::Atomic);
    assert!(lists.map_is_atomic(&["spec", "selector"]));
    assert!(!lists.map_is_atomic(&["spec"]));
}
