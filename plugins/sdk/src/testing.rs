//! Realistic requests and pod-spec probes for native unit tests of a plugin (and host benches).
//!
//! Builders return plain values; vary them with struct update syntax:
//!
//! ```
//! use dbo_plugin_sdk::{testing, Instance};
//! let tls = Instance { tls: true, ..testing::instance() };
//! assert_eq!(tls.port, 5432);
//! ```
//!
//! An engine's tests start from the `*_request_of` builders, which carry the engine's own
//! credential refs as the host would pass them, and read the output with the probes:
//!
//! ```
//! use dbo_plugin_sdk::testing::{self, container, env_secret};
//! # use dbo_plugin_sdk::{CredentialLayout, Database, Engine, EngineInfo, Instance, PluginError};
//! # struct Kv;
//! # impl Engine for Kv {
//! #     fn describe() -> EngineInfo { EngineInfo::single_image("kv", "0.1.0", vec![], "kv", "{}") }
//! #     fn credentials(_: &Instance, d: &Database) -> Result<CredentialLayout, PluginError> {
//! #         Ok(CredentialLayout { database_name: d.name.clone(), user_name: d.name.clone(),
//! #             database_key: "KV_DB".into(), user_key: "KV_USER".into(),
//! #             password_key: "KV_PASSWORD".into(), password_length: 24, templates: vec![] })
//! #     }
//! # }
//! let request = testing::backup_request_of::<Kv>(testing::instance());
//! assert_eq!(request.credentials.password_key, "KV_PASSWORD");
//! ```
//!
//! The probes panic with a readable message when the plugin's output is malformed: they are for
//! tests, where that is the failure report.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::{
    AccessKeySecret, AdminSecret, BackendKind, BackupRequest, CommissionRequest, CredentialLayout,
    CredentialRefs, Database, Engine, Instance, JobSpec, PluginError, RestoreRequest, S3Auth,
    S3Target, Snapshot, Storage,
};

/// A generic PostgreSQL-style server with a read replica for backups.
pub fn instance() -> Instance {
    Instance {
        name: "pg-main".into(),
        engine: "postgres".into(),
        backend: BackendKind::Generic,
        host: "pg-main.databases.svc.cluster.local".into(),
        port: 5432,
        backup_host: "pg-main-replica.databases.svc.cluster.local".into(),
        region: None,
        tls: false,
        tls_skip_verify: false,
        monitoring: false,
        options: "{}".into(),
    }
}

/// Database `shop/orders` without extensions, schema or options.
pub fn database() -> Database {
    Database {
        namespace: "shop".into(),
        name: "orders".into(),
        extensions: Vec::new(),
        schema: None,
        options: "{}".into(),
    }
}

/// The credentials Secret `orders-credentials` with engine-neutral key names.
pub fn credential_refs() -> CredentialRefs {
    CredentialRefs {
        secret_name: "orders-credentials".into(),
        database_key: "DB".into(),
        user_key: "USER".into(),
        password_key: "PASSWORD".into(),
    }
}

/// The refs the host derives from an engine's layout, as it does before backup and restore.
pub fn credential_refs_from(layout: &CredentialLayout) -> CredentialRefs {
    CredentialRefs {
        database_key: layout.database_key.clone(),
        user_key: layout.user_key.clone(),
        password_key: layout.password_key.clone(),
        ..credential_refs()
    }
}

/// Storage targets in each supported flavour (and the unsupported legacy one).
pub mod storage {
    use super::*;

    /// AWS S3 with an IRSA role.
    pub fn irsa() -> Storage {
        Storage::S3(S3Target {
            bucket: "acme-db-backups".into(),
            prefix: "postgres".into(),
            region: Some("eu-central-1".into()),
            endpoint: None,
            auth: S3Auth::Irsa("arn:aws:iam::123456789012:role/db-backups".into()),
        })
    }

    /// AWS S3 with an access key pair in Secret `s3-backup-keys`.
    pub fn access_key() -> Storage {
        Storage::S3(S3Target {
            bucket: "acme-db-backups".into(),
            prefix: "postgres".into(),
            region: Some("eu-central-1".into()),
            endpoint: None,
            auth: S3Auth::AccessKey(AccessKeySecret {
                name: "s3-backup-keys".into(),
                access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
                secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
            }),
        })
    }

