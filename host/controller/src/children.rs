//! What the operator knows of the objects it owns without reading them.
//!
//! Metadata-only watches of the managed children (Secrets, Jobs, CronJobs, ServiceAccounts,
//! ConfigMaps) keep, per object, its resourceVersion and the labels tying it to a Database —
//! a few hundred bytes, where a full cache would hold every Secret and Job spec. With that, a
//! reconcile can tell without a request that an object does not exist yet (create it), or
//! that it is exactly what the operator last applied (nothing to do), and reads the API only
//! when something else changed it. The same watch streams trigger the controllers, so nothing
//! is watched twice.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};

use dbo_render::{LABEL_COMPONENT, LABEL_DATABASE, LABEL_DATABASE_NAMESPACE};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: &'static str,
    namespace: String,
    name: String,
}

impl Key {
    fn new(kind: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    resource_version: String,
    component: Option<String>,
    database: Option<String>,
    database_namespace: Option<String>,
}

/// One watch: a kind in one namespace or all, and whether its first listing is complete.
#[derive(Debug)]
struct Feed {
    kind: &'static str,
    namespace: Option<String>,
    synced: bool,
    /// Objects seen since the watch (re)started listing, swapped in when the listing is done,
    /// so objects deleted while the watch was down disappear.
    relisting: Option<HashMap<Key, Entry>>,
}

/// What the operator applied last, per object: the resourceVersion the API returned, a hash of
/// the desired object, and a trimmed copy of the live object for callers that read its status.
struct Applied {
    resource_version: String,
    desired: u64,
    live: Arc<dyn Any + Send + Sync>,
}

#[derive(Default)]
struct State {
    feeds: Vec<Feed>,
    objects: HashMap<Key, Entry>,
    applied: HashMap<Key, Applied>,
}

/// What the index says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No synced watch covers its namespace: read the API.
    Unknown,
    /// A synced watch covers it and has not seen it.
    Absent,
    /// It exists at this resourceVersion.
    Present(String),
}

/// The shared index of every watched child.
#[derive(Clone, Default)]
pub(crate) struct Children(Arc<RwLock<State>>);

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("Children")
            .field("objects", &state.objects.len())
            .field("applied", &state.applied.len())
            .finish()
    }
}

