//! Server-side apply and field ownership, rule by rule.

use dbo_apimachinery::lists::{BuiltinLists, SchemaLists};
use dbo_apimachinery::ssa::{ApplyError, ApplyOptions, Conflict, UpdateOptions, apply, update};
use serde_json::{Value, json};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T00:01:00Z";

fn opts(manager: &str) -> ApplyOptions<'_> {
    ApplyOptions {
        manager,
        force: false,
        api_version: "v1",
        time: T1,
        subresource: None,
    }
}

fn apply_as(live: Option<&Value>, manager: &str, applied: Value) -> Result<Value, ApplyError> {
    apply(live, &applied, &opts(manager), &BuiltinLists)
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": data})
}

/// The fieldsV1 of `manager`'s entry (the only one with that name).
fn fields_of(object: &Value, manager: &str) -> Value {
    entry_of(object, manager)["fieldsV1"].clone()
}

fn entry_of(object: &Value, manager: &str) -> Value {
    let entries = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mine: Vec<&Value> = entries.iter().filter(|e| e["manager"] == manager).collect();
    assert_eq!(mine.len(), 1, "entries of {manager}: {entries:#?}");
    mine[0].clone()
}

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| e["manager"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn conflicts(result: Result<Value, ApplyError>) -> Vec<Conflict> {
    match result {
        Err(ApplyError::Conflicts(c)) => c,
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn create_records_an_apply_entry_like_kubernetes() {
    let created = apply_as(
        None,
        "dbo",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "x"}},
               "data": {"k": "v"}}),
    )
    .expect("apply creates");
    assert_eq!(created["data"]["k"], "v");
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "manager": "dbo", "operation": "Apply", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}},
        }])
    );
}

#[test]
fn fields_no_longer_applied_are_removed() {
    let first = apply_as(None, "a", config_map(json!({"a": "1", "b": "2"}))).expect("apply");
    let second = apply_as(Some(&first), "a", config_map(json!({"a": "1"}))).expect("apply");
    assert_eq!(second["data"], json!({"a": "1"}));
    assert_eq!(fields_of(&second, "a"), json!({"f:data": {"f:a": {}}}));
}

#[test]
fn labels_no_longer_applied_are_removed() {
    let with = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cm", "labels": labels}})
    };
    let first = apply_as(None, "a", with(json!({"a": "1", "b": "2"}))).expect("apply");
    let second = apply_as(Some(&first), "a", with(json!({"a": "1"}))).expect("apply");
    assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(second["metadata"]["name"], "cm");
}

#[test]
fn co_owned_fields_survive_one_owner_dropping_them() {
    let first = apply_as(None, "a", config_map(json!({"a": "1", "shared": "s"}))).expect("apply");
    let second = apply_as(Some(&first), "b", config_map(json!({"shared": "s"})))
        .expect("same value: no conflict");
    assert_eq!(fields_of(&second, "b"), json!({"f:data": {"f:shared": {}}}));
    let third = apply_as(Some(&second), "a", config_map(json!({"a": "1"}))).expect("apply");
    assert_eq!(third["data"], json!({"a": "1", "shared": "s"}));
    assert_eq!(fields_of(&third, "a"), json!({"f:data": {"f:a": {}}}));
    assert_eq!(fields_of(&third, "b"), json!({"f:data": {"f:shared": {}}}));
}

#[test]
fn changing_another_appliers_field_is_a_conflict() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");
    let err = apply_as(Some(&first), "b", config_map(json!({"x": "2"}))).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .data.x"
    );
    let found = conflicts(Err(err));
    assert_eq!(found[0].manager, "a");
    assert_eq!(found[0].field, ".data.x");
    assert_eq!(found[0].cause_message(), "conflict with \"a\"");
}

#[test]
fn force_moves_ownership_to_the_applier() {
    let first = apply_as(None, "a", config_map(json!({"x": "1", "y": "1"}))).expect("apply");
    let forced = apply(
        Some(&first),
        &config_map(json!({"x": "2"})),
        &ApplyOptions {
            force: true,
            ..opts("b")
        },
        &BuiltinLists,
    )
    .expect("force wins");
    assert_eq!(forced["data"], json!({"x": "2", "y": "1"}));
    assert_eq!(fields_of(&forced, "a"), json!({"f:data": {"f:y": {}}}));
    assert_eq!(fields_of(&forced, "b"), json!({"f:data": {"f:x": {}}}));
    // "a" gave up x: dropping x from its configuration no longer removes it.
    let again = apply_as(Some(&forced), "a", config_map(json!({"y": "1"}))).expect("apply");
    assert_eq!(again["data"]["x"], "2");
}

