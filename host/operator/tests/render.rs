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
