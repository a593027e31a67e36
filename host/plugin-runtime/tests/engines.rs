//! Every built-in engine, as the operator runs it: the `.wasm` component in the sandbox answers
//! every export exactly like the engine's native Rust code, for the same requests. A difference
//! would mean the bindings or the build lose something on the way (a field, an error variant,
//! a capability), which no unit test of the plugin crate itself can see.

use dbo_engine::{self as model, CallError, Engine};
use dbo_plugin_runtime::{Plugin, PluginRuntime, RuntimeConfig};
use dbo_plugin_sdk::{self as sdk, testing};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The SDK's request types and the host's model share one JSON shape by design.
fn convert<T: Serialize, U: DeserializeOwned>(value: &T) -> U {
    let json = serde_json::to_value(value).expect("SDK types serialise");
    serde_json::from_value(json).expect("the host model reads the SDK's JSON")
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serialises")
}

/// An answer as comparable JSON: the value, or the plugin's own error. A sandbox failure is
/// never an acceptable answer.
fn sandboxed<T: Serialize>(answer: Result<T, CallError>) -> Value {
    match answer {
        Ok(value) => serde_json::json!({"ok": json(&value)}),
        Err(CallError::Plugin { error, .. }) => serde_json::json!({"err": json(&error)}),
        Err(CallError::Runtime(error)) => panic!("the sandbox failed: {error}"),
    }
}

fn native<T: Serialize>(answer: Result<T, sdk::PluginError>) -> Value {
    match answer {
        Ok(value) => serde_json::json!({"ok": json(&value)}),
        Err(error) => serde_json::json!({"err": json(&error)}),
    }
}

