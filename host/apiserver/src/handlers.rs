//! Resource requests: get, list, create, update, patch, delete, on built-in and custom
//! resources, with the metadata bookkeeping the real server does on every write.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use dbo_apimachinery::{patch, schema, ssa};
use serde_json::{Value, json};

use crate::events;
use crate::registry::{ResourceKey, ResourceType, resource_from_crd};
use crate::selectors::{FieldSelector, LabelSelector, supported_fields};
use crate::status::{self, ApiError, Cause, Qualified};
use crate::store::{Deletion, State, delete_object, now_rfc3339};
use crate::table::{self, Include};

/// A resolved resource path.
pub(crate) struct Target {
    pub rt: Arc<ResourceType>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    fn on_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

pub(crate) type Query = HashMap<String, String>;

/// What a handler answers.
pub(crate) struct Reply {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            code: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// Whether the client asked for a `meta.k8s.io/v1` Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::NotFound {
        what: t.rt.qualified(),
        name: name.to_owned(),
    }
}

/// The object as a client of `t`'s version sees it.
pub(crate) fn to_view(rt: &ResourceType, version: &str, stored: &Value) -> Value {
    if rt.is_events_v1() {
        return events::core_to_events_v1(stored);
    }
    let mut v = stored.clone();
    v["apiVersion"] = json!(rt.api_version(version));
    v["kind"] = json!(rt.kind);
    v
}

fn to_storage(rt: &ResourceType, view: Value) -> Value {
    if rt.is_events_v1() {
        events::events_v1_to_core(&view)
    } else {
        view
    }
}

fn read(state: &State, t: &Target, name: &str) -> Option<Value> {
    state
        .get(&t.rt.storage, t.ns(), name)
        .map(|o| to_view(&t.rt, &t.version, o))
}

fn qp<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match qp(q, "dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Invalid dry run value: \"{other}\"; supported values: \"All\""
        ))),
    }
}

pub(crate) fn get(state: &State, t: &Target, q: &Query, accept: &str) -> Result<Reply, ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    let object = read(state, t, name).ok_or_else(|| not_found(t, name))?;
    if wants_table(accept) {
        let include = Include::parse(qp(q, "includeObject"));
        let meta = json!({ "resourceVersion": object["metadata"]["resourceVersion"] });
        return Ok(Reply::ok(table::table(
            &t.rt,
            &t.version,
            &[object],
            include,
            meta,
            true,
        )));
    }
    Ok(Reply::ok(object))
}

/// The filter a list or watch applies.
pub(crate) struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn new(t: &Target, q: &Query) -> Result<Self, ApiError> {
        Ok(Self {
            namespace: t.namespace.clone(),
            labels: LabelSelector::parse(qp(q, "labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(
                qp(q, "fieldSelector").unwrap_or_default(),
                &supported_fields(&t.rt.group, &t.rt.plural),
            )?,
        })
    }

    /// `view` is the object as the client sees it.
    pub fn matches(&self, view: &Value) -> bool {
        let ns = view["metadata"]["namespace"].as_str().unwrap_or_default();
        self.namespace.as_deref().is_none_or(|want| want == ns)
            && self.labels.matches(view)
            && self.fields.matches(view)
    }
}

fn encode_continue(rv: u64, after: &str) -> String {
    let token = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": after });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = || {
        ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into())
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_owned();
    Ok((rv, start))
}

