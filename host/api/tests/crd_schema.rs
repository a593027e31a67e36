//! The generated CRDs: names, scope, columns, and a schema the API server accepts as structural.

use dbo_api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use regex::Regex;

fn crd(kind: &str) -> CustomResourceDefinition {
    crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn root(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema")
}

/// The schema at a dotted path of property names.
fn at<'a>(schema: &'a JSONSchemaProps, path: &str) -> &'a JSONSchemaProps {
    path.split('.').fold(schema, |node, key| {
        node.properties
            .as_ref()
            .and_then(|p| p.get(key))
            .unwrap_or_else(|| panic!("no property {key} in {path}"))
    })
}

fn one_of_required(schema: &JSONSchemaProps) -> Vec<Vec<String>> {
    schema
        .one_of
        .iter()
        .flatten()
        .map(|branch| branch.required.clone().unwrap_or_default())
        .collect()
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect()
}

const READY: &str = ".status.conditions[?(@.type==\"Ready\")].status";
const AGE: &str = ".metadata.creationTimestamp";

#[test]
fn names_scope_and_subresources_match_the_original_operator() {
    let expected = [
        (
            "DbInstance",
            "dbinstances.kci.rocks",
            "Cluster",
            Some("dbin"),
        ),
        ("Database", "databases.kci.rocks", "Namespaced", Some("db")),
        (
            "DbRestore",
            "dbrestores.kci.rocks",
            "Namespaced",
            Some("dbr"),
        ),
    ];
    let all = crds();
    assert_eq!(all.len(), expected.len());
    for (crd, (kind, name, scope, short)) in all.iter().zip(expected) {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, "kci.rocks");
        assert_eq!(crd.spec.scope, scope, "{kind}");
        let shorts = crd.spec.names.short_names.clone().unwrap_or_default();
        assert_eq!(shorts.first().map(String::as_str), short, "{kind}");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{kind} has a status subresource"
        );
    }
}

#[test]
fn printer_columns() {
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        columns(&crd("DbInstance")),
        pairs(&[
            ("Engine", ".spec.engine"),
            ("Ready", READY),
            ("Phase", ".status.phase"),
            ("Age", AGE)
        ])
    );
    assert_eq!(
        columns(&crd("Database")),
        pairs(&[
            ("Instance", ".spec.instance"),
            ("Ready", READY),
            ("Phase", ".status.phase"),
            ("Protected", ".spec.deletionProtected"),
            ("Age", AGE)
        ])
    );
    assert_eq!(
        columns(&crd("DbRestore")),
        pairs(&[
            ("Database", ".spec.database"),
            ("Phase", ".status.phase"),
            ("Age", AGE)
        ])
    );
}

#[test]
fn exactly_one_choices_are_one_of_required_lists() {
    let instance = crd("DbInstance");
    let spec = at(root(&instance), "spec");
    assert_eq!(
        one_of_required(spec),
        [vec!["generic"], vec!["amazon"], vec!["google"]]
    );
    assert_eq!(
        one_of_required(at(spec, "backup")),
        [vec!["s3"], vec!["bucket"]]
    );
    assert_eq!(
        one_of_required(at(spec, "backup.s3.auth")),
        [vec!["irsa"], vec!["accessKeySecret"], vec!["ambient"]]
    );
    let restore = crd("DbRestore");
    assert_eq!(
        one_of_required(at(root(&restore), "spec.snapshot")),
        [vec!["key"], vec!["latest"], vec!["pointInTime"]]
    );
}

#[test]
fn original_capitalised_namespaced_names_are_accepted() {
    let instance = crd("DbInstance");
    let admin = at(root(&instance), "spec.adminSecretRef");
    let keys: Vec<&String> = admin.properties.iter().flat_map(|p| p.keys()).collect();
    assert_eq!(keys, ["Name", "Namespace", "name", "namespace"]);
    assert_eq!(
        one_of_required(admin),
        [vec!["name", "namespace"], vec!["Name", "Namespace"]]
    );
    assert_eq!(admin.required, None, "required lives in the oneOf branches");
}

#[test]
fn value_constraints() {
    let instance = crd("DbInstance");
    let spec = at(root(&instance), "spec");
    for port in ["generic.port", "amazon.port"] {
        let port = at(spec, port);
        assert_eq!((port.minimum, port.maximum), (Some(1.0), Some(65535.0)));
    }
    assert_eq!(
        at(spec, "amazon.service").enum_.as_ref().map(Vec::len),
        Some(4)
    );
    let options = at(spec, "options");
    assert_eq!(options.type_.as_deref(), Some("object"));
    assert_eq!(options.x_kubernetes_preserve_unknown_fields, Some(true));

    let database = crd("Database");
    let spec = at(root(&database), "spec");
    assert_eq!(at(spec, "commission.schema.version").minimum, Some(1.0));
    assert_eq!(
        at(spec, "options").x_kubernetes_preserve_unknown_fields,
        Some(true)
    );

    let restore = crd("DbRestore");
    let snapshot = at(root(&restore), "spec.snapshot");
    assert_eq!(
        at(snapshot, "pointInTime").format.as_deref(),
        Some("date-time")
    );
    let latest = at(snapshot, "latest");
    assert_eq!(
        latest
            .enum_
            .as_ref()
            .map(|e| e.iter().map(|v| v.0.clone()).collect::<Vec<_>>()),
        Some(vec![serde_json::json!(true)])
    );
}

