//! Prometheus metrics of the controllers and the engine calls, served by `db-operator run` on
//! `/metrics` in the OpenMetrics text format.
//!
//! Label values are bounded: controller names, condition/API reasons, engine names and
//! operations are fixed sets; the per-Database backup gauge has one series per Database and is
//! removed with it.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use dbo_engine::{
    BackupRequest, CallError, CommissionRequest, CredentialLayout, Database as EngineDatabase,
    Diagnostic, Engine, EngineInfo, Instance, JobSpec, RestoreRequest,
};
use kube::runtime::controller::Action;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Error;
use crate::catalog::{EngineCatalog, ServedEngine};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    engine: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLabels {
    namespace: String,
    database: String,
}

/// Every metric the operator exports, registered once.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    reconcile_seconds: Family<ControllerLabels, Histogram>,
    call_seconds: Family<CallLabels, Histogram>,
    traps: Family<CallLabels, Counter>,
    last_backup: Family<DatabaseLabels, Gauge>,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("db_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles run, by controller",
            reconciles.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed or left the object in a failed state, by controller and reason (a Ready=False condition reason, or the API's reason for a failed request)",
            errors.clone(),
        );
        // Reconciles are API round trips: milliseconds to tens of seconds.
        let reconcile_seconds = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            reconcile_seconds.clone(),
        );
        // Engine calls are tens of microseconds warm, up to the sandbox deadline when stuck.
        let call_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
            ])
        });
        registry.register(
            "plugin_call_duration_seconds",
            "Time one engine plugin call took (sandbox included), by engine and operation",
            call_seconds.clone(),
        );
        let traps = Family::<CallLabels, Counter>::default();
        registry.register(
            "plugin_traps",
            "Engine calls the sandbox stopped (trap, deadline, memory cap, malformed answer), by engine and operation",
            traps.clone(),
        );
        let last_backup = Family::<DatabaseLabels, Gauge>::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Unix time of the newest successful backup Job of a Database",
            last_backup.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles, else 0",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            reconcile_seconds,
            call_seconds,
            traps,
            last_backup,
            leader,
        }
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Runs one reconcile of `controller`, counting and timing it; an `Err` counts as an error
    /// with the API's reason.
    pub(crate) async fn reconcile(
        &self,
        controller: &'static str,
        reconcile: impl Future<Output = Result<Action, Error>>,
    ) -> Result<Action, Error> {
        let started = Instant::now();
        let result = reconcile.await;
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.failed(controller, error_reason(e));
        }
        result
    }

    /// Counts a reconcile that left the object failed (a Warning condition) with `reason`.
    pub(crate) fn failed(&self, controller: &'static str, reason: impl Into<String>) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                reason: reason.into(),
            })
            .inc();
    }

    pub(crate) fn backup_succeeded(&self, namespace: &str, database: &str, unix_seconds: i64) {
        self.last_backup
            .get_or_create(&DatabaseLabels {
                namespace: namespace.into(),
                database: database.into(),
            })
            .set(unix_seconds);
    }

    /// Drops the series of a Database that is gone, so deleted Databases do not linger.
    pub(crate) fn forget_database(&self, namespace: &str, database: &str) {
        self.last_backup.remove(&DatabaseLabels {
            namespace: namespace.into(),
            database: database.into(),
        });
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    fn call<T>(
        &self,
        engine: &str,
        operation: &'static str,
        call: impl FnOnce() -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let result = call();
        let labels = CallLabels {
            engine: engine.into(),
            operation,
        };
        self.call_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(CallError::Runtime(_)) = &result {
            self.traps.get_or_create(&labels).inc();
        }
        result
    }
}

/// The `reason` label of a failed reconcile: the Status reason of a refused API request
/// (`Conflict`, `TooManyRequests`, ...), else the kind of failure.
fn error_reason(e: &Error) -> String {
    match e {
        Error::Kube(kube::Error::Api(status)) if !status.reason.is_empty() => status.reason.clone(),
        Error::Kube(kube::Error::Api(status)) => format!("Http{}", status.code),
        Error::Kube(_) => "ApiUnreachable".into(),
        Error::Join(_) => "EngineCallAborted".into(),
    }
}

/// A catalog whose engines report their calls to [`Metrics`].
pub(crate) struct Metered {
    pub inner: Arc<dyn EngineCatalog>,
    pub metrics: Arc<Metrics>,
}

impl EngineCatalog for Metered {
    fn engine(&self, name: &str) -> Option<ServedEngine> {
        let served = self.inner.engine(name)?;
        Some(ServedEngine {
            engine: Arc::new(MeteredEngine {
                name: name.to_string(),
                inner: served.engine,
                metrics: self.metrics.clone(),
            }),
            plugin: served.plugin,
        })
    }

    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    fn refused(&self, name: &str) -> Option<String> {
        self.inner.refused(name)
    }
}

struct MeteredEngine {
    name: String,
    inner: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
}

impl Engine for MeteredEngine {
    fn describe(&self) -> Result<EngineInfo, CallError> {
        self.metrics
            .call(&self.name, "describe", || self.inner.describe())
    }

