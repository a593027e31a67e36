//! db-operator's controllers: `DbInstance`, `Database` and `DbRestore` reconcilers on kube-rs.
//!
//! The controllers own every side effect: they read the cluster, ask the renderer (and through
//! it the engine plugins, via [`EngineCatalog`]) what should exist, and write only what differs,
//! with server-side apply under one field manager. Reconciles are level-based: running one on a
//! converged object sends no write.

mod apply;
mod catalog;
mod children;
mod conditions;
mod context;
mod database;
mod finalizer;
mod instance;
mod jobs;
pub mod leader;
pub mod metrics;
mod restore;
mod schedule;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dbo_api::{Database, DbInstance, DbRestore};
use dbo_render::{LABEL_COMPONENT, LABEL_DATABASE, LABEL_DATABASE_NAMESPACE, LABEL_MANAGED_BY};
use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rand::Rng;

use children::Children;

pub use apply::MANAGER;
pub use catalog::{EngineCatalog, ServedEngine, StaticCatalog};
pub use context::{Config, Context};
pub use database::FINALIZER as DATABASE_FINALIZER;

/// Why a reconcile failed; retried with exponential backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("an engine call did not finish: {0}")]
    Join(String),
}

/// Why an object cannot progress: the `Ready=False` reason and message, and whether to retry
/// by itself (with backoff) rather than wait for a change.
pub(crate) struct Blocked {
    pub reason: &'static str,
    pub message: String,
    pub retry: bool,
}

impl Blocked {
    pub fn new(reason: &'static str, message: impl Into<String>, retry: bool) -> Self {
        Self {
            reason,
            message: message.into(),
            retry,
        }
    }

    pub fn render(e: &dbo_render::RenderError) -> Self {
        let (reason, retry) = classify(e);
        Self::new(reason, e.to_string(), retry)
    }
}

/// Reasons that mean "waiting for something to happen", not "something is wrong": they are
/// neither Warnings nor counted as reconcile errors.
pub(crate) fn is_waiting(reason: &str) -> bool {
    matches!(
        reason,
        "Commissioning" | "InstanceNotReady" | "WaitingForDatabase" | "WaitingForRestore"
    )
}

/// The condition reason for a render failure, and whether to retry it by itself: a plugin
/// that trapped or ran out of time may succeed next time; a refused spec waits for an edit.
pub(crate) fn classify(e: &dbo_render::RenderError) -> (&'static str, bool) {
    match e {
        dbo_render::RenderError::Engine {
            source: dbo_engine::CallError::Runtime(_),
            ..
        } => ("PluginFailed", true),
        dbo_render::RenderError::Engine { .. } => ("EngineRejected", false),
        dbo_render::RenderError::UnknownEngine { .. } => ("EngineUnavailable", false),
        // Nothing watches ConfigMaps, so a missing one is looked for again with backoff.
        dbo_render::RenderError::MissingSchemaConfigMap { .. } => ("SchemaConfigMapMissing", true),
        _ => ("InvalidSpec", false),
    }
}

/// Generated passwords: alphanumeric, from the operating system's randomness unless a test
/// passes a seeded generator.
pub struct Passwords<R: Rng>(pub R);

impl<R: Rng> dbo_render::PasswordSource for Passwords<R> {
    fn generate(&mut self, length: usize) -> String {
        (&mut self.0)
            .sample_iter(rand::distr::Alphanumeric)
            .take(length)
            .map(char::from)
            .collect()
    }
}

pub(crate) fn os_passwords() -> Passwords<rand::rngs::ThreadRng> {
    Passwords(rand::rng())
}

/// Set once every controller's caches have synced; what `/readyz` reports.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
    fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }
}

fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"))
}

fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    tracing::warn!(object = %key, error = %err, "reconcile failed; retrying with backoff");
    // The error policy cannot wait; the Event is published beside the retry.
    let reference = obj.object_ref(&());
    let note = err.to_string();
    let events = ctx.clone();
    tokio::spawn(async move {
        events
            .event(&reference, true, "ReconcileFailed", "Reconcile", note)
            .await;
    });
    ctx.backoff(&key)
}

/// Runs one reconcile inside a span naming the object (so every log line of it says which
/// object it is about), counted and timed in the metrics.
async fn observed<K, F, Fut>(
    controller: &'static str,
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    use tracing::Instrument;
    // `object`, not `name`: JSON logs already use `name` for the span's own name.
    let object = match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    };
    let span = tracing::info_span!("reconcile", controller, object);
    let metrics = ctx.metrics.clone();
    metrics
        .reconcile(controller, reconcile(obj, ctx))
        .instrument(span)
        .await
}

/// The Database a labelled child belongs to (commissioning Jobs and copies live in another
/// namespace, and backup Jobs are owned by their CronJob, so owner references do not lead back).
fn database_of<K: Resource>(child: PartialObjectMeta<K>) -> Option<ObjectRef<Database>> {
    let labels = child.labels();
    let name = labels.get(LABEL_DATABASE)?;
    let ns = labels.get(LABEL_DATABASE_NAMESPACE)?;
    Some(ObjectRef::new(name).within(ns))
}

/// A metadata-only watch of the managed `K`s in `scope`, recorded in `children` as it goes.
fn tracked<K>(
    children: &Children,
    client: &kube::Client,
    scope: &Option<String>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    // `Api<PartialObjectMeta<K>>` asks for metadata only.
    let api = Api::<PartialObjectMeta<K>>::all_or(client, scope);
    let feed = children.feed(<K as k8s_openapi::Resource>::KIND, scope.clone());
    let children = children.clone();
    watcher(api, managed())
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                children.observe(feed, event);
            }
        })
        .touched_objects()
}

