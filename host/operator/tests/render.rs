//! `db-operator render` as a user runs it: golden output for the examples, and clear errors
//! for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn db_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("db-operator runs")
}

fn render_ok(file: &str) -> String {
    let out = db_operator(&["render", "-f", file, "--insecure-password-seed", "7"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "render {file} failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn render_err(file: &str) -> String {
    let out = db_operator(&["render", "-f", file]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "render {file} should fail cleanly: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing may be printed on failure");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn postgres_example_renders_every_object() {
    let yaml = render_ok("examples/postgres.yaml");
    insta::assert_snapshot!("postgres", yaml);
    let docs: Vec<serde_json::Value> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).expect("each document is YAML"))
        .collect();
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("Secret", "orders-db-credentials")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("CronJob", "orders-backup")), "{kinds:?}");
    assert!(
        kinds.contains(&("Job", "orders-before-migration-restore")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, n)| *k == "Job" && n.contains("commission")),
        "{kinds:?}"
    );
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["schedule"], "15 3 * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    // The admin password of the input never reaches an application namespace.
    assert!(
        !yaml.contains("change-me"),
        "admin password leaked into rendered objects"
    );
}

#[test]
fn amazon_irsa_example_merges_the_users_backup_settings() {
    let yaml = render_ok("examples/postgres-amazon-irsa.yaml");
    insta::assert_snapshot!("postgres-amazon-irsa", yaml);
    assert!(yaml.contains("eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/db-backup"));
    assert!(yaml.contains("claimName: billing-backup-scratch"));
    assert!(yaml.contains("fsGroup: 2000"));
    assert!(yaml.contains("name: billing-dump"));
}

#[test]
fn same_seed_same_output_and_secrets_are_generated_by_the_host() {
    let a = render_ok("examples/postgres.yaml");
    let b = render_ok("examples/postgres.yaml");
    assert_eq!(a, b);
    let out = db_operator(&[
        "render",
        "-f",
        "examples/postgres.yaml",
        "--insecure-password-seed",
        "8",
    ]);
    assert!(out.status.success());
    assert_ne!(
        String::from_utf8_lossy(&out.stdout),
        a,
        "the seed drives the generated password"
    );
}

#[test]
fn crd_command_matches_the_checked_in_copy() {
    let out = db_operator(&["crd"]);
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(repo().join("deploy/crds/crds.yaml"))
        .expect("deploy/crds/crds.yaml");
    assert!(
        String::from_utf8_lossy(&out.stdout) == checked_in,
        "deploy/crds/crds.yaml is stale: run `cargo run -- crd > deploy/crds/crds.yaml`"
    );
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let e = render_err("host/operator/tests/bad/malformed.yaml");
    assert!(e.contains("malformed.yaml"), "{e}");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn wrong_field_type_names_the_field() {
    let e = render_err("host/operator/tests/bad/port-type.yaml");
    assert!(e.contains("spec.generic.port"), "{e}");
}

#[test]
fn two_backends_are_refused() {
    let e = render_err("host/operator/tests/bad/two-backends.yaml");
    assert!(e.contains("generic") && e.contains("amazon"), "{e}");
    assert!(e.contains("exactly one"), "{e}");
}

#[test]
fn unknown_engine_lists_the_available_ones() {
    let e = render_err("host/operator/tests/bad/unknown-engine.yaml");
    assert!(e.contains("spec.engine"), "{e}");
    assert!(e.contains("oracle"), "{e}");
    assert!(e.contains("postgres"), "{e}");
}

#[test]
fn invalid_cron_names_the_field_and_value() {
    let e = render_err("host/operator/tests/bad/invalid-cron.yaml");
    assert!(e.contains("spec.backup.cron"), "{e}");
    assert!(e.contains("every day"), "{e}");
}

#[test]
fn database_on_a_missing_instance_is_refused() {
    let e = render_err("host/operator/tests/bad/missing-instance.yaml");
    assert!(e.contains("Database shop/orders"), "{e}");
    assert!(e.contains("spec.instance"), "{e}");
}

#[test]
fn a_trapping_plugin_is_a_clear_error_not_a_crash() {
    let fixture = std::env::temp_dir().join(format!("dbo-panic-{}.wasm", std::process::id()));
    std::fs::write(&fixture, dbo_plugin_artifacts::fixtures::PANIC).expect("write fixture");
    let out = db_operator(&[
        "render",
        "-f",
        "examples/postgres.yaml",
        "--plugin",
        &format!("postgres={}", fixture.display()),
    ]);
    let _ = std::fs::remove_file(&fixture);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Database shop/orders"), "{stderr}");
    assert!(
        stderr.contains("sha256:"),
        "the plugin digest is named: {stderr}"
    );
    // Exit code 1, not 101: the guest panicked, the host did not.
    assert!(
        !stderr.contains("thread 'main'"),
        "the host itself must not panic: {stderr}"
    );
    assert!(stderr.contains("backup crashed"), "{stderr}");
}

#[test]
fn plugin_inspect_shows_the_builtin_engine() {
    let fixture = std::env::temp_dir().join(format!("dbo-pg-{}.wasm", std::process::id()));
    std::fs::write(&fixture, dbo_plugin_artifacts::POSTGRES).expect("write plugin");
    let out = db_operator(&["plugin", "inspect", &fixture.display().to_string()]);
    let _ = std::fs::remove_file(&fixture);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("name:         postgres"), "{stdout}");
    assert!(stdout.contains("api version:  0.1.0"), "{stdout}");
    assert!(stdout.contains("digest:       sha256:"), "{stdout}");
    assert!(stdout.contains("backup"), "{stdout}");
}

