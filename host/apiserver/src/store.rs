//! Object storage: one global resourceVersion counter, the watch history and the fan-out to
//! watchers.
//!
//! Everything lives behind one mutex held for the whole (synchronous) handling of a request, so
//! a write and the events it causes are atomic, as etcd transactions are in Kubernetes. Watchers
//! never hold the lock while streaming: they subscribe under it and then read a broadcast
//! channel, so a slow watcher cannot stall writers (it lags and is told to relist).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::registry::{Registry, ResourceKey, ResourceType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change, in storage form.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub key: ResourceKey,
    pub type_: EventType,
    pub object: Value,
    /// The object before a modification, so a watcher whose selector it stopped (or started)
    /// matching sees DELETED (or ADDED) instead.
    pub old: Option<Value>,
}

type ObjectKey = (String, String);

pub(crate) struct State {
    pub registry: Registry,
    objects: BTreeMap<ResourceKey, BTreeMap<ObjectKey, Value>>,
    /// uid -> where the object lives, for owner-reference checks.
    uids: HashMap<String, (ResourceKey, String, String)>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// Watches from a resourceVersion below this cannot be replayed any more.
    oldest_resumable: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// Set when a write may leave garbage (removed owners, terminating namespaces).
    pub gc_wanted: bool,
}

pub(crate) struct Store {
    state: Mutex<State>,
    pub gc_notify: Notify,
}

/// `creationTimestamp`-style time (second precision, UTC), as `metav1.Time` serializes.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        // Broadcast lag is what drops a slow watcher; leave enough room that a burst of a few
        // thousand writes does not do that to a healthy one.
        let (tx, _) = broadcast::channel(history_cap.clamp(4096, 65536));
        let mut state = State {
            registry: Registry::new(),
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            oldest_resumable: 0,
            tx,
            gc_wanted: false,
        };
        let namespaces = ResourceKey::new("", "namespaces");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now_rfc3339(),
                    "labels": { "kubernetes.io/metadata.name": ns },
                },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            });
            state.put(&namespaces, object);
        }
        Self {
            state: Mutex::new(state),
            gc_notify: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this crate; the data is still
        // consistent per object, so keep serving rather than poisoning every later request.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the garbage collector if the last writes asked for it.
    pub fn kick_gc(&self, state: &mut State) {
        if std::mem::take(&mut state.gc_wanted) {
            self.gc_notify.notify_one();
        }
    }
}

fn object_key(object: &Value) -> ObjectKey {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}

impl State {
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn oldest_resumable(&self) -> u64 {
        self.oldest_resumable
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes after `rv`, oldest first; `None` if some have been dropped from the history.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.oldest_resumable {
            return None;
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Some(self.history.range(start..).cloned().collect())
    }

    pub fn get(&self, key: &ResourceKey, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Objects of a resource in `(namespace, name)` order; `namespace: None` = all.
    pub fn list<'a>(
        &'a self,
        key: &ResourceKey,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
    }

    pub fn exists_uid(&self, uid: &str) -> Option<&(ResourceKey, String, String)> {
        self.uids.get(uid)
    }

    pub fn resource_keys(&self) -> Vec<ResourceKey> {
        self.objects.keys().cloned().collect()
    }

    fn record(&mut self, key: &ResourceKey, type_: EventType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            key: key.clone(),
            type_,
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_cap {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_resumable = dropped.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(change);
    }

    /// Stores a new or changed object (which must carry name, uid, and namespace when
    /// namespaced), stamping the next resourceVersion. Returns the stored object.
    pub fn put(&mut self, key: &ResourceKey, mut object: Value) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let okey = object_key(&object);
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.uids.insert(
                uid.to_owned(),
                (key.clone(), okey.0.clone(), okey.1.clone()),
            );
        }
        if object["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
        {
            self.gc_wanted = true;
        }
        let old = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert(okey, object.clone());
        let type_ = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(key, type_, object.clone(), old);
        object
    }

    /// Removes an object for good (finalizers are the caller's business).
    pub fn remove(&mut self, key: &ResourceKey, namespace: &str, name: &str) -> Option<Value> {
        self.remove_as(key, namespace, name, None)
    }

    /// Removes an object, reporting `last` (when given) as its final state: the write that
    /// emptied the finalizers of an object being deleted is the deletion itself.
    pub fn remove_as(
        &mut self,
        key: &ResourceKey,
        namespace: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Value> {
        let stored = self
            .objects
            .get_mut(key)?
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        let mut object = last.unwrap_or(stored);
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.uids.remove(uid);
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.gc_wanted = true;
        self.record(key, EventType::Deleted, object.clone(), None);
        Some(object)
    }

    /// Drops every object of a resource (its CRD went away), telling watchers.
    pub fn remove_all(&mut self, key: &ResourceKey) {
        let names: Vec<ObjectKey> = self
            .objects
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in names {
            self.remove(key, &ns, &name);
        }
        self.objects.remove(key);
    }
}

/// What a DELETE did.
pub(crate) enum Deletion {
    /// Finalizers hold the object; it now carries `deletionTimestamp`.
    Pending(Value),
    /// The object is gone; this is its last state.
    Removed(Value),
}

/// Deletes an object as Kubernetes does: objects with finalizers get a `deletionTimestamp` and
/// stay until the finalizers are gone; others go at once. Namespaces always pass through
/// `Terminating` while their contents are deleted.
pub(crate) fn delete_object(
    state: &mut State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    orphan: bool,
) -> Option<Deletion> {
    let key = rt.storage.clone();
    let current = state.get(&key, namespace, name)?.clone();
    let uid = current["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if orphan {
        orphan_dependents(state, &uid);
    }
    let has_finalizers = current["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
    if has_finalizers || is_namespace {
        if current["metadata"]["deletionTimestamp"].is_string() {
            return Some(Deletion::Pending(current));
        }
        let mut object = current;
        object["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if is_namespace {
            object["status"]["phase"] = json!("Terminating");
            state.gc_wanted = true;
        }
        return Some(Deletion::Pending(state.put(&key, object)));
    }
    state.remove(&key, namespace, name).map(Deletion::Removed)
}

/// `propagationPolicy=Orphan`: dependents lose their owner reference instead of being
/// collected.
fn orphan_dependents(state: &mut State, owner_uid: &str) {
    let mut changed = Vec::new();
    for (key, objects) in &state.objects {
        for object in objects.values() {
            let Some(refs) = object["metadata"]["ownerReferences"].as_array() else {
                continue;
            };
            if refs.iter().any(|r| r["uid"] == owner_uid) {
                let mut object = object.clone();
                let kept: Vec<Value> = refs
                    .iter()
                    .filter(|r| r["uid"] != owner_uid)
                    .cloned()
                    .collect();
                if let Some(meta) = object["metadata"].as_object_mut() {
                    if kept.is_empty() {
                        meta.remove("ownerReferences");
                    } else {
                        meta.insert("ownerReferences".into(), Value::Array(kept));
                    }
                }
                changed.push((key.clone(), object));
            }
        }
    }
    for (key, object) in changed {
        state.put(&key, object);
    }
}