    /// An in-cluster S3-compatible server without a prefix.
    pub fn s3_compatible() -> Storage {
        Storage::S3(S3Target {
            bucket: "backups".into(),
            prefix: String::new(),
            region: None,
            endpoint: Some("http://minio.storage:9000".into()),
            auth: S3Auth::AccessKey(AccessKeySecret {
                name: "minio-keys".into(),
                access_key_id_key: "accesskey".into(),
                secret_access_key_key: "secretkey".into(),
            }),
        })
    }

    /// AWS S3 with whatever the node provides (instance profile).
    pub fn ambient() -> Storage {
        Storage::S3(S3Target {
            bucket: "acme-db-backups".into(),
            prefix: "postgres".into(),
            region: Some("us-east-1".into()),
            endpoint: None,
            auth: S3Auth::Ambient,
        })
    }

    /// The original operator's Google Cloud Storage bucket.
    pub fn gcs() -> Storage {
        Storage::Gcs("acme-legacy-backups".into())
    }
}

pub fn backup_request() -> BackupRequest {
    BackupRequest {
        instance: instance(),
        database: database(),
        credentials: credential_refs(),
        storage: storage::access_key(),
        container_name: None,
    }
}

/// A commissioning request as the host makes it: beside the admin Secret `pg-main-admin`, with
/// the host's copy of the app credentials.
pub fn commission_request() -> CommissionRequest {
    CommissionRequest {
        instance: instance(),
        database: database(),
        credentials: CredentialRefs {
            secret_name: "dbo-shop-orders-credentials".into(),
            ..credential_refs()
        },
        admin: AdminSecret {
            name: "pg-main-admin".into(),
        },
    }
}

pub fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    RestoreRequest {
        instance: instance(),
        database: database(),
        credentials: credential_refs(),
        storage: storage::access_key(),
        snapshot,
    }
}

/// The refs the host gives engine `E`'s Jobs for [`database`] on `instance`: the key names of
/// `E`'s own credentials layout, in the Secret of [`credential_refs`].
pub fn credential_refs_of<E: Engine>(instance: &Instance) -> CredentialRefs {
    let layout = E::credentials(instance, &database())
        .unwrap_or_else(|e| panic!("{} rejects the test database: {e:?}", E::describe().name));
    credential_refs_from(&layout)
}

/// [`backup_request`] on `instance` with engine `E`'s credential refs.
pub fn backup_request_of<E: Engine>(instance: Instance) -> BackupRequest {
    BackupRequest {
        credentials: credential_refs_of::<E>(&instance),
        instance,
        ..backup_request()
    }
}

/// [`commission_request`] on `instance` with engine `E`'s key names in the host's copy of the
/// credentials Secret.
pub fn commission_request_of<E: Engine>(instance: Instance) -> CommissionRequest {
    let request = commission_request();
    CommissionRequest {
        credentials: CredentialRefs {
            secret_name: request.credentials.secret_name.clone(),
            ..credential_refs_of::<E>(&instance)
        },
        instance,
        ..request
    }
}

/// [`restore_request`] of `snapshot` on `instance` with engine `E`'s credential refs.
pub fn restore_request_of<E: Engine>(instance: Instance, snapshot: Snapshot) -> RestoreRequest {
    RestoreRequest {
        credentials: credential_refs_of::<E>(&instance),
        instance,
        ..restore_request(snapshot)
    }
}

/// The pod of engine `E`'s backup Job for `request`, which must be served.
pub fn backup_pod<E: Engine>(request: &BackupRequest) -> PodSpec {
    pod(&E::backup(request).unwrap_or_else(|e| panic!("backup refused: {e:?}")))
}

/// The pod of engine `E`'s commissioning Job for `request`, which must need one.
pub fn commission_pod<E: Engine>(request: &CommissionRequest) -> PodSpec {
    let spec = E::commission(request)
        .unwrap_or_else(|e| panic!("commissioning refused: {e:?}"))
        .unwrap_or_else(|| panic!("{} commissions no Job here", E::describe().name));
    pod(&spec)
}

