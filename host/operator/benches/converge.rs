//! How fast the operator converges many Databases created at once, against the in-process API
//! server, compared with a bare client that writes the same objects; and the operator's memory.
//!
//!   cargo bench -p db-operator --bench converge            # 1,000 Databases
//!   DBO_BENCH_DATABASES=10000 cargo bench -p db-operator --bench converge
//!
//! The operator runs as its own process (`db-operator run`), so its RSS is its own and not the
//! API server's. Both runs start from the same state: CRDs, a ready DbInstance, its admin
//! Secret. "Converged" means every Database has its credentials Secret, its commissioning Job
//! (and the credentials copy beside the admin Secret) and its backup CronJob.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbo_api::{Database, DbInstance};
use dbo_apiserver::{ApiServer, Config};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "bench";
const ADMIN_NS: &str = "db-operator";
/// Requests in flight at once, for the bare client and for creating the Databases.
const IN_FLIGHT: usize = 64;

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU time of a process, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn server() -> (ApiServer, Client) {
    let server = ApiServer::start(Config {
        watch_history: 200_000,
        ..Config::default()
    })
    .await
    .expect("API server starts");
    let uri: http::Uri = server.url().parse().expect("URL");
    let client = Client::try_from(kube::Config::new(uri)).expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in dbo_api::crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NS, ADMIN_NS] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await
            .expect("namespace");
    }
    let admin: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pg-admin", "namespace": ADMIN_NS},
        "stringData": {"user": "postgres", "password": "admin"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ADMIN_NS)
        .create(&PostParams::default(), &admin)
        .await
        .expect("admin secret");
    let instance: DbInstance = serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": "pg"},
        "spec": {"engine": "postgres", "adminSecretRef": {"namespace": ADMIN_NS, "name": "pg-admin"},
            "generic": {"host": "pg.example", "port": 5432},
            "backup": {"s3": {"bucket": "b", "region": "eu-central-1", "auth": {"accessKeySecret": {"name": "s3"}}}}}
    }))
    .expect("instance");
    Api::<DbInstance>::all(client.clone())
        .create(&PostParams::default(), &instance)
        .await
        .expect("instance");
    (server, client)
}

fn database(i: usize) -> Database {
    serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
        "metadata": {"name": format!("db{i:05}"), "namespace": NS},
        "spec": {"instance": "pg", "secretName": format!("db{i:05}-credentials"),
            "backup": {"enable": true, "cron": "15 3 * * *"}}
    }))
    .expect("database")
}

async fn count<K>(api: &Api<K>, labels: &str) -> usize
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list_metadata(&ListParams::default().labels(labels))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

async fn converged(client: &Client, n: usize) -> bool {
    let managed = "app.kubernetes.io/managed-by=db-operator";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let copies: Api<Secret> = Api::namespaced(client.clone(), ADMIN_NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ADMIN_NS);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), NS);
    count(&secrets, managed).await >= n
        && count(&copies, managed).await >= n
        && count(&jobs, managed).await >= n
        && count(&crons, managed).await >= n
}

/// What a bare client writes: the objects as the operator left them, minus server fields.
fn strip(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

async fn dump(client: &Client) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=db-operator");
    for (ns, plural, api_version, kind) in [
        (NS, "secrets", "v1", "Secret"),
        (ADMIN_NS, "secrets", "v1", "Secret"),
        (ADMIN_NS, "jobs", "batch/v1", "Job"),
        (NS, "cronjobs", "batch/v1", "CronJob"),
    ] {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let ar = kube::api::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for obj in api.list(&managed).await.expect("list").items {
            let mut v = serde_json::to_value(&obj).expect("json");
            v["apiVersion"] = json!(api_version);
            v["kind"] = json!(kind);
            out.push((ns.to_string(), plural.to_string(), strip(v)));
        }
    }
    out
}

