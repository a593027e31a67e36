//! The MySQL engine as the host sees it: requests in, pod specs out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dbo_engine_mysql::Mysql;
use dbo_plugin_sdk::testing::{
    self, backup_pod, commission_pod, env_names, env_secret, env_value, invalid_fields,
    literal_credentials, only_container, restore_pod, secret_file, secrets_used,
};
use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, Database, Engine, Instance, PluginError,
    RestoreRequest, SchemaRef, Severity, Snapshot, Storage,
};

fn backup_request() -> BackupRequest {
    testing::backup_request_of::<Mysql>(testing::instance())
}

fn commission_request() -> CommissionRequest {
    testing::commission_request_of::<Mysql>(testing::instance())
}

fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    testing::restore_request_of::<Mysql>(testing::instance(), snapshot)
}

#[test]
fn describe_reports_the_contract_and_one_image_for_every_role() {
    let info = Mysql::describe();
    assert_eq!(info.name, "mysql");
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
            .all(|i| i.reference == dbo_engine_mysql::IMAGE)
    );
    assert_eq!(
        dbo_engine_mysql::IMAGE,
        format!(
            "ghcr.io/db-operator-rs/mysql-tools:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let schema: serde_json::Value =
        serde_json::from_str(&info.options_schema).expect("the options schema is JSON");
    assert_eq!(schema["$defs"]["instance"]["type"], "object");
    assert_eq!(schema["$defs"]["database"]["type"], "object");
}

#[test]
fn credentials_use_the_original_keys_names_and_a_connection_url() {
    let layout =
        Mysql::credentials(&testing::instance(), &testing::database()).expect("credentials");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("DB", "USER", "PASSWORD")
    );
    assert_eq!(layout.database_name, "shop_orders");
    assert_eq!(layout.user_name, "shop_orders");
    assert_eq!(layout.password_length, 32);
    assert_eq!(
        layout.templates,
        [(
            "DATABASE_URL".to_string(),
            "mysql://{user}:{password}@{host}:{port}/{database}".to_string()
        )]
    );
}

#[test]
fn the_connection_url_demands_tls_when_the_instance_does() {
    let url = |instance: Instance| {
        Mysql::credentials(&instance, &testing::database())
            .expect("credentials")
            .templates[0]
            .1
            .clone()
    };
    let tls = Instance {
        tls: true,
        ..testing::instance()
    };
    assert!(url(tls.clone()).ends_with("/{database}?ssl-mode=VERIFY_IDENTITY"));
    let skip = Instance {
        tls_skip_verify: true,
        ..tls
    };
    assert!(url(skip).ends_with("/{database}?ssl-mode=REQUIRED"));
    let disabled = Instance {
        options: r#"{"sslMode": "DISABLED"}"#.into(),
        ..testing::instance()
    };
    assert!(url(disabled).ends_with("?ssl-mode=DISABLED"));
    let err = Mysql::credentials(
        &Instance {
            options: r#"{"sslMode": "VERIFY_CA"}"#.into(),
            ..testing::instance()
        },
        &testing::database(),
    )
    .expect_err("VERIFY_CA cannot be delivered");
    assert_eq!(invalid_fields(err), ["spec.options.sslMode"]);
}

#[test]
fn long_names_are_cut_to_each_limit_with_a_warning() {
    let database = Database {
        namespace: "payments-settlement".into(),
        name: "ledger-entries-archive".into(),
        ..testing::database()
    };
    let layout = Mysql::credentials(&testing::instance(), &database).expect("credentials");
    assert_eq!(
        layout.database_name,
        "payments_settlement_ledger_entries_archive"
    );
    assert_eq!(layout.user_name.len(), 32, "{}", layout.user_name);
    assert!(layout.user_name.starts_with("payments_settlement_led_"));
    let warnings = Mysql::validate(&testing::instance(), Some(&database));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert_eq!(warnings[0].field, "metadata.name");
    assert!(
        warnings[0].message.contains(&layout.user_name),
        "{}",
        warnings[0].message
    );
    // Dashes always become underscores: that alone is no news.
    assert!(Mysql::validate(&testing::instance(), Some(&testing::database())).is_empty());
}

