//! OpenAPI v3 documents, as far as kubectl reads them before writing.
//!
//! kubectl decides from `/openapi/v3` whether the server validates fields itself (a PATCH
//! operation of the kind that takes the `fieldValidation` query parameter); when it does,
//! kubectl sends `fieldValidation=Strict` and leaves validation to the server instead of
//! downloading schemas. The documents therefore describe operations, not schemas, and list no
//! strategic merge patch, so client-side `kubectl apply` computes its patches from the types it
//! was built with (strategic for built-in kinds, JSON merge for custom resources), as it does
//! against a real cluster whose OpenAPI it cannot use.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use crate::http::Body;
use crate::registry::Registry;

/// `/openapi/v2`: not served; kubectl falls back to its built-in knowledge.
pub(crate) fn v2() -> http::Response<Body> {
    use http_body_util::BodyExt;
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()).boxed());
    *resp.status_mut() = http::StatusCode::NOT_FOUND;
    resp
}

/// Group-version path (`api/v1`, `apis/kci.rocks/v1alpha1`) -> its document.
fn documents(registry: &Registry) -> BTreeMap<String, Value> {
    let mut docs: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for rt in registry.types() {
        for version in &rt.versions {
            let (gv_path, prefix) = if rt.group.is_empty() {
                (
                    format!("api/{}", version.name),
                    format!("/api/{}", version.name),
                )
            } else {
                (
                    format!("apis/{}/{}", rt.group, version.name),
                    format!("/apis/{}/{}", rt.group, version.name),
                )
            };
            let item = if rt.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
            } else {
                format!("{prefix}/{}/{{name}}", rt.plural)
            };
            let gvk = json!({ "group": rt.group, "version": version.name, "kind": rt.kind });
            let query =
                |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string" } });
            let operation = json!({
                "operationId": format!("patch{}", rt.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                "requestBody": { "content": {
                    "application/json-patch+json": {},
                    "application/merge-patch+json": {},
                    "application/apply-patch+yaml": {},
                } },
                "responses": { "200": { "description": "OK" } },
            });
            docs.entry(gv_path)
                .or_default()
                .insert(item, json!({ "patch": operation }));
        }
    }
    docs.into_iter()
        .map(|(gv, paths)| {
            let doc = json!({
                "openapi": "3.0.0",
                "info": { "title": "Kubernetes", "version": "v1.37.0" },
                "paths": paths,
                "components": { "schemas": {} },
            });
            (gv, doc)
        })
        .collect()
}

/// `/openapi/v3`: where each group-version's document is. The hash changes with the content,
/// because kubectl caches documents by this URL.
pub(crate) fn v3_root(registry: &Registry) -> Value {
    let paths: serde_json::Map<String, Value> = documents(registry)
        .into_iter()
        .map(|(gv, doc)| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            doc.to_string().hash(&mut hasher);
            let url = format!("/openapi/v3/{gv}?hash={:016X}", hasher.finish());
            (gv, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/{group-version path}`.
pub(crate) fn v3_group_version(registry: &Registry, rest: &[&str]) -> Option<Value> {
    documents(registry).remove(&rest.join("/"))
}
