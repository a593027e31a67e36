//! The garbage collector and namespace controller of a cluster, reduced to what an operator
//! relies on: dependents whose owners are all gone are deleted (honouring their finalizers),
//! and a terminating namespace is emptied, then removed.
//!
//! It runs as a task woken after writes that may leave garbage, so like the real controllers it
//! acts shortly after the write, not inside it.

use std::sync::Arc;

use serde_json::Value;

use crate::registry::ResourceKey;
use crate::store::{State, Store, delete_object};

pub(crate) async fn run(store: Arc<Store>, owner_gc: bool) {
    loop {
        store.gc_notify.notified().await;
        let mut state = store.lock();
        // Each pass may remove owners of further objects; repeat until nothing changes.
        for _ in 0..64 {
            state.gc_wanted = false;
            let mut changed = finish_namespaces(&mut state);
            if owner_gc {
                changed |= collect_orphans(&mut state);
            }
            if !changed {
                break;
            }
        }
        state.gc_wanted = false;
    }
}

fn namespaced_keys(state: &State) -> Vec<ResourceKey> {
    state
        .resource_keys()
        .into_iter()
        .filter(|k| state.registry.get(k).is_some_and(|rt| rt.namespaced))
        .collect()
}

/// Deletes the contents of terminating namespaces and removes the empty ones.
fn finish_namespaces(state: &mut State) -> bool {
    let ns_key = ResourceKey::new("", "namespaces");
    let terminating: Vec<String> = state
        .list(&ns_key, None)
        .filter(|ns| ns["metadata"]["deletionTimestamp"].is_string())
        .filter_map(|ns| ns["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut changed = false;
    for ns in terminating {
        for key in namespaced_keys(state) {
            let Some(rt) = state.registry.get(&key) else {
                continue;
            };
            let alive: Vec<String> = state
                .list(&key, Some(&ns))
                .filter(|o| !o["metadata"]["deletionTimestamp"].is_string())
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            for name in alive {
                delete_object(state, &rt, &ns, &name, false);
                changed = true;
            }
        }
        let still_there = namespaced_keys(state)
            .iter()
            .any(|k| state.list(k, Some(&ns)).next().is_some());
        let finalizers_done = state.get(&ns_key, "", &ns).is_some_and(|o| {
            o["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
        });
        if !still_there && finalizers_done {
            state.remove(&ns_key, "", &ns);
            changed = true;
        }
    }
    changed
}

/// Whether the owner a reference names exists where a dependent in `namespace` may see it:
/// a namespaced owner only counts in the dependent's own namespace, as in Kubernetes.
fn owner_exists(state: &State, owner: &Value, namespace: &str) -> bool {
    let Some(uid) = owner["uid"].as_str() else {
        return false;
    };
    match state.exists_uid(uid) {
        Some((key, owner_ns, _)) => {
            let namespaced = state.registry.get(key).is_some_and(|rt| rt.namespaced);
            !namespaced || owner_ns == namespace
        }
        None => false,
    }
}

/// Deletes objects none of whose owners exist any more.
fn collect_orphans(state: &mut State) -> bool {
    let mut garbage = Vec::new();
    for key in state.resource_keys() {
        for object in state.list(&key, None) {
            let meta = &object["metadata"];
            let Some(refs) = meta["ownerReferences"].as_array() else {
                continue;
            };
            if refs.is_empty() || meta["deletionTimestamp"].is_string() {
                continue;
            }
            let namespace = meta["namespace"].as_str().unwrap_or_default();
            if !refs.iter().any(|r| owner_exists(state, r, namespace)) {
                garbage.push((
                    key.clone(),
                    namespace.to_owned(),
                    meta["name"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    let changed = !garbage.is_empty();
    for (key, ns, name) in garbage {
        if let Some(rt) = state.registry.get(&key) {
            delete_object(state, &rt, &ns, &name, false);
        }
    }
    changed
}