/// `db-operator run` against the server of `kubeconfig`; returns it and its probe address.
fn start_operator(kubeconfig: &std::path::Path) -> (Operator, String) {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let probe_addr = probe.local_addr().expect("addr").to_string();
    drop(probe);
    let child = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        // One replica: a restarted one would wait out the killed one's Lease.
        .args(["run", "--leader-elect=false", "--probe-addr", &probe_addr])
        .args(
            std::env::var("DBO_BENCH_CONCURRENCY")
                .map(|c| vec!["--concurrency".to_string(), c])
                .unwrap_or_default(),
        )
        .env("KUBECONFIG", kubeconfig)
        .env("DB_OPERATOR_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("db-operator run starts");
    (Operator(child), probe_addr)
}

/// One series of the operator's `/metrics`.
fn metric(probe_addr: &str, series: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(probe_addr).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// What a restarted operator does with converged Databases: it lists and reconciles every one
/// (a full resync, from cold memory). Returns time, writes and requests by verb.
async fn resync_after_restart(
    server: &ApiServer,
    kubeconfig: &std::path::Path,
    n: usize,
) -> (Duration, u64, std::collections::BTreeMap<String, u64>) {
    server.reset_stats();
    let started = Instant::now();
    let (operator, probe_addr) = start_operator(kubeconfig);
    let series = r#"db_operator_reconciles_total{controller="database"}"#;
    while metric(&probe_addr, series).unwrap_or(0.0) < n as f64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    drop(operator);
    let stats = server.stats();
    (took, stats.writes, stats.by_verb)
}

async fn operator_run(n: usize) -> (Duration, u64, u64, f64, Vec<(String, String, Value)>) {
    let (server, client) = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("bench")).expect("kubeconfig");
    let (operator, _) = start_operator(&kubeconfig);
    let instances: Api<DbInstance> = Api::all(client.clone());
    loop {
        let ready = instances
            .get("pg")
            .await
            .ok()
            .and_then(|i| i.status)
            .is_some_and(|s| s.phase.as_deref() == Some("Ready"));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_rss = memory_kib(operator.0.id(), "VmRSS:").unwrap_or(0);

    let dbs: Api<Database> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let dbs = dbs.clone();
            async move { dbs.create(&PostParams::default(), &database(i)).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .expect("databases created");
    while !converged(&client, n).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let peak = memory_kib(operator.0.id(), "VmHWM:").unwrap_or(0);
    let cpu = cpu_seconds(operator.0.id());
    let stats = server.stats();
    // Let the writes the last reconciles started land before restarting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(operator);
    let objects = dump(&client).await;
    println!(
        "  requests while converging (operator and this bench's polling): {} ({} writes) {:?}",
        stats.requests, stats.writes, stats.by_verb
    );
    let (resync, writes, by_verb) = resync_after_restart(&server, &kubeconfig, n).await;
    println!(
        "  no-op resync after a restart: {:.2} s, {writes} writes, requests {by_verb:?}",
        resync.as_secs_f64()
    );
    server.shutdown().await;
    (took, peak, idle_rss, cpu, objects)
}

async fn bare_run(n: usize, objects: &[(String, String, Value)]) -> Duration {
    let (server, client) = server().await;
    let dbs: Api<Database> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    // Create the Databases, then the objects that belong to them, with the owner uid fixed up.
    let created: std::collections::HashMap<String, String> = futures::stream::iter(0..n)
        .map(|i| {
            let dbs = dbs.clone();
            async move {
                dbs.create(&PostParams::default(), &database(i))
                    .await
                    .map(|d| (d.name_any(), d.uid().unwrap_or_default()))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await
        .expect("databases");
    futures::stream::iter(objects.iter().cloned())
        .map(|(ns, plural, mut v)| {
            let client = client.clone();
            let created = &created;
            async move {
                if let Some(refs) = v["metadata"]["ownerReferences"].as_array_mut() {
                    for r in refs {
                        if let Some(uid) = r["name"].as_str().and_then(|n| created.get(n)) {
                            r["uid"] = json!(uid);
                        }
                    }
                }
                let api_version = v["apiVersion"].as_str().unwrap_or("v1").to_string();
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let ar = kube::api::ApiResource {
                    group: group.into(),
                    version: version.into(),
                    api_version: api_version.clone(),
                    kind: v["kind"].as_str().unwrap_or_default().into(),
                    plural,
                };
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
                let obj: DynamicObject = serde_json::from_value(v).expect("object");
                api.create(&PostParams::default(), &obj).await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .expect("objects");
    let took = started.elapsed();
    server.shutdown().await;
    took
}

fn main() {
    let n: usize = std::env::var("DBO_BENCH_DATABASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // `cargo bench` passes `--bench`; a filter argument that is not ours means "not me".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"converge".contains(&a))
    {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (operator, peak_kib, idle_kib, cpu, objects) = operator_run(n).await;
        let bare = bare_run(n, &objects).await;
        let ratio = bare.as_secs_f64() / operator.as_secs_f64();
        println!("converge/{n} databases");
        println!(
            "  operator (db-operator run):  {:>8.2} s ({cpu:.1} s CPU in the operator process)",
            operator.as_secs_f64()
        );
        println!(
            "  bare client, same {} writes: {:>8.2} s",
            objects.len() + n,
            bare.as_secs_f64()
        );
        println!("  operator speed vs bare client: {:.0} %", ratio * 100.0);
        println!(
            "  operator RSS: {:.1} MiB idle, {:.1} MiB peak",
            idle_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0
        );
    });
}
