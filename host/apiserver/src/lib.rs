//! An in-process Kubernetes API server for tests and `db-operator dev`.
//!
//! It speaks the real HTTP API (discovery, CRUD, watch, server-side apply, CRDs, finalizers,
//! owner-reference garbage collection) well enough that kube-rs clients and `kubectl` work
//! against it unchanged, so the same end-to-end tests run against it and against a real
//! cluster. Plain HTTP on loopback, no authentication. See the crate README for what differs
//! from a real API server.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = dbo_apiserver::ApiServer::start(dbo_apiserver::Config::default()).await?;
//! let kubeconfig = server.kubeconfig("dev");
//! // hand `kubeconfig` to kube-rs or kubectl ...
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod events;
mod faults;
mod gc;
mod handlers;
mod http;
mod openapi;
mod protobuf;
mod registry;
mod selectors;
mod status;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use faults::{FaultRule, Faults, Stats};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free one (see [`ApiServer::url`]).
    pub addr: SocketAddr,
    /// Changes kept for resuming watches; a watch from an older resourceVersion gets 410 Gone
    /// and the client must relist, as after an etcd compaction.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Whether owner-reference garbage collection runs.
    pub gc: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(1),
            gc: true,
        }
    }
}

/// A running server. Dropping it stops it; [`ApiServer::shutdown`] also waits for that.
pub struct ApiServer {
    addr: SocketAddr,
    faults: Faults,
    counters: faults::Counters,
    shutdown: Option<tokio::sync::watch::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(store::Store::new(config.watch_history));
        let faults = Faults::default();
        let counters = faults::Counters::default();
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(());
        let ctx = Arc::new(http::Context {
            store: store.clone(),
            faults: faults.clone(),
            counters: counters.clone(),
            bookmark_interval: config.bookmark_interval,
            shutdown: shutdown_rx.clone(),
        });
        let gc_task = tokio::spawn(gc::run(store, config.gc));
        let accept_task = tokio::spawn(http::serve(listener, ctx, shutdown_rx));
        Ok(ApiServer {
            addr,
            faults,
            counters,
            shutdown: Some(shutdown_tx),
            tasks: vec![accept_task, gc_task],
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose cluster, user and context are all named `context`, with namespace
    /// `default`.
    pub fn kubeconfig(&self, context: &str) -> String {
        let name = serde_json::Value::String(context.to_owned());
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {name}\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: {name}\n  user: {{}}\n\
             contexts:\n\
             - name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
             current-context: {name}\n\
             preferences: {{}}\n",
            url = self.url(),
        )
    }

    /// The fault switch; clones share it.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Request counters since start or the last [`ApiServer::reset_stats`].
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    pub fn reset_stats(&self) {
        self.counters.reset();
    }

    /// Stops accepting, ends open connections and watches, and waits for that.
    pub async fn shutdown(mut self) {
        self.shutdown.take();
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            // A cancelled task reports JoinError::Cancelled, which is what we asked for.
            let _ = task.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown.take();
        for task in &self.tasks {
            task.abort();
        }
    }
}
