//! `db-operator plugin test` as a plugin author runs it: the built-in engines pass, and each
//! deliberately broken plugin is caught by the check that names what to fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn write_plugin(dir: &Path, name: &str, wasm: &[u8]) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wasm).expect("write plugin");
    path
}

fn plugin_test(plugin: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args(["plugin", "test"])
        .arg(plugin)
        .args(extra)
        .output()
        .expect("db-operator runs")
}

/// Runs the suite with `--format json`; returns the exit code and the report.
fn json_report(plugin: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = plugin_test(plugin, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "report is JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks is a list")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Asserts the fixture fails exactly `name` (exit 1) and returns that check's message.
fn fails_only(fixture: &str, wasm: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(dir.path(), fixture, wasm);
    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["passed"], false);
    assert_eq!(failed(&report), vec![name.to_string()], "{report:#}");
    assert_eq!(report["plugin"]["name"], fixture);
    check(&report, name)["message"]
        .as_str()
        .expect("message")
        .to_string()
}

#[test]
fn report_has_every_check_in_order_with_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(dir.path(), "postgres", dbo_plugin_artifacts::POSTGRES);
    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "load",
            "describe",
            "capabilities",
            "kinds-and-policy",
            "determinism",
            "secrets",
            "robustness",
            "budgets",
            "cases"
        ]
    );
    assert_eq!(report["passed"], true);
    assert!(
        report["plugin"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{report:#}"
    );
    assert_eq!(report["figures"]["limits"]["timeoutMs"], 2000);
    assert_eq!(report["figures"]["limits"]["memoryMib"], 64);
    let backup = &report["figures"]["exports"]["backup"];
    assert!(
        backup["calls"].as_u64().is_some_and(|n| n >= 2),
        "{report:#}"
    );
    assert!(
        backup["maxMicros"].as_u64().is_some_and(|n| n > 0),
        "{report:#}"
    );
    assert_eq!(check(&report, "cases")["status"], "skip");
}

#[test]
fn every_builtin_engine_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, wasm) in dbo_plugin_artifacts::builtin_engines() {
        let plugin = write_plugin(dir.path(), name, wasm);
        let mut extra = Vec::new();
        // Neo4j needs `edition`; a case supplies it, as the report tells its author to do.
        // Enterprise, since Community Edition has no online backups to check.
        let cases = dir.path().join(format!("{name}-cases"));
        if *name == "neo4j" {
            std::fs::create_dir_all(cases.join("enterprise")).expect("case dir");
            let example = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../examples/neo4j-enterprise-amazon.yaml"),
            )
            .expect("neo4j example");
            std::fs::write(cases.join("enterprise/input.yaml"), example).expect("input");
            let (code, report) =
                json_report(&plugin, &["--cases", cases.to_str().unwrap(), "--update"]);
            assert_eq!(code, Some(0), "{report:#}");
            extra = vec!["--cases", cases.to_str().unwrap()];
        }
        let (code, report) = json_report(&plugin, &extra);
        assert_eq!(code, Some(0), "{name}: {report:#}");
        assert!(failed(&report).is_empty(), "{name}: {report:#}");
        for c in [
            "capabilities",
            "kinds-and-policy",
            "determinism",
            "secrets",
            "robustness",
        ] {
            assert_eq!(
                check(&report, c)["status"],
                "pass",
                "{name} {c}: {report:#}"
            );
        }
    }
}

#[test]
fn engine_that_needs_options_is_skipped_with_a_hint_not_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(dir.path(), "neo4j", dbo_plugin_artifacts::NEO4J);
    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    let c = check(&report, "capabilities");
    assert_eq!(c["status"], "skip");
    let message = c["message"].as_str().unwrap();
    assert!(message.contains("edition"), "{message}");
    assert!(message.contains("add a case"), "{message}");
}

#[test]
fn nondeterministic_output_is_caught() {
    let message = fails_only(
        "nondeterministic",
        dbo_plugin_artifacts::fixtures::NONDETERMINISTIC,
        "determinism",
    );
    assert!(
        message.starts_with("the same request got different answers: backup:"),
        "{message}"
    );
    assert!(message.contains("--run-id="), "{message}");
    assert!(message.contains("no clocks, random numbers"), "{message}");
}

