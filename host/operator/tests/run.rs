//! `db-operator run` against an API server named by KUBECONFIG (the in-process one here):
//! probes, convergence of a Database, and a clear error when there is no API to talk to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbo_apiserver::{ApiServer, Config};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Status code of a plain HTTP GET, `None` while nothing listens.
fn get(addr: &str, path: &str) -> Option<u16> {
    get_body(addr, path).map(|(code, _)| code)
}

fn get_body(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// The value of one series in Prometheus text, e.g. `x_total{a="b"}`.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_probes_metrics_and_json_logs_and_reconciles_what_it_finds() {
    let server = ApiServer::start(Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).unwrap();
    let uri: http::Uri = server.url().parse().unwrap();
    let client = Client::try_from(kube::Config::new(uri)).unwrap();
    // CRDs are installed by deploy/, not by `run`.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in dbo_api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let admin: Secret = serde_json::from_value(json!({
        "metadata": {"name": "admin", "namespace": "app"}, "stringData": {"user": "u", "password": "p"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "app")
        .create(&PostParams::default(), &admin)
        .await
        .unwrap();
    let inst: dbo_api::DbInstance = serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance", "metadata": {"name": "pg"},
        "spec": {"engine": "postgres", "adminSecretRef": {"namespace": "app", "name": "admin"},
            "generic": {"host": "pg.example", "port": 5432}}
    }))
    .unwrap();
    Api::<dbo_api::DbInstance>::all(client.clone())
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();
    let db: dbo_api::Database = serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "Database", "metadata": {"name": "orders", "namespace": "app"},
        "spec": {"instance": "pg", "secretName": "orders-db"}
    }))
    .unwrap();
    Api::<dbo_api::Database>::namespaced(client.clone(), "app")
        .create(&PostParams::default(), &db)
        .await
        .unwrap();

    let probes = free_port();
    let log = dir.path().join("operator.log");
    let mut operator = Guard(
        Command::new(env!("CARGO_BIN_EXE_db-operator"))
            .args(["run", "--probe-addr", &probes, "--watch-namespace", "app"])
            .args(["--lease-namespace", "app"])
            .args(["--log-format", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env("DB_OPERATOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + PATIENCE;
    while get(&probes, "/readyz") != Some(200) {
        assert!(Instant::now() < deadline, "/readyz never turned 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&probes, "/healthz"), Some(200));
    assert_eq!(get(&probes, "/nothing"), Some(404));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "app");
    while secrets.get_opt("orders-db").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the operator never created the credentials Secret"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dbs: Api<dbo_api::Database> = Api::namespaced(client.clone(), "app");
    loop {
        let phase = dbs
            .get("orders")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase);
        if phase.as_deref() == Some("Commissioning") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Database never reached Commissioning: {phase:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (code, metrics) = get_body(&probes, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{metrics}");
    let reconciles = series(
        &metrics,
        r#"db_operator_reconciles_total{controller="database"}"#,
    );
    assert!(reconciles.is_some_and(|n| n >= 1.0), "{metrics}");
    let commission_calls = series(
        &metrics,
        r#"db_operator_plugin_call_duration_seconds_count{engine="postgres",operation="commission"}"#,
    );
    assert!(commission_calls.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    assert_eq!(
        series(&metrics, "db_operator_leader"),
        Some(1.0),
        "{metrics}"
    );
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "app")
        .get("db-operator")
        .await
        .expect("the leader-election Lease exists");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(!holder.is_empty(), "the Lease names its holder");

    // Every line a JSON object; reconcile lines name their object.
    let _ = operator.0.kill();
    let _ = operator.0.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["object"] == "app/orders"),
        "no log line of the reconcile of app/orders:\n{text}"
    );
}

#[test]
fn run_without_an_api_server_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args([
            "run",
            "--probe-addr",
            &free_port(),
            "--lease-namespace",
            "x",
        ])
        .env("KUBECONFIG", dir.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
    assert!(
        stderr.contains("db-operator dev"),
        "points to dev mode: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_a_lease_namespace_names_the_flag() {
    let server = ApiServer::start(Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args(["run", "--probe-addr", &free_port()])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .env_remove("DBO_LEASE_NAMESPACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--lease-namespace") && stderr.contains("--leader-elect=false"),
        "{stderr}"
    );
}