    fn validate(
        &self,
        instance: &Instance,
        database: Option<&EngineDatabase>,
    ) -> Result<Vec<Diagnostic>, CallError> {
        self.metrics.call(&self.name, "validate", || {
            self.inner.validate(instance, database)
        })
    }

    fn credentials(
        &self,
        instance: &Instance,
        database: &EngineDatabase,
    ) -> Result<CredentialLayout, CallError> {
        self.metrics.call(&self.name, "credentials", || {
            self.inner.credentials(instance, database)
        })
    }

    fn backup(&self, request: &BackupRequest) -> Result<JobSpec, CallError> {
        self.metrics
            .call(&self.name, "backup", || self.inner.backup(request))
    }

    fn commission(&self, request: &CommissionRequest) -> Result<Option<JobSpec>, CallError> {
        self.metrics
            .call(&self.name, "commission", || self.inner.commission(request))
    }

    fn restore(&self, request: &RestoreRequest) -> Result<JobSpec, CallError> {
        self.metrics
            .call(&self.name, "restore", || self.inner.restore(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Traps on `describe`, refuses everything else: a refusal is an answer, not a trap.
    struct Trapping;

    fn refused() -> CallError {
        CallError::Plugin {
            engine: "redis".into(),
            error: dbo_engine::PluginError::Unsupported("no".into()),
        }
    }

    impl Engine for Trapping {
        fn describe(&self) -> Result<EngineInfo, CallError> {
            Err(CallError::Runtime("wasm trap: unreachable".into()))
        }
        fn validate(
            &self,
            _: &Instance,
            _: Option<&EngineDatabase>,
        ) -> Result<Vec<Diagnostic>, CallError> {
            Err(refused())
        }
        fn credentials(
            &self,
            _: &Instance,
            _: &EngineDatabase,
        ) -> Result<CredentialLayout, CallError> {
            Err(refused())
        }
        fn backup(&self, _: &BackupRequest) -> Result<JobSpec, CallError> {
            Err(refused())
        }
        fn commission(&self, _: &CommissionRequest) -> Result<Option<JobSpec>, CallError> {
            Err(refused())
        }
        fn restore(&self, _: &RestoreRequest) -> Result<JobSpec, CallError> {
            Err(refused())
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn engine_calls_are_timed_and_traps_counted_by_engine_and_operation() {
        let metrics = Arc::new(Metrics::new());
        let engine = MeteredEngine {
            name: "redis".into(),
            inner: Arc::new(Trapping),
            metrics: metrics.clone(),
        };
        assert!(engine.describe().is_err());
        assert!(engine.describe().is_err());
        let answered = metrics.call("redis", "commission", || Err::<(), _>(refused()));
        assert!(matches!(answered, Err(CallError::Plugin { .. })));
        let text = metrics.encode();
        assert_eq!(
            line(
                &text,
                "db_operator_plugin_traps_total{engine=\"redis\",operation=\"describe\"}"
            ),
            Some("db_operator_plugin_traps_total{engine=\"redis\",operation=\"describe\"} 2"),
            "{text}"
        );
        assert!(
            line(
                &text,
                "db_operator_plugin_traps_total{engine=\"redis\",operation=\"commission\"}"
            )
            .is_none(),
            "a call that answered is not a trap: {text}"
        );
        assert!(
            line(
                &text,
                "db_operator_plugin_call_duration_seconds_count{engine=\"redis\",operation=\"commission\"} 1"
            )
            .is_some(),
            "{text}"
        );
    }

    #[tokio::test]
    async fn failed_reconciles_are_counted_by_the_api_reason() {
        let metrics = Metrics::new();
        let conflict = kube::Error::Api(Box::new(kube::core::Status {
            reason: "Conflict".into(),
            code: 409,
            ..kube::core::Status::default()
        }));
        let _ = metrics
            .reconcile("database", async { Err(Error::Kube(conflict)) })
            .await;
        let _ = metrics
            .reconcile("database", async { Ok(Action::await_change()) })
            .await;
        metrics.failed("database", "InvalidSpec");
        let text = metrics.encode();
        for expected in [
            "db_operator_reconciles_total{controller=\"database\"} 2",
            "db_operator_reconcile_errors_total{controller=\"database\",reason=\"Conflict\"} 1",
            "db_operator_reconcile_errors_total{controller=\"database\",reason=\"InvalidSpec\"} 1",
            "db_operator_reconcile_duration_seconds_count{controller=\"database\"} 2",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn a_deleted_database_leaves_no_backup_series() {
        let metrics = Metrics::new();
        metrics.backup_succeeded("shop", "orders", 1_700_000_000);
        let series = "db_operator_backup_last_success_timestamp_seconds{namespace=\"shop\",database=\"orders\"} 1700000000";
        assert!(metrics.encode().lines().any(|l| l == series));
        metrics.forget_database("shop", "orders");
        assert!(!metrics.encode().contains("database=\"orders\""));
    }
}
