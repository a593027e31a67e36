//! The environment of the end-to-end scenarios: an API server (the in-process one, or the
//! cluster `KUBECONFIG` names), the CRDs, a namespace of the test's own, and db-operator's
//! controllers running in this process with the real engine plugins.

#![allow(dead_code)] // each test binary uses a different part

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dbo_api::{Database, DbInstance};
use dbo_apiserver::{ApiServer, Stats};
use dbo_controller::metrics::Metrics;
use dbo_controller::{Config, Context, Readiness, ServedEngine, StaticCatalog};
use dbo_plugin_runtime::{PluginRuntime, RuntimeConfig};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a scenario waits for the operator to reach a state.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Engines the tests serve: the real PostgreSQL and Elasticsearch plugins, and a plugin that
/// traps in `backup`.
fn catalog() -> StaticCatalog {
    static CATALOG: OnceLock<StaticCatalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let runtime = PluginRuntime::new(RuntimeConfig::default()).expect("plugin runtime");
            let mut catalog = StaticCatalog::new();
            for (name, wasm) in [
                ("postgres", dbo_plugin_artifacts::POSTGRES),
                ("elasticsearch", dbo_plugin_artifacts::ELASTICSEARCH),
                ("panic", dbo_plugin_artifacts::fixtures::PANIC),
            ] {
                let plugin = runtime.load(name, wasm).expect("plugin loads");
                let status = dbo_api::PluginStatus {
                    name: plugin.info().name.clone(),
                    version: plugin.info().version.clone(),
                    digest: plugin.digest().to_string(),
                };
                catalog.insert(
                    name,
                    ServedEngine {
                        engine: Arc::new(plugin),
                        plugin: status,
                    },
                );
            }
            catalog
        })
        .clone()
}

