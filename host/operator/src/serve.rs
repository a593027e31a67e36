//! `db-operator run` (against a cluster) and `db-operator dev` (against an in-process API
//! server on 127.0.0.1, with the example manifests applied).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbo_controller::leader::{LeaderElection, Leadership};
use dbo_controller::metrics::Metrics;
use dbo_controller::{Config as ControllerConfig, Context, Readiness};
use http_body_util::Full;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::{CliError, SandboxArgs};
use crate::engines::{self, EngineArgs};

/// Field manager of what `dev` applies on the user's behalf (as `kubectl apply` would).
const DEV_MANAGER: &str = "db-operator-dev";

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    engines: EngineArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Reconcile Databases and DbRestores only in these namespaces (repeatable, or
    /// comma-separated in the environment variable); default all. DbInstances are cluster-scoped.
    #[arg(
        long = "watch-namespace",
        env = "DBO_WATCH_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    watch_namespaces: Vec<String>,
    /// Address of the `/healthz`, `/readyz` and `/metrics` (Prometheus) endpoints.
    #[arg(long, env = "DBO_PROBE_ADDR", default_value = "0.0.0.0:8080")]
    probe_addr: SocketAddr,
    /// Directory for compiled plugins, so a restart skips compiling them.
    #[arg(long, env = "DBO_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Reconciles each controller runs at once.
    #[arg(long, env = "DBO_CONCURRENCY", default_value_t = ControllerConfig::default().concurrency)]
    concurrency: u16,
    /// Reconcile only while this replica holds the leader-election Lease, so several replicas
    /// can run for high availability; `--leader-elect=false` for a single replica.
    #[arg(long, env = "DBO_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "DBO_LEASE_NAME", default_value = "db-operator")]
    lease_name: String,
    /// Namespace of the leader-election Lease [default: the pod's, from POD_NAMESPACE or the
    /// in-cluster service-account namespace].
    #[arg(long, env = "DBO_LEASE_NAMESPACE", value_name = "NS")]
    lease_namespace: Option<String>,
}

/// Where a pod's own namespace is mounted in a cluster.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn lease_namespace(flag: Option<&str>) -> Result<String, CliError> {
    let from_env = std::env::var("POD_NAMESPACE").ok();
    let from_file = std::fs::read_to_string(POD_NAMESPACE_FILE).ok();
    [flag.map(str::to_string), from_env, from_file]
        .into_iter()
        .flatten()
        .map(|ns| ns.trim().to_string())
        .find(|ns| !ns.is_empty())
        .ok_or_else(|| {
            CliError::Serve(format!(
                "--lease-namespace is not set and the pod's namespace is unknown (no POD_NAMESPACE, no {POD_NAMESPACE_FILE}): pass --lease-namespace (DBO_LEASE_NAMESPACE), or --leader-elect=false for a single replica"
            ))
        })
}

