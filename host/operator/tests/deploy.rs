//! What installs the operator on a cluster — the plain manifests (`deploy/operator`) and the
//! Helm chart (`deploy/helm/db-operator`) — checked without a cluster: every object parses as its
//! Kubernetes type with no field lost, the operator pod is locked down, RBAC grants exactly what
//! the controllers use, and the chart renders to the same objects for the values users set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every `*.yaml` file directly in a folder of the repository, sorted.
fn yaml_files(relative: &str) -> Vec<String> {
    let dir = repo().join(relative);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
        .map(|entry| entry.expect("directory entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

/// The documents of a multi-document YAML stream; comment-only documents are skipped.
fn documents(yaml: &str, origin: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Json::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Strict parsing: k8s-openapi ignores fields it does not know, so a misspelt field
// (`readOnlyRootFileSystem`) would silently vanish. Parsing and writing the object back must
// give the document we started from.

#[derive(Debug)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    Deployment(Box<Deployment>),
}

fn strict<T: DeserializeOwned + serde::Serialize>(doc: &Json, origin: &str) -> T {
    let parsed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let written = serde_json::to_value(&parsed).expect("k8s-openapi objects serialise");
    if let Some(difference) = first_difference(doc, &written, "") {
        panic!("{origin}: {difference}");
    }
    parsed
}

fn first_difference(original: &Json, written: &Json, path: &str) -> Option<String> {
    match (original, written) {
        (Json::Object(a), Json::Object(b)) => a.iter().find_map(|(key, value)| {
            let here = format!("{path}.{key}");
            match b.get(key) {
                Some(other) => first_difference(value, other, &here),
                None => Some(format!("`{}` is not a field of this kind", &here[1..])),
            }
        }),
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!(
            "`{}`: {a} reads back as {b}",
            path.trim_start_matches('.')
        )),
    }
}

fn parse_object(doc: &Json, origin: &str) -> Object {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let origin = format!("{origin}: {kind} {}", doc["metadata"]["name"]);
    match (api_version, kind) {
        ("v1", "Namespace") => Object::Namespace(strict(doc, &origin)),
        ("v1", "ServiceAccount") => Object::ServiceAccount(strict(doc, &origin)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            Object::ClusterRole(strict(doc, &origin))
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(strict(doc, &origin))
        }
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(strict(doc, &origin)),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            Object::RoleBinding(strict(doc, &origin))
        }
        ("apps/v1", "Deployment") => Object::Deployment(Box::new(strict(doc, &origin))),
        _ => panic!("{origin}: unexpected object {api_version} {kind}"),
    }
}

/// Every object of `deploy/operator/*.yaml`.
fn plain_objects() -> Vec<Object> {
    yaml_files("deploy/operator")
        .iter()
        .flat_map(|file| {
            let origin = format!("deploy/operator/{file}");
            documents(&read(&origin), &origin)
                .iter()
                .map(|doc| parse_object(doc, &origin))
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What the operator touches, and so all that its RBAC may grant.

const READ_WRITE: &[&str] = &["get", "list", "watch", "patch", "update"];
const STATUS: &[&str] = &["get", "patch", "update"];
const FINALIZERS: &[&str] = &["update"];
const EMIT: &[&str] = &["create", "patch"];
const OWNED: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

const GRANTS: &[(&str, &str, &[&str])] = &[
    ("kci.rocks", "dbinstances", READ_WRITE),
    ("kci.rocks", "databases", READ_WRITE),
    ("kci.rocks", "dbrestores", READ_WRITE),
    ("kci.rocks", "dbinstances/status", STATUS),
    ("kci.rocks", "databases/status", STATUS),
    ("kci.rocks", "dbrestores/status", STATUS),
    ("kci.rocks", "dbinstances/finalizers", FINALIZERS),
    ("kci.rocks", "databases/finalizers", FINALIZERS),
    ("kci.rocks", "dbrestores/finalizers", FINALIZERS),
    (
        "",
        "secrets",
        &[
            "get", "list", "watch", "create", "patch", "update", "delete",
        ],
    ),
    ("", "serviceaccounts", OWNED),
    (
        "",
        "configmaps",
        &["get", "list", "watch", "create", "delete"],
    ),
    ("", "pods", &["get", "list"]),
    ("", "events", EMIT),
    ("events.k8s.io", "events", EMIT),
    ("batch", "jobs", OWNED),
    ("batch", "cronjobs", OWNED),
];

type Grant = (String, String, String);

fn expected_grants(keep: impl Fn(&str, &str) -> bool) -> BTreeSet<Grant> {
    GRANTS
        .iter()
        .filter(|(group, resource, _)| keep(group, resource))
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(|verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

fn is_instance(_group: &str, resource: &str) -> bool {
    resource.starts_with("dbinstances")
}

fn is_event(_group: &str, resource: &str) -> bool {
    resource == "events"
}

/// The (group, resource, verb) triples some rules grant. Wildcards, resource names and
/// non-resource URLs fail the test: each would grant something not on the list.
fn granted(rules: &[PolicyRule], origin: &str) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{origin}: unexpected resourceNames/nonResourceURLs in {rule:?}"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for value in groups.iter().chain(&resources).chain(&rule.verbs) {
            assert!(!value.contains('*'), "{origin}: wildcard in {rule:?}");
        }
        for group in &groups {
            for resource in &resources {
                for verb in &rule.verbs {
                    grants.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

fn assert_grants(actual: &BTreeSet<Grant>, expected: &BTreeSet<Grant>, origin: &str) {
    let missing: Vec<_> = expected.difference(actual).collect();
    let extra: Vec<_> = actual.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{origin}: RBAC differs from what the operator uses\n  missing: {missing:?}\n  not used by the operator: {extra:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The operator pod, wherever it comes from.

fn flag<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    container
        .args
        .iter()
        .flatten()
        .find_map(|arg| arg.strip_prefix(&prefix))
}

fn assert_locked_down(deployment: &Deployment, service_account: &str, origin: &str) {
    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(1), "{origin}: replicas");
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "{origin}: without leader election an old and a new operator must not overlap"
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(service_account),
        "{origin}: serviceAccountName"
    );
    assert_eq!(
        pod.automount_service_account_token,
        Some(true),
        "{origin}: the controllers need the API token"
    );
    assert!(
        pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none(),
        "{origin}: no host namespaces"
    );
    let [container] = pod.containers.as_slice() else {
        panic!("{origin}: exactly one container expected");
    };
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "{origin}: args"
    );
    let image = container.image.as_deref().unwrap_or_default();
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{origin}: image {image} is not the workspace version"
    );

    let pod_security = pod.security_context.clone().unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    assert_eq!(
        security.run_as_non_root.or(pod_security.run_as_non_root),
        Some(true),
        "{origin}: runAsNonRoot"
    );
    assert_eq!(
        security.run_as_user.or(pod_security.run_as_user),
        Some(65532),
        "{origin}: runAsUser (the image's nonroot uid)"
    );
    assert_eq!(
        security.read_only_root_filesystem,
        Some(true),
        "{origin}: readOnlyRootFilesystem"
    );
    assert_eq!(
        security.allow_privilege_escalation,
        Some(false),
        "{origin}: allowPrivilegeEscalation"
    );
    assert_ne!(security.privileged, Some(true), "{origin}: privileged");
    let capabilities = security.capabilities.clone().unwrap_or_default();
    assert_eq!(
        capabilities.drop,
        Some(vec!["ALL".to_owned()]),
        "{origin}: capabilities.drop"
    );
    assert!(capabilities.add.is_none(), "{origin}: capabilities.add");
    let seccomp = security.seccomp_profile.or(pod_security.seccomp_profile);
    assert_eq!(
        seccomp.map(|s| s.type_),
        Some("RuntimeDefault".to_owned()),
        "{origin}: seccompProfile"
    );

    // The probes reach the port the binary listens on.
    let address = flag(container, "probe-addr").unwrap_or("0.0.0.0:8080");
    let port: i32 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{origin}: --probe-addr={address} has no port"));
    let probes_port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("probes"))
        .unwrap_or_else(|| panic!("{origin}: no container port named `probes`"));
    assert_eq!(
        probes_port.container_port, port,
        "{origin}: port `probes` vs --probe-addr"
    );
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{origin}: no HTTP probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path), "{origin}: probe path");
        assert!(
            matches!(&get.port, IntOrString::String(name) if name == "probes")
                || get.port == IntOrString::Int(port),
            "{origin}: probe of {path} on {:?}, not the probes port",
            get.port
        );
    }

    // The compile cache is writable although the root filesystem is not.
    let cache = flag(container, "cache-dir")
        .unwrap_or_else(|| panic!("{origin}: no --cache-dir (the root filesystem is read-only)"));
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == cache)
        .unwrap_or_else(|| panic!("{origin}: nothing mounted at --cache-dir={cache}"));
    assert_ne!(
        mount.read_only,
        Some(true),
        "{origin}: cache must be writable"
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("{origin}: no volume {}", mount.name));
    assert!(volume.empty_dir.is_some(), "{origin}: cache is an emptyDir");
    if let Some(dir) = flag(container, "plugin-dir") {
        assert!(
            container
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == dir && m.read_only == Some(true)),
            "{origin}: --plugin-dir={dir} is not a read-only mount"
        );
    }

    let resources = container.resources.clone().unwrap_or_default();
    for (what, list) in [
        ("requests", resources.requests),
        ("limits", resources.limits),
    ] {
        let list = list.unwrap_or_default();
        assert!(
            list.contains_key("cpu") && list.contains_key("memory"),
            "{origin}: resources.{what} needs cpu and memory"
        );
    }
}