pub(crate) fn list(state: &State, t: &Target, q: &Query, accept: &str) -> Result<Reply, ApiError> {
    let filter = Filter::new(t, q)?;
    let limit = match qp(q, "limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}: not a number")))?,
        None => 0,
    };
    let (list_rv, after) = match qp(q, "continue") {
        Some(token) => {
            let (rv, start) = decode_continue(token)?;
            if rv < state.oldest_resumable() {
                return Err(ApiError::Gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                ));
            }
            (rv, Some(start))
        }
        None => (state.current_rv(), None),
    };
    let position = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let mut items = Vec::new();
    let mut more = false;
    let mut remaining = 0usize;
    for stored in state.list(&t.rt.storage, t.namespace.as_deref()) {
        let view = to_view(&t.rt, &t.version, stored);
        if after
            .as_deref()
            .is_some_and(|a| position(&view).as_str() <= a)
        {
            continue;
        }
        if !filter.matches(&view) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            more = true;
            remaining += 1;
            continue;
        }
        items.push(view);
    }
    let mut meta = json!({ "resourceVersion": list_rv.to_string() });
    if more && let Some(last) = items.last() {
        meta["continue"] = json!(encode_continue(list_rv, &position(last)));
        meta["remainingItemCount"] = json!(remaining);
    }
    if wants_table(accept) {
        let include = Include::parse(qp(q, "includeObject"));
        return Ok(Reply::ok(table::table(
            &t.rt, &t.version, &items, include, meta, true,
        )));
    }
    Ok(Reply::ok(json!({
        "kind": t.rt.list_kind,
        "apiVersion": t.api_version(),
        "metadata": meta,
        "items": items,
    })))
}

/// Parses a request body by its content type (JSON, or YAML for apply patches and kubectl).
pub(crate) fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the body of the request was empty".into(),
        ));
    }
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if content_type.contains("yaml") => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "error decoding YAML: {e} (and not JSON either: {json_err})"
                ))
            }),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body of the request was in an unknown format: {e}"
        ))),
    }
}

/// Parameters shared by every write.
pub(crate) struct WriteParams<'a> {
    pub query: &'a Query,
    pub user_agent: &'a str,
}

impl WriteParams<'_> {
    fn manager(&self) -> String {
        if let Some(m) = qp(self.query, "fieldManager") {
            return m.to_owned();
        }
        // As the real server: the user agent up to the first '/' (`kubectl`, `kube-rs`...).
        let ua = self.user_agent.split('/').next().unwrap_or_default();
        if ua.is_empty() {
            "unknown".into()
        } else {
            ua.chars().take(128).collect()
        }
    }

    fn field_validation(&self) -> Result<&str, ApiError> {
        match qp(self.query, "fieldValidation") {
            None => Ok("Warn"),
            Some(v @ ("Strict" | "Warn" | "Ignore")) => Ok(v),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}; supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    /// Server-side apply: managedFields are already computed.
    Apply,
}

fn check_type(t: &Target, object: &Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON or YAML object".into(),
        ));
    }
    if let Some(kind) = object["kind"].as_str().filter(|k| !k.is_empty())
        && kind != t.rt.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    if let Some(av) = object["apiVersion"].as_str().filter(|v| !v.is_empty())
        && av != t.api_version()
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.api_version()
        )));
    }
    if t.rt.namespaced
        && let Some(ns) = object["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
        && ns != t.ns()
    {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    Ok(())
}

fn check_name_matches(t: &Target, object: &Value) -> Result<(), ApiError> {
    let url_name = t.name.as_deref().unwrap_or_default();
    match object["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != url_name => Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({url_name})"
        ))),
        _ => Ok(()),
    }
}

fn invalid(t: &Target, name: &str, field: &str, reason: &str, message: String) -> ApiError {
    ApiError::Invalid {
        what: t.rt.qualified(),
        name: name.to_owned(),
        causes: vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    }
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn validate_name(t: &Target, name: &str) -> Result<(), ApiError> {
    let is_namespace = t.rt.group.is_empty() && t.rt.plural == "namespaces";
    let (ok, msg, max) = if is_namespace {
        (is_dns_label(name), DNS1123_LABEL, 63)
    } else {
        (name.split('.').all(is_dns_label), DNS1123_SUBDOMAIN, 253)
    };
    if name.len() > max {
        return Err(invalid(
            t,
            name,
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: \"{name}\": must be no more than {max} characters"),
        ));
    }
    if !ok {
        return Err(invalid(
            t,
            name,
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: \"{name}\": {msg}"),
        ));
    }
    Ok(())
}

fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn check_namespace(state: &State, t: &Target) -> Result<(), ApiError> {
    if !t.rt.namespaced {
        return Ok(());
    }
    let ns = t.ns();
    match state.get(&ResourceKey::new("", "namespaces"), "", ns) {
        None => Err(ApiError::NotFound {
            what: Box::new(Qualified {
                group: String::new(),
                plural: "namespaces".into(),
                kind: "Namespace".into(),
            }),
            name: ns.to_owned(),
        }),
        Some(n) if n["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::Forbidden {
            what: Some(t.rt.qualified()),
            name: String::new(),
            message: format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        }),
        Some(_) => Ok(()),
    }
}

fn meta_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .unwrap_or_else(|| unreachable!("metadata was just made an object"))
}

/// Everything but metadata (and status, when it is a subresource): what `generation` counts.
fn spec_part(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    v
}

/// The object without what changes on every write even when nothing else does.
fn comparable(object: &Value) -> Value {
    let mut v = object.clone();
    let meta = meta_mut(&mut v);
    meta.remove("resourceVersion");
    if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
        for e in entries {
            if let Some(e) = e.as_object_mut() {
                e.remove("time");
            }
        }
    }
    v
}

fn fold_string_data(object: &mut Value) {
    let Some(string_data) = object.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(entries) = string_data.as_object() else {
        return;
    };
    if !object["data"].is_object() {
        object["data"] = json!({});
    }
    for (k, v) in entries {
        let plain = v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        object["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(plain));
    }
}

/// Server-maintained status of a CRD, as the apiextensions controllers set it.
fn crd_status(crd: &mut Value) {
    let now = now_rfc3339();
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted["singular"].is_null()
        && let Some(kind) = names["kind"].as_str()
    {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted["listKind"].is_null()
        && let Some(kind) = names["kind"].as_str()
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    crd["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {
                "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                "message": "no conflicts found", "lastTransitionTime": now,
            },
            {
                "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted", "lastTransitionTime": now,
            },
        ],
    });
}

/// The outcome of a write.
struct Written {
    object: Value,
    created: bool,
    warnings: Vec<String>,
}