/// The replica's name as Lease holder and Events' reportingInstance: the pod name, else the
/// host name with a random suffix, so two processes on one host never share it.
fn replica_identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME")
        .ok()
        .filter(|p| !p.trim().is_empty())
    {
        return pod.trim().to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "db-operator".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// YAML files or directories to apply once the API server is up (DbInstance, Database,
    /// DbRestore, Secret, ConfigMap); their namespaces are created when missing.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// Address of the in-process API server.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig for kubectl (default: a file in the system's temp directory).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    engines: EngineArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Serve(format!("cannot start the async runtime: {e}")))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn controller_context(
    client: Client,
    engines: &EngineArgs,
    sandbox: &SandboxArgs,
    cache_dir: Option<PathBuf>,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<Context>, CliError> {
    let runtime = sandbox.runtime_with_cache(cache_dir)?;
    let loaded = engines::load(&runtime, engines)?;
    for (name, plugin) in &loaded.engines {
        tracing::info!(engine = %name, version = %plugin.info().version, digest = %plugin.digest(), "engine plugin loaded");
    }
    let catalog = Arc::new(engines::catalog(loaded));
    Ok(Arc::new(Context::with_metrics(
        client, catalog, config, metrics,
    )))
}

pub fn run(args: RunArgs) -> Result<(), CliError> {
    tokio_runtime()?.block_on(async move {
        let client = Client::try_default().await.map_err(|e| {
            CliError::Serve(format!(
                "no Kubernetes API to talk to: {e}. Run inside a cluster (in-cluster config) or set KUBECONFIG; `db-operator dev` starts a local API server instead"
            ))
        })?;
        // Settings fail before plugins are compiled.
        let identity = replica_identity();
        let election = if args.leader_elect {
            let election = LeaderElection::new(
                args.lease_name.clone(),
                lease_namespace(args.lease_namespace.as_deref())?,
                identity.clone(),
            );
            election
                .validate()
                .map_err(|e| CliError::Serve(format!("--lease-name/--lease-namespace: {e}")))?;
            Some(election)
        } else {
            None
        };
        let config = ControllerConfig {
            watch_namespaces: args.watch_namespaces.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect(),
            instance: Some(identity),
            concurrency: args.concurrency.max(1),
            ..ControllerConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let ctx = controller_context(client, &args.engines, &args.sandbox, args.cache_dir.clone(), config, metrics.clone())?;
        let readiness = Readiness::default();
        let probes = tokio::net::TcpListener::bind(args.probe_addr)
            .await
            .map_err(|e| CliError::Serve(format!("--probe-addr {}: {e}", args.probe_addr)))?;
        let leadership = election.as_ref().map(|_| Leadership::default());
        tokio::spawn(serve_probes(
            probes,
            readiness.clone(),
            leadership.clone(),
            metrics.clone(),
        ));
        tracing::info!(probes = %args.probe_addr, "db-operator running");
        match (election, leadership) {
            (Some(election), Some(leadership)) => {
                let client = ctx.client.clone();
                dbo_controller::leader::run_elected(
                    client,
                    election,
                    shutdown_signal(),
                    leadership,
                    |stop| dbo_controller::run(ctx.clone(), readiness.clone(), stop),
                )
                .await
                .map_err(|e| CliError::Serve(e.to_string()))?;
            }
            _ => dbo_controller::run(ctx, readiness, shutdown_signal()).await,
        }
        Ok(())
    })
}

/// `/healthz`: the process serves requests. `/readyz`: every controller's cache has synced, or
/// this replica is a standby (another leads) — a standby counted unavailable would stall a
/// rolling update of several replicas. `/metrics`: Prometheus metrics (OpenMetrics text).
async fn serve_probes(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    leadership: Option<Leadership>,
    metrics: Arc<Metrics>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let readiness = readiness.clone();
        let leadership = leadership.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let leading = leadership.as_ref().is_none_or(Leadership::is_leader);
                    let ready = readiness.is_ready();
                    let metrics = metrics.clone();
                    async move {
                        let text = |s: &'static str| Bytes::from_static(s.as_bytes());
                        let (code, content_type, body) = match req.uri().path() {
                            "/healthz" | "/livez" => (200, "text/plain", text("ok")),
                            "/readyz" if !leading => {
                                (200, "text/plain", text("standby: another replica leads"))
                            }
                            "/readyz" if ready => (200, "text/plain", text("ok")),
                            "/readyz" => (503, "text/plain", text("caches not synced yet")),
                            "/metrics" => {
                                metrics.set_leader(leading);
                                (
                                    200,
                                    dbo_controller::metrics::CONTENT_TYPE,
                                    Bytes::from(metrics.encode()),
                                )
                            }
                            _ => (404, "text/plain", text("not found")),
                        };
                        hyper::Response::builder()
                            .status(code)
                            .header("content-type", content_type)
                            .body(Full::new(body))
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

pub fn dev(args: DevArgs) -> Result<(), CliError> {
    // Parse first: a broken example fails before anything starts, with the same messages as
    // `render`.
    let manifests = crate::cli::read_manifests(&args.files)?;
    tokio_runtime()?.block_on(async move {
        let server = dbo_apiserver::ApiServer::start(dbo_apiserver::Config {
            addr: args.listen,
            ..dbo_apiserver::Config::default()
        })
        .await
        .map_err(|e| CliError::Serve(format!("--listen {}: {e}", args.listen)))?;
        let kubeconfig = args
            .kubeconfig
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("db-operator-dev").join("kubeconfig"));
        if let Some(dir) = kubeconfig.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CliError::Read {
                path: dir.display().to_string(),
                source,
            })?;
        }
        std::fs::write(&kubeconfig, server.kubeconfig("db-operator-dev")).map_err(|source| {
            CliError::Read {
                path: kubeconfig.display().to_string(),
                source,
            }
        })?;
        let uri: http::Uri = server
            .url()
            .parse()
            .map_err(|e| CliError::Serve(format!("API server URL: {e}")))?;
        let client = Client::try_from(kube::Config::new(uri))
            .map_err(|e| CliError::Serve(format!("client for the dev API server: {e}")))?;
        install_crds(&client).await?;
        let applied = apply_manifests(&client, &manifests).await?;

        let config = ControllerConfig {
            recheck: Duration::from_secs(2),
            ..ControllerConfig::default()
        };
        let ctx = controller_context(
            client,
            &args.engines,
            &args.sandbox,
            None,
            config,
            Arc::new(Metrics::new()),
        )?;
        let readiness = Readiness::default();
        let controllers = tokio::spawn(dbo_controller::run(ctx, readiness, shutdown_signal()));

        let path = kubeconfig.display();
        println!("db-operator dev: API server on {}", server.url());
        println!("  kubeconfig: {path}");
        println!();
        println!("  export KUBECONFIG={path}");
        println!("  kubectl get dbinstances,databases,dbrestores -A");
        println!("  kubectl get cronjobs,jobs,secrets -A");
        println!("  kubectl describe database -A");
        println!();
        println!("  Jobs do not run here: mark one done with");
        println!(
            "  kubectl patch job NAME -n NS --subresource=status --type=merge -p '{{\"status\":{{\"succeeded\":1,\"conditions\":[{{\"type\":\"Complete\",\"status\":\"True\"}}]}}}}'"
        );
        println!();
        println!("  applied {applied} object(s); controllers running (Ctrl-C stops)");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = controllers.await;
        server.shutdown().await;
        Ok(())
    })
}

async fn install_crds(client: &Client) -> Result<(), CliError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in dbo_api::crds() {
        apply(&api, &crd).await?;
    }
    Ok(())
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), CliError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(DEV_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map(drop)
    .map_err(|e| CliError::Serve(format!("applying {} {}: {e}", K::kind(&()), obj.name_any())))
}

