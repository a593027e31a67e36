//! High availability: two operator replicas in one process, each running the controllers only
//! while it holds the Lease, against the in-process API server.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{PATIENCE, db_condition, is, wait_for};
use dbo_api::{Database, DbInstance};
use dbo_apiserver::{ApiServer, FaultRule};
use dbo_controller::leader::{InvalidElection, LeaderElection, Leadership, run_elected};
use dbo_controller::{Config, Context, Readiness, ServedEngine, StaticCatalog};
use dbo_plugin_runtime::{PluginRuntime, RuntimeConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NS: &str = "apps";
const LEASE: &str = "db-operator";

fn catalog() -> StaticCatalog {
    static CATALOG: OnceLock<StaticCatalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let runtime = PluginRuntime::new(RuntimeConfig::default()).expect("plugin runtime");
            let plugin = runtime
                .load("postgres", dbo_plugin_artifacts::POSTGRES)
                .expect("plugin loads");
            let status = dbo_api::PluginStatus {
                name: plugin.info().name.clone(),
                version: plugin.info().version.clone(),
                digest: plugin.digest().to_string(),
            };
            let mut catalog = StaticCatalog::new();
            catalog.insert(
                "postgres",
                ServedEngine {
                    engine: Arc::new(plugin),
                    plugin: status,
                },
            );
            catalog
        })
        .clone()
}

/// Lease timing short enough for tests; `duration` in whole seconds.
fn election(identity: &str, duration: u64, renew: Duration) -> LeaderElection {
    LeaderElection {
        lease_duration: Duration::from_secs(duration),
        renew_deadline: renew,
        retry_period: Duration::from_millis(300),
        ..LeaderElection::new(LEASE, NS, identity)
    }
}

struct Cluster {
    server: ApiServer,
    client: Client,
}

impl Cluster {
    /// An API server with the CRDs, the namespace, and a ready-to-use PostgreSQL instance.
    async fn start() -> Cluster {
        let server = ApiServer::start(dbo_apiserver::Config::default())
            .await
            .expect("API server starts");
        let uri: http::Uri = server.url().parse().expect("server URL");
        let client = Client::try_from(kube::Config::new(uri)).expect("client");
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
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace is created");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "admin", "namespace": NS},
            "stringData": {"user": "postgres", "password": "admin-pw"}
        }))
        .expect("secret");
        Api::<Secret>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &secret)
            .await
            .expect("admin Secret is created");
        let instance: DbInstance = serde_json::from_value(json!({
            "apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "pg"},
            "spec": {
                "engine": "postgres",
                "adminSecretRef": {"namespace": NS, "name": "admin"},
                "generic": {"host": "pg.example", "port": 5432}
            }
        }))
        .expect("instance");
        Api::<DbInstance>::all(client.clone())
            .create(&PostParams::default(), &instance)
            .await
            .expect("instance is created");
        Cluster { server, client }
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn databases(&self) -> Api<Database> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn holder(&self) -> Option<String> {
        self.leases()
            .get_opt(LEASE)
            .await
            .expect("lease read")
            .and_then(|l| l.spec?.holder_identity)
    }

    async fn create_database(&self, name: &str) {
        let db: Database = serde_json::from_value(json!({
            "apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"instance": "pg", "secretName": format!("{name}-credentials"),
                "backup": {"enable": false}}
        }))
        .expect("database");
        self.databases()
            .create(&PostParams::default(), &db)
            .await
            .expect("database is created");
    }

    /// Waits until the Database's credentials Secret exists and it reports commissioning.
    async fn reconciled(&self, name: &str) {
        wait_for(
            &self.secrets(),
            &format!("{name}-credentials"),
            "credentials Secret",
            |_| true,
        )
        .await;
        wait_for(&self.databases(), name, "Commissioning", |d| {
            is(&db_condition(d, "Commissioned"), "False", "Commissioning")
        })
        .await;
    }

    /// `reportingInstance` of every Event in the cluster (the instance's land in `default`).
    async fn event_reporters(&self) -> Vec<String> {
        Api::<Event>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("events list")
            .items
            .into_iter()
            .map(|e| e.reporting_instance.unwrap_or_default())
            .collect()
    }

    /// `reportingInstance` of the Events about one Database, once it has any.
    async fn database_reporters(&self, name: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = self.database_events(name).await;
            if !events.is_empty() {
                return events
                    .into_iter()
                    .map(|e| e.reporting_instance.unwrap_or_default())
                    .collect();
            }
            assert!(Instant::now() < deadline, "no Events about Database {name}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events about one Database.
    async fn database_events(&self, name: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default().fields(&format!(
                "involvedObject.kind=Database,involvedObject.name={name}"
            )))
            .await
            .expect("events list")
            .items
    }
}