#[test]
fn several_conflicts_are_grouped_by_owner_and_updaters_show_their_version() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");
    let mut edited = first.clone();
    edited["data"]["y"] = json!("1");
    update(
        Some(&first),
        &mut edited,
        &UpdateOptions {
            manager: "kubectl-edit",
            api_version: "v1",
            time: T2,
            subresource: None,
        },
        &BuiltinLists,
    );
    let err = apply_as(Some(&edited), "b", config_map(json!({"x": "2", "y": "2"})))
        .expect_err("two conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.x\nconflicts with \"kubectl-edit\" using v1:\n- .data.y"
    );
}

fn cron_job(containers: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
           "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": containers}}}}}})
}

#[test]
fn containers_merge_by_name() {
    let first = apply_as(
        None,
        "a",
        cron_job(json!([{"name": "app", "image": "app:1", "args": ["x", "y"]}])),
    )
    .expect("apply");
    assert_eq!(
        fields_of(&first, "a"),
        json!({"f:spec": {"f:jobTemplate": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"app\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}
        }}}}}}})
    );
    let second = apply_as(
        Some(&first),
        "b",
        cron_job(json!([{"name": "sidecar", "image": "s:1"}])),
    )
    .expect("a new item conflicts with nothing");
    let containers = &second["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(2));
    assert_eq!(containers[0]["name"], "app");
    assert_eq!(containers[1]["name"], "sidecar");

    let err = apply_as(
        Some(&second),
        "b",
        cron_job(json!([{"name": "sidecar", "image": "s:1"}, {"name": "app", "image": "app:2"}])),
    )
    .expect_err("app's image is a's");
    assert_eq!(
        conflicts(Err(err))
            .iter()
            .map(|c| c.field.as_str())
            .collect::<Vec<_>>(),
        vec![".spec.jobTemplate.spec.template.spec.containers[name=\"app\"].image"]
    );

    // a stops applying its container: it goes, b's stays.
    let third = apply_as(Some(&second), "a", cron_job(json!([]))).expect("apply");
    let containers = &third["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers, &json!([{"name": "sidecar", "image": "s:1"}]));
}

#[test]
fn item_without_its_key_is_invalid() {
    let err = apply_as(None, "a", cron_job(json!([{"image": "x"}]))).expect_err("invalid");
    match err {
        ApplyError::Invalid(message) => assert_eq!(
            message,
            ".spec.jobTemplate.spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn container_ports_key_on_port_and_protocol() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}});
    let created = apply_as(None, "a", pod).expect("apply");
    let ports =
        &fields_of(&created, "a")["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:ports"];
    assert_eq!(
        ports,
        &json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
}

#[test]
fn finalizers_are_a_set() {
    let with = |finalizers: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "finalizers": finalizers}});
    let first = apply_as(None, "a", with(json!(["a.example/x"]))).expect("apply");
    assert_eq!(
        fields_of(&first, "a"),
        json!({"f:metadata": {"f:finalizers": {"v:\"a.example/x\"": {}}}})
    );
    let second = apply_as(Some(&first), "b", with(json!(["b.example/y"]))).expect("apply");
    assert_eq!(
        second["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    let third = apply_as(
        Some(&second),
        "a",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
    )
    .expect("apply");
    assert_eq!(third["metadata"]["finalizers"], json!(["b.example/y"]));
    assert_eq!(managers(&third), vec!["b"]);
}

#[test]
fn status_applies_are_their_own_entry() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"x": {"type": "string"}}},
        "status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["type"],
                           "items": {"type": "object"}}}}}});
    let lists = SchemaLists::new(&schema);
    let obj = |rest: Value| {
        let mut o = json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "Database", "metadata": {"name": "d"}});
        for (k, v) in rest.as_object().into_iter().flatten() {
            o[k] = v.clone();
        }
        o
    };
    let created = apply(
        None,
        &obj(json!({"spec": {"x": "1"}})),
        &opts("dbo"),
        &lists,
    )
    .expect("apply");
    let with_status = apply(
        Some(&created),
        &obj(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        &ApplyOptions {
            subresource: Some("status"),
            ..opts("dbo")
        },
        &lists,
    )
    .expect("status apply");
    let entries = with_status["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let status_entry = entries
        .iter()
        .find(|e| e["subresource"] == "status")
        .expect("a status entry");
    assert_eq!(
        status_entry["fieldsV1"],
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );
    // The main entry still owns spec, and the status apply did not prune it.
    assert_eq!(with_status["spec"]["x"], "1");
    assert!(
        entries
            .iter()
            .any(|e| e.get("subresource").is_none()
                && e["fieldsV1"] == json!({"f:spec": {"f:x": {}}}))
    );
}

#[test]
fn atomic_lists_are_owned_whole() {
    let first = apply_as(
        None,
        "a",
        json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"args": ["a", "b"]}}),
    )
    .expect("apply");
    assert_eq!(fields_of(&first, "a"), json!({"f:spec": {"f:args": {}}}));
    let err = apply_as(
        Some(&first),
        "b",
        json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"args": ["a"]}}),
    )
    .expect_err("args are a's");
    assert_eq!(conflicts(Err(err))[0].field, ".spec.args");
}

