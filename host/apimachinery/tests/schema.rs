//! Validation, pruning and defaulting against the real CRD schemas of this project.

use dbo_apimachinery::schema::{Cause, apply_defaults, prune, validate};
use serde_json::{Value, json};

fn crd_schema(kind: &str) -> Value {
    dbo_api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("a CRD serializes to JSON"))
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .map(|crd| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("dbo_api::crds() has no {kind}"))
}

fn database(spec: Value) -> Value {
    json!({
        "apiVersion": "kci.rocks/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": spec,
    })
}

fn causes(object: &Value, kind: &str) -> Vec<Cause> {
    validate(object, &crd_schema(kind))
}

#[test]
fn a_complete_database_is_valid() {
    let db = database(json!({
        "instance": "pg",
        "secretName": "app-credentials",
        "backup": {"enable": true, "cron": "0 3 * * *", "fsGroup": 1000},
        "extensions": ["pgcrypto"],
        "options": {"anything": {"goes": [1, 2]}},
    }));
    assert_eq!(causes(&db, "Database"), vec![]);
}

#[test]
fn missing_required_fields_are_named() {
    let db = database(json!({"instance": "pg"}));
    assert_eq!(
        causes(&db, "Database"),
        vec![Cause {
            field: "spec.secretName".into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }]
    );
    let no_spec =
        json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "Database", "metadata": {"name": "x"}});
    assert_eq!(causes(&no_spec, "Database")[0].field, "spec");
}

#[test]
fn wrong_types_read_like_the_api_server() {
    let db = database(json!({
        "instance": 7,
        "secretName": "s",
        "backup": {"fsGroup": "1000", "enable": "yes"},
    }));
    let found = causes(&db, "Database");
    assert!(
        found.contains(&Cause {
            field: "spec.backup.fsGroup".into(),
            reason: "FieldValueTypeInvalid",
            message: "Invalid value: \"string\": spec.backup.fsGroup in body must be of type integer: \"string\"".into(),
        }),
        "{found:#?}"
    );
    assert!(found.iter().any(|c| c.field == "spec.instance"
        && c.message.ends_with("must be of type string: \"integer\"")));
    assert!(found.iter().any(|c| c.field == "spec.backup.enable"
        && c.message.ends_with("must be of type boolean: \"string\"")));
}

#[test]
fn a_float_is_not_an_integer_but_an_integer_is_a_number() {
    let schema = json!({"type": "object", "properties": {
        "i": {"type": "integer"}, "n": {"type": "number"}}});
    assert_eq!(validate(&json!({"i": 3, "n": 3}), &schema), vec![]);
    let found = validate(&json!({"i": 1.5}), &schema);
    assert_eq!(
        found[0].message,
        "Invalid value: \"number\": i in body must be of type integer: \"number\""
    );
}

#[test]
fn pattern_and_bounds_are_enforced() {
    let db = database(json!({
        "instance": "pg",
        "secretName": "s",
        "backup": {"cron": "every day", "fsGroup": -1},
    }));
    let found = causes(&db, "Database");
    let cron = found
        .iter()
        .find(|c| c.field == "spec.backup.cron")
        .expect("the cron pattern is checked");
    assert_eq!(cron.reason, "FieldValueInvalid");
    assert!(
        cron.message
            .starts_with("Invalid value: \"every day\": spec.backup.cron in body should match '"),
        "{}",
        cron.message
    );
    let fs_group = found
        .iter()
        .find(|c| c.field == "spec.backup.fsGroup")
        .expect("the minimum is checked");
    assert_eq!(
        fs_group.message,
        "Invalid value: -1: spec.backup.fsGroup in body should be greater than or equal to 0"
    );
}

#[test]
fn enum_lists_the_supported_values() {
    let schema =
        json!({"type": "object", "properties": {"mode": {"type": "string", "enum": ["a", "b"]}}});
    assert_eq!(
        validate(&json!({"mode": "x"}), &schema),
        vec![Cause {
            field: "mode".into(),
            reason: "FieldValueNotSupported",
            message: "Unsupported value: \"x\": supported values: \"a\", \"b\"".into(),
        }]
    );
}

#[test]
fn null_is_accepted_only_where_nullable() {
    let db = database(json!({"instance": "pg", "secretName": "s", "backup": null}));
    assert_eq!(causes(&db, "Database"), vec![]);
    let db = database(json!({"instance": null, "secretName": "s"}));
    let found = causes(&db, "Database");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .message
            .ends_with("must be of type string: \"null\"")
    );
}

#[test]
fn one_of_rejects_two_snapshot_choices() {
    let restore = json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore", "metadata": {"name": "r"},
        "spec": {"database": "app", "snapshot": {"latest": true, "key": "a.dump"}},
    });
    let found = causes(&restore, "DbRestore");
    assert!(
        found.iter().any(|c| c.field == "spec.snapshot"
            && c.message
                .contains("must validate one and only one schema (oneOf)")),
        "{found:#?}"
    );
    let fine = json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore", "metadata": {"name": "r"},
        "spec": {"database": "app", "snapshot": {"pointInTime": "2024-05-01T12:00:00Z"}},
    });
    assert_eq!(causes(&fine, "DbRestore"), vec![]);
}