/// The rendered documents of `yaml`, as JSON.
fn documents(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).expect("each document is YAML"))
        .collect()
}

/// The pod specs of every Job and CronJob.
fn pods(docs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    docs.iter()
        .filter_map(|d| match d["kind"].as_str() {
            Some("Job") => Some(&d["spec"]["template"]["spec"]),
            Some("CronJob") => Some(&d["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
            _ => None,
        })
        .collect()
}

/// What every engine's example must show: its golden output, a commissioning Job, a backup
/// CronJob, a restore Job, and no literal secret in any pod.
fn engine_example(file: &str) -> Vec<serde_json::Value> {
    let yaml = render_ok(&format!("examples/{file}.yaml"));
    insta::assert_snapshot!(file, yaml);
    let docs = documents(&yaml);
    let names = |kind: &str| -> Vec<String> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        names("Job").iter().any(|n| n.contains("commission")),
        "{file}: no commissioning Job in {:?}",
        names("Job")
    );
    assert!(
        names("Job").iter().any(|n| n.ends_with("-restore")),
        "{file}: no restore Job"
    );
    assert!(!names("CronJob").is_empty(), "{file}: no backup CronJob");
    for pod in pods(&docs) {
        let text = pod.to_string();
        assert!(
            !text.contains("change-me"),
            "{file}: a secret value in {text}"
        );
        for container in pod["containers"].as_array().expect("containers") {
            for var in container["env"].as_array().into_iter().flatten() {
                let name = var["name"].as_str().unwrap_or_default();
                // A path to a mounted Secret file is fine; a secret's value is not.
                let path = name.ends_with("_FILE") || name.ends_with("_DIR");
                if (name.contains("PASSWORD") || name.starts_with("AWS_")) && !path {
                    assert!(
                        var.get("value").is_none(),
                        "{file}: {name} must come from a Secret: {var}"
                    );
                }
            }
        }
    }
    docs
}

/// The backup pods authenticate to S3 with the access-key Secret, by reference.
fn assert_access_keys(docs: &[serde_json::Value], secret: &str) {
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    let env = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    let key = env
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "AWS_SECRET_ACCESS_KEY")
        .unwrap_or_else(|| panic!("no AWS_SECRET_ACCESS_KEY in {env}"));
    assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], secret, "{key}");
}

