//! The Redis engine's answers to the host, as the host would ask.

use std::collections::BTreeSet;
use std::path::Path;

use dbo_example_redis::{IMAGE, Redis, jobs};
use dbo_plugin_sdk::testing::{self, container, env_secret, env_value};
use dbo_plugin_sdk::{
    API_VERSION, BackupRequest, Capability, Database, Engine, Instance, Severity, Snapshot,
};

fn redis() -> Instance {
    Instance {
        name: "cache".into(),
        engine: "redis".into(),
        host: "redis.cache.svc.cluster.local".into(),
        backup_host: "redis-replica.cache.svc.cluster.local".into(),
        port: 6379,
        ..testing::instance()
    }
}

fn with_rdb_backup(database: Database) -> Database {
    Database {
        options: r#"{"rdbBackup": true}"#.into(),
        ..database
    }
}

fn backup_request() -> BackupRequest {
    let request = testing::backup_request_of::<Redis>(redis());
    BackupRequest {
        database: with_rdb_backup(request.database.clone()),
        ..request
    }
}

fn bin_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/image/rootfs/usr/local/bin"
    ))
}

#[test]
fn describes_itself_with_backup_and_commission_only() {
    let info = Redis::describe();
    assert_eq!(info.name, "redis");
    assert_eq!(info.api_version, API_VERSION);
    assert_eq!(
        info.capabilities,
        [Capability::Backup, Capability::Commission]
    );
    assert!(info.images.iter().all(|i| i.reference == IMAGE));
    assert!(IMAGE.starts_with("ghcr.io/db-operator-rs/redis-tools:"));
    let schema: serde_json::Value = serde_json::from_str(&info.options_schema).expect("JSON");
    assert!(schema["$defs"]["database"]["properties"]["rdbBackup"].is_object());
}

#[test]
fn credentials_are_an_acl_user_and_a_key_prefix() {
    let layout = Redis::credentials(&redis(), &testing::database()).expect("layout");
    assert_eq!(layout.user_name, "shop-orders");
    assert_eq!(layout.database_name, "shop:orders:");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("REDIS_KEY_PREFIX", "REDIS_USER", "REDIS_PASSWORD")
    );
    assert_eq!(
        layout.templates,
        [(
            "REDIS_URL".to_string(),
            "redis://{user}:{password}@{host}:{port}".to_string()
        )]
    );

    let tls = Instance {
        tls: true,
        ..redis()
    };
    let layout = Redis::credentials(&tls, &testing::database()).expect("layout");
    assert_eq!(
        layout.templates[0].1,
        "rediss://{user}:{password}@{host}:{port}"
    );
}

#[test]
fn commission_runs_the_acl_script_as_admin_with_every_secret_by_reference() {
    let request = testing::commission_request_of::<Redis>(redis());
    let pod = testing::commission_pod::<Redis>(&request);
    testing::assert_runs_script_with_its_env(&pod, bin_dir(), "db-commission");
    let c = container(&pod, jobs::COMMISSION_CONTAINER);
    let secret = request.credentials.secret_name.as_str();
    assert_eq!(env_secret(c, "DB_USER"), Some((secret, "REDIS_USER")));
    assert_eq!(
        env_secret(c, "DB_KEY_PREFIX"),
        Some((secret, "REDIS_KEY_PREFIX"))
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("redis.cache.svc.cluster.local")
    );
    assert_eq!(env_value(c, "DB_PORT"), Some("6379"));
    assert_eq!(env_value(c, "DB_RDB_BACKUP"), Some("false"));
    assert_eq!(
        testing::secret_file(&pod, "/var/run/secrets/db-operator/database/password"),
        (secret.to_string(), Some("REDIS_PASSWORD".to_string()))
    );
    assert_eq!(
        testing::secret_file(&pod, "/var/run/secrets/db-operator/admin/password").0,
        request.admin.name
    );
    assert_eq!(
        testing::secrets_used(&pod),
        BTreeSet::from([secret.to_string(), request.admin.name.clone()])
    );
    assert_eq!(testing::literal_credentials(&pod), Vec::<String>::new());
    let security = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(security.run_as_user, Some(jobs::RUN_AS));
    assert_eq!(security.fs_group, Some(jobs::RUN_AS));
}