#[test]
fn validation_names_every_bad_field_of_a_database() {
    let instance = Instance {
        options: r#"{"sslMode": "ON", "adminDatabase": "x"}"#.into(),
        ..testing::instance()
    };
    let database = Database {
        options: r#"{"colour": "blue", "collation": "Latin1 General"}"#.into(),
        extensions: vec!["uuid-ossp".into()],
        schema: Some(SchemaRef {
            config_map: "orders-schema".into(),
            version: 1,
        }),
        ..testing::database()
    };
    let on_instance: Vec<String> = Mysql::validate(&instance, None)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(
        on_instance,
        ["spec.options.adminDatabase", "spec.options.sslMode"]
    );
    let on_database: Vec<(String, Severity)> = Mysql::validate(&instance, Some(&database))
        .into_iter()
        .map(|d| (d.field, d.severity))
        .collect();
    assert_eq!(
        on_database,
        [
            ("spec.options.colour".to_string(), Severity::Error),
            ("spec.options.collation".to_string(), Severity::Error),
            ("spec.commission.schema".to_string(), Severity::Error),
            ("spec.extensions[0]".to_string(), Severity::Warning),
        ]
    );
    let err = Mysql::commission(&CommissionRequest {
        database,
        ..commission_request()
    })
    .expect_err("invalid options stop commissioning");
    assert_eq!(
        invalid_fields(err),
        [
            "spec.options.colour",
            "spec.options.collation",
            "spec.commission.schema"
        ]
    );
}

#[test]
fn a_database_may_not_take_a_schema_of_the_server() {
    let database = Database {
        namespace: "information".into(),
        name: "schema".into(),
        ..testing::database()
    };
    let d = Mysql::validate(&testing::instance(), Some(&database));
    assert!(
        d.iter()
            .any(|d| d.field == "metadata.name" && d.severity == Severity::Error),
        "{d:?}"
    );
}

