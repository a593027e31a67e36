//! The PostgreSQL engine as the host sees it: requests in, pod specs out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dbo_engine_postgres::Postgres;
use dbo_plugin_sdk::testing::{
    self, backup_pod, commission_pod, env_names, env_secret, env_value, invalid_fields,
    literal_credentials, only_container, restore_pod, secret_file, secrets_used,
};
use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, Database, Engine, Instance, PluginError,
    RestoreRequest, SchemaRef, Severity, Snapshot, Storage,
};

fn backup_request() -> BackupRequest {
    testing::backup_request_of::<Postgres>(testing::instance())
}

fn commission_request() -> CommissionRequest {
    testing::commission_request_of::<Postgres>(testing::instance())
}

fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    testing::restore_request_of::<Postgres>(testing::instance(), snapshot)
}

#[test]
fn describe_reports_the_contract_and_one_image_for_every_role() {
    let info = Postgres::describe();
    assert_eq!(info.name, "postgres");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.api_version, "0.1.0");
    assert_eq!(
        info.capabilities,
        [
            Capability::Backup,
            Capability::Commission,
            Capability::Restore
        ]
    );
    let roles: Vec<&str> = info.images.iter().map(|i| i.role.as_str()).collect();
    assert_eq!(roles, ["backup", "commission", "restore"]);
    assert!(
        info.images
            .iter()
            .all(|i| i.reference == dbo_engine_postgres::IMAGE)
    );
    assert!(dbo_engine_postgres::IMAGE.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))));
    let schema: serde_json::Value =
        serde_json::from_str(&info.options_schema).expect("the options schema is JSON");
    assert_eq!(schema["$defs"]["database"]["type"], "object");
}

#[test]
fn credentials_use_the_original_keys_and_a_connection_url() {
    let layout =
        Postgres::credentials(&testing::instance(), &testing::database()).expect("credentials");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
    );
    assert_eq!(layout.database_name, "shop-orders");
    assert_eq!(layout.user_name, "shop-orders");
    assert_eq!(layout.password_length, 32);
    assert_eq!(
        layout.templates,
        [(
            "DATABASE_URL".to_string(),
            "postgresql://{user}:{password}@{host}:{port}/{database}".to_string()
        )]
    );
}

#[test]
fn the_connection_url_demands_tls_when_the_instance_does() {
    let url = |instance: Instance| {
        Postgres::credentials(&instance, &testing::database())
            .expect("credentials")
            .templates[0]
            .1
            .clone()
    };
    let tls = Instance {
        tls: true,
        ..testing::instance()
    };
    assert!(url(tls.clone()).ends_with("/{database}?sslmode=verify-full"));
    let skip = Instance {
        tls_skip_verify: true,
        ..tls
    };
    assert!(url(skip).ends_with("/{database}?sslmode=require"));
    let custom = Instance {
        options: r#"{"sslMode": "require"}"#.into(),
        ..testing::instance()
    };
    assert!(url(custom).ends_with("?sslmode=require"));
}

#[test]
fn long_database_names_are_shortened_with_a_warning() {
    let database = Database {
        namespace: "payments-settlement-reconciliation".into(),
        name: "ledger-entries-archive-for-the-auditors".into(),
        ..testing::database()
    };
    let layout = Postgres::credentials(&testing::instance(), &database).expect("credentials");
    assert!(layout.database_name.len() <= 63, "{}", layout.database_name);
    assert_eq!(layout.database_name, layout.user_name);
    let d = Postgres::validate(&testing::instance(), Some(&database));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].field.as_str(), d[0].severity),
        ("metadata.name", Severity::Warning)
    );
    assert!(
        d[0].message.contains(&layout.database_name),
        "{}",
        d[0].message
    );
}

#[test]
fn validation_keeps_instance_and_database_findings_apart() {
    let instance = Instance {
        options: r#"{"sslMode": "maybe"}"#.into(),
        ..testing::instance()
    };
    let database = Database {
        options: r#"{"schemas": ["pg_app"], "colour": "blue"}"#.into(),
        extensions: vec!["postgis".into(), "x; DROP".into()],
        schema: Some(SchemaRef {
            config_map: "migrations".into(),
            version: 3,
        }),
        ..testing::database()
    };
    let on_instance: Vec<String> = Postgres::validate(&instance, None)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(on_instance, ["spec.options.sslMode"]);
    let on_database: Vec<String> = Postgres::validate(&instance, Some(&database))
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(
        on_database,
        [
            "spec.options.colour",
            "spec.options.schemas[0]",
            "spec.extensions[1]",
            "spec.commission.schema"
        ]
    );
    assert!(Postgres::validate(&testing::instance(), Some(&testing::database())).is_empty());
}