#[test]
fn commission_passes_tls_settings_and_the_backup_grant() {
    let instance = Instance {
        tls: true,
        tls_skip_verify: true,
        ..redis()
    };
    let mut request = testing::commission_request_of::<Redis>(instance);
    request.database = with_rdb_backup(request.database);
    let pod = testing::commission_pod::<Redis>(&request);
    let c = container(&pod, jobs::COMMISSION_CONTAINER);
    assert_eq!(env_value(c, "DB_TLS"), Some("true"));
    assert_eq!(env_value(c, "DB_TLS_SKIP_VERIFY"), Some("true"));
    assert_eq!(env_value(c, "DB_RDB_BACKUP"), Some("true"));
}

#[test]
fn backup_streams_from_the_backup_host_to_the_s3_target() {
    let request = backup_request();
    let pod = testing::backup_pod::<Redis>(&request);
    testing::assert_runs_script_with_its_env(&pod, bin_dir(), "db-backup");
    let c = container(&pod, jobs::BACKUP_CONTAINER);
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("redis-replica.cache.svc.cluster.local")
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(
        env_secret(c, "AWS_SECRET_ACCESS_KEY"),
        Some(("s3-backup-keys", "AWS_SECRET_ACCESS_KEY"))
    );
    assert_eq!(
        testing::secrets_used(&pod),
        BTreeSet::from([
            request.credentials.secret_name.clone(),
            "s3-backup-keys".to_string()
        ])
    );
    assert_eq!(testing::literal_credentials(&pod), Vec::<String>::new());
}

#[test]
fn backup_needs_the_explicit_grant_because_an_rdb_is_the_whole_server() {
    let request = testing::backup_request_of::<Redis>(redis());
    let err = Redis::backup(&request).expect_err("no grant");
    let invalid = testing::invalid(err);
    assert_eq!(invalid[0].0, "spec.options.rdbBackup");
    assert!(invalid[0].1.contains("whole server"), "{}", invalid[0].1);

    let warnings = Redis::validate(&redis(), Some(&with_rdb_backup(testing::database())));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert!(warnings[0].message.contains("whole server"));
    assert!(Redis::validate(&redis(), Some(&testing::database())).is_empty());
}

#[test]
fn backup_refuses_the_legacy_gcs_bucket_and_bad_container_names() {
    let request = BackupRequest {
        storage: testing::storage::gcs(),
        ..backup_request()
    };
    let message = testing::unsupported(Redis::backup(&request).expect_err("gcs"));
    assert!(message.contains("spec.backup.s3"), "{message}");

    let request = BackupRequest {
        container_name: Some("Backup!".into()),
        ..backup_request()
    };
    assert_eq!(
        testing::invalid_fields(Redis::backup(&request).expect_err("bad name")),
        ["spec.backup.containerName"]
    );
}

#[test]
fn restore_is_unsupported_and_says_why() {
    let request = testing::restore_request_of::<Redis>(redis(), Snapshot::Latest);
    let message = testing::unsupported(Redis::restore(&request).expect_err("no restore"));
    assert!(message.contains("restarting"), "{message}");
}

#[test]
fn databases_redis_cannot_serve_are_refused_by_field() {
    let database = Database {
        extensions: vec!["search".into()],
        options: r#"{"rdbBackup": 1}"#.into(),
        ..testing::database()
    };
    let fields: Vec<(String, Severity)> = Redis::validate(&redis(), Some(&database))
        .into_iter()
        .map(|d| (d.field, d.severity))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.options.rdbBackup".to_string(), Severity::Error),
            ("spec.extensions".to_string(), Severity::Error),
        ]
    );
    let err = Redis::credentials(&redis(), &database).expect_err("invalid");
    assert_eq!(
        testing::invalid_fields(err),
        ["spec.options.rdbBackup", "spec.extensions"]
    );
    let instance = Instance {
        options: r#"{"sslMode": "require"}"#.into(),
        ..redis()
    };
    assert_eq!(
        Redis::validate(&instance, None)[0].field,
        "spec.options.sslMode"
    );
}

/// The image vendors the operator's shared entrypoint library; in this repository the copy
/// must stay the published file byte for byte, or the scripts would run against an old one.
#[test]
fn the_vendored_entrypoint_library_is_the_published_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vendored = root.join("image/rootfs/usr/local/lib/db-operator/lib.sh");
    let published =
        root.join("../../../deploy/images/common/rootfs/usr/local/lib/db-operator/lib.sh");
    assert_eq!(
        std::fs::read_to_string(&vendored).expect("vendored lib.sh"),
        std::fs::read_to_string(&published).expect("published lib.sh"),
        "copy {} over {}",
        published.display(),
        vendored.display()
    );
}