#[test]
fn backup_is_one_container_running_the_backup_entrypoint_against_the_backup_host() {
    let pod = backup_pod::<Mysql>(&backup_request());
    let c = only_container(&pod);
    assert_eq!(c.name, "mysql-backup");
    assert_eq!(c.image.as_deref(), Some(dbo_engine_mysql::IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-backup".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main-replica.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "DB_PORT"), Some("5432"));
    assert_eq!(env_value(c, "DB_SSL_MODE"), Some("PREFERRED"));
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop_orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("postgres"));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.enable_service_links, Some(false));
    let psc = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(
        (psc.run_as_user, psc.run_as_group, psc.fs_group),
        (Some(10001), Some(10001), Some(10001))
    );
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );

    let named = backup_pod::<Mysql>(&BackupRequest {
        container_name: Some("nightly-dump".into()),
        ..backup_request()
    });
    assert_eq!(only_container(&named).name, "nightly-dump");
    let err = Mysql::backup(&BackupRequest {
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
        backup_pod::<Mysql>(&request),
        commission_pod::<Mysql>(&commission_request()),
        restore_pod::<Mysql>(&restore_request(Snapshot::Latest)),
    ] {
        let c = only_container(&pod);
        let secret = secrets_used(&pod)
            .into_iter()
            .find(|s| s.ends_with("orders-credentials"))
            .expect("the credentials Secret");
        assert_eq!(env_secret(c, "DB_NAME"), Some((secret.as_str(), "DB")));
        assert_eq!(env_secret(c, "DB_USER"), Some((secret.as_str(), "USER")));
        let password_file = env_value(c, "DB_PASSWORD_FILE").expect("DB_PASSWORD_FILE");
        assert_eq!(
            secret_file(&pod, password_file),
            (secret.clone(), Some("PASSWORD".to_string())),
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
    assert_eq!(
        secrets_used(&backup_pod::<Mysql>(&backup_request())),
        BTreeSet::from([
            "orders-credentials".to_string(),
            "s3-backup-keys".to_string()
        ])
    );
    assert_eq!(
        secrets_used(&commission_pod::<Mysql>(&commission_request())),
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
        secrets_used(&restore_pod::<Mysql>(&irsa)),
        BTreeSet::from(["orders-credentials".to_string()])
    );
}

#[test]
fn storage_variants_set_the_rclone_remote_and_credentials() {
    let pod_for = |storage: Storage| {
        backup_pod::<Mysql>(&BackupRequest {
            storage,
            ..backup_request()
        })
    };
    let irsa = pod_for(testing::storage::irsa());
    assert!(
        !env_names(only_container(&irsa))
            .iter()
            .any(|n| n.starts_with("AWS_")),
        "IRSA needs no keys"
    );
    let keys = pod_for(testing::storage::access_key());
    assert_eq!(
        env_secret(only_container(&keys), "AWS_SECRET_ACCESS_KEY"),
        Some(("s3-backup-keys", "AWS_SECRET_ACCESS_KEY"))
    );
    let compatible = pod_for(testing::storage::s3_compatible());
    let c = only_container(&compatible);
    assert_eq!(
        env_value(c, "RCLONE_CONFIG_S3_ENDPOINT"),
        Some("http://minio.storage:9000")
    );
    let err = Mysql::restore(&RestoreRequest {
        storage: testing::storage::gcs(),
        ..restore_request(Snapshot::Latest)
    })
    .expect_err("GCS");
    assert!(
        matches!(&err, PluginError::Unsupported(m) if m.contains("spec.backup.s3")),
        "{err:?}"
    );
}

#[test]
fn tls_settings_become_the_scripts_ssl_mode() {
    let mode = |instance: Instance| {
        let pod = backup_pod::<Mysql>(&BackupRequest {
            instance,
            ..backup_request()
        });
        env_value(only_container(&pod), "DB_SSL_MODE").map(str::to_string)
    };
    let plain = testing::instance();
    assert_eq!(mode(plain.clone()).as_deref(), Some("PREFERRED"));
    let tls = Instance {
        tls: true,
        ..plain.clone()
    };
    assert_eq!(mode(tls.clone()).as_deref(), Some("VERIFY_IDENTITY"));
    let skip = Instance {
        tls_skip_verify: true,
        ..tls
    };
    assert_eq!(mode(skip).as_deref(), Some("REQUIRED"));
    let disabled = Instance {
        options: r#"{"sslMode": "DISABLED"}"#.into(),
        ..plain
    };
    assert_eq!(mode(disabled).as_deref(), Some("DISABLED"));
}

#[test]
fn broken_instance_options_stop_every_job_and_say_which_instance() {
    let instance = Instance {
        options: r#"{"sslMode": "VERIFY_CA"}"#.into(),
        ..testing::instance()
    };
    let errors = [
        Mysql::backup(&BackupRequest {
            instance: instance.clone(),
            ..backup_request()
        })
        .expect_err("backup"),
        Mysql::restore(&RestoreRequest {
            instance,
            ..restore_request(Snapshot::Latest)
        })
        .expect_err("restore"),
    ];
    for err in errors {
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
}

#[test]
fn commissioning_runs_as_admin_on_the_primary_with_the_admin_secret_as_files() {
    let request = commission_request();
    let pod = commission_pod::<Mysql>(&request);
    let c = only_container(&pod);
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-commission".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main.databases.svc.cluster.local")
    );
    let admin_dir = env_value(c, "ADMIN_SECRET_DIR").expect("ADMIN_SECRET_DIR");
    let (secret, key) = secret_file(&pod, admin_dir);
    assert_eq!(secret, "pg-main-admin");
    assert_eq!(
        key, None,
        "every admin key is mounted: the script picks the password key"
    );
    for absent in ["DB_CHARACTER_SET", "DB_COLLATION"] {
        assert_eq!(
            env_value(c, absent),
            None,
            "{absent} is only set when asked for"
        );
    }
    let spec = Mysql::commission(&request)
        .expect("commission")
        .expect("a job");
    assert_eq!(spec.backoff_limit, Some(6));

    let with_charset = CommissionRequest {
        database: Database {
            options: r#"{"characterSet": "utf8mb4", "collation": "utf8mb4_bin"}"#.into(),
            ..testing::database()
        },
        ..commission_request()
    };
    let pod = commission_pod::<Mysql>(&with_charset);
    let c = only_container(&pod);
    assert_eq!(env_value(c, "DB_CHARACTER_SET"), Some("utf8mb4"));
    assert_eq!(env_value(c, "DB_COLLATION"), Some("utf8mb4_bin"));
}

#[test]
fn restore_selects_the_snapshot_in_one_variable() {
    let snapshot_env = |snapshot: Snapshot| {
        let pod = restore_pod::<Mysql>(&restore_request(snapshot));
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
            "/mysql/shop_invoices/shop_invoices-20240501T080000Z.sql.gz".into()
        )),
        [(
            "SNAPSHOT_KEY".to_string(),
            "mysql/shop_invoices/shop_invoices-20240501T080000Z.sql.gz".to_string()
        )]
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
    let err = Mysql::restore(&restore_request(Snapshot::PointInTime(
        "last tuesday".into(),
    )))
    .expect_err("not a time");
    assert_eq!(invalid_fields(err), ["spec.snapshot.pointInTime"]);
    let pod = restore_pod::<Mysql>(&restore_request(Snapshot::Latest));
    let c = only_container(&pod);
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("pg-main.databases.svc.cluster.local"),
        "restores write to the primary"
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop_orders"));
}

#[test]
fn output_is_deterministic() {
    assert_eq!(
        Mysql::backup(&backup_request()).expect("backup"),
        Mysql::backup(&backup_request()).expect("backup")
    );
    assert_eq!(Mysql::describe(), Mysql::describe());
}

/// The scripts' `require_env` lines name what they cannot run without; every rendered pod must
/// provide all of it, or the Job would fail on its first line.
#[test]
fn every_variable_a_script_requires_is_set_by_its_pod() {
    let pods = [
        ("db-backup", backup_pod::<Mysql>(&backup_request())),
        (
            "db-commission",
            commission_pod::<Mysql>(&commission_request()),
        ),
        (
            "db-restore",
            restore_pod::<Mysql>(&restore_request(Snapshot::Latest)),
        ),
    ];
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/images/mysql/rootfs/usr/local/bin");
    for (script, pod) in pods {
        testing::assert_runs_script_with_its_env(&pod, &bin, script);
    }
}
