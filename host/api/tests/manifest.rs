//! Parsing what a user would `kubectl apply`.

use dbo_api::manifest::{ManifestError, parse};
use dbo_api::{Backend, validate_instance};

const GOOD: &str = r#"
# A migrated manifest of the original operator, plus the new kinds.
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: pg
spec:
  engine: postgres
  adminSecretRef:
    Namespace: db-operator
    Name: pg-admin
  generic:
    host: pg.db.svc
    port: 5432
---
---
apiVersion: v1
kind: Secret
metadata:
  name: pg-admin
  namespace: db-operator
stringData:
  password: hunter2
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: app
spec:
  instance: pg
  secretName: app-creds
  deletionProtected: true
  backup:
    enable: true
    cron: "0 3 * * *"
---
apiVersion: v1
kind: List
items:
  - apiVersion: kci.rocks/v1alpha1
    kind: Database
    metadata: {name: reports, namespace: analytics}
    spec: {instance: pg, secretName: reports-creds}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: reports-schema, namespace: analytics}
    data: {V1.sql: "create table t (id int);"}
---
apiVersion: kci.rocks/v1alpha1
kind: DbRestore
metadata:
  name: app-restore
  namespace: apps
spec:
  database: app
  snapshot:
    latest: true
"#;

#[test]
fn a_multi_document_file_is_grouped_by_kind() {
    let m = parse(GOOD).expect("parses");
    assert_eq!(m.instances.len(), 1);
    assert_eq!(m.secrets.len(), 1);
    assert_eq!(m.config_maps.len(), 1);
    assert_eq!(m.restores.len(), 1);
    let names: Vec<_> = m
        .databases
        .iter()
        .map(|d| {
            (
                d.namespace_or_default(),
                d.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("default".to_owned(), "app".to_owned()),
            ("analytics".to_owned(), "reports".to_owned())
        ]
    );
    assert_eq!(
        m.databases[0].metadata.namespace.as_deref(),
        Some("default")
    );

    let pg = m.instance("pg").expect("instance pg");
    assert_eq!(pg.spec.admin_secret_ref.to_string(), "db-operator/pg-admin");
    assert!(matches!(pg.spec.backend(), Some(Backend::Generic(g)) if g.port == 5432));
    assert!(m.secret("db-operator", "pg-admin").is_some());
    assert!(m.config_map("analytics", "reports-schema").is_some());
    assert_eq!(m.restores[0].spec.snapshot.latest, Some(true));
}

#[test]
fn a_type_error_names_document_object_and_field() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n\
                apiVersion: kci.rocks/v1alpha1\nkind: DbInstance\nmetadata: {name: pg}\n\
                spec:\n  engine: postgres\n  adminSecretRef: {namespace: a, name: b}\n  generic: {host: h, port: \"abc\"}\n";
    let err = parse(yaml).expect_err("port is no number");
    assert_eq!(
        err.to_string(),
        "document 2 (DbInstance \"pg\"): spec.generic.port: invalid type: string \"abc\", expected u16"
    );
    assert!(
        matches!(err, ManifestError::Invalid { ref field, .. } if field == "spec.generic.port")
    );
}

#[test]
fn malformed_yaml_carries_line_and_column() {
    let yaml =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\nkind: Database\nspec: [unclosed\n";
    match parse(yaml) {
        Err(ManifestError::Syntax { document, line, .. }) => {
            assert_eq!(document, 2);
            assert!(line.is_some_and(|l| l >= 6), "line {line:?}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let message = parse(yaml).expect_err("malformed").to_string();
    assert!(
        message.starts_with("document 2: invalid YAML: "),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");
}

#[test]
fn an_unknown_kind_is_named_with_its_document() {
    let yaml = "apiVersion: kci.rocks/v1alpha1\nkind: DbInstance\nmetadata: {name: pg}\nspec: {engine: pg, adminSecretRef: {namespace: a, name: b}}\n---\n\
                apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
    let message = parse(yaml).expect_err("unknown kind").to_string();
    assert!(
        message.starts_with(
            "document 2 (Deployment \"web\"): unknown kind \"Deployment\" with apiVersion \"apps/v1\"; expected DbInstance"
        ),
        "{message}"
    );
}

#[test]
fn two_backends_parse_and_fail_validation() {
    let yaml = r"
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata: {name: pg}
spec:
  engine: postgres
  adminSecretRef: {namespace: a, name: b}
  generic: {host: h, port: 5432}
  google: {instance: i, configmapRef: {namespace: a, name: c}}
";
    let m = parse(yaml).expect("the schema allows it; validation does not");
    let errors = validate_instance(&m.instances[0]);
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["spec: set exactly one of generic, amazon, google; found generic and google"]
    );
}

#[test]
fn unknown_fields_are_errors_like_kubectl_strict_validation() {
    let yaml = "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata: {name: app}\n\
                spec:\n  instance: pg\n  secretName: s\n  deletionProtect: true\n  backup: {enable: true, cron: '* * * * *', volumes: [{name: v, emptyDir: {}, bogus: 1}]}\n";
    let message = parse(yaml).expect_err("misspelt field").to_string();
    assert_eq!(
        message,
        "document 1 (Database \"app\"): unknown fields spec.deletionProtect, spec.backup.volumes[0].bogus; remove them or correct their names"
    );
}

#[test]
fn engine_options_keep_any_keys() {
    let yaml = "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata: {name: app}\n\
                spec: {instance: pg, secretName: s, options: {dropPublicSchema: true, schemas: [a, b]}}\n";
    let m = parse(yaml).expect("options are opaque");
    assert_eq!(
        m.databases[0].spec.options,
        Some(serde_json::json!({"dropPublicSchema": true, "schemas": ["a", "b"]}))
    );
}

#[test]
fn a_served_kind_in_another_version_says_which_version_to_use() {
    let yaml = "apiVersion: kci.rocks/v1beta1\nkind: Database\nmetadata: {name: app}\nspec: {}\n";
    let message = parse(yaml).expect_err("v1beta1").to_string();
    assert_eq!(
        message,
        "document 1 (Database \"app\"): apiVersion \"kci.rocks/v1beta1\" is not served; db-operator serves Database as kci.rocks/v1alpha1: change apiVersion to that"
    );
}

#[test]
fn list_items_are_numbered() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: ok}\n\
                - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: bad}\n  data: [1]\n";
    let message = parse(yaml).expect_err("data is no map").to_string();
    assert!(
        message.starts_with("document 1, item 2 (ConfigMap \"bad\"): data: invalid type: sequence"),
        "{message}"
    );
}

#[test]
fn a_list_inside_a_list_is_rejected() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n";
    let message = parse(yaml).expect_err("nested list").to_string();
    assert_eq!(
        message,
        "document 1, item 1 (List): kind: a List inside a List is not supported; move its items into the outer list"
    );
}

#[test]
fn documents_without_type_or_shape_are_rejected() {
    let message = parse("metadata: {name: x}\n")
        .expect_err("no kind")
        .to_string();
    assert!(
        message.starts_with("document 1: `apiVersion` is missing or not a string"),
        "{message}"
    );
    let message = parse("apiVersion: v1\n").expect_err("no kind").to_string();
    assert!(message.contains("`kind` is missing"), "{message}");
    let message = parse("---\njust a string\n")
        .expect_err("scalar")
        .to_string();
    assert_eq!(
        message,
        "document 1: expected a mapping with apiVersion, kind and metadata, found a string"
    );
}

#[test]
fn the_same_object_twice_is_an_error() {
    let db = "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata: {name: app}\nspec: {instance: pg, secretName: s}\n";
    let twice = format!(
        "{db}---\n{}",
        db.replace(
            "metadata: {name: app}",
            "metadata: {name: app, namespace: default}"
        )
    );
    let message = parse(&twice).expect_err("duplicate").to_string();
    assert_eq!(
        message,
        "document 2 (Database \"app\"): the same object is already defined by document 1 (Database \"app\"); remove one of them"
    );
}

#[test]
fn empty_input_is_no_objects() {
    assert_eq!(parse("").expect("empty"), Default::default());
    assert_eq!(
        parse("---\n# nothing\n---\n").expect("empty docs"),
        Default::default()
    );
}