/// A hash of the object the operator wants, to tell "the same as last applied" cheaply.
pub(crate) fn fingerprint(desired: &impl Serialize) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(desired).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl Children {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything: a new run of the controllers starts its watches afresh.
    pub fn reset(&self) {
        *self.write() = State::default();
    }

    /// Registers a watch of `kind` in `namespace` (all when `None`); returns the handle its
    /// events go to.
    pub fn feed(&self, kind: &'static str, namespace: Option<String>) -> usize {
        let mut state = self.write();
        state.feeds.push(Feed {
            kind,
            namespace,
            synced: false,
            relisting: None,
        });
        state.feeds.len() - 1
    }

    /// Takes in one watch event of the feed `feed`.
    pub fn observe<K: Resource>(&self, feed: usize, event: &Event<PartialObjectMeta<K>>) {
        let mut state = self.write();
        let State {
            feeds,
            objects,
            applied,
        } = &mut *state;
        let Some(f) = feeds.get_mut(feed) else {
            return;
        };
        let kind = f.kind;
        let entry = |o: &PartialObjectMeta<K>| {
            let labels = o.labels();
            (
                Key::new(kind, &o.namespace().unwrap_or_default(), &o.name_any()),
                Entry {
                    resource_version: o.resource_version().unwrap_or_default(),
                    component: labels.get(LABEL_COMPONENT).cloned(),
                    database: labels.get(LABEL_DATABASE).cloned(),
                    database_namespace: labels.get(LABEL_DATABASE_NAMESPACE).cloned(),
                },
            )
        };
        match event {
            Event::Apply(o) => {
                let (k, e) = entry(o);
                objects.insert(k, e);
            }
            Event::Delete(o) => {
                let (k, _) = entry(o);
                objects.remove(&k);
                applied.remove(&k);
            }
            Event::Init => f.relisting = Some(HashMap::new()),
            Event::InitApply(o) => {
                let (k, e) = entry(o);
                f.relisting.get_or_insert_with(HashMap::new).insert(k, e);
            }
            Event::InitDone => {
                let fresh = f.relisting.take().unwrap_or_default();
                let covers = |k: &Key| {
                    k.kind == kind && f.namespace.as_ref().is_none_or(|ns| *ns == k.namespace)
                };
                objects.retain(|k, _| !covers(k));
                applied.retain(|k, _| !covers(k) || fresh.contains_key(k));
                objects.extend(fresh);
                f.synced = true;
            }
        }
    }

    fn covered(state: &State, kind: &str, namespace: &str) -> bool {
        state.feeds.iter().any(|f| {
            f.kind == kind && f.synced && f.namespace.as_deref().is_none_or(|ns| ns == namespace)
        })
    }

    pub fn lookup(&self, kind: &'static str, namespace: &str, name: &str) -> Lookup {
        let state = self.read();
        if !Self::covered(&state, kind, namespace) {
            return Lookup::Unknown;
        }
        match state.objects.get(&Key::new(kind, namespace, name)) {
            Some(e) => Lookup::Present(e.resource_version.clone()),
            None => Lookup::Absent,
        }
    }

    /// Names of the `kind` objects in `namespace` labelled as `component` of the Database
    /// (`database`/`database_namespace` are label values); `None` when no watch covers them.
    pub fn labelled(
        &self,
        kind: &'static str,
        namespace: &str,
        component: &str,
        database: &str,
        database_namespace: &str,
    ) -> Option<Vec<String>> {
        let state = self.read();
        if !Self::covered(&state, kind, namespace) {
            return None;
        }
        let mut names: Vec<String> = state
            .objects
            .iter()
            .filter(|(k, e)| {
                k.kind == kind
                    && k.namespace == namespace
                    && e.component.as_deref() == Some(component)
                    && e.database.as_deref() == Some(database)
                    && e.database_namespace.as_deref() == Some(database_namespace)
            })
            .map(|(k, _)| k.name.clone())
            .collect();
        names.sort();
        Some(names)
    }

    /// The trimmed live object recorded by [`Children::remember`], if `desired` is what was
    /// applied and the object has not changed since.
    pub fn unchanged<K: Clone + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        desired: u64,
        current: &str,
    ) -> Option<K> {
        let state = self.read();
        let a = state.applied.get(&Key::new(kind, namespace, name))?;
        if a.desired != desired || a.resource_version != current {
            return None;
        }
        a.live.downcast_ref::<K>().cloned()
    }

    /// The object as last remembered, if the watch still sees it at that version (whatever
    /// was desired then); `Err` with what the index knows otherwise.
    pub fn current<K: Clone + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<K, Lookup> {
        let lookup = self.lookup(kind, namespace, name);
        let Lookup::Present(version) = &lookup else {
            return Err(lookup);
        };
        let state = self.read();
        state
            .applied
            .get(&Key::new(kind, namespace, name))
            .filter(|a| a.resource_version == *version)
            .and_then(|a| a.live.downcast_ref::<K>().cloned())
            .ok_or(lookup.clone())
    }

    /// Records that the object is `desired` as of `live` (trimmed by the caller to what it
    /// reads later), so the next reconcile can skip reading it while its version stays.
    pub fn remember<K: Send + Sync + 'static>(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        resource_version: String,
        desired: u64,
        live: K,
    ) {
        let mut state = self.write();
        state.applied.insert(
            Key::new(kind, namespace, name),
            Applied {
                resource_version,
                desired,
                live: Arc::new(live),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    fn meta(name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("app".into()),
                resource_version: Some(rv.into()),
                labels: Some(
                    [
                        (LABEL_COMPONENT.to_string(), "commission".to_string()),
                        (LABEL_DATABASE.to_string(), "orders".to_string()),
                        (LABEL_DATABASE_NAMESPACE.to_string(), "shop".to_string()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..PartialObjectMeta::default()
        }
    }

    #[test]
    fn nothing_is_known_before_the_first_listing_completes() {
        let children = Children::default();
        let feed = children.feed("Secret", Some("app".into()));
        children.observe::<Secret>(feed, &Event::Init);
        children.observe(feed, &Event::InitApply(meta("a", "1")));
        assert_eq!(children.lookup("Secret", "app", "a"), Lookup::Unknown);
        children.observe::<Secret>(feed, &Event::InitDone);
        assert_eq!(
            children.lookup("Secret", "app", "a"),
            Lookup::Present("1".into())
        );
        assert_eq!(children.lookup("Secret", "app", "b"), Lookup::Absent);
        assert_eq!(
            children.lookup("Secret", "other", "a"),
            Lookup::Unknown,
            "a namespace no watch covers is read from the API"
        );
        assert_eq!(children.lookup("Job", "app", "a"), Lookup::Unknown);
    }

    #[test]
    fn a_relist_forgets_objects_deleted_while_the_watch_was_down() {
        let children = Children::default();
        let feed = children.feed("Secret", None);
        for e in [
            Event::Init,
            Event::InitApply(meta("a", "1")),
            Event::InitApply(meta("b", "1")),
            Event::InitDone,
        ] {
            children.observe(feed, &e);
        }
        children.remember("Secret", "app", "b", "1".into(), 7, ());
        for e in [
            Event::Init,
            Event::InitApply(meta("a", "2")),
            Event::InitDone,
        ] {
            children.observe(feed, &e);
        }
        assert_eq!(children.lookup("Secret", "app", "b"), Lookup::Absent);
        assert_eq!(
            children.lookup("Secret", "app", "a"),
            Lookup::Present("2".into())
        );
        assert!(
            children
                .unchanged::<()>("Secret", "app", "b", 7, "1")
                .is_none()
        );
    }

    #[test]
    fn a_remembered_object_is_unchanged_only_at_the_same_version_and_desire() {
        let children = Children::default();
        children.remember("Secret", "app", "a", "5".into(), 42, "trimmed".to_string());
        assert_eq!(
            children.unchanged::<String>("Secret", "app", "a", 42, "5"),
            Some("trimmed".into())
        );
        assert_eq!(
            children.unchanged::<String>("Secret", "app", "a", 42, "6"),
            None,
            "someone else changed it"
        );
        assert_eq!(
            children.unchanged::<String>("Secret", "app", "a", 43, "5"),
            None,
            "we want something else now"
        );
    }

    #[test]
    fn labelled_children_are_found_by_database() {
        let children = Children::default();
        let feed = children.feed("Secret", None);
        for e in [
            Event::Init,
            Event::InitApply(meta("c1", "1")),
            Event::InitApply(meta("c2", "1")),
            Event::InitDone,
        ] {
            children.observe(feed, &e);
        }
        assert_eq!(
            children.labelled("Secret", "app", "commission", "orders", "shop"),
            Some(vec!["c1".to_string(), "c2".to_string()])
        );
        assert_eq!(
            children.labelled("Secret", "app", "backup", "orders", "shop"),
            Some(vec![])
        );
        children.observe(feed, &Event::Delete(meta("c1", "2")));
        assert_eq!(
            children.labelled("Secret", "app", "commission", "orders", "shop"),
            Some(vec!["c2".to_string()])
        );
    }
}