#[test]
fn backup_is_one_container_running_the_backup_entrypoint_against_the_backup_host() {
    let pod = backup_pod::<Postgres>(&backup_request());
    let c = only_container(&pod);
    assert_eq!(c.name, "postgres-backup");
    assert_eq!(c.image.as_deref(), Some(dbo_engine_postgres::IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-backup".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main-replica.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "DB_PORT"), Some("5432"));
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("postgres"));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));

    let named = backup_pod::<Postgres>(&BackupRequest {
        container_name: Some("nightly-dump".into()),
        ..backup_request()
    });
    assert_eq!(only_container(&named).name, "nightly-dump");
    let err = Postgres::backup(&BackupRequest {
        container_name: Some("Nightly_Dump".into()),
        ..backup_request()
    })
    .expect_err("not a container name");
    assert_eq!(invalid_fields(err), ["spec.backup.containerName"]);
}

#[test]
fn database_credentials_come_by_reference_and_the_password_as_a_projected_file() {
    let request = backup_request();
    for pod in [
        backup_pod::<Postgres>(&request),
        commission_pod::<Postgres>(&commission_request()),
        restore_pod::<Postgres>(&restore_request(Snapshot::Latest)),
    ] {
        let c = only_container(&pod);
        let secret = secrets_used(&pod)
            .into_iter()
            .find(|s| s.ends_with("orders-credentials"))
            .expect("the credentials Secret");
        assert_eq!(
            env_secret(c, "DB_NAME"),
            Some((secret.as_str(), "POSTGRES_DB"))
        );
        assert_eq!(
            env_secret(c, "DB_USER"),
            Some((secret.as_str(), "POSTGRES_USER"))
        );
        let password_file = env_value(c, "DB_PASSWORD_FILE").expect("DB_PASSWORD_FILE");
        assert_eq!(
            secret_file(&pod, password_file),
            (secret.clone(), Some("POSTGRES_PASSWORD".to_string())),
            "only the password key is projected into the file the script reads"
        );
        assert_eq!(literal_credentials(&pod), Vec::<String>::new());
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let tmp = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/tmp")
            .expect("scratch space for a read-only root");
        assert!(
            pod.volumes
                .iter()
                .flatten()
                .any(|v| v.name == tmp.name && v.empty_dir.is_some()),
            "/tmp is an emptyDir"
        );
    }
}

#[test]
fn pods_use_only_the_secrets_the_request_names() {
    let backup = backup_request();
    assert_eq!(
        secrets_used(&backup_pod::<Postgres>(&backup)),
        BTreeSet::from([
            "orders-credentials".to_string(),
            "s3-backup-keys".to_string()
        ])
    );
    let commission = commission_request();
    assert_eq!(
        secrets_used(&commission_pod::<Postgres>(&commission)),
        BTreeSet::from([
            "dbo-shop-orders-credentials".to_string(),
            "pg-main-admin".to_string()
        ])
    );
    let irsa = RestoreRequest {
        storage: testing::storage::irsa(),
        ..restore_request(Snapshot::Latest)
    };
    assert_eq!(
        secrets_used(&restore_pod::<Postgres>(&irsa)),
        BTreeSet::from(["orders-credentials".to_string()])
    );
}

#[test]
fn storage_variants_set_the_rclone_remote_and_credentials() {
    let pod_for = |storage: Storage| {
        backup_pod::<Postgres>(&BackupRequest {
            storage,
            ..backup_request()
        })
    };

    let irsa = pod_for(testing::storage::irsa());
    let c = only_container(&irsa);
    assert!(
        !env_names(c).iter().any(|n| n.starts_with("AWS_")),
        "IRSA needs no keys"
    );
    assert_eq!(
        env_value(c, "RCLONE_CONFIG_S3_REGION"),
        Some("eu-central-1")
    );

    let keys = pod_for(testing::storage::access_key());
    let c = only_container(&keys);
    assert_eq!(
        env_secret(c, "AWS_ACCESS_KEY_ID"),
        Some(("s3-backup-keys", "AWS_ACCESS_KEY_ID"))
    );
    assert_eq!(
        env_secret(c, "AWS_SECRET_ACCESS_KEY"),
        Some(("s3-backup-keys", "AWS_SECRET_ACCESS_KEY"))
    );

    let ambient = pod_for(testing::storage::ambient());
    assert!(
        !env_names(only_container(&ambient))
            .iter()
            .any(|n| n.starts_with("AWS_"))
    );

    let compatible = pod_for(testing::storage::s3_compatible());
    let c = only_container(&compatible);
    assert_eq!(
        env_value(c, "RCLONE_CONFIG_S3_ENDPOINT"),
        Some("http://minio.storage:9000")
    );
    assert_eq!(env_value(c, "RCLONE_CONFIG_S3_PROVIDER"), Some("Other"));

    for err in [
        Postgres::backup(&BackupRequest {
            storage: testing::storage::gcs(),
            ..backup_request()
        })
        .expect_err("GCS"),
        Postgres::restore(&RestoreRequest {
            storage: testing::storage::gcs(),
            ..restore_request(Snapshot::Latest)
        })
        .expect_err("GCS"),
    ] {
        assert!(
            matches!(&err, PluginError::Unsupported(m) if m.contains("spec.backup.s3")),
            "{err:?}"
        );
    }
}

