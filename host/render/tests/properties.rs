//! Arbitrary custom resources through parsing, validation and rendering (with the real
//! PostgreSQL component): never a panic or a trap, and always either objects or errors that
//! name the object and the field to fix.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use dbo_engine::{CallError, PluginError};
use dbo_plugin_runtime::{Plugin, PluginRuntime, RuntimeConfig};
use dbo_render::{PasswordSource, RenderError};
use proptest::prelude::*;
use serde_json::{Value, json};

fn engines() -> &'static BTreeMap<String, Plugin> {
    static ENGINES: OnceLock<BTreeMap<String, Plugin>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let runtime = PluginRuntime::new(RuntimeConfig::default()).expect("runtime");
        let plugin = runtime
            .load("builtin:postgres", dbo_plugin_artifacts::POSTGRES)
            .expect("postgres loads");
        BTreeMap::from([("postgres".to_string(), plugin)])
    })
}

struct Fixed;
impl PasswordSource for Fixed {
    fn generate(&mut self, length: usize) -> String {
        "p".repeat(length)
    }
}

/// Strings users write, including the awkward ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9-]{0,20}",
        "[A-Za-z0-9 ._/:@%'\"\\\\$-]{0,40}",
        "\\PC{0,30}",
        Just("x".repeat(300)),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9-]{0,12}[a-z0-9]",
        1 => text(),
    ]
}

/// Mostly well-formed, so that most cases get past validation and reach the engine.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    good: impl Strategy<Value = T> + 'static,
    bad: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = T> {
    prop_oneof![6 => good, 1 => bad]
}

/// Any JSON a user might put in a field that wants something specific.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
        prop::collection::vec(text().prop_map(Value::from), 0..3).prop_map(Value::from),
        Just(json!({})),
    ]
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)]
}

fn port() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (1u16..=65535).prop_map(Value::from),
        1 => junk(),
    ]
}

fn options() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("sslMode".to_string()),
        Just("adminDatabase".to_string()),
        Just("schemas".to_string()),
        Just("template".to_string()),
        Just("dropPublicSchema".to_string()),
        text(),
    ];
    prop_oneof![
        3 => prop::collection::btree_map(key, junk(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => junk(),
    ]
}

fn s3() -> impl Strategy<Value = Value> {
    let auth = prop_oneof![
        1 => Just(json!({})),
        3 => name().prop_map(|n| json!({"accessKeySecret": {"name": n}})),
        3 => mostly(Just("arn:aws:iam::123456789012:role/backup".to_string()), text())
            .prop_map(|r| json!({"irsa": {"roleArn": r}})),
        2 => Just(json!({"ambient": {}})),
        1 => junk(),
    ];
    (
        mostly("[a-z][a-z0-9-]{2,20}", text()),
        maybe(mostly("[a-z0-9/]{0,12}", text())),
        maybe(mostly(Just("eu-west-1".to_string()), text())),
        maybe(mostly(Just("http://minio:9000".to_string()), text())),
        auth,
    )
        .prop_map(|(bucket, prefix, region, endpoint, auth)| {
            json!({"s3": {"bucket": bucket, "prefix": prefix, "region": region,
                "endpoint": endpoint, "auth": auth}})
        })
}

fn instance() -> impl Strategy<Value = Value> {
    let backend = prop_oneof![
        4 => (host(), port()).prop_map(|(h, p)| json!({"generic": {"host": h, "port": p}})),
        2 => (host(), port(), mostly(Just("eu-west-1".to_string()), text()))
            .prop_map(|(h, p, r)| json!({"amazon": {"host": h, "port": p, "region": r}})),
        1 => Just(json!({"google": {"instance": "legacy"}})),
        1 => Just(json!({})),
        1 => (host(), port()).prop_map(|(h, p)| json!({"generic": {"host": h, "port": p},
            "amazon": {"host": h, "port": p, "region": "eu-west-1"}})),
    ];
    (
        name(),
        prop_oneof![8 => Just("postgres".to_string()), 1 => text()],
        (name(), name()),
        backend,
        prop_oneof![1 => Just(None), 3 => s3().prop_map(Some)],
        maybe((any::<bool>(), any::<bool>())),
        prop_oneof![4 => Just(None), 1 => options().prop_map(Some)],
    )
        .prop_map(
            |(name, engine, (ns, secret), backend, backup, ssl, options)| {
                let mut spec = json!({
                    "engine": engine,
                    "adminSecretRef": {"namespace": ns, "name": secret},
                });
                for (k, v) in backend.as_object().into_iter().flatten() {
                    spec[k] = v.clone();
                }
                if let Some(b) = backup {
                    spec["backup"] = b;
                }
                if let Some((enabled, skip)) = ssl {
                    spec["sslConnection"] = json!({"enabled": enabled, "skip-verify": skip});
                }
                if let Some(o) = options {
                    spec["options"] = o;
                }
                json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance",
                "metadata": {"name": name}, "spec": spec})
            },
        )
}

fn host() -> impl Strategy<Value = String> {
    mostly("[a-z][a-z0-9.-]{0,20}[a-z0-9]", text())
}

fn cron() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::from("0 3 * * *")),
        3 => Just(Value::from("*/15 * * * *")),
        1 => Just(Value::from("every day")),
        1 => Just(Value::from("61 * * * *")),
        1 => junk(),
    ]
}

