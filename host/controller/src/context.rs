//! What every reconcile shares: the client, the engines, settings, the event recorder and the
//! per-object error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dbo_api::DbInstance;
use dbo_render::RenderOptions;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::catalog::EngineCatalog;
use crate::children::Children;
use crate::metrics::{Metered, Metrics};

/// Operator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces whose Databases and DbRestores are reconciled; empty means all.
    pub watch_namespaces: Vec<String>,
    /// How rendered objects are shaped (policy, deadlines, history limits).
    pub render: RenderOptions,
    /// How long after a scheduled time a backup may still succeed before `BackupOverdue`.
    pub backup_grace: Duration,
    /// How often to look again at something the operator waits for without a watch on it
    /// (an admin Secret that does not exist yet, a running commissioning Job).
    pub recheck: Duration,
    /// Resync of converged objects (reads only; no writes when nothing drifted).
    pub resync: Duration,
    /// First retry delay after an error; doubles per consecutive failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// `reportingController` of Events.
    pub reporter: String,
    /// `reportingInstance` of Events (the pod name in a cluster).
    pub instance: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let render = RenderOptions::default();
        let grace = (render.starting_deadline_seconds + render.default_job_deadline_seconds)
            .max(0)
            .unsigned_abs();
        Self {
            watch_namespaces: Vec::new(),
            render,
            backup_grace: Duration::from_secs(grace),
            recheck: Duration::from_secs(30),
            resync: Duration::from_secs(600),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 16,
            reporter: "db-operator".into(),
            instance: None,
        }
    }
}

/// Shared by all reconciles of all controllers.
pub struct Context {
    pub client: Client,
    pub catalog: Arc<dyn EngineCatalog>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    /// The managed children the running controllers watch.
    pub(crate) children: Children,
    /// The DbInstance cache of the running controllers; `None` before they start.
    instances: RwLock<Option<Store<DbInstance>>>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, catalog: Arc<dyn EngineCatalog>, config: Config) -> Self {
        Self::with_metrics(client, catalog, config, Arc::new(Metrics::new()))
    }

    /// Like [`Context::new`], reporting to `metrics` (which `/metrics` serves).
    pub fn with_metrics(
        client: Client,
        catalog: Arc<dyn EngineCatalog>,
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        let catalog: Arc<dyn EngineCatalog> = Arc::new(Metered {
            inner: catalog,
            metrics: metrics.clone(),
        });
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: config.reporter.clone(),
                instance: config.instance.clone(),
            },
        );
        Self {
            client,
            catalog,
            config,
            metrics,
            children: Children::default(),
            instances: RwLock::new(None),
            recorder,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn use_instance_cache(&self, store: Store<DbInstance>) {
        *self.instances.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// A DbInstance from the controllers' cache once it has synced, else from the API.
    pub(crate) async fn instance(&self, name: &str) -> Result<Option<DbInstance>, kube::Error> {
        let store = self
            .instances
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(store) = store
            && matches!(
                futures::FutureExt::now_or_never(store.wait_until_ready()),
                Some(Ok(()))
            )
        {
            return Ok(store.get(&ObjectRef::new(name)).map(|i| (*i).clone()));
        }
        Api::<DbInstance>::all(self.client.clone())
            .get_opt(name)
            .await
    }

    /// Publishes an Event; a failure to record one is logged, never fails a reconcile.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            // The Events API caps the note at 1 kB.
            note: Some(truncate(note, 1000)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(error = %e, reason, "could not record an Event");
        }
    }

    /// The delay before retrying `key` after another failure.
    pub fn backoff(&self, key: &str) -> Action {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        let delay = self
            .config
            .backoff_base
            .saturating_mul(factor)
            .min(self.config.backoff_max);
        Action::requeue(delay)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max.saturating_sub(3);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