fn pattern(schema: &JSONSchemaProps) -> Regex {
    Regex::new(schema.pattern.as_deref().expect("a pattern")).expect("pattern compiles")
}

#[test]
fn engine_pattern_as_the_api_server_applies_it() {
    let instance = crd("DbInstance");
    let engine = pattern(at(root(&instance), "spec.engine"));
    for ok in ["postgres", "mysql", "my-engine2"] {
        assert!(engine.is_match(ok), "{ok}");
    }
    for bad in ["", "Postgres", "2pg", "pg_sql", &"a".repeat(64)] {
        assert!(!engine.is_match(bad), "{bad}");
    }
}

#[test]
fn cron_pattern_as_the_api_server_applies_it() {
    let database = crd("Database");
    let cron = pattern(at(root(&database), "spec.backup.cron"));
    // Empty stays legal: the original's manifests carry `cron: ""` with backups disabled.
    for ok in ["0 3 * * *", "*/15 0-6 1,15 * MON-FRI", "@daily", ""] {
        assert!(cron.is_match(ok), "{ok:?}");
    }
    for bad in ["0 3 * *", "0 0 3 * * *", "@reboot", "daily"] {
        assert!(!cron.is_match(bad), "{bad:?}");
    }
}

/// The rules of a structural schema that a derive can break, checked on every node.
fn check_structural(node: &JSONSchemaProps, path: &str, problems: &mut Vec<String>) {
    let escape_hatch = node.x_kubernetes_int_or_string == Some(true)
        || node.x_kubernetes_preserve_unknown_fields == Some(true);
    if node.type_.is_none() && !escape_hatch {
        problems.push(format!("{path}: no type"));
    }
    if node.ref_path.is_some() || node.definitions.is_some() || node.schema.is_some() {
        problems.push(format!("{path}: $ref, definitions or $schema"));
    }
    if node.properties.is_some() && node.additional_properties.is_some() {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if matches!(
        node.additional_properties,
        Some(JSONSchemaPropsOrBool::Bool(false))
    ) {
        problems.push(format!("{path}: additionalProperties: false"));
    }
    if let Some(format) = &node.format {
        // The formats Kubernetes recognises (others only draw warnings, but warnings are noise).
        let known = [
            "int32",
            "int64",
            "float",
            "double",
            "byte",
            "date",
            "date-time",
            "duration",
            "password",
            "uri",
            "email",
            "hostname",
            "ipv4",
            "ipv6",
            "cidr",
            "mac",
            "uuid",
        ];
        if !known.contains(&format.as_str()) {
            problems.push(format!("{path}: unrecognized format {format}"));
        }
    }
    for (combinator, branches) in [
        ("oneOf", &node.one_of),
        ("anyOf", &node.any_of),
        ("allOf", &node.all_of),
    ] {
        for (i, branch) in branches.iter().flatten().enumerate() {
            let only_required = JSONSchemaProps {
                required: branch.required.clone(),
                ..Default::default()
            };
            if *branch != only_required {
                problems.push(format!(
                    "{path}.{combinator}[{i}]: may only list required fields"
                ));
            }
            for field in branch.required.iter().flatten() {
                if !node
                    .properties
                    .as_ref()
                    .is_some_and(|p| p.contains_key(field))
                {
                    problems.push(format!(
                        "{path}.{combinator}[{i}]: requires {field}, which is no property"
                    ));
                }
            }
        }
    }
    for (key, child) in node.properties.iter().flatten() {
        check_structural(child, &format!("{path}.{key}"), problems);
    }
    match &node.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            check_structural(item, &format!("{path}[]"), problems)
        }
        Some(JSONSchemaPropsOrArray::Schemas(_)) => {
            problems.push(format!("{path}: items must be a single schema"))
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &node.additional_properties {
        check_structural(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn schemas_are_structural() {
    let mut problems = Vec::new();
    for crd in crds() {
        let schema = root(&crd);
        assert_eq!(schema.type_.as_deref(), Some("object"));
        check_structural(schema, &crd.spec.names.kind, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_own_field_is_described() {
    // `kubectl explain` is only as useful as these descriptions. Embedded Kubernetes types
    // (volumes, resources, conditions) bring their own and are not walked.
    fn walk(node: &JSONSchemaProps, path: &str, missing: &mut Vec<String>) {
        for (key, child) in node.properties.iter().flatten() {
            let path = format!("{path}.{key}");
            if child.description.as_deref().is_none_or(str::is_empty) {
                missing.push(path.clone());
            }
            let embedded = ["volumes", "volumeMounts", "resources", "conditions"];
            if !embedded.contains(&key.as_str()) {
                walk(child, &path, missing);
            }
        }
    }
    let mut missing = Vec::new();
    for crd in crds() {
        let schema = root(&crd);
        for part in ["spec", "status"] {
            walk(
                at(schema, part),
                &format!("{}.{part}", crd.spec.names.kind),
                &mut missing,
            );
        }
    }
    assert!(
        missing.is_empty(),
        "fields without description:\n{}",
        missing.join("\n")
    );
}

#[test]
fn yaml_starts_with_the_generated_marker_and_round_trips() {
    let yaml = dbo_api::crds_yaml();
    assert!(yaml.starts_with("# Generated by db-operator crd; do not edit.\n"));
    let parsed: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("each document is a CRD"))
        .collect();
    assert_eq!(parsed, crds());
}
