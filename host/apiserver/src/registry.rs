//! The resource types the server serves (built-in kinds and those CRDs register) and the
//! discovery documents describing them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use dbo_apimachinery::lists::{BuiltinLists, ListSemantics, SchemaLists};
use serde_json::{Value, json};

use crate::status::{ApiError, Cause, Qualified};

/// Where a resource's objects live: its group and plural (versions share storage).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResourceKey {
    pub group: String,
    pub plural: String,
}

impl ResourceKey {
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_owned(),
            plural: plural.to_owned(),
        }
    }
}

/// `additionalPrinterColumns` entry of a CRD version.
#[derive(Debug, Clone)]
pub(crate) struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

pub(crate) struct Version {
    pub name: String,
    /// `openAPIV3Schema` of a CRD version; built-in kinds have none here.
    pub schema: Option<Value>,
    pub columns: Vec<PrinterColumn>,
    pub lists: Arc<dyn ListSemantics>,
}

pub(crate) struct ResourceType {
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<Version>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// Storage of the objects; differs from this type's own key only for events.k8s.io Events,
    /// which are the core Events seen through a conversion.
    pub storage: ResourceKey,
    /// Registered by a CRD (custom resources get schema validation and no strategic merge).
    pub custom: bool,
}

impl ResourceType {
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(&self.group, &self.plural)
    }

    pub fn qualified(&self) -> Box<Qualified> {
        Box::new(Qualified {
            group: self.group.clone(),
            plural: self.plural.clone(),
            kind: self.kind.clone(),
        })
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether the objects are the core Events (stored in the core form).
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        status: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        status: true,
    },
    Builtin {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        status: true,
    },
    Builtin {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        status: true,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
    },
];

/// Built-in groups in the order the real server lists them.
const BUILTIN_GROUPS: &[&str] = &[
    "apiextensions.k8s.io",
    "batch",
    "coordination.k8s.io",
    "events.k8s.io",
];

pub(crate) struct Registry {
    types: BTreeMap<ResourceKey, Arc<ResourceType>>,
}

impl Registry {
    pub fn new() -> Self {
        let mut types = BTreeMap::new();
        for b in BUILTINS {
            let storage = if b.group == "events.k8s.io" {
                ResourceKey::new("", "events")
            } else {
                ResourceKey::new(b.group, b.plural)
            };
            let rt = ResourceType {
                group: b.group.into(),
                versions: vec![Version {
                    name: b.version.into(),
                    schema: None,
                    columns: Vec::new(),
                    lists: Arc::new(BuiltinLists),
                }],
                plural: b.plural.into(),
                singular: b.singular.into(),
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short_names.iter().map(|s| (*s).into()).collect(),
                categories: b.categories.iter().map(|s| (*s).into()).collect(),
                status_subresource: b.status,
                storage,
                custom: false,
            };
            types.insert(rt.key(), Arc::new(rt));
        }
        Self { types }
    }

    pub fn get(&self, key: &ResourceKey) -> Option<Arc<ResourceType>> {
        self.types.get(key).cloned()
    }

    /// The type serving `group/version` `plural`, if that version is served.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&ResourceKey::new(group, plural))
            .filter(|rt| rt.version(version).is_some())
            .cloned()
    }

    pub fn types(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Registers (or re-registers) the resource a CRD defines.
    pub fn register_crd(&mut self, rt: ResourceType) {
        self.types.insert(rt.key(), Arc::new(rt));
    }

    pub fn unregister(&mut self, key: &ResourceKey) {
        self.types.remove(key);
    }

    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rt in self.types.values().filter(|rt| !rt.group.is_empty()) {
            let versions = groups.entry(rt.group.clone()).or_default();
            for v in &rt.versions {
                if !versions.contains(&v.name) {
                    versions.push(v.name.clone());
                }
            }
        }
        let mut ordered: Vec<(String, Vec<String>)> = Vec::new();
        for g in BUILTIN_GROUPS {
            if let Some(v) = groups.remove(*g) {
                ordered.push(((*g).to_owned(), v));
            }
        }
        ordered.extend(groups);
        for (_, versions) in &mut ordered {
            versions.sort_by(|a, b| version_priority(a, b));
        }
        ordered
    }

    /// `GET /api`.
    pub fn api_versions(&self) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
        })
    }

    /// `GET /apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(name, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
                    .collect();
                json!({
                    "name": name,
                    "versions": versions,
                    "preferredVersion": versions[0],
                })
            })
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `GET /apis/{group}`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let (name, versions) = self.groups().into_iter().find(|(g, _)| g == group)?;
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
            .collect();
        Some(json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": versions,
            "preferredVersion": versions[0],
        }))
    }

    fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types
            .values()
            .filter(move |rt| rt.group == group && rt.version(version).is_some())
    }

    /// `GET /api/v1`, `GET /apis/{group}/{version}`.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for rt in self.in_group_version(group, version) {
            let mut r = json!({
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ALL_VERBS,
            });
            if !rt.short_names.is_empty() {
                r["shortNames"] = json!(rt.short_names);
            }
            if !rt.categories.is_empty() {
                r["categories"] = json!(rt.categories);
            }
            resources.push(r);
            if rt.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", rt.plural),
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if resources.is_empty() && !(group.is_empty() && version == "v1") {
            return None;
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") },
            "resources": resources,
        }))
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) of the core group
    /// (`legacy`) or of all named groups, which kubectl asks for first.
    pub fn aggregated(&self, legacy: bool) -> Value {
        let groups: Vec<(String, Vec<String>)> = if legacy {
            vec![(String::new(), vec!["v1".to_owned()])]
        } else {
            self.groups()
        };
        let items: Vec<Value> = groups
            .into_iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self
                            .in_group_version(&group, v)
                            .map(|rt| aggregated_resource(rt, v))
                            .collect();
                        json!({ "version": v, "resources": resources, "freshness": "Current" })
                    })
                    .collect();
                json!({ "metadata": { "name": group, "creationTimestamp": null }, "versions": versions })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