/// A watch of `api` cached without `managedFields`: nothing reads them, and on Databases they
/// are a third of what the cache would hold.
fn lean<K>(
    api: Api<K>,
) -> (
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    kube::runtime::reflector::Store<K>,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects();
    (stream, reader)
}

/// `Api::all`, or `Api::namespaced` in a watched namespace.
trait AllOr: Sized {
    fn all_or(client: &kube::Client, scope: &Option<String>) -> Self;
}

impl<K> AllOr for Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    fn all_or(client: &kube::Client, scope: &Option<String>) -> Self {
        match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

async fn drain<K, S, E>(name: &'static str, stream: S)
where
    K: Resource + Debug,
    K::DynamicType: Debug,
    E: std::error::Error,
    S: futures::Stream<Item = Result<(ObjectRef<K>, Action), E>>,
{
    stream
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = name, error = %e, "reconcile did not complete");
            }
        })
        .await;
}

fn synced<K>(store: kube::runtime::reflector::Store<K>) -> BoxFuture<'static, bool>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    async move { store.wait_until_ready().await.is_ok() }.boxed()
}

/// Runs the three controllers until `shutdown` resolves. `readiness` turns true once every
/// cache has synced.
pub async fn run(
    ctx: Arc<Context>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = (Box::pin(shutdown) as BoxFuture<'static, ()>).shared();
    let client = ctx.client.clone();
    let concurrency = controller::Config::default().concurrency(ctx.config.concurrency);
    let scopes: Vec<Option<String>> = if ctx.config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config
            .watch_namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    let instances = Controller::new(
        Api::<DbInstance>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(concurrency.clone())
    .graceful_shutdown_on(shutdown.clone());
    // A new run (a new term as leader) starts from empty caches.
    readiness.reset();
    ctx.children.reset();
    ctx.use_instance_cache(instances.store());
    let mut stores = vec![synced(instances.store())];
    let mut tasks: Vec<BoxFuture<'static, ()>> = vec![
        drain(
            "dbinstance",
            instances.run(
                |obj, ctx| observed("dbinstance", obj, ctx, instance::reconcile),
                error_policy,
                ctx.clone(),
            ),
        )
        .boxed(),
    ];

    for scope in &scopes {
        let (dbs, restores, jobs) = (
            Api::<Database>::all_or(&client, scope),
            Api::<DbRestore>::all_or(&client, scope),
            Api::<Job>::all_or(&client, scope),
        );
        let (trigger, cache) = lean(dbs);
        let databases =
            Controller::for_stream(trigger, cache).graceful_shutdown_on(shutdown.clone());
        let store = databases.store();
        stores.push(synced(store.clone()));
        // Commissioning Jobs, credentials copies and schema copies live in the admin Secret's
        // namespace: in all-namespaces mode these watches see them; with watched namespaces
        // they are read from the API and `recheck` polling picks up the Jobs' outcome.
        let databases = databases
            .owns_stream(tracked::<CronJob>(&ctx.children, &client, scope))
            .owns_stream(tracked::<Secret>(&ctx.children, &client, scope))
            .owns_stream(tracked::<ServiceAccount>(&ctx.children, &client, scope))
            .watches_stream(tracked::<Job>(&ctx.children, &client, scope), database_of)
            .watches_stream(
                tracked::<ConfigMap>(&ctx.children, &client, scope),
                database_of,
            )
            .watches(
                Api::<DbInstance>::all(client.clone()),
                watcher::Config::default(),
                move |inst: DbInstance| {
                    let name = inst.name_any();
                    store
                        .state()
                        .into_iter()
                        .filter(|db| db.spec.instance == name)
                        .map(|db| ObjectRef::from_obj(db.as_ref()))
                        .collect::<Vec<_>>()
                },
            );
        tasks.push(
            drain(
                "database",
                databases.run(
                    |obj, ctx| observed("database", obj, ctx, database::reconcile),
                    error_policy,
                    ctx.clone(),
                ),
            )
            .boxed(),
        );

        let restore_jobs = watcher::Config::default().labels(&format!(
            "{LABEL_MANAGED_BY}={MANAGER},{LABEL_COMPONENT}=restore"
        ));
        let restores = Controller::new(restores, watcher::Config::default())
            .with_config(concurrency.clone())
            .graceful_shutdown_on(shutdown.clone())
            .owns(jobs, restore_jobs);
        stores.push(synced(restores.store()));
        tasks.push(
            drain(
                "dbrestore",
                restores.run(
                    |obj, ctx| observed("dbrestore", obj, ctx, restore::reconcile),
                    error_policy,
                    ctx.clone(),
                ),
            )
            .boxed(),
        );
    }

    let synced_flag = readiness.clone();
    let ready = async move {
        if futures::future::join_all(stores)
            .await
            .into_iter()
            .all(|ok| ok)
        {
            synced_flag.set();
            tracing::info!("caches synced; controllers running");
        }
    };
    let controllers = futures::future::join(futures::future::join_all(tasks), ready);
    // kube's graceful shutdown waits for caches that may never sync once their watches are cut
    // (a stop right after start, an unreachable API server): then nothing is in flight, so the
    // controllers are dropped at once. Synced controllers get `SHUTDOWN_GRACE` to finish the
    // reconciles in flight; reconciles are level-based, so one cut short is redone by the next
    // leader or run.
    let deadline = async move {
        shutdown.await;
        if readiness.is_ready() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!(
                "reconciles still running {}s after the stop; leaving them",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    };
    tokio::select! {
        _ = controllers => {}
        () = deadline => {}
    }
}

/// How long a stop waits for reconciles in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);