/// One operator replica: the controllers, run only while its election is won.
struct Replica {
    identity: String,
    leadership: Leadership,
    /// How many times it started the controllers.
    terms: Arc<AtomicUsize>,
    /// Whether its controllers' future is running.
    running: Arc<AtomicBool>,
    /// The cache readiness of its current (or last) term.
    readiness: Arc<Mutex<Readiness>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), InvalidElection>>,
}

/// Clears the `running` flag when the controllers' future ends or is dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Replica {
    fn start(cluster: &Cluster, election: LeaderElection) -> Replica {
        let identity = election.identity.clone();
        let ctx = Arc::new(Context::new(
            cluster.client.clone(),
            Arc::new(catalog()),
            Config {
                watch_namespaces: vec![NS.into()],
                recheck: Duration::from_millis(300),
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_secs(2),
                instance: Some(identity.clone()),
                ..Config::default()
            },
        ));
        let leadership = Leadership::default();
        let terms = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicBool::new(false));
        let readiness = Arc::new(Mutex::new(Readiness::default()));
        let (tx, rx) = oneshot::channel::<()>();
        let lead = {
            let (terms, running, readiness) = (terms.clone(), running.clone(), readiness.clone());
            move |stop| {
                let (ctx, terms, running) = (ctx.clone(), terms.clone(), running.clone());
                let term = Readiness::default();
                *readiness.lock().unwrap() = term.clone();
                async move {
                    terms.fetch_add(1, Ordering::SeqCst);
                    running.store(true, Ordering::SeqCst);
                    let _running = Running(running);
                    dbo_controller::run(ctx, term, stop).await;
                }
            }
        };
        let task = tokio::spawn(run_elected(
            cluster.client.clone(),
            election,
            async {
                let _ = rx.await;
            },
            leadership.clone(),
            lead,
        ));
        Replica {
            identity,
            leadership,
            terms,
            running,
            readiness,
            shutdown: Some(tx),
            task,
        }
    }

    fn leads(&self) -> bool {
        self.leadership.is_leader()
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Leads, with every controller's cache synced.
    fn reconciling(&self) -> bool {
        self.leads() && self.running() && self.readiness.lock().unwrap().is_ready()
    }

    fn terms(&self) -> usize {
        self.terms.load(Ordering::SeqCst)
    }

    /// Graceful shutdown, as on SIGTERM; waits for the election to end.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the replica stops")
            .expect("the election task did not panic")
            .expect("the election settings are valid");
    }
}