/// Applies what the files declared, creating their namespaces first; returns the object count.
async fn apply_manifests(
    client: &Client,
    m: &dbo_api::manifest::Manifests,
) -> Result<usize, CliError> {
    let mut namespaces: Vec<String> = m
        .secrets
        .iter()
        .map(|s| s.namespace().unwrap_or_else(|| "default".into()))
        .chain(
            m.config_maps
                .iter()
                .map(|c| c.namespace().unwrap_or_else(|| "default".into())),
        )
        .chain(m.databases.iter().map(|d| d.namespace_or_default()))
        .chain(m.restores.iter().map(|r| r.namespace_or_default()))
        .chain(
            m.instances
                .iter()
                .map(|i| i.spec.admin_secret_ref.namespace.clone()),
        )
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &namespaces {
        if ns_api
            .get_opt(ns)
            .await
            .map_err(|e| CliError::Serve(e.to_string()))?
            .is_none()
        {
            let obj = Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Namespace::default()
            };
            apply(&ns_api, &obj).await?;
        }
    }
    let mut count = 0;
    for s in &m.secrets {
        let ns = s.namespace().unwrap_or_else(|| "default".into());
        apply(&Api::<Secret>::namespaced(client.clone(), &ns), s).await?;
        count += 1;
    }
    for c in &m.config_maps {
        let ns = c.namespace().unwrap_or_else(|| "default".into());
        apply(&Api::<ConfigMap>::namespaced(client.clone(), &ns), c).await?;
        count += 1;
    }
    for i in &m.instances {
        apply(&Api::<dbo_api::DbInstance>::all(client.clone()), i).await?;
        count += 1;
    }
    for d in &m.databases {
        apply(
            &Api::<dbo_api::Database>::namespaced(client.clone(), &d.namespace_or_default()),
            d,
        )
        .await?;
        count += 1;
    }
    for r in &m.restores {
        apply(
            &Api::<dbo_api::DbRestore>::namespaced(client.clone(), &r.namespace_or_default()),
            r,
        )
        .await?;
        count += 1;
    }
    Ok(count)
}