/// The container's arguments are flags the binary knows, with values it accepts: clap parses
/// every argument before `--help` and stops at the first one it refuses.
fn assert_binary_accepts_args(deployment: &Deployment, origin: &str) {
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    let out = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .args(&args)
        .arg("--help")
        .env_remove("DBO_WATCH_NAMESPACES")
        .env_remove("DBO_PLUGIN_DIGESTS")
        .output()
        .expect("db-operator runs");
    assert!(
        out.status.success(),
        "{origin}: db-operator refuses the container args {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Plain manifests

#[test]
fn plain_manifests_parse_strictly_and_live_in_the_operator_namespace() {
    let objects = plain_objects();
    let namespace = objects
        .iter()
        .find_map(|o| match o {
            Object::Namespace(ns) => ns.metadata.name.clone(),
            _ => None,
        })
        .expect("namespace.yaml creates the operator's namespace");
    assert_eq!(namespace, "db-operator");
    for object in &objects {
        let metadata = match object {
            Object::ServiceAccount(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::Namespace(_) | Object::ClusterRole(_) | Object::ClusterRoleBinding(_) => {
                continue;
            }
        };
        assert_eq!(
            metadata.namespace.as_deref(),
            Some("db-operator"),
            "{object:?}"
        );
    }
}

#[test]
fn a_misspelt_field_is_caught() {
    // The check above is only worth something if it fails on the typo it exists for.
    let yaml = read("deploy/operator/deployment.yaml")
        .replace("readOnlyRootFilesystem", "readOnlyRootFileSystem");
    let doc = documents(&yaml, "typo").remove(0);
    let caught = std::panic::catch_unwind(|| parse_object(&doc, "typo"));
    let message = caught
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .expect("the misspelt field is refused");
    assert!(
        message.contains("securityContext.readOnlyRootFileSystem"),
        "{message}"
    );
}

#[test]
fn plain_deployment_is_locked_down_and_probed_on_its_port() {
    let objects = plain_objects();
    let deployments: Vec<&Deployment> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Deployment(d) => Some(d.as_ref()),
            _ => None,
        })
        .collect();
    let [deployment] = deployments.as_slice() else {
        panic!(
            "exactly one Deployment expected, found {}",
            deployments.len()
        );
    };
    let service_account = objects
        .iter()
        .find_map(|o| match o {
            Object::ServiceAccount(sa) => sa.metadata.name.clone(),
            _ => None,
        })
        .expect("serviceaccount.yaml");
    assert_locked_down(
        deployment,
        &service_account,
        "deploy/operator/deployment.yaml",
    );
    assert_binary_accepts_args(deployment, "deploy/operator/deployment.yaml");
}

#[test]
fn plain_rbac_grants_exactly_what_the_operator_uses() {
    let objects = plain_objects();
    let mut roles = objects.iter().filter_map(|o| match o {
        Object::ClusterRole(r) => Some(r),
        _ => None,
    });
    let role = roles.next().expect("a ClusterRole");
    assert!(roles.next().is_none(), "one ClusterRole");
    assert!(
        !objects
            .iter()
            .any(|o| matches!(o, Object::Role(_) | Object::RoleBinding(_))),
        "all namespaces are watched: no namespaced roles"
    );
    let rules = role.rules.clone().unwrap_or_default();
    assert_grants(
        &granted(&rules, "rbac.yaml"),
        &expected_grants(|_, _| true),
        "deploy/operator/rbac.yaml",
    );

    let binding = objects
        .iter()
        .find_map(|o| match o {
            Object::ClusterRoleBinding(b) => Some(b),
            _ => None,
        })
        .expect("a ClusterRoleBinding");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.clone().unwrap_or_default();
    let [subject] = subjects.as_slice() else {
        panic!("one subject: the operator's ServiceAccount");
    };
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "db-operator", Some("db-operator"))
    );
}