#[test]
fn date_time_format_is_checked() {
    let restore = json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore", "metadata": {"name": "r"},
        "spec": {"database": "app", "snapshot": {"pointInTime": "yesterday"}},
    });
    let found = causes(&restore, "DbRestore");
    assert!(
        found.iter().any(|c| c.field == "spec.snapshot.pointInTime"
            && c.message.contains("must be of type date-time")),
        "{found:#?}"
    );
}

#[test]
fn lengths_counts_and_list_uniqueness() {
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 3, "minLength": 2},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }});
    let found = validate(
        &json!({"name": "toolong", "tags": ["a", "a", "b"], "ports": [{"name": "x"}, {"name": "x"}]}),
        &schema,
    );
    let reasons: Vec<(&str, &str)> = found.iter().map(|c| (c.field.as_str(), c.reason)).collect();
    assert!(
        reasons.contains(&("name", "FieldValueTooLong")),
        "{found:#?}"
    );
    assert!(
        reasons.contains(&("tags", "FieldValueTooMany")),
        "{found:#?}"
    );
    assert!(
        reasons.contains(&("tags[1]", "FieldValueDuplicate")),
        "{found:#?}"
    );
    assert!(
        reasons.contains(&("ports[1]", "FieldValueDuplicate")),
        "{found:#?}"
    );
    let short = validate(&json!({"name": "a"}), &schema);
    assert_eq!(
        short[0].message,
        "Invalid value: \"a\": name in body should be at least 2 chars long"
    );
}

#[test]
fn prune_drops_undeclared_fields_and_reports_them() {
    let mut db = database(json!({
        "instance": "pg",
        "secretName": "s",
        "typo": true,
        "backup": {"cron": "@daily", "extra": 1},
        "options": {"kept": {"because": "preserve-unknown-fields"}},
    }));
    db["metadata"]["labels"] = json!({"a": "b"});
    db["unknownTopLevel"] = json!(1);
    let dropped = prune(&mut db, &crd_schema("Database"));
    assert_eq!(
        {
            let mut d = dropped.clone();
            d.sort();
            d
        },
        vec!["spec.backup.extra", "spec.typo", "unknownTopLevel"]
    );
    assert_eq!(
        db["spec"]["options"]["kept"]["because"],
        "preserve-unknown-fields"
    );
    assert_eq!(db["metadata"]["labels"]["a"], "b");
    assert_eq!(db["apiVersion"], "kci.rocks/v1alpha1");
    assert!(db["spec"].get("typo").is_none());
}

#[test]
fn prune_descends_into_list_items() {
    let schema = json!({"type": "object", "properties": {"items": {"type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}});
    let mut object = json!({"items": [{"name": "a", "bogus": 1}]});
    assert_eq!(prune(&mut object, &schema), vec!["items[0].bogus"]);
    assert_eq!(object, json!({"items": [{"name": "a"}]}));
}

#[test]
fn defaults_fill_missing_fields_of_present_objects_only() {
    let schema = crd_schema("Database");
    let mut db = database(json!({"instance": "pg", "secretName": "s", "backup": {}}));
    apply_defaults(&mut db, &schema);
    assert_eq!(db["spec"]["backup"], json!({"cron": "", "enable": false}));
    assert_eq!(db["spec"]["deletionProtected"], false);
    assert_eq!(db["spec"]["dropOnDelete"], false);

    // spec.backup is absent: no object, so no defaults inside it.
    let mut db = database(json!({"instance": "pg", "secretName": "s"}));
    apply_defaults(&mut db, &schema);
    assert!(db["spec"].get("backup").is_none());
}

#[test]
fn defaults_do_not_override_values_and_replace_disallowed_null() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "string", "default": "x"},
        "b": {"type": "string", "default": "y"},
        "c": {"type": "object", "default": {}, "properties": {"d": {"type": "integer", "default": 5}}},
    }});
    let mut object = json!({"a": "set", "b": null});
    apply_defaults(&mut object, &schema);
    assert_eq!(object, json!({"a": "set", "b": "y", "c": {"d": 5}}));
}

#[test]
fn a_null_the_schema_does_not_allow_reads_as_unset() {
    let schema = crd_schema("Database");
    let mut db = database(json!({"instance": null, "secretName": "s", "backup": null}));
    apply_defaults(&mut db, &schema);
    // backup is nullable and stays; instance is not and has no default, so it is dropped and the
    // user hears that it is required rather than that null is not a string.
    assert_eq!(db["spec"]["backup"], Value::Null);
    assert!(db["spec"].get("instance").is_none());
    assert_eq!(
        validate(&db, &schema),
        vec![Cause {
            field: "spec.instance".into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }]
    );
}
