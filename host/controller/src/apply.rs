//! Writing objects: server-side apply with one field manager, and only when the live object
//! differs from what we want. A reconcile of a converged Database therefore sends no write at
//! all; the API server's own no-op detection would still cost a request per object.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::children::{Children, Lookup, fingerprint};

/// The one field manager of every write the operator makes.
pub const MANAGER: &str = "db-operator";

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Whether every field set in `want` has the same value in `have`. Maps may carry more keys
/// in `have` (server defaults, other managers' fields); lists must match element-wise.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv)) || wv.is_null()),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(wv, hv)| is_subset(wv, hv))
        }
        _ => want == have,
    }
}

/// Applies `desired` unless `live` already carries all of it.
pub async fn ensure<K>(
    api: &Api<K>,
    desired: &K,
    live: Option<&K>,
) -> Result<(K, Outcome), kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    if let Some(live) = live {
        let have = serde_json::to_value(live).map_err(kube::Error::SerdeError)?;
        if is_subset(&want, &have) {
            return Ok((live.clone(), Outcome::Unchanged));
        }
    }
    let applied = api
        .patch(
            &desired.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&want),
        )
        .await?;
    let outcome = if live.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    };
    Ok((applied, outcome))
}

/// Like [`ensure`], but reads the live object only when the index of watched children cannot
/// vouch for it: an object no watch has seen is created without a read, and one still at the
/// version the operator last applied, with the same desired content, is left alone without a
/// read. What comes back in that case is `trim` of the object as last applied, so `trim` must
/// keep every field the caller reads (status, timestamps).
pub async fn ensure_tracked<K>(
    children: &Children,
    api: &Api<K>,
    namespace: &str,
    desired: &K,
    trim: fn(&K) -> K,
) -> Result<(K, Outcome), kube::Error>
where
    K: Resource
        + k8s_openapi::Resource
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static,
{
    let kind = <K as k8s_openapi::Resource>::KIND;
    let name = desired.name_any();
    let wanted = fingerprint(desired);
    let live = match children.lookup(kind, namespace, &name) {
        Lookup::Absent => None,
        Lookup::Present(version) => {
            if let Some(last) = children.unchanged::<K>(kind, namespace, &name, wanted, &version) {
                return Ok((last, Outcome::Unchanged));
            }
            api.get_opt(&name).await?
        }
        Lookup::Unknown => api.get_opt(&name).await?,
    };
    let (live, outcome) = ensure(api, desired, live.as_ref()).await?;
    if let Some(version) = live.resource_version() {
        children.remember(kind, namespace, &name, version, wanted, trim(&live));
    }
    Ok((live, outcome))
}

/// Deletes a namespaced object if it exists; `true` when something was deleted.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Applies a status (the whole status: the operator is its only writer).
pub async fn status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// A status before and after a reconcile.
pub struct StatusChange<'a, S> {
    pub before: &'a S,
    pub after: &'a S,
    pub conditions: fn(&S) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
}

/// Writes a changed status and publishes one Event per condition that changed; nothing when
/// the status is unchanged, so a converged object costs no write. `action` empty means the
/// condition type.
pub async fn report<K, S>(
    ctx: &crate::Context,
    api: &Api<K>,
    obj: &K,
    change: StatusChange<'_, S>,
    action: &str,
    warning: impl Fn(&crate::conditions::Transition) -> bool,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if change.before == change.after {
        return Ok(());
    }
    self::status(api, &obj.name_any(), change.after).await?;
    let reference = obj.object_ref(&());
    let transitions = crate::conditions::transitions(
        (change.conditions)(change.before),
        (change.conditions)(change.after),
    );
    for t in transitions {
        let warn = warning(&t);
        // The log tells the same story as the Events (which expire after an hour).
        if warn {
            tracing::warn!(condition = %t.type_, status = t.status, reason = %t.reason, "{}", t.message);
        } else {
            tracing::info!(condition = %t.type_, status = t.status, reason = %t.reason, "{}", t.message);
        }
        let action = if action.is_empty() {
            t.type_.clone()
        } else {
            action.to_string()
        };
        ctx.event(&reference, warn, &t.reason, &action, t.message)
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_do_not_count_as_drift() {
        let want =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let have = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}
        ], "dnsPolicy": "ClusterFirst"}}}});
        assert!(is_subset(&want, &have));
    }

    #[test]
    fn changed_values_and_list_lengths_are_drift() {
        let want = json!({"spec": {"schedule": "0 3 * * *", "args": ["a"]}});
        assert!(!is_subset(
            &want,
            &json!({"spec": {"schedule": "0 4 * * *", "args": ["a"]}})
        ));
        assert!(!is_subset(
            &want,
            &json!({"spec": {"schedule": "0 3 * * *", "args": ["a", "b"]}})
        ));
        assert!(!is_subset(&want, &json!({"spec": {"args": ["a"]}})));
    }

    #[test]
    fn a_missing_map_key_is_drift_but_foreign_keys_are_not() {
        let want = json!({"data": {"PASSWORD": "cA=="}});
        assert!(is_subset(
            &want,
            &json!({"data": {"PASSWORD": "cA==", "EXTRA": "eA=="}})
        ));
        assert!(!is_subset(&want, &json!({"data": {"EXTRA": "eA=="}})));
    }
}