#[test]
fn kustomization_lists_every_manifest_and_the_crds() {
    #[derive(Deserialize)]
    struct Kustomization {
        resources: Vec<String>,
    }
    let operator: Kustomization =
        serde_yaml::from_str(&read("deploy/operator/Kustomization")).expect("Kustomization");
    let mut expected = yaml_files("deploy/operator");
    expected.push("../crds".to_owned());
    let listed: BTreeSet<&String> = operator.resources.iter().collect();
    assert_eq!(
        listed,
        expected.iter().collect(),
        "deploy/operator/Kustomization must list every manifest of the folder"
    );
    let crds: Kustomization =
        serde_yaml::from_str(&read("deploy/crds/Kustomization")).expect("Kustomization");
    assert_eq!(crds.resources, ["crds.yaml"]);
}

// ---------------------------------------------------------------------------------------------
// Helm chart: files

const CHART: &str = "deploy/helm/db-operator";

#[test]
fn helm_crds_are_the_binarys_crd_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .arg("crd")
        .output()
        .expect("db-operator runs");
    assert!(out.status.success());
    let chart_crds = read(&format!("{CHART}/crds/crds.yaml"));
    assert!(
        out.stdout == chart_crds.as_bytes(),
        "{CHART}/crds/crds.yaml is stale: run `cargo run -q -p db-operator -- crd > {CHART}/crds/crds.yaml`"
    );
}