/// The requests every engine is asked, each under a name for failure messages: the SDK's test
/// requests with the engine's name and the options it needs, over every storage variant and
/// snapshot form.
struct Requests {
    instance: sdk::Instance,
    database: sdk::Database,
    backups: Vec<(&'static str, sdk::BackupRequest)>,
    commission: sdk::CommissionRequest,
    restores: Vec<(&'static str, sdk::RestoreRequest)>,
}

fn requests(engine: &str, instance_options: &str) -> Requests {
    let instance = sdk::Instance {
        engine: engine.into(),
        options: instance_options.into(),
        ..testing::instance()
    };
    let database = testing::database();
    let backup = |storage: sdk::Storage, container_name: Option<&str>| sdk::BackupRequest {
        instance: instance.clone(),
        storage,
        container_name: container_name.map(Into::into),
        ..testing::backup_request()
    };
    let restore = |snapshot: sdk::Snapshot| sdk::RestoreRequest {
        instance: instance.clone(),
        ..testing::restore_request(snapshot)
    };
    Requests {
        backups: vec![
            ("irsa", backup(testing::storage::irsa(), None)),
            ("access key", backup(testing::storage::access_key(), None)),
            (
                "s3-compatible, named container",
                backup(testing::storage::s3_compatible(), Some("nightly-dump")),
            ),
            ("ambient", backup(testing::storage::ambient(), None)),
            ("gcs", backup(testing::storage::gcs(), None)),
        ],
        commission: sdk::CommissionRequest {
            instance: instance.clone(),
            ..testing::commission_request()
        },
        restores: vec![
            ("latest", restore(sdk::Snapshot::Latest)),
            (
                "key",
                restore(sdk::Snapshot::Key("team/shop-orders/backup-1".into())),
            ),
            (
                "point in time",
                restore(sdk::Snapshot::PointInTime(
                    "2024-05-01T10:00:00+02:00".into(),
                )),
            ),
            (
                "bad point in time",
                restore(sdk::Snapshot::PointInTime("yesterday".into())),
            ),
        ],
        instance,
        database,
    }
}

fn load(name: &str, wasm: &[u8]) -> Plugin {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .expect("the runtime starts");
    runtime
        .load(&format!("builtin:{name}"), wasm)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// Asks the sandboxed component and the native code the same things and compares every answer.
fn assert_equivalent<E: sdk::Engine>(wasm: &[u8], instance_options: &str) {
    let info = E::describe();
    let plugin = load(&info.name, wasm);
    assert_eq!(json(plugin.info()), json(&info), "describe");
    assert_eq!(info.api_version, sdk::API_VERSION);

    let r = requests(&info.name, instance_options);
    let instance: model::Instance = convert(&r.instance);
    let database: model::Database = convert(&r.database);
    assert_eq!(
        sandboxed(plugin.validate(&instance, None)),
        native(Ok::<_, sdk::PluginError>(E::validate(&r.instance, None))),
        "{}: validate(instance)",
        info.name
    );
    assert_eq!(
        sandboxed(plugin.validate(&instance, Some(&database))),
        native(Ok::<_, sdk::PluginError>(E::validate(
            &r.instance,
            Some(&r.database)
        ))),
        "{}: validate(instance, database)",
        info.name
    );
    assert_eq!(
        sandboxed(plugin.credentials(&instance, &database)),
        native(E::credentials(&r.instance, &r.database)),
        "{}: credentials",
        info.name
    );
    let mut backups_served = 0;
    for (what, request) in &r.backups {
        let answer = sandboxed(plugin.backup(&convert(request)));
        assert_eq!(
            answer,
            native(E::backup(request)),
            "{}: backup ({what})",
            info.name
        );
        backups_served += usize::from(answer.get("ok").is_some());
    }
    // Equal refusals alone would prove little: an engine that backs up serves some storage.
    if info.capabilities.contains(&sdk::Capability::Backup) {
        assert!(
            backups_served > 0,
            "{}: no backup request was served",
            info.name
        );
    }
    let commission = sandboxed(plugin.commission(&convert(&r.commission)));
    assert_eq!(
        commission,
        native(E::commission(&r.commission)),
        "{}: commission",
        info.name
    );
    if info.capabilities.contains(&sdk::Capability::Commission) {
        assert!(
            commission.get("ok").is_some(),
            "{}: {commission}",
            info.name
        );
    }
    for (what, request) in &r.restores {
        assert_eq!(
            sandboxed(plugin.restore(&convert(request))),
            native(E::restore(request)),
            "{}: restore ({what})",
            info.name
        );
    }
}

#[test]
fn postgres_in_the_sandbox_answers_like_its_native_code() {
    assert_equivalent::<dbo_engine_postgres::Postgres>(dbo_plugin_artifacts::POSTGRES, "{}");
}

#[test]
fn mysql_in_the_sandbox_answers_like_its_native_code() {
    assert_equivalent::<dbo_engine_mysql::Mysql>(dbo_plugin_artifacts::MYSQL, "{}");
}

#[test]
fn mongodb_in_the_sandbox_answers_like_its_native_code() {
    assert_equivalent::<dbo_engine_mongodb::Mongodb>(dbo_plugin_artifacts::MONGODB, "{}");
}

#[test]
fn elasticsearch_in_the_sandbox_answers_like_its_native_code() {
    assert_equivalent::<dbo_engine_elasticsearch::Elasticsearch>(
        dbo_plugin_artifacts::ELASTICSEARCH,
        "{}",
    );
}

#[test]
fn neo4j_in_the_sandbox_answers_like_its_native_code() {
    // Community Edition backs nothing up (the dump needs the server's own disk).
    assert_equivalent::<dbo_engine_neo4j::Neo4j>(
        dbo_plugin_artifacts::NEO4J,
        r#"{"edition": "enterprise"}"#,
    );
}

/// The built-in list is what `run`, `render` and `dev` serve; every engine of this workspace
/// is on it under the name it describes itself with.
#[test]
fn every_engine_is_built_in_under_its_own_name() {
    let names: Vec<&str> = dbo_plugin_artifacts::builtin_engines()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        names,
        ["postgres", "mysql", "mongodb", "elasticsearch", "neo4j"]
    );
    for (name, wasm) in dbo_plugin_artifacts::builtin_engines() {
        assert_eq!(load(name, wasm).info().name, *name);
    }
}