/// Records whether both replicas ever claimed to lead at the same moment.
fn watch_for_two_leaders(a: &Replica, b: &Replica) -> Arc<AtomicBool> {
    let seen = Arc::new(AtomicBool::new(false));
    let (a, b, flag) = (a.leadership.clone(), b.leadership.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            if a.is_leader() && b.is_leader() {
                flag.store(true, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    seen
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts two replicas and returns (leader, standby) once one leads.
async fn two_replicas(cluster: &Cluster, duration: u64, renew: Duration) -> (Replica, Replica) {
    let a = Replica::start(cluster, election("replica-a", duration, renew));
    let b = Replica::start(cluster, election("replica-b", duration, renew));
    until("one replica leads", || a.leads() || b.leads()).await;
    if a.leads() { (a, b) } else { (b, a) }
}

/// Writes another holder into the Lease, as a replica this test does not run would.
async fn take_lease(cluster: &Cluster, holder: Option<&str>, duration_seconds: i32) {
    let leases = cluster.leases();
    loop {
        let mut lease = leases.get(LEASE).await.expect("lease read");
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = holder.map(str::to_string);
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        match leases.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(_) => return,
            // The holder renewed in between; read again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("lease write: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_leads_and_only_it_reconciles() {
    let cluster = Cluster::start().await;
    let (leader, standby) = two_replicas(&cluster, 3, Duration::from_secs(2)).await;
    let two_leaders = watch_for_two_leaders(&leader, &standby);
    assert_eq!(cluster.holder().await.as_deref(), Some(&*leader.identity));

    cluster.create_database("orders").await;
    cluster.reconciled("orders").await;
    // Several renewals later, the roles are unchanged.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(leader.leads() && !standby.leads());
    assert_eq!(
        standby.terms(),
        0,
        "the standby never started its controllers"
    );
    cluster.database_reporters("orders").await;
    let reporters = cluster.event_reporters().await;
    assert!(
        reporters.iter().all(|r| *r == leader.identity),
        "every Event is reported by the leader {}: {reporters:?}",
        leader.identity
    );
    assert!(
        !two_leaders.load(Ordering::SeqCst),
        "both replicas led at once"
    );
    standby.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_once_its_lease_lapses() {
    let cluster = Cluster::start().await;
    let (leader, standby) = two_replicas(&cluster, 3, Duration::from_secs(2)).await;
    let two_leaders = watch_for_two_leaders(&leader, &standby);
    until("the leader reconciles", || leader.reconciling()).await;

    // A crashed pod: nothing released, nothing renews any more.
    leader.task.abort();
    let crashed = Instant::now();
    until("the standby takes over", || standby.leads()).await;
    let took = crashed.elapsed();
    eprintln!("takeover after a crash (3 s lease): {took:?}");
    // The claim was renewed at most one retry period (0.3 s) before the crash and is honoured
    // for its full 3 s from then.
    assert!(
        took >= Duration::from_secs(2),
        "the standby took a claim that had not lapsed, after {took:?}"
    );
    assert!(
        took <= Duration::from_secs(3 + 3),
        "the standby took over only after {took:?}"
    );
    assert_eq!(cluster.holder().await.as_deref(), Some(&*standby.identity));

    cluster.create_database("after-crash").await;
    cluster.reconciled("after-crash").await;
    let reporters = cluster.database_reporters("after-crash").await;
    assert!(
        reporters.iter().all(|r| *r == standby.identity),
        "the new leader reconciles: {reporters:?}"
    );
    assert!(
        !two_leaders.load(Ordering::SeqCst),
        "both replicas led at once"
    );
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_shutting_down_releases_the_lease_for_an_immediate_takeover() {
    let cluster = Cluster::start().await;
    // A long lease: a takeover well within it can only come from the release.
    let (leader, standby) = two_replicas(&cluster, 20, Duration::from_secs(15)).await;
    let two_leaders = watch_for_two_leaders(&leader, &standby);
    until("the leader reconciles", || leader.reconciling()).await;

    let stopping = Instant::now();
    let running = leader.running.clone();
    leader.stop().await;
    assert!(
        !running.load(Ordering::SeqCst),
        "the controllers stopped before the election ended"
    );
    until("the standby takes over", || standby.leads()).await;
    let took = stopping.elapsed();
    eprintln!("takeover after a graceful shutdown (20 s lease): {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the takeover took {took:?}, as if the 20 s lease had not been released"
    );
    assert_eq!(cluster.holder().await.as_deref(), Some(&*standby.identity));
    assert!(
        !two_leaders.load(Ordering::SeqCst),
        "both replicas led at once"
    );
    until("the new leader reconciles", || standby.reconciling()).await;
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_reconciling_and_leads_again_once_it_is_free() {
    let cluster = Cluster::start().await;
    let (leader, standby) = two_replicas(&cluster, 3, Duration::from_secs(2)).await;
    until("the leader reconciles", || leader.reconciling()).await;

    take_lease(&cluster, Some("someone-else"), 3600).await;
    until("the leader's controllers stop", || !leader.running()).await;
    assert!(!leader.leads() && !standby.leads());

    cluster.create_database("unowned").await;
    // Several retry periods: a replica still reconciling would have written by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster
            .secrets()
            .get_opt("unowned-credentials")
            .await
            .unwrap()
            .map(|s| s.name_any()),
        None,
        "a replica without the lease wrote the Database's Secret"
    );
    let events = cluster.database_events("unowned").await;
    assert!(
        events.is_empty(),
        "a replica without the lease reported: {events:?}"
    );
    assert!(!leader.running() && !standby.running());

    // With the standby gone, the first leader must win again and run the controllers anew.
    standby.stop().await;
    take_lease(&cluster, None, 1).await;
    until("the first leader leads again", || leader.leads()).await;
    cluster.reconciled("unowned").await;
    assert_eq!(leader.terms(), 2, "the controllers ran a second term");
    let reporters = cluster.database_reporters("unowned").await;
    assert!(
        reporters.iter().all(|r| *r == leader.identity),
        "{reporters:?}"
    );
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_could_be_taken() {
    let cluster = Cluster::start().await;
    let (leader, standby) = two_replicas(&cluster, 6, Duration::from_secs(3)).await;
    let two_leaders = watch_for_two_leaders(&leader, &standby);
    until("the leader reconciles", || leader.reconciling()).await;

    cluster.server.faults().set(FaultRule {
        verbs: vec!["create".into(), "update".into(), "patch".into()],
        resources: vec!["leases".into()],
        // The default failure: 500 InternalError.
        error_rate: 1.0,
        ..FaultRule::default()
    });
    let refused = Instant::now();
    until("the leader gives up", || !leader.leads()).await;
    let gave_up = refused.elapsed();
    eprintln!("leader gave up {gave_up:?} after its renewals began failing (3 s renew deadline)");
    // Its last renewal started at most one retry period (0.3 s) before the refusals; the others
    // may take the 6 s claim from then on, and it has to have stopped before.
    assert!(
        gave_up < Duration::from_millis(5700),
        "the leader went on leading for {gave_up:?} without a renewal"
    );
    until("the leader's controllers stop", || !leader.running()).await;

    cluster.create_database("while-cut-off").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster
            .secrets()
            .get_opt("while-cut-off-credentials")
            .await
            .unwrap()
            .map(|s| s.name_any()),
        None,
        "a replica that could not renew wrote the Database's Secret"
    );
    assert!(cluster.database_events("while-cut-off").await.is_empty());

    cluster.server.faults().clear();
    until("a replica leads again", || {
        leader.leads() || standby.leads()
    })
    .await;
    cluster.reconciled("while-cut-off").await;
    assert!(
        !two_leaders.load(Ordering::SeqCst),
        "both replicas led at once"
    );
    standby.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_before_its_caches_synced_stops() {
    let cluster = Cluster::start().await;
    let ctx = Arc::new(Context::new(
        cluster.client.clone(),
        Arc::new(catalog()),
        Config {
            watch_namespaces: vec![NS.into()],
            ..Config::default()
        },
    ));
    // Stopped before the first poll: no cache can have synced.
    let ended = tokio::time::timeout(
        PATIENCE,
        dbo_controller::run(ctx, Readiness::default(), async {}),
    )
    .await;
    assert!(ended.is_ok(), "the controllers never stopped");
}