/// `.Values.a.b` paths the templates use, e.g. `["plugins", "dir"]`.
fn referenced_values() -> BTreeSet<Vec<String>> {
    let dir = repo().join(CHART).join("templates");
    let mut paths = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("templates/") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("template");
        for (at, _) in text.match_indices(".Values.") {
            let rest = &text[at + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let path: Vec<String> = rest[..end]
                .trim_end_matches('.')
                .split('.')
                .map(str::to_owned)
                .collect();
            paths.insert(path);
        }
    }
    paths
}

fn default_values() -> Json {
    serde_yaml::from_str(&read(&format!("{CHART}/values.yaml"))).expect("values.yaml parses")
}

#[test]
fn every_value_a_template_uses_is_in_values_yaml_and_documented() {
    let values = default_values();
    let readme = read(&format!("{CHART}/README.md"));
    let referenced = referenced_values();
    assert!(referenced.len() > 10, "the scan found the references");
    for path in &referenced {
        let found = path.iter().try_fold(&values, |v, key| v.get(key));
        assert!(
            found.is_some(),
            "templates use .Values.{} but values.yaml has no such value",
            path.join(".")
        );
        let documented = format!("| `{}` |", path.join("."));
        assert!(
            readme.contains(&documented),
            "{CHART}/README.md has no row for `{}`",
            path.join(".")
        );
    }
    // And nothing in values.yaml is dead: each top-level value is used somewhere.
    for key in values.as_object().expect("values.yaml is a map").keys() {
        assert!(
            referenced.iter().any(|p| &p[0] == key),
            "values.yaml has `{key}`, which no template uses"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helm chart: rendered. Helm cannot be installed here, so `helm` renders the chart with a Go
// text/template engine and the handful of Helm functions the chart uses.

mod helm {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};
    use std::path::Path;

    use gtmpl_ng::{Context, Func, FuncError, Number, Template, Value};
    use serde_json::Value as Json;

    thread_local! {
        /// The chart's `_*.tpl` files, for `include`: template functions are plain `fn`
        /// pointers with no way to reach the template that calls them.
        static HELPERS: RefCell<String> = const { RefCell::new(String::new()) };
    }

    /// Renders every template of the chart, as `helm template` would: file name -> text.
    pub fn render(
        chart: &Path,
        namespace: &str,
        overrides: Json,
    ) -> Result<BTreeMap<String, String>, String> {
        let chart_yaml: Json = read_yaml(&chart.join("Chart.yaml"))?;
        let mut values: Json = read_yaml(&chart.join("values.yaml"))?;
        merge(&mut values, overrides);
        let root = serde_json::json!({
            "Values": values,
            "Chart": {
                "Name": chart_yaml["name"],
                "Version": chart_yaml["version"],
                "AppVersion": chart_yaml["appVersion"],
            },
            "Release": {
                "Name": "db-operator",
                "Namespace": namespace,
                "Service": "Helm",
                "IsInstall": true,
            },
        });
        let mut helpers = String::new();
        let mut sources = BTreeMap::new();
        let mut entries: Vec<_> = std::fs::read_dir(chart.join("templates"))
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
            if name.starts_with('_') {
                helpers.push_str(&text);
            } else {
                sources.insert(name, text);
            }
        }
        HELPERS.with(|h| *h.borrow_mut() = helpers.clone());
        let context = to_value(&root);
        sources
            .into_iter()
            .map(|(name, text)| {
                let mut template = new_template(&name);
                template
                    .add_template("_helpers.tpl", helpers.clone())
                    .map_err(|e| format!("_helpers.tpl: {e}"))?;
                template.parse(text).map_err(|e| format!("{name}: {e}"))?;
                let out = template
                    .render(&Context::from(context.clone()))
                    .map_err(|e| format!("{name}: {e}"))?;
                // Helm's own post-processing: a missing value prints as nothing.
                Ok((name, out.replace("<no value>", "")))
            })
            .collect()
    }

    fn read_yaml(path: &Path) -> Result<Json, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `--set`/`-f` semantics: maps merge key by key, anything else replaces.
    fn merge(base: &mut Json, overrides: Json) {
        match (base, overrides) {
            (Json::Object(base), Json::Object(overrides)) => {
                for (key, value) in overrides {
                    merge(base.entry(key).or_insert(Json::Null), value);
                }
            }
            (base, overrides) => *base = overrides,
        }
    }

    const FUNCS: &[(&str, Func)] = &[
        ("include", include),
        ("default", default),
        ("trunc", trunc),
        ("trimSuffix", trim_suffix),
        ("contains", contains),
        ("replace", replace),
        ("quote", quote),
        ("toYaml", to_yaml),
        ("indent", indent),
        ("nindent", nindent),
        ("join", join),
        ("list", list),
        ("concat", concat),
        ("uniq", uniq),
        ("int", int),
        ("fail", fail),
    ];

    fn new_template(name: &str) -> Template {
        let mut template = Template::with_name(name);
        template.add_funcs(FUNCS);
        template
    }

    fn to_value(json: &Json) -> Value {
        match json {
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Number::signed(i),
                (None, Some(u)) => Number::unsigned(u),
                (None, None) => Number::float(n.as_f64().unwrap_or_default()),
            }),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
            Json::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect::<HashMap<_, _>>(),
            ),
        }
    }

    fn to_json(value: &Value) -> Json {
        match value {
            Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::String(s) => Json::String(s.clone()),
            Value::Number(n) => n
                .as_i64()
                .map(Json::from)
                .or_else(|| n.as_u64().map(Json::from))
                .unwrap_or_else(|| Json::from(n.as_f64().unwrap_or_default())),
            Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
            Value::Map(map) | Value::Object(map) => {
                let sorted: BTreeMap<_, _> = map.iter().collect();
                Json::Object(
                    sorted
                        .into_iter()
                        .map(|(k, v)| (k.clone(), to_json(v)))
                        .collect(),
                )
            }
        }
    }

    fn is_empty(value: &Value) -> bool {
        match value {
            Value::NoValue | Value::Nil | Value::Function(_) => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::Array(a) => a.is_empty(),
            Value::Map(m) | Value::Object(m) => m.is_empty(),
        }
    }

    fn text(value: &Value) -> String {
        match value {
            Value::NoValue | Value::Nil => String::new(),
            other => other.to_string(),
        }
    }

    fn items(value: &Value, function: &str) -> Result<Vec<Value>, FuncError> {
        match value {
            Value::Array(items) => Ok(items.clone()),
            Value::NoValue | Value::Nil => Ok(Vec::new()),
            other => Err(FuncError::Generic(format!(
                "{function}: expected a list, got {other}"
            ))),
        }
    }

    fn exactly<'a, const N: usize>(
        args: &'a [Value],
        function: &str,
    ) -> Result<&'a [Value; N], FuncError> {
        args.try_into()
            .map_err(|_| FuncError::ExactlyXArgs(function.to_owned(), N))
    }

    fn include(args: &[Value]) -> Result<Value, FuncError> {
        let [name, context] = exactly(args, "include")?;
        let helpers = HELPERS.with(|h| h.borrow().clone());
        let mut template = new_template("include");
        template
            .add_template("_helpers.tpl", helpers)
            .map_err(|e| FuncError::Generic(e.to_string()))?;
        let name = serde_json::to_string(&text(name)).unwrap_or_default();
        template
            .parse(format!("{{{{ template {name} . }}}}"))
            .map_err(|e| FuncError::Generic(e.to_string()))?;
        template
            .render(&Context::from(context.clone()))
            .map(Value::String)
            .map_err(|e| FuncError::Generic(format!("include {name}: {e}")))
    }

    fn default(args: &[Value]) -> Result<Value, FuncError> {
        match args {
            [fallback] => Ok(fallback.clone()),
            [fallback, given] if is_empty(given) => Ok(fallback.clone()),
            [_, given] => Ok(given.clone()),
            _ => Err(FuncError::ExactlyXArgs("default".to_owned(), 2)),
        }
    }

    fn trunc(args: &[Value]) -> Result<Value, FuncError> {
        let [length, s] = exactly(args, "trunc")?;
        let length = match length {
            Value::Number(n) => n.as_u64().unwrap_or_default() as usize,
            _ => return Err(FuncError::UnableToConvertFromValue),
        };
        Ok(Value::String(text(s).chars().take(length).collect()))
    }

    fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
        let [suffix, s] = exactly(args, "trimSuffix")?;
        let (suffix, s) = (text(suffix), text(s));
        Ok(Value::String(
            s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_owned(),
        ))
    }

    fn contains(args: &[Value]) -> Result<Value, FuncError> {
        let [needle, haystack] = exactly(args, "contains")?;
        Ok(Value::Bool(text(haystack).contains(&text(needle))))
    }

    fn replace(args: &[Value]) -> Result<Value, FuncError> {
        let [old, new, s] = exactly(args, "replace")?;
        Ok(Value::String(text(s).replace(&text(old), &text(new))))
    }

    fn quote(args: &[Value]) -> Result<Value, FuncError> {
        let quoted: Vec<String> = args
            .iter()
            .filter(|a| !matches!(a, Value::Nil | Value::NoValue))
            .map(|a| serde_json::to_string(&text(a)).unwrap_or_default())
            .collect();
        Ok(Value::String(quoted.join(" ")))
    }

    fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
        let [value] = exactly(args, "toYaml")?;
        let yaml = serde_yaml::to_string(&to_json(value))
            .map_err(|e| FuncError::Generic(format!("toYaml: {e}")))?;
        Ok(Value::String(yaml.trim_end_matches('\n').to_owned()))
    }

    fn indent_by(count: &Value, s: &Value) -> Result<String, FuncError> {
        let count = match count {
            Value::Number(n) => n.as_u64().unwrap_or_default() as usize,
            _ => return Err(FuncError::UnableToConvertFromValue),
        };
        let pad = " ".repeat(count);
        Ok(format!(
            "{pad}{}",
            text(s).replace('\n', &format!("\n{pad}"))
        ))
    }

    fn indent(args: &[Value]) -> Result<Value, FuncError> {
        let [count, s] = exactly(args, "indent")?;
        indent_by(count, s).map(Value::String)
    }

    fn nindent(args: &[Value]) -> Result<Value, FuncError> {
        let [count, s] = exactly(args, "nindent")?;
        indent_by(count, s).map(|s| Value::String(format!("\n{s}")))
    }

    fn join(args: &[Value]) -> Result<Value, FuncError> {
        let [separator, list] = exactly(args, "join")?;
        let parts: Vec<String> = items(list, "join")?.iter().map(text).collect();
        Ok(Value::String(parts.join(&text(separator))))
    }

    fn list(args: &[Value]) -> Result<Value, FuncError> {
        Ok(Value::Array(args.to_vec()))
    }

    fn concat(args: &[Value]) -> Result<Value, FuncError> {
        let mut all = Vec::new();
        for list in args {
            all.extend(items(list, "concat")?);
        }
        Ok(Value::Array(all))
    }

    fn uniq(args: &[Value]) -> Result<Value, FuncError> {
        let [list] = exactly(args, "uniq")?;
        let mut seen: Vec<Value> = Vec::new();
        for item in items(list, "uniq")? {
            if !seen.contains(&item) {
                seen.push(item);
            }
        }
        Ok(Value::Array(seen))
    }

    fn int(args: &[Value]) -> Result<Value, FuncError> {
        let [value] = exactly(args, "int")?;
        let n = match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or_default(),
            Value::String(s) => s.trim().parse().unwrap_or_default(),
            _ => 0,
        };
        Ok(Value::Number(Number::signed(n)))
    }

    fn fail(args: &[Value]) -> Result<Value, FuncError> {
        let [message] = exactly(args, "fail")?;
        Err(FuncError::Generic(text(message)))
    }
}