#[test]
fn literal_password_env_is_caught() {
    let message = fails_only(
        "secret-leak",
        dbo_plugin_artifacts::fixtures::SECRET_LEAK,
        "secrets",
    );
    assert!(message.contains("env DB_PASSWORD"), "{message}");
    assert!(message.contains("literal value"), "{message}");
    assert!(message.contains("valueFrom.secretKeyRef"), "{message}");
    assert!(message.contains("DB_PASSWORD_FILE"), "{message}");
}

#[test]
fn trap_on_empty_input_is_caught_naming_the_input() {
    let message = fails_only(
        "trap-on-empty",
        dbo_plugin_artifacts::fixtures::TRAP_ON_EMPTY,
        "robustness",
    );
    assert!(
        message.contains("empty database name: backup trapped"),
        "{message}"
    );
    assert!(
        message.contains("database name is never empty"),
        "{message}"
    );
    assert!(message.contains("PluginError::Invalid"), "{message}");
}

#[test]
fn output_that_is_not_a_pod_spec_is_caught() {
    let message = fails_only(
        "not-a-job",
        dbo_plugin_artifacts::fixtures::NOT_A_JOB,
        "kinds-and-policy",
    );
    assert!(
        message.contains("Database dbo-conformance/app"),
        "{message}"
    );
    assert!(
        message.contains("the pod spec has no containers"),
        "{message}"
    );
}

#[test]
fn privileged_container_is_caught() {
    let message = fails_only(
        "privileged",
        dbo_plugin_artifacts::fixtures::PRIVILEGED,
        "kinds-and-policy",
    );
    assert!(
        message.contains("container \"backup\": privileged containers are not allowed"),
        "{message}"
    );
}

#[test]
fn unsupported_api_version_cannot_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(
        dir.path(),
        "wrong-api-version",
        dbo_plugin_artifacts::fixtures::WRONG_API_VERSION,
    );
    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(failed(&report), vec!["load".to_string()]);
    let message = check(&report, "load")["message"].as_str().unwrap();
    assert!(
        message.contains("built against plugin API 0.9.0"),
        "{message}"
    );
    assert!(message.contains("supports 0.1.0"), "{message}");
    assert_eq!(check(&report, "describe")["status"], "skip");
}

#[test]
fn text_report_names_the_failing_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(
        dir.path(),
        "secret-leak",
        dbo_plugin_artifacts::fixtures::SECRET_LEAK,
    );
    let out = plugin_test(&plugin, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nPASS describe: secret-leak 0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("\nFAIL secrets: CronJob app-backup"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: 7 passed, 1 failed, 1 skipped"),
        "{text}"
    );
    assert!(text.contains("median µs"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 conformance check(s) failed"), "{stderr}");
}

#[test]
fn golden_cases_record_pass_and_catch_a_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = write_plugin(dir.path(), "postgres", dbo_plugin_artifacts::POSTGRES);
    // `cases/` beside the plugin is found without --cases.
    let case = dir.path().join("cases/orders");
    std::fs::create_dir_all(&case).expect("case dir");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/postgres.yaml"),
    )
    .expect("example");
    std::fs::write(case.join("input.yaml"), example).expect("input");

    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    let message = check(&report, "cases")["message"].as_str().unwrap();
    assert!(message.contains("case orders"), "{message}");
    assert!(
        message.contains("run with --update to record it"),
        "{message}"
    );

    let (code, report) = json_report(&plugin, &["--update"]);
    assert_eq!(code, Some(0), "{report:#}");
    let expected = std::fs::read_to_string(case.join("expected.yaml")).expect("recorded");
    assert!(expected.contains("kind: CronJob"), "{expected}");
    assert!(
        expected.contains("name: orders-db-credentials"),
        "{expected}"
    );

    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(check(&report, "cases")["status"], "pass");

    let edited = expected.replacen("schedule: 15 3 * * *", "schedule: 0 4 * * *", 1);
    assert_ne!(edited, expected, "the schedule is in the recorded output");
    std::fs::write(case.join("expected.yaml"), edited).expect("edit");
    let (code, report) = json_report(&plugin, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    let message = check(&report, "cases")["message"].as_str().unwrap();
    assert!(
        message.contains("case orders: output differs from expected.yaml"),
        "{message}"
    );
    let line = |sign: &str, text: &str| {
        message
            .lines()
            .any(|l| l.contains(&format!(": {sign} ")) && l.trim_end().ends_with(text))
    };
    assert!(line("-", "schedule: 0 4 * * *"), "{message}");
    assert!(line("+", "schedule: 15 3 * * *"), "{message}");
    assert!(message.contains("run with --update"), "{message}");
}