/// Validates, completes and stores a new state of an object (`old: None` = create).
fn commit(
    state: &mut State,
    t: &Target,
    old: Option<&Value>,
    mut new: Value,
    op: Op,
    params: &WriteParams<'_>,
) -> Result<Written, ApiError> {
    let dry = dry_run(params.query)?;
    check_type(t, &new)?;
    new["apiVersion"] = json!(t.api_version());
    new["kind"] = json!(t.rt.kind);
    let mut warnings = Vec::new();

    // Optimistic concurrency: a resourceVersion in the request is a precondition.
    if let Some(old) = old
        && let Some(rv) = new["metadata"]["resourceVersion"]
            .as_str()
            .filter(|r| !r.is_empty())
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::Conflict {
            what: t.rt.qualified(),
            name: t.name.clone().unwrap_or_default(),
            reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
        });
    }

    if t.on_status() {
        // Status writes change status (and ownership of it) only.
        let Some(old) = old else {
            return Err(not_found(t, t.name.as_deref().unwrap_or_default()));
        };
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if let Some(mf) = new["metadata"].get("managedFields") {
            merged["metadata"]["managedFields"] = mf.clone();
        }
        new = merged;
    } else if t.rt.status_subresource {
        let keep = old.and_then(|o| o.get("status")).cloned();
        if let Some(m) = new.as_object_mut() {
            match keep {
                Some(s) => {
                    m.insert("status".into(), s);
                }
                None => {
                    m.remove("status");
                }
            }
        }
    }

    let meta = meta_mut(&mut new);
    meta.remove("selfLink");
    match old {
        Some(old) => {
            for key in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "name",
                "namespace",
            ] {
                match old["metadata"].get(key) {
                    Some(v) => meta.insert(key.into(), v.clone()),
                    None => meta.remove(key),
                };
            }
        }
        None => {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            meta.insert("generation".into(), json!(1));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.remove("resourceVersion");
            if t.rt.namespaced {
                meta.insert("namespace".into(), json!(t.ns()));
            } else {
                meta.remove("namespace");
            }
        }
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    if let Some(old) = old
        && old["metadata"]["deletionTimestamp"].is_string()
    {
        let before: Vec<&Value> = old["metadata"]["finalizers"]
            .as_array()
            .map(|f| f.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = new["metadata"]["finalizers"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter(|x| !before.contains(x))
                    .map(|x| format!("{:?}", x.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            return Err(invalid(
                t,
                &name,
                "metadata.finalizers",
                "FieldValueForbidden",
                format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.join(", ")
                ),
            ));
        }
    }

    // Kind-specific defaulting and validation.
    match (t.rt.group.as_str(), t.rt.plural.as_str()) {
        ("", "secrets") => {
            fold_string_data(&mut new);
            if new["type"].is_null() {
                new["type"] = json!("Opaque");
            }
        }
        ("batch", "jobs") if !t.on_status() => {
            // A Job's pods are fixed at creation; Kubernetes refuses changes to the template.
            if let Some(old) = old
                && old["spec"]["template"] != new["spec"]["template"]
            {
                return Err(invalid(
                    t,
                    &name,
                    "spec.template",
                    "FieldValueInvalid",
                    "Invalid value: the Job's pod template: field is immutable".into(),
                ));
            }
        }
        ("", "namespaces") if old.is_none() => {
            new["spec"] = json!({ "finalizers": ["kubernetes"] });
            new["status"] = json!({ "phase": "Active" });
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let rt = resource_from_crd(&new)?;
            if let Some(existing) = state.registry.get(&rt.key())
                && !existing.custom
            {
                return Err(invalid(
                    t,
                    &name,
                    "spec.group",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{}\": the group is reserved for built-in kinds",
                        rt.group
                    ),
                ));
            }
            crd_status(&mut new);
        }
        _ => {}
    }
    if t.rt.custom
        && let Some(schema) = t.rt.version(&t.version).and_then(|v| v.schema.as_ref())
    {
        let dropped = schema::prune(&mut new, schema);
        if !dropped.is_empty() {
            let fields: Vec<String> = dropped
                .iter()
                .map(|d| format!("unknown field \"{d}\""))
                .collect();
            match params.field_validation()? {
                "Strict" => {
                    let kind = &t.rt.kind;
                    return Err(ApiError::BadRequest(format!(
                        "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
                        t.version,
                        fields.join(", ")
                    )));
                }
                "Warn" => warnings.extend(fields),
                _ => {}
            }
        }
        schema::apply_defaults(&mut new, schema);
        let causes = schema::validate(&new, schema);
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                what: t.rt.qualified(),
                name,
                causes: causes
                    .into_iter()
                    .map(|c| Cause {
                        reason: c.reason.into(),
                        message: c.message,
                        field: c.field,
                    })
                    .collect(),
            });
        }
    }
    if old.is_none() {
        validate_name(t, &name)?;
    }

    if op != Op::Apply {
        let manager = params.manager();
        let time = now_rfc3339();
        let api_version = t.api_version();
        let opts = ssa::UpdateOptions {
            manager: &manager,
            api_version: &api_version,
            time: &time,
            subresource: t.subresource.as_deref(),
        };
        let lists =
            t.rt.version(&t.version)
                .map(|v| v.lists.clone())
                .ok_or_else(|| ApiError::Internal("served version vanished".into()))?;
        ssa::update(old, &mut new, &opts, lists.as_ref());
    }

    if let Some(old) = old {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        if spec_part(&t.rt, old) != spec_part(&t.rt, &new) {
            new["metadata"]["generation"] = json!(generation + 1);
        }
        // A write that changes nothing is not a write: no new resourceVersion, no event,
        // so controllers patching their status every reconcile do not wake themselves up.
        if comparable(old) == comparable(&new) {
            return Ok(Written {
                object: old.clone(),
                created: false,
                warnings,
            });
        }
    }
    if dry {
        return Ok(Written {
            object: new,
            created: old.is_none(),
            warnings,
        });
    }

    let deleting_done = new["metadata"]["deletionTimestamp"].is_string()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        && !(t.rt.group.is_empty() && t.rt.plural == "namespaces");
    let object = if deleting_done {
        let gone = state
            .remove_as(&t.rt.storage, t.ns(), &name, Some(to_storage(&t.rt, new)))
            .ok_or_else(|| not_found(t, &name))?;
        after_removal(state, &t.rt, &gone);
        gone
    } else {
        let stored = state.put(&t.rt.storage, to_storage(&t.rt, new));
        if t.rt.group == "apiextensions.k8s.io" && t.rt.plural == "customresourcedefinitions" {
            // Validated above; registering within the request makes discovery and CRUD of the
            // new kind work as soon as the client sees the CRD.
            let rt = resource_from_crd(&stored)?;
            state.registry.register_crd(rt);
        }
        stored
    };
    Ok(Written {
        object: to_view(&t.rt, &t.version, &object),
        created: old.is_none(),
        warnings,
    })
}