fn database(instances: Vec<String>) -> impl Strategy<Value = Value> {
    let instance = prop_oneof![
        8 => prop::sample::select(if instances.is_empty() { vec![String::new()] } else { instances }),
        1 => name(),
    ];
    (
        name(),
        name(),
        instance,
        name(),
        maybe((any::<bool>(), cron(), maybe(text()))),
        mostly(
            prop::collection::vec("[a-z][a-z0-9_-]{0,10}", 0..3),
            prop::collection::vec(text(), 0..3),
        ),
        prop_oneof![6 => Just(None), 1 => (name(), 0u32..4).prop_map(Some)],
        prop_oneof![4 => Just(None), 1 => options().prop_map(Some)],
    )
        .prop_map(
            |(name, ns, instance, secret, backup, extensions, schema, options)| {
                let mut spec = json!({"instance": instance, "secretName": secret,
                    "extensions": extensions});
                if let Some((enable, cron, container)) = backup {
                    spec["backup"] = json!({"enable": enable, "cron": cron,
                        "containerName": container});
                }
                if let Some((cm, version)) = schema {
                    spec["commission"] =
                        json!({"schema": {"configMapRef": {"name": cm}, "version": version}});
                }
                if let Some(o) = options {
                    spec["options"] = o;
                }
                json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
                    "metadata": {"name": name, "namespace": ns}, "spec": spec})
            },
        )
}

/// A DbRestore, mostly of one of `databases` (`(namespace, name)`).
fn restore(databases: Vec<(String, String)>) -> impl Strategy<Value = Value> {
    let snapshot = prop_oneof![
        Just(json!({"latest": true})),
        text().prop_map(|k| json!({"key": k})),
        text().prop_map(|t| json!({"pointInTime": t})),
        Just(json!({"pointInTime": "2024-05-01T08:00:00Z"})),
        Just(json!({})),
        Just(json!({"latest": true, "key": "a"})),
    ];
    let target = if databases.is_empty() {
        (name(), name()).boxed()
    } else {
        mostly(prop::sample::select(databases), (name(), name())).boxed()
    };
    (name(), target, snapshot).prop_map(|(name, (ns, db), snapshot)| {
        json!({"apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"database": db, "snapshot": snapshot}})
    })
}

fn manifests() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![1 => prop::collection::vec(instance(), 0..1), 6 => prop::collection::vec(instance(), 1..3)]
        .prop_flat_map(|instances| {
            let names: Vec<String> = instances
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            (Just(instances), prop::collection::vec(database(names), 0..3))
        })
        .prop_flat_map(|(instances, databases)| {
            let targets: Vec<(String, String)> = databases
                .iter()
                .filter_map(|d| {
                    Some((
                        d["metadata"]["namespace"].as_str()?.to_owned(),
                        d["metadata"]["name"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            (
                Just(instances),
                Just(databases),
                prop::collection::vec(restore(targets), 0..2),
            )
        })
        .prop_map(|(mut docs, databases, restores)| {
            docs.extend(databases);
            docs.extend(restores);
            docs
        })
}

const OBJECT_KINDS: [&str; 3] = ["DbInstance ", "Database ", "DbRestore "];

/// A render error that a user can act on: it names its object and, where a field is at fault,
/// the field. A trap, a policy refusal or garbage output of the real engine is a bug.
fn check_error(e: &RenderError) -> Result<(), String> {
    let text = e.to_string();
    if !OBJECT_KINDS.iter().any(|k| text.starts_with(k)) {
        return Err(format!("names no object: {text}"));
    }
    match e {
        RenderError::Invalid { problems, .. } => {
            for (field, message) in problems {
                if !(field.starts_with("spec") || field.starts_with("metadata")) {
                    return Err(format!("field {field:?} is not a path: {text}"));
                }
                if message.trim().is_empty() {
                    return Err(format!("empty message at {field}: {text}"));
                }
            }
            Ok(())
        }
        RenderError::Engine { source, .. } => match source {
            CallError::Plugin {
                error: PluginError::Invalid(diagnostics),
                ..
            } => {
                if diagnostics.iter().all(|d| !d.field.is_empty()) {
                    Ok(())
                } else {
                    Err(format!("a diagnostic without a field: {text}"))
                }
            }
            CallError::Plugin {
                error: PluginError::Unsupported(_),
                ..
            } => Ok(()),
            other => Err(format!("the engine failed instead of refusing: {other}")),
        },
        RenderError::MissingSchemaConfigMap { .. }
        | RenderError::UnknownInstance { .. }
        | RenderError::UnknownDatabase { .. }
        | RenderError::UnknownEngine { .. } => Ok(()),
        RenderError::Policy { .. } | RenderError::BadPluginOutput { .. } => Err(format!(
            "the PostgreSQL engine produced refused output: {text}"
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_resources_render_or_fail_naming_the_field(docs in manifests()) {
        let yaml = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).expect("YAML"))
            .collect::<Vec<_>>()
            .join("---\n");
        let manifests = match dbo_api::manifest::parse(&yaml) {
            Ok(m) => m,
            Err(e) => {
                let text = e.to_string();
                // Parse errors point into the document: which one, and where or what field.
                prop_assert!(!text.trim().is_empty());
                prop_assert!(
                    text.contains("document") || text.contains("line") || text.contains("spec")
                        || text.contains("metadata"),
                    "parse error without a place: {text}"
                );
                return Ok(());
            }
        };
        match dbo_render::render(&manifests, engines(), &mut Fixed) {
            Ok(rendered) => {
                for object in rendered.objects() {
                    prop_assert!(object["kind"].is_string(), "{object}");
                    prop_assert!(object["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()), "{object}");
                }
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    if let Err(why) = check_error(e) {
                        prop_assert!(false, "{why}\nmanifests:\n{yaml}");
                    }
                }
            }
        }
    }
}