fn aggregated_resource(rt: &ResourceType, version: &str) -> Value {
    let response_kind = json!({ "group": rt.group, "version": version, "kind": rt.kind });
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": response_kind,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": ALL_VERBS,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    if rt.status_subresource {
        r["subresources"] = json!([{
            "subresource": "status",
            "responseKind": response_kind,
            "verbs": ["get", "patch", "update"],
        }]);
    }
    r
}

/// Kubernetes' version ordering: GA before beta before alpha, higher numbers first, anything
/// not shaped like a Kubernetes version last (alphabetically).
pub(crate) fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((stage, major, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Reads a CRD into the resource type it defines, rejecting what the real server rejects.
pub(crate) fn resource_from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let mut causes = Vec::new();
    let mut required = |field: &str| {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        })
    };
    let group = spec["group"].as_str().unwrap_or_default().to_owned();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_owned();
    let kind = names["kind"].as_str().unwrap_or_default().to_owned();
    if group.is_empty() {
        required("spec.group");
    }
    if plural.is_empty() {
        required("spec.names.plural");
    }
    if kind.is_empty() {
        required("spec.names.kind");
    }
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope.is_empty() {
        required("spec.scope");
    }
    let versions_in = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions_in.is_empty() {
        required("spec.versions");
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ),
            field: "metadata.name".into(),
        });
    }
    if !scope.is_empty() && scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
            field: "spec.scope".into(),
        });
    }
    let storage_count = versions_in
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions_in.is_empty() && storage_count != 1 {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {storage_count}: must have exactly one version marked as storage version"
            ),
            field: "spec.versions".into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            what: Box::new(Qualified {
                group: "apiextensions.k8s.io".into(),
                plural: "customresourcedefinitions".into(),
                kind: "CustomResourceDefinition".into(),
            }),
            name: name.to_owned(),
            causes,
        });
    }
    let mut status_subresource = false;
    let mut versions = Vec::new();
    for v in versions_in
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
    {
        let schema = v["schema"]["openAPIV3Schema"].clone();
        let schema = (!schema.is_null()).then_some(schema);
        status_subresource |= v["subresources"]["status"].is_object();
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().into(),
                        type_: c["type"].as_str().unwrap_or("string").into(),
                        format: c["format"].as_str().unwrap_or_default().into(),
                        description: c["description"].as_str().unwrap_or_default().into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lists: Arc<dyn ListSemantics> = match &schema {
            Some(s) => Arc::new(SchemaLists::new(s)),
            None => Arc::new(BuiltinLists),
        };
        versions.push(Version {
            name: v["name"].as_str().unwrap_or_default().into(),
            schema,
            columns,
            lists,
        });
    }
    versions.sort_by(|a, b| version_priority(&a.name, &b.name));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        storage: ResourceKey::new(&group, &plural),
        singular: names["singular"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| kind.to_lowercase()),
        list_kind: names["listKind"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{kind}List")),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        namespaced: scope == "Namespaced",
        group,
        versions,
        plural,
        kind,
        status_subresource,
        custom: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_versions_are_preferred_over_beta_and_alpha() {
        let mut v = vec!["v1alpha1", "v2", "v1beta1", "v1", "foo"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(v, ["v2", "v1", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn a_crd_named_unlike_its_plural_and_group_is_invalid() {
        let crd = json!({
            "metadata": { "name": "wrong.example.com" },
            "spec": {
                "group": "example.com",
                "names": { "plural": "widgets", "kind": "Widget" },
                "scope": "Namespaced",
                "versions": [{ "name": "v1", "served": true, "storage": true }],
            }
        });
        let err = resource_from_crd(&crd).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "CustomResourceDefinition.apiextensions.k8s.io \"wrong.example.com\" is invalid: \
                 metadata.name: Invalid value: \"wrong.example.com\": must be \
                 spec.names.plural+\".\"+spec.group"
            )
        );
    }
}