/// Side effects of an object leaving storage for good.
pub(crate) fn after_removal(state: &mut State, rt: &ResourceType, object: &Value) {
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        let group = object["spec"]["group"].as_str().unwrap_or_default();
        let plural = object["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default();
        let key = ResourceKey::new(group, plural);
        state.remove_all(&key);
        state.registry.unregister(&key);
    }
}

fn written_reply(w: Written) -> Reply {
    Reply {
        code: if w.created { 201 } else { 200 },
        body: w.object,
        warnings: w.warnings,
    }
}

pub(crate) fn create(
    state: &mut State,
    t: &Target,
    mut object: Value,
    params: &WriteParams<'_>,
) -> Result<Reply, ApiError> {
    check_type(t, &object)?;
    check_namespace(state, t)?;
    let meta = meta_mut(&mut object);
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if prefix.is_empty() {
            return Err(invalid(
                t,
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required".into(),
            ));
        }
        name = generate_name(&prefix);
        while state.get(&t.rt.storage, t.ns(), &name).is_some() {
            name = generate_name(&prefix);
        }
        meta.insert("name".into(), json!(name));
    }
    if state.get(&t.rt.storage, t.ns(), &name).is_some() {
        return Err(ApiError::AlreadyExists {
            what: t.rt.qualified(),
            name,
        });
    }
    let target = Target {
        name: Some(name),
        rt: t.rt.clone(),
        version: t.version.clone(),
        namespace: t.namespace.clone(),
        subresource: None,
    };
    commit(state, &target, None, object, Op::Create, params).map(written_reply)
}

pub(crate) fn update(
    state: &mut State,
    t: &Target,
    object: Value,
    params: &WriteParams<'_>,
) -> Result<Reply, ApiError> {
    check_type(t, &object)?;
    check_name_matches(t, &object)?;
    let name = t.name.as_deref().unwrap_or_default();
    let old = read(state, t, name).ok_or_else(|| not_found(t, name))?;
    commit(state, t, Some(&old), object, Op::Update, params).map(written_reply)
}

const PATCH_TYPES: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