#[test]
fn tls_settings_become_libpq_sslmode() {
    let mode = |instance: Instance| {
        let pod = backup_pod::<Postgres>(&BackupRequest {
            instance,
            ..backup_request()
        });
        let c = only_container(&pod);
        (
            env_value(c, "PGSSLMODE").map(str::to_string),
            env_value(c, "PGSSLROOTCERT").map(str::to_string),
        )
    };
    let plain = testing::instance();
    assert_eq!(mode(plain.clone()), (Some("prefer".into()), None));
    let tls = Instance {
        tls: true,
        ..plain.clone()
    };
    assert_eq!(
        mode(tls.clone()),
        (Some("verify-full".into()), Some("system".into()))
    );
    let skip = Instance {
        tls_skip_verify: true,
        ..tls
    };
    assert_eq!(mode(skip), (Some("require".into()), None));
    let disabled = Instance {
        options: r#"{"sslMode": "disable"}"#.into(),
        ..plain
    };
    assert_eq!(mode(disabled), (Some("disable".into()), None));
}

#[test]
fn broken_instance_options_stop_every_job_and_say_which_instance() {
    let instance = Instance {
        options: r#"{"sslMode": 1}"#.into(),
        ..testing::instance()
    };
    let err = Postgres::backup(&BackupRequest {
        instance,
        ..backup_request()
    })
    .expect_err("invalid options");
    let PluginError::Invalid(d) = err else {
        panic!("invalid input expected")
    };
    assert_eq!(d[0].field, "spec.options.sslMode");
    assert!(
        d[0].message.starts_with("DbInstance pg-main:"),
        "{}",
        d[0].message
    );
}

#[test]
fn commissioning_runs_as_admin_on_the_primary_with_the_admin_secret_as_files() {
    let request = commission_request();
    let pod = commission_pod::<Postgres>(&request);
    let c = only_container(&pod);
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-commission".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "ADMIN_DATABASE"), Some("postgres"));
    let admin_dir = env_value(c, "ADMIN_SECRET_DIR").expect("ADMIN_SECRET_DIR");
    let (secret, key) = secret_file(&pod, admin_dir);
    assert_eq!(secret, "pg-main-admin");
    assert_eq!(
        key, None,
        "every admin key is mounted: the script picks the password key"
    );
    let admin_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("pg-main-admin"))
        .expect("admin volume");
    assert_eq!(
        admin_volume.secret.as_ref().and_then(|s| s.items.as_ref()),
        None
    );
    for absent in [
        "DB_EXTENSIONS",
        "DB_SCHEMAS",
        "DB_DROP_PUBLIC_SCHEMA",
        "DB_TEMPLATE",
    ] {
        assert_eq!(
            env_value(c, absent),
            None,
            "{absent} is only set when asked for"
        );
    }
    let spec = Postgres::commission(&request)
        .expect("commission")
        .expect("a job");
    assert_eq!(spec.backoff_limit, Some(6));
}

