//! Watch streams: newline-delimited JSON `WatchEvent`s over a chunked response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::handlers::{Filter, Query, Target, to_view, wants_table};
use crate::status::ApiError;
use crate::store::{Change, EventType, Store};
use crate::table::{self, Include};

/// How a watch was asked for.
pub(crate) struct WatchRequest {
    pub target: Target,
    pub filter: Filter,
    pub bookmarks: bool,
    pub table: Option<Include>,
    pub timeout: Option<Duration>,
    pub drop_after: Option<Duration>,
    pub bookmark_interval: Duration,
}

impl WatchRequest {
    pub fn new(
        target: Target,
        q: &Query,
        accept: &str,
        bookmark_interval: Duration,
        drop_after: Option<Duration>,
    ) -> Result<Self, ApiError> {
        let filter = Filter::new(&target, q)?;
        let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
            Some(s) => Some(Duration::from_secs(s.parse().map_err(|_| {
                ApiError::BadRequest(format!("invalid timeoutSeconds {s:?}: not a number"))
            })?)),
            None => None,
        };
        Ok(Self {
            target,
            filter,
            bookmarks: matches!(
                q.get("allowWatchBookmarks").map(String::as_str),
                Some("true" | "1")
            ),
            table: wants_table(accept)
                .then(|| Include::parse(q.get("includeObject").map(String::as_str))),
            timeout,
            drop_after,
            bookmark_interval,
        })
    }
}

fn line(type_: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": type_, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    line(
        "ERROR",
        &ApiError::Expired { requested, oldest }.to_status(),
    )
}

struct Watcher {
    req: WatchRequest,
    headers_sent: bool,
}

impl Watcher {
    fn render(&mut self, type_: EventType, view: &Value) -> Bytes {
        match self.req.table {
            Some(include) => {
                let t = &self.req.target;
                let meta = json!({ "resourceVersion": view["metadata"]["resourceVersion"] });
                let table = table::table(
                    &t.rt,
                    &t.version,
                    std::slice::from_ref(view),
                    include,
                    meta,
                    !self.headers_sent,
                );
                self.headers_sent = true;
                line(type_.as_str(), &table)
            }
            None => line(type_.as_str(), view),
        }
    }

    /// The event this watcher sees for a change, if any: selectors are applied to both the
    /// old and the new state, so leaving the selection reads as DELETED.
    fn translate(&mut self, change: &Change) -> Option<Bytes> {
        let t = &self.req.target;
        if change.key != t.rt.storage {
            return None;
        }
        let view = to_view(&t.rt, &t.version, &change.object);
        let now = self.req.filter.matches(&view);
        let type_ = match change.type_ {
            EventType::Modified => {
                let before = change
                    .old
                    .as_ref()
                    .is_some_and(|o| self.req.filter.matches(&to_view(&t.rt, &t.version, o)));
                match (before, now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            other if now => other,
            _ => return None,
        };
        Some(self.render(type_, &view))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let t = &self.req.target;
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            &json!({ "kind": t.rt.kind, "apiVersion": t.api_version_string(), "metadata": meta }),
        )
    }
}

impl Target {
    fn api_version_string(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

/// Starts a watch; its events arrive on the returned channel until the stream ends.
pub(crate) fn start(
    store: &Arc<Store>,
    req: WatchRequest,
    q: &Query,
    mut shutdown: tokio::sync::watch::Receiver<()>,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let requested = q
        .get("resourceVersion")
        .map(String::as_str)
        .filter(|s| !s.is_empty() && *s != "0");
    let requested = match requested {
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("invalid resource version {rv:?}: not a number"))
        })?),
        None => None,
    };
    let send_initial = matches!(
        q.get("sendInitialEvents").map(String::as_str),
        Some("true" | "1")
    );
    let mut watcher = Watcher {
        req,
        headers_sent: false,
    };
    let mut first: Vec<Bytes> = Vec::new();
    let mut expired_at_start = false;
    let (mut rx, mut seen_rv) = {
        let state = store.lock();
        let rx = state.subscribe();
        let current = state.current_rv();
        match requested {
            Some(rv) if !send_initial => match state.changes_since(rv) {
                Some(changes) => {
                    for c in &changes {
                        if let Some(b) = watcher.translate(c) {
                            first.push(b);
                        }
                    }
                }
                None => {
                    first.push(expired(rv, state.oldest_resumable()));
                    expired_at_start = true;
                }
            },
            _ => {
                let t = &watcher.req.target;
                let views: Vec<Value> = state
                    .list(&t.rt.storage, t.namespace.as_deref())
                    .map(|o| to_view(&t.rt, &t.version, o))
                    .filter(|v| watcher.req.filter.matches(v))
                    .collect();
                for v in &views {
                    first.push(watcher.render(EventType::Added, v));
                }
                if send_initial {
                    first.push(watcher.bookmark(current, true));
                }
            }
        }
        (rx, current)
    };

    let (tx, out) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if expired_at_start {
            return;
        }
        let deadline = watcher.req.timeout.map(|t| tokio::time::Instant::now() + t);
        let drop_at = watcher
            .req
            .drop_after
            .map(|t| tokio::time::Instant::now() + t);
        let end = match (deadline, drop_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut ticker = tokio::time::interval(watcher.req.bookmark_interval);
        ticker.tick().await;
        loop {
            let sleep_until_end = async {
                match end {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(change) => {
                        seen_rv = seen_rv.max(change.rv);
                        if let Some(b) = watcher.translate(&change)
                            && tx.send(b).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to keep up: like a real server dropping a watcher whose
                        // buffer overflowed, tell it to relist.
                        let _ = tx.send(expired(seen_rv, seen_rv + 1)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if watcher.req.bookmarks && watcher.req.table.is_none() => {
                    if tx.send(watcher.bookmark(seen_rv, false)).await.is_err() {
                        return;
                    }
                }
                () = sleep_until_end => return,
                _ = shutdown.changed() => return,
                () = tx.closed() => return,
            }
        }
    });
    Ok(out)
}