pub(crate) fn patch(
    state: &mut State,
    t: &Target,
    body: &[u8],
    content_type: &str,
    params: &WriteParams<'_>,
) -> Result<Reply, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let name = t.name.as_deref().unwrap_or_default();
    let old = read(state, t, name);
    let unsupported = || {
        let accepted = if t.rt.custom {
            PATCH_TYPES.to_owned()
        } else {
            format!("{PATCH_TYPES}, application/strategic-merge-patch+json")
        };
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: {accepted}"
        ))
    };
    match media {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            let applied = parse_body(body, "yaml")?;
            apply(state, t, old.as_ref(), applied, params)
        }
        "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => {
            if media == "application/strategic-merge-patch+json" && t.rt.custom {
                return Err(unsupported());
            }
            let old = old.ok_or_else(|| not_found(t, name))?;
            let patch_doc = parse_body(body, content_type)?;
            let mut patched = old.clone();
            let lists =
                t.rt.version(&t.version)
                    .map(|v| v.lists.clone())
                    .ok_or_else(|| ApiError::Internal("served version vanished".into()))?;
            let result = match media {
                "application/merge-patch+json" => {
                    if !patch_doc.is_object() {
                        return Err(ApiError::BadRequest(
                            "merge patch must be a JSON object".into(),
                        ));
                    }
                    patch::merge_patch(&mut patched, &patch_doc);
                    Ok(())
                }
                "application/json-patch+json" => patch::json_patch(&mut patched, &patch_doc),
                _ => patch::strategic_merge_patch(&mut patched, &patch_doc, lists.as_ref()),
            };
            if let Err(e) = result {
                return Err(match e.http_status() {
                    400 => ApiError::BadRequest(e.to_string()),
                    _ => ApiError::Invalid {
                        what: t.rt.qualified(),
                        name: name.to_owned(),
                        causes: vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: e.to_string(),
                            field: String::new(),
                        }],
                    },
                });
            }
            check_name_matches(t, &patched)?;
            commit(state, t, Some(&old), patched, Op::Update, params).map(written_reply)
        }
        _ => Err(unsupported()),
    }
}

fn apply(
    state: &mut State,
    t: &Target,
    old: Option<&Value>,
    mut applied: Value,
    params: &WriteParams<'_>,
) -> Result<Reply, ApiError> {
    let manager = qp(params.query, "fieldManager")
        .ok_or_else(|| {
            ApiError::BadRequest("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests; set it with the fieldManager query parameter".into())
        })?
        .to_owned();
    check_type(t, &applied)?;
    check_name_matches(t, &applied)?;
    for field in ["apiVersion", "kind"] {
        if applied[field].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::BadRequest(format!(
                "{field} must be set in an apply request"
            )));
        }
    }
    let name = t.name.clone().unwrap_or_default();
    if old.is_none() {
        if t.on_status() {
            return Err(not_found(t, &name));
        }
        check_namespace(state, t)?;
    }
    {
        let meta = meta_mut(&mut applied);
        meta.insert("name".into(), json!(name));
        if t.rt.namespaced {
            meta.insert("namespace".into(), json!(t.ns()));
        }
    }
    if let Some(obj) = applied.as_object_mut() {
        if t.on_status() {
            obj.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
            }
        } else if t.rt.status_subresource {
            obj.remove("status");
        }
    }
    if t.rt.plural == "secrets" && t.rt.group.is_empty() {
        fold_string_data(&mut applied);
    }
    let force = matches!(qp(params.query, "force"), Some("true" | "1"));
    let time = now_rfc3339();
    let api_version = t.api_version();
    let opts = ssa::ApplyOptions {
        manager: &manager,
        force,
        api_version: &api_version,
        time: &time,
        subresource: t.subresource.as_deref(),
    };
    let lists =
        t.rt.version(&t.version)
            .map(|v| v.lists.clone())
            .ok_or_else(|| ApiError::Internal("served version vanished".into()))?;
    let new = ssa::apply(old, &applied, &opts, lists.as_ref()).map_err(|e| match e {
        ssa::ApplyError::Conflicts(conflicts) => ApiError::ApplyConflict {
            what: t.rt.qualified(),
            name: name.clone(),
            message: ssa::ApplyError::Conflicts(conflicts.clone()).to_string(),
            causes: conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: c.cause_message(),
                    field: c.field.clone(),
                })
                .collect(),
        },
        // Kubernetes answers a body carrying managedFields with 400, other malformed apply
        // configurations (a map-list item without its key) with 422.
        ssa::ApplyError::Invalid(message) if message.starts_with("metadata.managedFields") => {
            ApiError::BadRequest(message)
        }
        ssa::ApplyError::Invalid(message) => invalid(t, &name, "", "FieldValueInvalid", message),
    })?;
    commit(state, t, old, new, Op::Apply, params).map(written_reply)
}