pub struct Env {
    pub client: Client,
    /// The test's namespace: Databases, admin Secret and every Job live here.
    pub ns: String,
    server: Option<ApiServer>,
    controllers: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    pub readiness: Readiness,
    /// What the running controllers report on `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Env {
    pub async fn start(test: &str) -> Env {
        let (client, server) = match std::env::var_os("KUBECONFIG") {
            Some(path) => {
                eprintln!(
                    "{test}: running against the cluster in KUBECONFIG={}",
                    path.to_string_lossy()
                );
                (
                    Client::try_default().await.expect("KUBECONFIG is usable"),
                    None,
                )
            }
            None => {
                eprintln!(
                    "{test}: KUBECONFIG not set: running against the in-process API server (set KUBECONFIG to run this scenario against a real cluster)"
                );
                let server = ApiServer::start(dbo_apiserver::Config::default())
                    .await
                    .expect("API server starts");
                let uri: http::Uri = server.url().parse().expect("server URL");
                let client = Client::try_from(kube::Config::new(uri)).expect("client");
                (client, Some(server))
            }
        };
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in dbo_api::crds() {
            crds.patch(
                &crd.name_any(),
                &PatchParams::apply("db-operator-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("CRD applies");
        }
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let ns = format!("{}-{suffix}", test.replace('_', "-"))
            .chars()
            .rev()
            .take(63)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
            .trim_start_matches('-')
            .to_string();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
            )
            .await
            .expect("namespace is created");
        let mut env = Env {
            client,
            ns,
            server,
            controllers: None,
            readiness: Readiness::default(),
            metrics: Arc::new(Metrics::new()),
        };
        env.start_controllers().await;
        env
    }

    pub fn config(&self) -> Config {
        Config {
            watch_namespaces: vec![self.ns.clone()],
            recheck: Duration::from_millis(300),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            resync: Duration::from_secs(60),
            ..Config::default()
        }
    }

    pub async fn start_controllers(&mut self) {
        self.start_controllers_with(self.config()).await;
    }

    pub async fn start_controllers_with(&mut self, config: Config) {
        assert!(self.controllers.is_none(), "controllers already running");
        self.metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context::with_metrics(
            self.client.clone(),
            Arc::new(catalog()),
            config,
            self.metrics.clone(),
        ));
        let (tx, rx) = oneshot::channel();
        self.readiness = Readiness::default();
        let handle = tokio::spawn(dbo_controller::run(ctx, self.readiness.clone(), async {
            let _ = rx.await;
        }));
        self.controllers = Some((tx, handle));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.readiness.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "controllers never synced"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of one series on `/metrics`, e.g.
    /// `db_operator_reconciles_total{controller="database"}`; `None` when it is not exported.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics.encode();
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split_whitespace().next()?.parse().ok()
        })
    }

    pub async fn stop_controllers(&mut self) {
        if let Some((tx, handle)) = self.controllers.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(PATIENCE, handle).await;
        }
    }

    /// Request counters of the in-process server; `None` against a real cluster.
    pub fn stats(&self) -> Option<Stats> {
        self.server.as_ref().map(ApiServer::stats)
    }

    pub fn reset_stats(&self) {
        if let Some(s) = &self.server {
            s.reset_stats();
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn instances(&self) -> Api<DbInstance> {
        Api::all(self.client.clone())
    }

    /// A PostgreSQL DbInstance named `<ns>-<suffix>` whose admin Secret is in the test namespace.
    pub fn instance(&self, suffix: &str, engine: &str) -> DbInstance {
        serde_json::from_value(json!({
            "apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": format!("{}-{suffix}", self.ns)},
            "spec": {
                "engine": engine,
                "adminSecretRef": {"namespace": self.ns, "name": "admin"},
                "generic": {"host": "pg.example", "port": 5432},
                "backup": {"s3": {"bucket": "backups", "region": "eu-central-1",
                    "auth": {"accessKeySecret": {"name": "s3-keys"}}}}
            }
        }))
        .expect("instance")
    }

    pub fn database(&self, name: &str, instance: &str, cron: Option<&str>) -> Database {
        let backup = match cron {
            Some(cron) => json!({"enable": true, "cron": cron}),
            None => json!({"enable": false}),
        };
        serde_json::from_value(json!({
            "apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"instance": instance, "secretName": format!("{name}-credentials"), "backup": backup}
        }))
        .expect("database")
    }

    pub async fn create_admin_secret(&self) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "admin", "namespace": self.ns},
            "stringData": {"user": "postgres", "password": "admin-pw"}
        }))
        .expect("secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .expect("admin Secret is created");
    }

    /// Marks a Job finished through its status subresource, as a cluster's job controller would.
    pub async fn finish_job(&self, name: &str, succeeded: bool) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = if succeeded {
            json!({"status": {"succeeded": 1, "startTime": now, "completionTime": now, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now}]}})
        } else {
            json!({"status": {"failed": 1, "startTime": now, "conditions": [
                {"type": "FailureTarget", "status": "True", "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}]}})
        };
        self.api::<Job>()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("Job status is patched");
    }

    /// Events about an object, as `kubectl describe` lists them, once one has the reason
    /// `awaiting` (or the patience ran out).
    pub async fn events_for(&self, kind: &str, name: &str, awaiting: &str) -> Vec<Event> {
        // Events are published after the status they describe: wait for the one expected.
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let list = events
                .list(&ListParams::default().fields(&format!(
                    "involvedObject.kind={kind},involvedObject.name={name}"
                )))
                .await
                .expect("events list");
            if tokio::time::Instant::now() > deadline
                || list
                    .items
                    .iter()
                    .any(|e| e.reason.as_deref() == Some(awaiting))
            {
                return list.items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop_controllers().await;
        if self.server.is_none() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
            let instances = self.instances();
            if let Ok(list) = instances.list(&ListParams::default()).await {
                for i in list
                    .items
                    .iter()
                    .filter(|i| i.name_any().starts_with(&self.ns))
                {
                    let _ = instances
                        .delete(&i.name_any(), &DeleteParams::default())
                        .await;
                }
            }
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Polls `name` until `pred` holds; on timeout fails with the last state seen.
pub async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, pred: F) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
    F: Fn(&K) -> bool,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(obj)) if pred(&obj) => return obj,
            Ok(obj) => format!("{obj:#?}"),
            Err(e) => format!("error: {e}"),
        };
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {PATIENCE:?} waiting for {what} ({name}); last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return,
            Ok(Some(obj)) if tokio::time::Instant::now() > deadline => {
                panic!("timed out waiting for {what} ({name}) to go away; still there: {obj:#?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The status of a condition type, `None` when absent.
pub fn condition(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<(String, String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn db_condition(db: &Database, type_: &str) -> Option<(String, String, String)> {
    condition(db.status.as_ref().map(|s| &s.conditions), type_)
}

pub fn instance_condition(i: &DbInstance, type_: &str) -> Option<(String, String, String)> {
    condition(i.status.as_ref().map(|s| &s.conditions), type_)
}

pub fn is(c: &Option<(String, String, String)>, status: &str, reason: &str) -> bool {
    c.as_ref()
        .is_some_and(|(s, r, _)| s == status && r == reason)
}