#[test]
fn a_no_op_apply_keeps_the_time() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");
    let again = apply(
        Some(&first),
        &config_map(json!({"x": "1"})),
        &ApplyOptions {
            time: T2,
            ..opts("a")
        },
        &BuiltinLists,
    )
    .expect("apply");
    assert_eq!(entry_of(&again, "a")["time"], T1);
    let changed = apply(
        Some(&first),
        &config_map(json!({"x": "2"})),
        &ApplyOptions {
            time: T2,
            ..opts("a")
        },
        &BuiltinLists,
    )
    .expect("apply");
    assert_eq!(entry_of(&changed, "a")["time"], T2);
}

fn upd(manager: &str) -> UpdateOptions<'_> {
    UpdateOptions {
        manager,
        api_version: "v1",
        time: T1,
        subresource: None,
    }
}

#[test]
fn update_on_create_owns_every_field_set() {
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"app": "x"}}, "data": {"k": "v"}});
    update(None, &mut created, &upd("kubectl-create"), &BuiltinLists);
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
        }])
    );
}

#[test]
fn update_takes_changed_fields_from_other_managers_and_drops_empty_entries() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");
    let mut edited = first.clone();
    edited["data"]["x"] = json!("2");
    update(
        Some(&first),
        &mut edited,
        &upd("kubectl-edit"),
        &BuiltinLists,
    );
    assert_eq!(managers(&edited), vec!["kubectl-edit"]);
    assert_eq!(
        fields_of(&edited, "kubectl-edit"),
        json!({"f:data": {"f:x": {}}})
    );
}

#[test]
fn update_without_changes_records_nothing() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");
    let mut same = first.clone();
    update(Some(&first), &mut same, &upd("kubectl-edit"), &BuiltinLists);
    assert_eq!(managers(&same), vec!["a"]);
}

#[test]
fn managed_fields_sent_by_clients() {
    let first = apply_as(None, "a", config_map(json!({"x": "1"}))).expect("apply");

    // `[]` is what a client unaware of managedFields may send: it must not wipe them.
    let mut unaware = first.clone();
    unaware["metadata"]["managedFields"] = json!([]);
    update(Some(&first), &mut unaware, &upd("client"), &BuiltinLists);
    assert_eq!(managers(&unaware), vec!["a"]);

    // `[{}]` is the documented way to clear them.
    let mut reset = first.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    update(Some(&first), &mut reset, &upd("client"), &BuiltinLists);
    assert!(
        reset["metadata"].get("managedFields").is_none(),
        "{reset:#}"
    );

    // Sending them back unchanged (GET then PUT) keeps them.
    let mut put = first.clone();
    put["data"]["z"] = json!("3");
    update(Some(&first), &mut put, &upd("client"), &BuiltinLists);
    assert_eq!(managers(&put), vec!["a", "client"]);
}

#[test]
fn applying_managed_fields_is_refused() {
    let mut cm = config_map(json!({}));
    cm["metadata"]["managedFields"] = json!([]);
    match apply_as(None, "a", cm) {
        Err(ApplyError::Invalid(m)) => assert_eq!(m, "metadata.managedFields must be nil"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn managed_fields_written_by_a_cluster_are_honoured() {
    // As `kubectl create` leaves them on a Deployment-like object.
    let live = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j",
        "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "batch/v1",
            "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}]},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}});
    let err = apply(
        Some(&live),
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}}),
        &ApplyOptions {
            api_version: "batch/v1",
            ..opts("dbo")
        },
        &BuiltinLists,
    )
    .expect_err("kubectl-create owns the image");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using batch/v1: .spec.template.spec.containers[name=\"app\"].image"
    );
}

fn custom(spec: Value) -> Value {
    json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "Database", "metadata": {"name": "d"}, "spec": spec})
}

#[test]
fn a_parent_left_empty_by_a_dropped_field_goes_too() {
    let first = apply_as(
        None,
        "a",
        custom(json!({"x": "1", "backup": {"cron": "@daily"}})),
    )
    .expect("apply");
    let second = apply_as(Some(&first), "a", custom(json!({"x": "1"}))).expect("apply");
    assert_eq!(second["spec"], json!({"x": "1"}));
}

#[test]
fn a_parent_another_manager_writes_into_stays() {
    let first = apply_as(
        None,
        "a",
        custom(json!({"x": "1", "backup": {"cron": "@daily"}})),
    )
    .expect("apply");
    let mut edited = first.clone();
    edited["spec"]["backup"]["enable"] = json!(true);
    update(
        Some(&first),
        &mut edited,
        &upd("kubectl-edit"),
        &BuiltinLists,
    );
    let second = apply_as(Some(&edited), "a", custom(json!({"x": "1"}))).expect("apply");
    assert_eq!(
        second["spec"],
        json!({"x": "1", "backup": {"enable": true}})
    );
}