#[test]
fn commissioning_passes_extensions_schemas_and_options_to_the_script() {
    let request = CommissionRequest {
        instance: Instance {
            monitoring: true,
            options: r#"{"adminDatabase": "defaultdb"}"#.into(),
            ..testing::instance()
        },
        database: Database {
            extensions: vec!["uuid-ossp".into(), "citext".into()],
            options: r#"{"schemas": ["app", "audit"], "template": "template_postgis"}"#.into(),
            ..testing::database()
        },
        ..commission_request()
    };
    let pod = commission_pod::<Postgres>(&request);
    let c = only_container(&pod);
    assert_eq!(
        env_value(c, "DB_EXTENSIONS"),
        Some("uuid-ossp,citext,pg_stat_statements")
    );
    assert_eq!(env_value(c, "DB_SCHEMAS"), Some("app,audit"));
    assert_eq!(env_value(c, "DB_TEMPLATE"), Some("template_postgis"));
    assert_eq!(env_value(c, "ADMIN_DATABASE"), Some("defaultdb"));

    let dropping = CommissionRequest {
        database: Database {
            options: r#"{"dropPublicSchema": true, "schemas": ["app"]}"#.into(),
            ..testing::database()
        },
        ..commission_request()
    };
    assert_eq!(
        env_value(
            only_container(&commission_pod::<Postgres>(&dropping)),
            "DB_DROP_PUBLIC_SCHEMA"
        ),
        Some("true")
    );
}

#[test]
fn commissioning_refuses_what_validation_refuses() {
    let request = CommissionRequest {
        database: Database {
            extensions: vec!["pgcrypto\"; DROP DATABASE x; --".into()],
            ..testing::database()
        },
        ..commission_request()
    };
    let err = Postgres::commission(&request).expect_err("unsafe extension name");
    assert_eq!(invalid_fields(err), ["spec.extensions[0]"]);
}

#[test]
fn restore_selects_the_snapshot_in_one_variable() {
    let snapshot_env = |snapshot: Snapshot| {
        let pod = restore_pod::<Postgres>(&restore_request(snapshot));
        let c = only_container(&pod);
        let set: Vec<(String, String)> =
            ["SNAPSHOT_KEY", "SNAPSHOT_LATEST", "SNAPSHOT_POINT_IN_TIME"]
                .into_iter()
                .filter_map(|n| env_value(c, n).map(|v| (n.to_string(), v.to_string())))
                .collect();
        set
    };
    assert_eq!(
        snapshot_env(Snapshot::Key(
            "/postgres/shop-invoices/shop-invoices-20240501T080000Z.dump".into()
        )),
        [(
            "SNAPSHOT_KEY".to_string(),
            "postgres/shop-invoices/shop-invoices-20240501T080000Z.dump".to_string()
        )],
        "a key from another Database's folder is kept whole, relative to the bucket"
    );
    assert_eq!(
        snapshot_env(Snapshot::Latest),
        [("SNAPSHOT_LATEST".to_string(), "true".to_string())]
    );
    assert_eq!(
        snapshot_env(Snapshot::PointInTime("2024-05-01T10:00:00+02:00".into())),
        [(
            "SNAPSHOT_POINT_IN_TIME".to_string(),
            "2024-05-01T08:00:00Z".to_string()
        )]
    );
}

#[test]
fn restore_runs_against_the_primary_and_refuses_bad_snapshots_at_their_field() {
    let pod = restore_pod::<Postgres>(&restore_request(Snapshot::Latest));
    let c = only_container(&pod);
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-restore".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));

    let err = Postgres::restore(&restore_request(Snapshot::PointInTime(
        "last tuesday".into(),
    )))
    .expect_err("not a time");
    assert_eq!(invalid_fields(err), ["spec.snapshot.pointInTime"]);
    let err = Postgres::restore(&restore_request(Snapshot::Key(
        "postgres/shop-orders/".into(),
    )))
    .expect_err("a folder");
    assert_eq!(invalid_fields(err), ["spec.snapshot.key"]);
}

#[test]
fn output_is_deterministic() {
    let a = Postgres::backup(&backup_request()).expect("backup");
    let b = Postgres::backup(&backup_request()).expect("backup");
    assert_eq!(a, b);
    assert_eq!(Postgres::describe(), Postgres::describe());
}

/// The scripts' `require_env` lines name what they cannot run without; every rendered pod must
/// provide all of it, or the Job would fail on its first line.
#[test]
fn every_variable_a_script_requires_is_set_by_its_pod() {
    let pods = [
        ("db-backup", backup_pod::<Postgres>(&backup_request())),
        (
            "db-commission",
            commission_pod::<Postgres>(&commission_request()),
        ),
        (
            "db-restore",
            restore_pod::<Postgres>(&restore_request(Snapshot::Latest)),
        ),
    ];
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/images/postgres/rootfs/usr/local/bin");
    for (script, pod) in pods {
        testing::assert_runs_script_with_its_env(&pod, &bin, script);
    }
}