/// The backup pods run as a ServiceAccount annotated with the IRSA role.
fn assert_irsa(docs: &[serde_json::Value], role: &str) {
    let account = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("an IRSA ServiceAccount");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        role
    );
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"],
        account["metadata"]["name"]
    );
}

#[test]
fn mysql_examples_render_on_the_generic_and_the_amazon_backend() {
    let docs = engine_example("mysql");
    assert_access_keys(&docs, "mysql-backup-s3");
    let docs = engine_example("mysql-amazon-irsa");
    assert_irsa(&docs, "arn:aws:iam::123456789012:role/db-backup");
}

#[test]
fn mongodb_examples_render_on_the_generic_and_the_amazon_backend() {
    let docs = engine_example("mongodb");
    assert_access_keys(&docs, "db-backup-s3");
    let docs = engine_example("mongodb-amazon-documentdb");
    assert_irsa(&docs, "arn:aws:iam::123456789012:role/db-backup");
}

#[test]
fn elasticsearch_examples_render_with_the_schema_and_a_named_backup_container() {
    let docs = engine_example("elasticsearch");
    let copy = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the schema copy");
    assert_eq!(
        copy["metadata"]["name"], "dbo-shop-catalog-schema-v1",
        "{copy}"
    );
    assert_eq!(copy["immutable"], true);
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    let container = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["name"], "catalog-snapshot",
        "the example names its backup container"
    );
    let docs = engine_example("elasticsearch-amazon");
    assert_irsa(&docs, "arn:aws:iam::123456789012:role/logs-snapshots");
}

#[test]
fn neo4j_examples_render_for_both_editions() {
    let yaml = render_ok("examples/neo4j.yaml");
    insta::assert_snapshot!("neo4j", yaml);
    let docs = documents(&yaml);
    assert!(
        !docs.iter().any(|d| d["kind"] == "CronJob"),
        "Community Edition has no online backup"
    );
    let docs = engine_example("neo4j-enterprise-amazon");
    assert_irsa(&docs, "arn:aws:iam::123456789012:role/neo4j-backup");
}

#[test]
fn an_unknown_engine_option_is_named_with_the_known_ones() {
    let e = render_err("host/operator/tests/bad/mysql-unknown-option.yaml");
    assert!(
        e.contains("DbInstance mariadb: spec.options.sslmode"),
        "{e}"
    );
    assert!(e.contains("sslMode"), "{e}");
}

#[test]
fn a_missing_schema_config_map_is_named() {
    let e = render_err("host/operator/tests/bad/elasticsearch-missing-schema.yaml");
    assert!(
        e.contains("spec.commission.schema.configMapRef.name")
            && e.contains("\"catalog-schema\" does not exist"),
        "{e}"
    );
}

#[test]
fn an_invalid_schema_version_is_named() {
    let e = render_err("host/operator/tests/bad/elasticsearch-schema-version.yaml");
    assert!(e.contains("spec.commission.schema.version"), "{e}");
}

#[test]
fn a_schema_for_an_engine_without_schemas_is_refused() {
    let e = render_err("host/operator/tests/bad/postgres-schema.yaml");
    assert!(
        e.contains("spec.commission.schema: engine postgres does not apply schemas"),
        "{e}"
    );
}

#[test]
fn an_unknown_neo4j_edition_lists_the_editions() {
    let e = render_err("host/operator/tests/bad/neo4j-edition.yaml");
    assert!(e.contains("spec.options.edition"), "{e}");
    assert!(e.contains("community") && e.contains("enterprise"), "{e}");
}

#[test]
fn a_mongodb_role_outside_the_allowed_set_is_named() {
    let e = render_err("host/operator/tests/bad/mongodb-role.yaml");
    assert!(e.contains("spec.options.roles[1]"), "{e}");
    assert!(e.contains("readWrite"), "{e}");
}