/// `DeleteOptions` from the body and query.
struct DeleteOptions {
    orphan: bool,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
}

fn delete_options(body: &[u8], q: &Query) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body, "json")?
    };
    let policy = qp(q, "propagationPolicy")
        .map(str::to_owned)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_owned));
    let orphan = match policy.as_deref() {
        None | Some("Background" | "Foreground") => {
            body["orphanDependents"] == true || qp(q, "orphanDependents") == Some("true")
        }
        Some("Orphan") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    Ok(DeleteOptions {
        orphan,
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    })
}

pub(crate) fn delete(
    state: &mut State,
    t: &Target,
    body: &[u8],
    q: &Query,
) -> Result<Reply, ApiError> {
    let dry = dry_run(q)?;
    let opts = delete_options(body, q)?;
    let name = t.name.as_deref().unwrap_or_default();
    let current = read(state, t, name).ok_or_else(|| not_found(t, name))?;
    let conflict = |what: &str, want: &str, have: &str| ApiError::Conflict {
        what: t.rt.qualified(),
        name: name.to_owned(),
        reason: format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    };
    if let Some(uid) = &opts.precondition_uid {
        let have = current["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != have {
            return Err(conflict("UID", uid, have));
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        let have = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if rv != have {
            return Err(conflict("ResourceVersion", rv, have));
        }
    }
    if dry {
        return Ok(Reply::ok(current));
    }
    match delete_object(state, &t.rt, t.ns(), name, opts.orphan) {
        Some(Deletion::Pending(object)) => Ok(Reply::ok(to_view(&t.rt, &t.version, &object))),
        Some(Deletion::Removed(object)) => {
            after_removal(state, &t.rt, &object);
            let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
            Ok(Reply::ok(status::success(&t.rt.qualified(), name, uid)))
        }
        None => Err(not_found(t, name)),
    }
}

pub(crate) fn delete_collection(
    state: &mut State,
    t: &Target,
    body: &[u8],
    q: &Query,
) -> Result<Reply, ApiError> {
    let dry = dry_run(q)?;
    let opts = delete_options(body, q)?;
    let filter = Filter::new(t, q)?;
    let names: Vec<(String, String)> = state
        .list(&t.rt.storage, t.namespace.as_deref())
        .map(|o| to_view(&t.rt, &t.version, o))
        .filter(|v| filter.matches(v))
        .map(|v| {
            (
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        if dry {
            if let Some(o) = state.get(&t.rt.storage, &ns, &name) {
                items.push(to_view(&t.rt, &t.version, o));
            }
            continue;
        }
        match delete_object(state, &t.rt, &ns, &name, opts.orphan) {
            Some(Deletion::Pending(o)) => items.push(to_view(&t.rt, &t.version, &o)),
            Some(Deletion::Removed(o)) => {
                after_removal(state, &t.rt, &o);
                items.push(to_view(&t.rt, &t.version, &o));
            }
            None => {}
        }
    }
    Ok(Reply::ok(json!({
        "kind": t.rt.list_kind,
        "apiVersion": t.api_version(),
        "metadata": { "resourceVersion": state.current_rv().to_string() },
        "items": items,
    })))
}