/// Every object the chart renders, parsed strictly, with the text of NOTES.txt.
fn render_chart(namespace: &str, overrides: Json) -> (Vec<Object>, String) {
    let rendered = helm::render(&repo().join(CHART), namespace, overrides)
        .unwrap_or_else(|e| panic!("the chart does not render: {e}"));
    let mut objects = Vec::new();
    let mut notes = String::new();
    for (name, text) in rendered {
        if name == "NOTES.txt" {
            notes = text;
            continue;
        }
        let origin = format!("{CHART}/templates/{name} (rendered)");
        objects.extend(
            documents(&text, &origin)
                .iter()
                .map(|d| parse_object(d, &origin)),
        );
    }
    (objects, notes)
}

fn deployment_of(objects: &[Object]) -> &Deployment {
    let mut found = objects.iter().filter_map(|o| match o {
        Object::Deployment(d) => Some(d.as_ref()),
        _ => None,
    });
    let deployment = found.next().expect("a Deployment");
    assert!(found.next().is_none(), "one Deployment");
    deployment
}

fn container_of(deployment: &Deployment) -> &Container {
    &deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
}

/// Rules of the Roles (by namespace) and of the ClusterRole the chart rendered.
fn chart_rbac(objects: &[Object]) -> (BTreeSet<Grant>, BTreeMap<String, BTreeSet<Grant>>) {
    let mut cluster = BTreeSet::new();
    let mut namespaced: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    let mut bound_roles = BTreeSet::new();
    for object in objects {
        match object {
            Object::ClusterRole(role) => {
                cluster.extend(granted(role.rules.as_deref().unwrap_or_default(), "chart"));
            }
            Object::Role(role) => {
                let namespace = role.metadata.namespace.clone().expect("Role namespace");
                namespaced
                    .entry(namespace)
                    .or_default()
                    .extend(granted(role.rules.as_deref().unwrap_or_default(), "chart"));
            }
            Object::RoleBinding(binding) => {
                let subjects = binding.subjects.clone().unwrap_or_default();
                assert!(
                    subjects.iter().all(|s| s.kind == "ServiceAccount"
                        && s.name == "db-operator"
                        && s.namespace.as_deref() == Some("operators")),
                    "{subjects:?}"
                );
                bound_roles.insert((
                    binding.metadata.namespace.clone().unwrap_or_default(),
                    binding.role_ref.name.clone(),
                ));
            }
            _ => {}
        }
    }
    let roles: BTreeSet<(String, String)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Role(r) => Some((
                r.metadata.namespace.clone().unwrap_or_default(),
                r.metadata.name.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(roles, bound_roles, "every Role is bound, and only those");
    (cluster, namespaced)
}

#[test]
fn chart_with_default_values_matches_the_plain_manifests() {
    let (objects, notes) = render_chart("operators", serde_json::json!({}));
    let deployment = deployment_of(&objects);
    assert_locked_down(deployment, "db-operator", "chart (default values)");
    assert_binary_accepts_args(deployment, "chart (default values)");
    assert_eq!(
        deployment.metadata.namespace.as_deref(),
        Some("operators"),
        "the release namespace"
    );

    let (cluster, namespaced) = chart_rbac(&objects);
    assert!(namespaced.is_empty(), "all namespaces: no Roles");
    assert_grants(&cluster, &expected_grants(|_, _| true), "chart ClusterRole");

    // The pod is the plain manifest's pod; only what values control may differ.
    let plain = plain_objects();
    let plain_container = container_of(deployment_of(&plain));
    let chart_container = container_of(deployment);
    assert_eq!(chart_container.image, plain_container.image);
    assert_eq!(
        chart_container.security_context,
        plain_container.security_context
    );
    assert_eq!(chart_container.ports, plain_container.ports);
    assert_eq!(
        chart_container.liveness_probe,
        plain_container.liveness_probe
    );
    assert_eq!(
        chart_container.readiness_probe,
        plain_container.readiness_probe
    );
    assert_eq!(chart_container.resources, plain_container.resources);
    assert_eq!(chart_container.env, plain_container.env);
    let plain_args = plain_container.args.clone().unwrap_or_default();
    let chart_args = chart_container.args.clone().unwrap_or_default();
    assert!(
        plain_args.iter().all(|a| chart_args.contains(a)),
        "chart args {chart_args:?} lack some of {plain_args:?}"
    );
    assert!(chart_args.contains(&"--plugin-timeout-ms=2000".to_owned()));
    assert!(chart_args.contains(&"--plugin-memory-mib=64".to_owned()));
    assert!(
        !chart_args.iter().any(|a| a.starts_with("--watch-namespace")
            || a.starts_with("--plugin-dir")
            || a.starts_with("--plugin-digest")),
        "{chart_args:?}"
    );
    assert!(notes.contains("every namespace"), "{notes}");
}

#[test]
fn chart_with_watch_namespaces_grants_roles_per_namespace() {
    let (objects, notes) = render_chart(
        "operators",
        serde_json::json!({"watchNamespaces": ["a", "b"]}),
    );
    let (cluster, namespaced) = chart_rbac(&objects);
    assert_grants(
        &cluster,
        &expected_grants(is_instance),
        "chart ClusterRole (watchNamespaces)",
    );
    let per_namespace = expected_grants(|g, r| !is_instance(g, r));
    // The admin Secrets default to the release namespace; DbInstance Events go to `default`.
    let expected_namespaces = ["a", "b", "default", "operators"];
    assert_eq!(
        namespaced.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_namespaces
    );
    for namespace in ["a", "b", "operators"] {
        assert_grants(
            &namespaced[namespace],
            &per_namespace,
            &format!("chart Role in {namespace}"),
        );
    }
    assert_grants(
        &namespaced["default"],
        &expected_grants(is_event),
        "chart Role for DbInstance events",
    );
    // Cluster-wide plus per-namespace is exactly the all-namespaces grant, nothing more.
    let mut union = cluster.clone();
    union.extend(namespaced.values().flatten().cloned());
    assert_grants(&union, &expected_grants(|_, _| true), "chart RBAC (union)");

    let deployment = deployment_of(&objects);
    assert_binary_accepts_args(deployment, "chart (watchNamespaces)");
    let args = container_of(deployment).args.clone().unwrap_or_default();
    assert!(args.contains(&"--watch-namespace=a".to_owned()), "{args:?}");
    assert!(args.contains(&"--watch-namespace=b".to_owned()), "{args:?}");
    assert!(notes.contains("a, b"), "{notes}");
}

#[test]
fn chart_grants_each_admin_secret_namespace_once() {
    let (objects, _) = render_chart(
        "operators",
        serde_json::json!({"watchNamespaces": ["a", "b"], "adminSecretNamespaces": ["b", "dbadmin"]}),
    );
    let (_, namespaced) = chart_rbac(&objects);
    assert_eq!(
        namespaced.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "dbadmin", "default"],
        "the release namespace is no longer needed once admin namespaces are named"
    );
    let roles_in_b = objects
        .iter()
        .filter(|o| matches!(o, Object::Role(r) if r.metadata.namespace.as_deref() == Some("b")))
        .count();
    assert_eq!(roles_in_b, 1, "a namespace in both lists gets one Role");
}

#[test]
fn chart_mounts_a_plugin_volume_and_pins_digests() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let (objects, notes) = render_chart(
        "operators",
        serde_json::json!({
            "plugins": {
                "volume": {"image": {"reference": "registry.example/plugins:1.0.0", "pullPolicy": "IfNotPresent"}},
                "digests": {"postgres": digest, "mysql": digest},
            },
            "imagePullSecrets": [{"name": "pull"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "podAnnotations": {"example.com/team": "data"},
        }),
    );
    let deployment = deployment_of(&objects);
    assert_locked_down(deployment, "db-operator", "chart (plugins)");
    assert_binary_accepts_args(deployment, "chart (plugins)");
    let container = container_of(deployment);
    let args = container.args.clone().unwrap_or_default();
    for expected in [
        "--plugin-dir=/var/lib/db-operator/plugins".to_owned(),
        format!("--plugin-digest=postgres={digest}"),
        format!("--plugin-digest=mysql={digest}"),
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let plugins = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "plugins")
        .expect("the plugins volume");
    assert_eq!(
        plugins.image.as_ref().and_then(|i| i.reference.as_deref()),
        Some("registry.example/plugins:1.0.0")
    );
    assert_eq!(
        pod.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
        Some("pull")
    );
    assert_eq!(
        pod.node_selector
            .as_ref()
            .and_then(|n| n.get("kubernetes.io/os"))
            .map(String::as_str),
        Some("linux")
    );
    let annotations = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/team").map(String::as_str),
        Some("data")
    );
    assert!(notes.contains("/var/lib/db-operator/plugins"), "{notes}");
}

#[test]
fn chart_refuses_more_than_one_replica() {
    let error = helm::render(
        &repo().join(CHART),
        "operators",
        serde_json::json!({"replicaCount": 2}),
    )
    .expect_err("two replicas are refused");
    assert!(
        error.contains("replicaCount") && error.contains("leader election"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes' own schemas

/// Validates files against the Kubernetes 1.37 OpenAPI schemas, rejecting unknown fields.
fn kubernetes_validate(files: &[PathBuf]) {
    let out = Command::new("kubernetes-validate")
        .args(["--kubernetes-version", "1.37.0", "--strict", "--quiet"])
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubernetes-validate cannot run ({e}); install it with \
                 `python3 -m pip install kubernetes-validate==1.37.0`"
            )
        });
    assert!(
        out.status.success(),
        "kubernetes-validate refused the manifests:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn manifests_and_rendered_chart_pass_the_kubernetes_schemas() {
    let mut files: Vec<PathBuf> = yaml_files("deploy/operator")
        .iter()
        .map(|f| repo().join("deploy/operator").join(f))
        .collect();
    let scratch = tempfile::tempdir().expect("temporary directory");
    for (case, overrides) in [
        ("default", serde_json::json!({})),
        (
            "namespaced",
            serde_json::json!({"watchNamespaces": ["a", "b"]}),
        ),
        (
            "plugins",
            serde_json::json!({"plugins": {"volume": {"persistentVolumeClaim": {"claimName": "plugins", "readOnly": true}}}}),
        ),
    ] {
        let rendered = helm::render(&repo().join(CHART), "operators", overrides)
            .unwrap_or_else(|e| panic!("the chart does not render ({case}): {e}"));
        for (name, text) in rendered.iter().filter(|(n, _)| n.ends_with(".yaml")) {
            let path = scratch.path().join(format!("{case}-{name}"));
            std::fs::write(&path, text).expect("write rendered template");
            files.push(path);
        }
    }
    kubernetes_validate(&files);
}
