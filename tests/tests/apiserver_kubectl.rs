//! A real kubectl against the in-process API server: what a user types in `db-operator dev`
//! must print and exit as it does against a cluster.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use dbo_api::{Database, DbInstance};
use dbo_apiserver::{ApiServer, Config};
use dbo_e2e::tools;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const MANIFEST: &str = r#"
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: pg
spec:
  engine: postgres
  adminSecretRef: { namespace: default, name: pg-admin }
  generic: { host: db.example, port: 5432 }
---
apiVersion: v1
kind: Secret
metadata:
  name: pg-admin
stringData:
  password: first
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: app
spec:
  instance: pg
  secretName: app-credentials
"#;

/// A server, a kubeconfig for it and a kubectl with its own cache directory.
struct Cluster {
    server: ApiServer,
    kubectl: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let kubectl = tools::kubectl().unwrap_or_else(|e| panic!("{e}"));
        let server = ApiServer::start(Config::default())
            .await
            .expect("server starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig("emulator"))
            .expect("kubeconfig written");
        Self {
            server,
            kubectl,
            dir,
        }
    }

    /// A cluster with db-operator's CRDs applied from the checked-in file.
    async fn with_crds() -> Self {
        let cluster = Self::start().await;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/crds.yaml");
        cluster
            .ok(&["apply", "-f", crds.to_str().expect("UTF-8 path")])
            .await;
        cluster
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("kubectl runs")
    }

    /// Runs kubectl, expecting success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("manifest written");
        path.to_str().expect("UTF-8 path").to_owned()
    }

    async fn client(&self) -> Client {
        let kubeconfig =
            Kubeconfig::from_yaml(&self.server.kubeconfig("emulator")).expect("parses");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("usable");
        Client::try_from(config).expect("client")
    }
}