/// The pod of engine `E`'s restore Job for `request`, which must be served.
pub fn restore_pod<E: Engine>(request: &RestoreRequest) -> PodSpec {
    pod(&E::restore(request).unwrap_or_else(|e| panic!("restore refused: {e:?}")))
}

/// The container of a one-container Job pod; more than one is a failure, since the host and
/// the image contracts count on exactly one.
pub fn only_container(pod: &PodSpec) -> &Container {
    assert_eq!(pod.containers.len(), 1, "one container per Job");
    &pod.containers[0]
}

/// The names of the env vars `container` sets, literal or by reference.
pub fn env_names(container: &Container) -> BTreeSet<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

/// The `(field, message)` of each diagnostic of an [`PluginError::Invalid`]; any other error is
/// a failure.
pub fn invalid(err: PluginError) -> Vec<(String, String)> {
    match err {
        PluginError::Invalid(d) => d.into_iter().map(|d| (d.field, d.message)).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// The fields of an [`PluginError::Invalid`], in order.
pub fn invalid_fields(err: PluginError) -> Vec<String> {
    invalid(err).into_iter().map(|(field, _)| field).collect()
}

/// The message of an [`PluginError::Unsupported`]; any other error is a failure.
pub fn unsupported(err: PluginError) -> String {
    match err {
        PluginError::Unsupported(m) => m,
        other => panic!("expected unsupported, got {other:?}"),
    }
}

/// Every Secret a pod reads, by env or volume: the host refuses a pod that reads one its
/// request did not name, so a test compares this with the request's Secrets.
pub fn secrets_used(pod: &PodSpec) -> BTreeSet<String> {
    let from_env = pod
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.clone());
    let from_volumes = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone());
    from_env.chain(from_volumes).collect()
}

/// The Secret whose volume holds `path` in the pod's only container, and the key projected to
/// that file (`None` when `path` is the mount folder or the whole Secret is mounted). The mount
/// must be read-only.
pub fn secret_file(pod: &PodSpec, path: &str) -> (String, Option<String>) {
    let c = only_container(pod);
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)) || path == m.mount_path)
        .unwrap_or_else(|| panic!("{path} is under no volume mount"));
    assert_eq!(mount.read_only, Some(true), "Secrets are mounted read-only");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("mounted volume is declared");
    let secret = volume.secret.as_ref().expect("a Secret volume");
    let file = path.strip_prefix(&format!("{}/", mount.mount_path));
    let key = file.and_then(|file| {
        secret
            .items
            .iter()
            .flatten()
            .find(|i| i.path == file)
            .map(|i| i.key.clone())
    });
    (secret.secret_name.clone().expect("secret name"), key)
}

/// Asserts that the pod's only container runs `script` of the image's `/usr/local/bin`, whose
/// source is in `bin_dir` (the image's `rootfs/usr/local/bin`), and sets every variable the
/// script's `require_env` lines name: a missing one would fail the Job on its first line.
pub fn assert_runs_script_with_its_env(pod: &PodSpec, bin_dir: &Path, script: &str) {
    let source = std::fs::read_to_string(bin_dir.join(script))
        .unwrap_or_else(|e| panic!("reading {script}: {e}"));
    let required: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("require_env "))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!required.is_empty(), "{script} has a require_env line");
    let c = only_container(pod);
    let set = env_names(c);
    for name in required {
        assert!(
            set.contains(name),
            "{script} requires {name}, which its pod does not set"
        );
    }
    assert_eq!(
        c.command.as_deref(),
        Some(&[format!("/usr/local/bin/{script}")][..])
    );
}

/// Asserts that the options schema documents exactly `keys` as the properties of
/// `$defs.<def>`: a key read but not in the schema is one users cannot discover, and one in
/// the schema but not read is one the engine rejects although the schema allows it.
pub fn assert_schema_documents(schema: &serde_json::Value, def: &str, keys: &[&str]) {
    let documented: BTreeSet<&str> = schema["$defs"][def]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("the schema has no $defs.{def}.properties"))
        .keys()
        .map(String::as_str)
        .collect();
    let read: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(
        documented, read,
        "$defs.{def}.properties (left) differ from the keys the engine reads (right)"
    );
}

