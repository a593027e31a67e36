//! The patch formats as kubectl sends them.

use dbo_apimachinery::lists::BuiltinLists;
use dbo_apimachinery::patch::{PatchError, json_patch, merge_patch, strategic_merge_patch};
use serde_json::{Value, json};

fn smp(mut target: Value, patch: Value) -> Value {
    strategic_merge_patch(&mut target, &patch, &BuiltinLists).expect("the patch applies");
    target
}

#[test]
fn merge_patch_merges_maps_deletes_nulls_and_replaces_lists() {
    let mut cm =
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}, "list": [1, 2]});
    merge_patch(
        &mut cm,
        &json!({"metadata": {"labels": {"b": null, "c": "3"}}, "list": [3]}),
    );
    assert_eq!(
        cm,
        json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "data": {"x": "1"}, "list": [3]})
    );
}

#[test]
fn json_patch_applies_all_operations() {
    let mut obj = json!({"spec": {"replicas": 1, "args": ["a"]}});
    json_patch(
        &mut obj,
        &json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/args/-", "value": "b"},
            {"op": "remove", "path": "/spec/args/0"},
        ]),
    )
    .expect("the patch applies");
    assert_eq!(obj, json!({"spec": {"replicas": 3, "args": ["b"]}}));
}

#[test]
fn a_failing_json_patch_changes_nothing() {
    let original = json!({"spec": {"replicas": 1}});
    let mut obj = original.clone();
    let err = json_patch(
        &mut obj,
        &json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "test", "path": "/spec/replicas", "value": 1},
        ]),
    )
    .expect_err("the test fails after the replace");
    assert!(matches!(err, PatchError::JsonPatchFailed(_)), "{err:?}");
    assert_eq!(err.http_status(), 422);
    assert_eq!(obj, original);
}

#[test]
fn a_malformed_json_patch_is_a_bad_request() {
    let mut obj = json!({});
    let err = json_patch(&mut obj, &json!({"op": "add"})).expect_err("not a list");
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().starts_with("invalid JSON patch: "), "{err}");
}

#[test]
fn kubectl_apply_removes_a_config_map_key() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "annotations": {"other": "kept"}},
        "data": {"keep": "1", "old": "2"}});
    let patched = smp(
        live,
        json!({"data": {"old": null, "new": "3"},
               "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
    );
    assert_eq!(patched["data"], json!({"keep": "1", "new": "3"}));
    assert_eq!(patched["metadata"]["annotations"]["other"], "kept");
}

#[test]
fn kubectl_patch_adds_secret_keys_and_keeps_the_rest() {
    let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "type": "Opaque", "data": {"password": "cw=="}});
    let patched = smp(
        live,
        json!({"data": {"user": "dQ=="}, "stringData": {"x": "y"}}),
    );
    assert_eq!(patched["data"], json!({"password": "cw==", "user": "dQ=="}));
    assert_eq!(patched["stringData"], json!({"x": "y"}));
    assert_eq!(patched["type"], "Opaque");
}

fn cron_job() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
    "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [
            {"name": "backup", "image": "dump:1", "args": ["--all"],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "s:1"}
        ]}}}}}})
}

fn containers(cron: &Value) -> &Value {
    &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
}

#[test]
fn kubectl_apply_three_way_patch_of_a_cron_job() {
    // What `kubectl apply` sends after the user changed the schedule, dropped env B, added C.
    let patch = json!({"spec": {"schedule": "0 4 * * *", "jobTemplate": {"spec": {"template": {"spec": {
    "$setElementOrder/containers": [{"name": "backup"}, {"name": "sidecar"}],
    "containers": [{
        "name": "backup",
        "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
        "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]
    }]}}}}}});
    let patched = smp(cron_job(), patch);
    assert_eq!(patched["spec"]["schedule"], "0 4 * * *");
    let c = containers(&patched);
    assert_eq!(c[0]["name"], "backup");
    assert_eq!(c[0]["image"], "dump:1");
    assert_eq!(
        c[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(c[1], json!({"name": "sidecar", "image": "s:1"}));
    assert_eq!(
        patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
        "Never"
    );
}

#[test]
fn set_element_order_reorders_containers() {
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "backup"}]}}}}}});
    let patched = smp(cron_job(), patch);
    let names: Vec<&Value> = containers(&patched)
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, vec!["sidecar", "backup"]);
}

#[test]
fn kubectl_patch_sets_one_container_image_and_replaces_atomic_args() {
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "backup", "image": "dump:2", "args": ["--one"]}]}}}}}});
    let patched = smp(cron_job(), patch);
    let c = containers(&patched);
    assert_eq!(c[0]["image"], "dump:2");
    assert_eq!(c[0]["args"], json!(["--one"]));
    assert_eq!(c[0]["env"][1]["name"], "B");
    assert_eq!(c[1]["name"], "sidecar");
}

#[test]
fn a_new_container_goes_first_and_a_deleted_one_is_removed() {
    // Without `$setElementOrder`, Kubernetes puts patch items the live list does not know ahead
    // of the server-only ones; `kubectl apply` sends the order to avoid exactly this.
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "extra", "image": "e:1"}, {"$patch": "delete", "name": "sidecar"}]}}}}}});
    let patched = smp(cron_job(), patch);
    let names: Vec<&Value> = containers(&patched)
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, vec!["extra", "backup"]);
}

#[test]
fn patch_replace_directive_in_lists_and_maps() {
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}}}}}});
    let patched = smp(cron_job(), patch);
    assert_eq!(
        containers(&patched),
        &json!([{"name": "only", "image": "o:1"}])
    );

    let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let patched = smp(
        live,
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(patched["metadata"]["labels"], json!({"c": "3"}));
}

#[test]
fn job_finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let live = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "finalizers": ["a", "b"]}});
    let patched = smp(
        live.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let patched = smp(
        live,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn retain_keys_drops_what_it_does_not_list() {
    let live =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let patched = smp(
        live,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn strategic_errors_are_the_servers() {
    let mut cron = cron_job();
    let err = strategic_merge_patch(
        &mut cron,
        &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"image": "nameless"}]}}}}}}),
        &BuiltinLists,
    )
    .expect_err("a container needs its name");
    assert_eq!(err.http_status(), 400);
    assert_eq!(
        err.to_string(),
        "map: map[image:nameless] does not contain declared merge key: name"
    );
    assert_eq!(cron, cron_job(), "a failed patch changes nothing");

    let err = strategic_merge_patch(&mut cron, &json!([1]), &BuiltinLists).expect_err("not a map");
    assert_eq!(err.to_string(), "invalid JSON document");
}

#[test]
fn new_fields_are_stored_without_nulls_or_directives() {
    let patched = smp(
        json!({"spec": {}}),
        json!({"spec": {"template": {"metadata": {"labels": {"a": "1", "gone": null}},
            "spec": {"containers": [{"name": "x"}, {"$patch": "delete", "name": "y"}]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"],
        json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "x"}]}})
    );
}