/// Splits `kubectl get` output into rows of whitespace-separated cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_reports_unchanged_and_configured() {
    let cluster = Cluster::with_crds().await;
    let crds = cluster.ok(&["get", "crd"]).await;
    for name in [
        "databases.kci.rocks",
        "dbinstances.kci.rocks",
        "dbrestores.kci.rocks",
    ] {
        assert!(crds.contains(name), "{crds}");
    }

    let manifest = cluster.write("app.yaml", MANIFEST);
    let first = cluster.ok(&["apply", "-f", &manifest]).await;
    assert_eq!(
        first.lines().collect::<Vec<_>>(),
        [
            "dbinstance.kci.rocks/pg created",
            "secret/pg-admin created",
            "database.kci.rocks/app created",
        ]
    );
    let again = cluster.ok(&["apply", "-f", &manifest]).await;
    assert!(
        again.contains("dbinstance.kci.rocks/pg unchanged"),
        "{again}"
    );
    assert!(
        again.contains("database.kci.rocks/app unchanged"),
        "{again}"
    );

    let changed = cluster.write(
        "app.yaml",
        &MANIFEST
            .replace("secretName: app-credentials", "secretName: renamed")
            .replace("password: first", "password: second"),
    );
    let third = cluster.ok(&["apply", "-f", &changed]).await;
    assert!(
        third.contains("database.kci.rocks/app configured"),
        "{third}"
    );
    assert!(third.contains("secret/pg-admin configured"), "{third}");

    let db: Api<Database> = Api::namespaced(cluster.client().await, "default");
    let app = db.get("app").await.expect("applied Database");
    assert_eq!(app.spec.secret_name, "renamed");
    assert_eq!(app.metadata.generation, Some(2));
    let password = cluster
        .ok(&[
            "get",
            "secret",
            "pg-admin",
            "-o",
            "jsonpath={.data.password}",
        ])
        .await;
    assert_eq!(password, "c2Vjb25k", "base64 of the re-applied stringData");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_crd_columns_under_every_name() {
    let cluster = Cluster::with_crds().await;
    let manifest = cluster.write("app.yaml", MANIFEST);
    cluster.ok(&["apply", "-f", &manifest]).await;
    let db: Api<Database> = Api::namespaced(cluster.client().await, "default");
    let status = json!({ "status": {
        "phase": "Ready",
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Commissioned", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    } });
    db.patch_status("app", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status set");

    for name in ["databases", "database", "db", "databases.kci.rocks"] {
        let table = rows(&cluster.ok(&["get", name]).await);
        assert_eq!(
            table[0],
            ["NAME", "INSTANCE", "READY", "PHASE", "PROTECTED", "AGE"],
            "kubectl get {name}"
        );
        assert_eq!(table[1][..5], ["app", "pg", "True", "Ready", "false"]);
        assert!(
            table[1][5].ends_with('s') || table[1][5].ends_with('m'),
            "an age: {:?}",
            table[1]
        );
    }
    let instances = rows(&cluster.ok(&["get", "dbin"]).await);
    assert_eq!(instances[0], ["NAME", "ENGINE", "READY", "PHASE", "AGE"]);
    assert_eq!(instances[1][..2], ["pg", "postgres"]);
    let secrets = rows(&cluster.ok(&["get", "secrets"]).await);
    assert_eq!(secrets[0], ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(secrets[1][..3], ["pg-admin", "Opaque", "1"]);

    let as_json: serde_json::Value =
        serde_json::from_str(&cluster.ok(&["get", "db", "app", "-o", "json"]).await)
            .expect("kubectl prints JSON");
    assert_eq!(as_json["spec"]["instance"], "pg");
    assert_eq!(as_json["status"]["phase"], "Ready");
    let as_yaml = cluster.ok(&["get", "db", "app", "-o", "yaml"]).await;
    assert!(as_yaml.contains("secretName: app-credentials"), "{as_yaml}");
    assert!(as_yaml.contains("kind: Database"), "{as_yaml}");

    let missing = cluster.run(&["get", "db", "nope"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): databases.kci.rocks \"nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_reports_conflicts_until_forced() {
    let cluster = Cluster::with_crds().await;
    let manifest = cluster.write("app.yaml", MANIFEST);
    let out = cluster
        .ok(&["apply", "--server-side", "-f", &manifest])
        .await;
    assert!(
        out.contains("database.kci.rocks/app serverside-applied"),
        "{out}"
    );

    let db: Api<Database> = Api::namespaced(cluster.client().await, "default");
    let theirs = json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
        "metadata": { "name": "app" },
        "spec": { "instance": "other", "secretName": "app-credentials" },
    });
    db.patch(
        "app",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(&theirs),
    )
    .await
    .expect("the other manager takes spec.instance");

    let conflict = cluster
        .run(&["apply", "--server-side", "-f", &manifest])
        .await;
    assert_eq!(conflict.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("conflict with \"someone-else\"") && stderr.contains(".spec.instance"),
        "{stderr}"
    );
    cluster
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &manifest,
        ])
        .await;
    assert_eq!(db.get("app").await.expect("exists").spec.instance, "pg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_the_events_a_controller_recorded() {
    let cluster = Cluster::with_crds().await;
    let manifest = cluster.write("app.yaml", MANIFEST);
    cluster.ok(&["apply", "-f", &manifest]).await;
    let client = cluster.client().await;
    let db: Api<Database> = Api::namespaced(client.clone(), "default");
    let app = db.get("app").await.expect("exists");
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "db-operator".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "InstanceUnreachable".into(),
                note: Some("cannot connect to db.example:5432".into()),
                action: "Commission".into(),
                secondary: None,
            },
            &app.object_ref(&()),
        )
        .await
        .expect("event recorded");

    let described = cluster.ok(&["describe", "database", "app"]).await;
    let events = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section: {described}"));
    let header = rows(events.lines().nth(1).unwrap_or_default());
    assert_eq!(header[0], ["Type", "Reason", "Age", "From", "Message"]);
    let row = events
        .lines()
        .find(|l| l.contains("InstanceUnreachable"))
        .unwrap_or_else(|| panic!("event missing: {events}"));
    assert!(row.trim_start().starts_with("Warning"), "{row}");
    assert!(row.contains("db-operator"), "{row}");
    assert!(row.contains("cannot connect to db.example:5432"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers_and_then_the_object_is_gone() {
    let cluster = Cluster::with_crds().await;
    let manifest = cluster.write("app.yaml", MANIFEST);
    cluster.ok(&["apply", "-f", &manifest]).await;
    let db: Api<Database> = Api::namespaced(cluster.client().await, "default");
    let finalizer = json!({ "metadata": { "finalizers": ["kci.rocks/cleanup"] } });
    db.patch("app", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("finalizer added");

    let mut delete = cluster
        .command(&["delete", "database", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    // kubectl's DELETE has landed once the object carries a deletionTimestamp.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while db
        .get("app")
        .await
        .expect("still there")
        .metadata
        .deletion_timestamp
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        delete.try_wait().expect("kubectl state").is_none(),
        "kubectl waits while the finalizer holds the object"
    );

    let release = json!({ "metadata": { "finalizers": null } });
    db.patch("app", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("finalizer removed");
    let out = tokio::time::timeout(Duration::from_secs(60), delete.wait_with_output())
        .await
        .expect("kubectl finishes once the finalizer is gone")
        .expect("kubectl ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("database.kci.rocks \"app\" deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(db.get_opt("app").await.expect("get").is_none());

    let gone = cluster.ok(&["delete", "dbinstance", "pg"]).await;
    assert!(
        gone.contains("dbinstance.kci.rocks \"pg\" deleted"),
        "{gone}"
    );
    let instances: Api<DbInstance> = Api::all(cluster.client().await);
    assert!(instances.get_opt("pg").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_each_change_as_a_row() {
    let cluster = Cluster::with_crds().await;
    let manifest = cluster.write("app.yaml", MANIFEST);
    cluster.ok(&["apply", "-f", &manifest]).await;
    let mut watch = cluster
        .command(&["get", "databases", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl starts");
    let stdout = watch.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("kubectl prints a line")
            .expect("readable")
            .expect("kubectl keeps watching")
    };
    assert_eq!(
        rows(&next_line().await)[0],
        ["NAME", "INSTANCE", "READY", "PHASE", "PROTECTED", "AGE"]
    );
    assert_eq!(rows(&next_line().await)[0][..2], ["app", "pg"]);

    let db: Api<Database> = Api::namespaced(cluster.client().await, "default");
    let status = json!({ "status": { "phase": "Commissioning" } });
    db.patch_status("app", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status set");
    let changed = rows(&next_line().await);
    assert_eq!(changed[0][..2], ["app", "pg"]);
    assert!(
        changed[0].contains(&"Commissioning".to_owned()),
        "{changed:?}"
    );
    watch.kill().await.expect("watch stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_generators_make_namespaces_and_secrets() {
    let cluster = Cluster::start().await;
    assert_eq!(
        cluster.ok(&["create", "namespace", "apps"]).await.trim(),
        "namespace/apps created"
    );
    assert_eq!(
        cluster
            .ok(&[
                "create",
                "secret",
                "generic",
                "admin",
                "-n",
                "apps",
                "--from-literal=password=s3cret"
            ])
            .await
            .trim(),
        "secret/admin created"
    );
    let password = cluster
        .ok(&[
            "get",
            "secret",
            "admin",
            "-n",
            "apps",
            "-o",
            "jsonpath={.data.password}",
        ])
        .await;
    assert_eq!(password, "czNjcmV0");
    let missing = cluster
        .run(&[
            "create",
            "secret",
            "generic",
            "x",
            "-n",
            "nowhere",
            "--from-literal=a=b",
        ])
        .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("namespaces \"nowhere\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