/// The pod spec of `spec`, parsed as the host parses it.
pub fn pod(spec: &JobSpec) -> PodSpec {
    spec.pod()
        .unwrap_or_else(|e| panic!("the plugin returned a pod spec the host cannot parse: {e:?}"))
}

/// The container named `name`.
pub fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
            panic!("no container {name:?}; the pod has {names:?}")
        })
}

/// The literal value of env var `name`, if the container sets one.
pub fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// The `(secret name, key)` env var `name` is read from, if it is a `secretKeyRef`.
pub fn env_secret<'a>(container: &'a Container, name: &str) -> Option<(&'a str, &'a str)> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|f| f.secret_key_ref.as_ref())
        .map(|r| (r.name.as_str(), r.key.as_str()))
}

/// Env vars of every container whose name says "credential" yet that carry a literal value.
/// Names of files and folders that hold credentials (`*_FILE`, `*_DIR`, `*_PATH`) are fine.
pub fn literal_credentials(pod: &PodSpec) -> Vec<String> {
    const SENSITIVE: [&str; 6] = [
        "PASSWORD",
        "SECRET",
        "TOKEN",
        "ACCESS_KEY",
        "CREDENTIAL",
        "PASSWD",
    ];
    const LOCATIONS: [&str; 3] = ["_FILE", "_DIR", "_PATH"];
    pod.init_containers
        .iter()
        .flatten()
        .chain(&pod.containers)
        .flat_map(|c| c.env.iter().flatten().map(move |e| (c, e)))
        .filter(|(_, e)| e.value.is_some())
        .filter(|(_, e)| {
            let upper = e.name.to_ascii_uppercase();
            SENSITIVE.iter().any(|s| upper.contains(s))
                && !LOCATIONS.iter().any(|l| upper.ends_with(l))
        })
        .map(|(c, e)| format!("{}: {}", c.name, e.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::{self, env, secret_env};
    use crate::{CredentialLayout, EngineInfo, SecretKeyRef};

    /// Puts its password under its own key and commissions with the app volumes.
    struct Kv;

    impl Engine for Kv {
        fn describe() -> EngineInfo {
            EngineInfo::single_image("kv", "0.1.0", Vec::new(), "kv-tools", "{}")
        }

        fn credentials(
            _instance: &Instance,
            database: &Database,
        ) -> Result<CredentialLayout, PluginError> {
            Ok(CredentialLayout {
                database_name: database.name.clone(),
                user_name: database.name.clone(),
                database_key: "KV_DB".into(),
                user_key: "KV_USER".into(),
                password_key: "KV_PASSWORD".into(),
                password_length: 24,
                templates: Vec::new(),
            })
        }

        fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
            let mut volumes = pod::app_volumes(&request.credentials);
            volumes.push(pod::admin_volume(&request.admin));
            let mut mounts = pod::app_mounts();
            mounts.push(pod::admin_mount());
            let container = pod::script_container("kv", "kv-tools", "/run", Vec::new(), mounts);
            JobSpec::from_pod_spec(&pod::job_pod(container, volumes, 10001)).map(Some)
        }
    }

    #[test]
    fn requests_of_an_engine_carry_its_keys_in_the_hosts_secret() {
        let backup = backup_request_of::<Kv>(testing_instance("kv-main"));
        assert_eq!(backup.instance.name, "kv-main");
        assert_eq!(
            (
                backup.credentials.secret_name.as_str(),
                backup.credentials.password_key.as_str()
            ),
            ("orders-credentials", "KV_PASSWORD")
        );
        let commission = commission_request_of::<Kv>(testing_instance("kv-main"));
        assert_eq!(
            commission.credentials.secret_name,
            "dbo-shop-orders-credentials"
        );
        assert_eq!(commission.credentials.user_key, "KV_USER");
        let restore = restore_request_of::<Kv>(instance(), Snapshot::Latest);
        assert_eq!(restore.credentials.database_key, "KV_DB");
        assert_eq!(restore.snapshot, Snapshot::Latest);
    }

    fn testing_instance(name: &str) -> Instance {
        Instance {
            name: name.into(),
            ..instance()
        }
    }

    #[test]
    fn probes_find_the_secrets_and_files_a_pod_reads() {
        let pod = commission_pod::<Kv>(&commission_request_of::<Kv>(instance()));
        assert_eq!(
            secrets_used(&pod),
            BTreeSet::from([
                "dbo-shop-orders-credentials".to_string(),
                "pg-main-admin".to_string()
            ])
        );
        assert_eq!(
            secret_file(&pod, pod::PASSWORD_FILE),
            (
                "dbo-shop-orders-credentials".to_string(),
                Some("KV_PASSWORD".to_string())
            )
        );
        assert_eq!(
            secret_file(&pod, pod::ADMIN_DIR),
            ("pg-main-admin".to_string(), None)
        );
        assert!(env_names(only_container(&pod)).is_empty());
    }

    #[test]
    #[should_panic(expected = "is under no volume mount")]
    fn a_file_outside_every_mount_fails_the_probe() {
        let pod = commission_pod::<Kv>(&commission_request_of::<Kv>(instance()));
        secret_file(&pod, "/etc/passwd");
    }

    #[test]
    fn a_script_is_checked_against_the_env_its_pod_sets() {
        let dir = std::env::temp_dir().join(format!("dbo-sdk-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("db-run"),
            "#!/bin/sh\nrequire_env DB_HOST DB_PORT\n",
        )
        .expect("script");
        let with = |names: &[&str]| PodSpec {
            containers: vec![pod::script_container(
                "c",
                "img",
                "/usr/local/bin/db-run",
                names.iter().map(|n| env(*n, "x")).collect(),
                Vec::new(),
            )],
            ..PodSpec::default()
        };
        assert_runs_script_with_its_env(&with(&["DB_HOST", "DB_PORT", "EXTRA"]), &dir, "db-run");
        let missing = std::panic::catch_unwind(|| {
            assert_runs_script_with_its_env(&with(&["DB_HOST"]), &dir, "db-run");
        });
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let message = missing.expect_err("DB_PORT is missing");
        let message = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(message.contains("requires DB_PORT"), "{message}");
    }

    #[test]
    fn errors_are_taken_apart_by_kind() {
        let err = PluginError::invalid("spec.a", "wrong");
        assert_eq!(invalid_fields(err.clone()), ["spec.a"]);
        assert_eq!(invalid(err), [("spec.a".to_string(), "wrong".to_string())]);
        let refused = Kv::backup(&backup_request_of::<Kv>(instance())).expect_err("no backups");
        assert_eq!(
            unsupported(refused),
            "the kv engine does not support backups"
        );
    }

    #[test]
    fn the_schema_check_names_the_definition_and_both_key_sets() {
        let schema = serde_json::json!({"$defs": {"instance": {"properties": {"a": {}, "b": {}}}}});
        assert_schema_documents(&schema, "instance", &["b", "a"]);
        let missed = std::panic::catch_unwind(|| {
            assert_schema_documents(&schema, "instance", &["a"]);
        })
        .expect_err("b is documented but not read");
        let message = missed
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(message.contains("$defs.instance"), "{message}");
    }

    #[test]
    fn literal_credentials_flags_values_but_not_references_or_paths() {
        let pod = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                env: Some(vec![
                    env("DB_PASSWORD", "hunter2"),
                    env("DB_PASSWORD_FILE", "/secrets/password"),
                    secret_env("AWS_SECRET_ACCESS_KEY", &SecretKeyRef::new("s", "k")),
                    env("DB_HOST", "db"),
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        assert_eq!(literal_credentials(&pod), ["c: DB_PASSWORD"]);
        let c = container(&pod, "c");
        assert_eq!(env_value(c, "DB_HOST"), Some("db"));
        assert_eq!(env_secret(c, "AWS_SECRET_ACCESS_KEY"), Some(("s", "k")));
        assert_eq!(env_secret(c, "DB_HOST"), None);
    }
}
