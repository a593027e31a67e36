//! The Neo4j engine as the host sees it: requests in, pod specs out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dbo_engine_neo4j::Neo4j;
use dbo_plugin_sdk::testing::{
    self, backup_pod, commission_pod, env_names, env_secret, env_value, invalid,
    literal_credentials, only_container, restore_pod, secret_file, secrets_used, unsupported,
};
use dbo_plugin_sdk::{
    AdminSecret, BackupRequest, Capability, CommissionRequest, Database, Engine, Instance,
    RestoreRequest, SchemaRef, Severity, Snapshot, Storage,
};

fn community() -> Instance {
    Instance {
        name: "graph-main".into(),
        engine: "neo4j".into(),
        host: "graph-main.databases.svc.cluster.local".into(),
        port: 7687,
        backup_host: "graph-main-backup.databases.svc.cluster.local".into(),
        options: r#"{"edition": "community"}"#.into(),
        ..testing::instance()
    }
}

fn enterprise() -> Instance {
    Instance {
        options: r#"{"edition": "enterprise"}"#.into(),
        ..community()
    }
}

fn restorable() -> Database {
    Database {
        options: r#"{"allowRestore": true}"#.into(),
        ..testing::database()
    }
}

fn commission_request(instance: Instance) -> CommissionRequest {
    CommissionRequest {
        admin: AdminSecret {
            name: "graph-main-admin".into(),
        },
        ..testing::commission_request_of::<Neo4j>(instance)
    }
}

fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    RestoreRequest {
        database: restorable(),
        ..testing::restore_request_of::<Neo4j>(enterprise(), snapshot)
    }
}

#[test]
fn describe_reports_the_contract_and_one_image_for_every_role() {
    let info = Neo4j::describe();
    assert_eq!(info.name, "neo4j");
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
            .all(|i| i.reference == dbo_engine_neo4j::IMAGE)
    );
    assert_eq!(
        dbo_engine_neo4j::IMAGE,
        format!(
            "ghcr.io/db-operator-rs/neo4j-tools:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let schema: serde_json::Value =
        serde_json::from_str(&info.options_schema).expect("the options schema is JSON");
    assert_eq!(schema["$defs"]["instance"]["required"][0], "edition");
    assert_eq!(
        schema["$defs"]["instance"]["properties"]["edition"]["enum"],
        serde_json::json!(["community", "enterprise"])
    );
}

#[test]
fn credentials_use_the_driver_variable_names_and_the_edition_decides_the_database() {
    let layout = Neo4j::credentials(&community(), &testing::database()).expect("credentials");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("NEO4J_DATABASE", "NEO4J_USERNAME", "NEO4J_PASSWORD")
    );
    assert_eq!(layout.database_name, "neo4j", "Community has one database");
    assert_eq!(layout.user_name, "shop_orders");
    assert_eq!(layout.password_length, 32);
    assert_eq!(
        layout.templates,
        [("NEO4J_URI".to_string(), "neo4j://{host}:{port}".to_string())]
    );

    let layout = Neo4j::credentials(&enterprise(), &testing::database()).expect("credentials");
    assert_eq!(layout.database_name, "shop-orders");
    assert_eq!(layout.user_name, "shop_orders");
}

#[test]
fn the_uri_scheme_follows_the_instance_tls_settings() {
    let uri = |instance: Instance| {
        Neo4j::credentials(&instance, &testing::database())
            .expect("credentials")
            .templates[0]
            .1
            .clone()
    };
    let tls = Instance {
        tls: true,
        ..enterprise()
    };
    assert_eq!(uri(tls.clone()), "neo4j+s://{host}:{port}");
    let skip = Instance {
        tls_skip_verify: true,
        ..tls.clone()
    };
    assert_eq!(uri(skip.clone()), "neo4j+ssc://{host}:{port}");

    let pod = commission_pod::<Neo4j>(&commission_request(skip));
    assert_eq!(
        env_value(only_container(&pod), "DB_ADDRESS"),
        Some("neo4j+ssc://graph-main.databases.svc.cluster.local:7687")
    );
    let pod = commission_pod::<Neo4j>(&commission_request(tls));
    assert_eq!(
        env_value(only_container(&pod), "DB_ADDRESS"),
        Some("neo4j+s://graph-main.databases.svc.cluster.local:7687")
    );
}

#[test]
fn an_instance_without_a_valid_edition_stops_everything_and_names_the_field() {
    for options in ["{}", r#"{"edition": "aura"}"#] {
        let instance = Instance {
            options: options.into(),
            ..community()
        };
        let d = Neo4j::validate(&instance, None);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].field.as_str(), d[0].severity),
            ("spec.options.edition", Severity::Error)
        );
        assert!(
            d[0].message.contains("community or enterprise"),
            "{}",
            d[0].message
        );
        let err = Neo4j::credentials(&instance, &testing::database()).expect_err(options);
        let found = invalid(err);
        assert_eq!(found[0].0, "spec.options.edition");
        assert!(
            found[0].1.starts_with("DbInstance graph-main:"),
            "{}",
            found[0].1
        );
        let err = Neo4j::backup(&BackupRequest {
            instance: instance.clone(),
            ..testing::backup_request_of::<Neo4j>(enterprise())
        })
        .expect_err(options);
        assert_eq!(invalid(err)[0].0, "spec.options.edition");
    }
}

#[test]
fn community_databases_are_warned_that_they_share_the_one_database_without_roles() {
    let d = Neo4j::validate(&community(), Some(&testing::database()));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].field.as_str(), d[0].severity),
        ("spec.instance", Severity::Warning)
    );
    for needle in ["\"neo4j\"", "no roles", "Enterprise"] {
        assert!(d[0].message.contains(needle), "{needle}: {}", d[0].message);
    }
    assert!(Neo4j::validate(&enterprise(), Some(&testing::database())).is_empty());
}

#[test]
fn validation_keeps_instance_and_database_findings_apart() {
    let instance = Instance {
        options: r#"{"edition": "enterprise", "backupPort": 0}"#.into(),
        ..community()
    };
    let database = Database {
        options: r#"{"allowRestore": "yes", "colour": "blue"}"#.into(),
        extensions: vec!["apoc".into()],
        schema: Some(SchemaRef {
            config_map: "migrations".into(),
            version: 3,
        }),
        ..testing::database()
    };
    let on_instance: Vec<String> = Neo4j::validate(&instance, None)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(on_instance, ["spec.options.backupPort"]);
    let on_database: Vec<(String, Severity)> = Neo4j::validate(&instance, Some(&database))
        .into_iter()
        .map(|d| (d.field, d.severity))
        .collect();
    assert_eq!(
        on_database,
        [
            ("spec.options.colour".to_string(), Severity::Error),
            ("spec.options.allowRestore".to_string(), Severity::Error),
            ("spec.extensions[0]".to_string(), Severity::Error),
            ("spec.commission.schema".to_string(), Severity::Error),
        ]
    );
    let err = Neo4j::commission(&CommissionRequest {
        database,
        ..commission_request(enterprise())
    })
    .expect_err("commissioning refuses what validation refuses");
    assert_eq!(invalid(err).len(), 4);
}

#[test]
fn names_that_do_not_fit_neo4j_are_changed_with_a_warning() {
    let database = Database {
        namespace: "payments-settlement-reconciliation".into(),
        name: "ledger-entries-archive-for-the-auditors".into(),
        ..testing::database()
    };
    let layout = Neo4j::credentials(&enterprise(), &database).expect("credentials");
    assert!(layout.database_name.len() <= 63, "{}", layout.database_name);
    assert!(layout.user_name.len() <= 63, "{}", layout.user_name);
    let d = Neo4j::validate(&enterprise(), Some(&database));
    let warned: Vec<&str> = d
        .iter()
        .filter(|d| d.field == "metadata.name" && d.severity == Severity::Warning)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(warned.len(), 2, "{d:?}");
    assert!(warned[0].contains(&layout.user_name), "{}", warned[0]);
    assert!(warned[1].contains(&layout.database_name), "{}", warned[1]);
}

#[test]
fn community_backups_and_restores_are_refused_with_the_reason() {
    let message = unsupported(
        Neo4j::backup(&testing::backup_request_of::<Neo4j>(community())).expect_err("community"),
    );
    for needle in [
        "graph-main",
        "neo4j-admin database dump",
        "stopped",
        "spec.backup.enable",
        "edition: enterprise",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    let message = unsupported(
        Neo4j::restore(&RestoreRequest {
            instance: community(),
            database: testing::database(),
            ..restore_request(Snapshot::Latest)
        })
        .expect_err("community"),
    );
    assert!(message.contains("neo4j-admin database load"), "{message}");
}

#[test]
fn enterprise_backups_read_the_backup_port_of_the_backup_host_without_a_password() {
    let pod = backup_pod::<Neo4j>(&testing::backup_request_of::<Neo4j>(enterprise()));
    let c = only_container(&pod);
    assert_eq!(c.name, "neo4j-backup");
    assert_eq!(c.image.as_deref(), Some(dbo_engine_neo4j::IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-backup".to_string()][..])
    );
    assert_eq!(
        env_value(c, "BACKUP_FROM"),
        Some("graph-main-backup.databases.svc.cluster.local:6362")
    );
    assert_eq!(
        env_secret(c, "DB_NAME"),
        Some(("orders-credentials", "NEO4J_DATABASE"))
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("postgres"));
    assert!(
        !env_names(c).iter().any(|n| n.contains("PASSWORD")),
        "the backup protocol has no login: {:?}",
        env_names(c)
    );
    assert_eq!(
        secrets_used(&pod),
        BTreeSet::from([
            "orders-credentials".to_string(),
            "s3-backup-keys".to_string()
        ])
    );
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.enable_service_links, Some(false));

    let custom = Instance {
        options: r#"{"edition": "enterprise", "backupPort": 16362}"#.into(),
        backup_host: "fd00::7".into(),
        ..enterprise()
    };
    let pod = backup_pod::<Neo4j>(&testing::backup_request_of::<Neo4j>(custom));
    assert_eq!(
        env_value(only_container(&pod), "BACKUP_FROM"),
        Some("[fd00::7]:16362")
    );

    let named = backup_pod::<Neo4j>(&BackupRequest {
        container_name: Some("nightly-backup".into()),
        ..testing::backup_request_of::<Neo4j>(enterprise())
    });
    assert_eq!(only_container(&named).name, "nightly-backup");
    let err = Neo4j::backup(&BackupRequest {
        container_name: Some("Nightly_Backup".into()),
        ..testing::backup_request_of::<Neo4j>(enterprise())
    })
    .expect_err("not a container name");
    assert_eq!(invalid(err)[0].0, "spec.backup.containerName");
}

#[test]
fn storage_variants_set_the_rclone_remote_and_credentials() {
    let pod_for = |storage: Storage| {
        backup_pod::<Neo4j>(&BackupRequest {
            storage,
            ..testing::backup_request_of::<Neo4j>(enterprise())
        })
    };
    let irsa = pod_for(testing::storage::irsa());
    assert!(
        !env_names(only_container(&irsa))
            .iter()
            .any(|n| n.starts_with("AWS_")),
        "IRSA needs no keys"
    );
    let compatible = pod_for(testing::storage::s3_compatible());
    let c = only_container(&compatible);
    assert_eq!(
        env_value(c, "RCLONE_CONFIG_S3_ENDPOINT"),
        Some("http://minio.storage:9000")
    );
    assert_eq!(
        env_secret(c, "AWS_ACCESS_KEY_ID"),
        Some(("minio-keys", "accesskey"))
    );
    let err = Neo4j::backup(&BackupRequest {
        storage: testing::storage::gcs(),
        ..testing::backup_request_of::<Neo4j>(enterprise())
    })
    .expect_err("GCS");
    assert!(unsupported(err).contains("spec.backup.s3"));
}

#[test]
fn database_credentials_come_by_reference_and_the_password_as_a_projected_file() {
    for pod in [
        commission_pod::<Neo4j>(&commission_request(community())),
        commission_pod::<Neo4j>(&commission_request(enterprise())),
        restore_pod::<Neo4j>(&restore_request(Snapshot::Latest)),
    ] {
        let c = only_container(&pod);
        let secret = secrets_used(&pod)
            .into_iter()
            .find(|s| s.ends_with("orders-credentials"))
            .expect("the credentials Secret");
        assert_eq!(
            env_secret(c, "DB_NAME"),
            Some((secret.as_str(), "NEO4J_DATABASE"))
        );
        assert_eq!(
            env_secret(c, "DB_USER"),
            Some((secret.as_str(), "NEO4J_USERNAME"))
        );
        let password_file = env_value(c, "DB_PASSWORD_FILE").expect("DB_PASSWORD_FILE");
        assert_eq!(
            secret_file(&pod, password_file),
            (secret.clone(), Some("NEO4J_PASSWORD".to_string())),
            "only the password key is projected into the file the script reads"
        );
        assert_eq!(literal_credentials(&pod), Vec::<String>::new());
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(10001), Some(10001), Some(10001))
        );
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tmp"),
            "scratch space for a read-only root"
        );
    }
}

#[test]
fn commissioning_runs_as_admin_with_the_edition_and_the_whole_admin_secret() {
    let pod = commission_pod::<Neo4j>(&commission_request(community()));
    let c = only_container(&pod);
    assert_eq!(c.name, "neo4j-commission");
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-commission".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_ADDRESS"),
        Some("neo4j://graph-main.databases.svc.cluster.local:7687"),
        "commissioning talks to the primary, not the backup host"
    );
    assert_eq!(env_value(c, "DB_EDITION"), Some("community"));
    assert_eq!(
        env_value(c, "DB_ALLOW_RESTORE"),
        None,
        "Community has no restores to allow"
    );
    let admin_dir = env_value(c, "ADMIN_SECRET_DIR").expect("ADMIN_SECRET_DIR");
    assert_eq!(
        secret_file(&pod, admin_dir),
        ("graph-main-admin".to_string(), None),
        "every admin key is mounted: the script picks password or NEO4J_AUTH"
    );
    assert_eq!(
        secrets_used(&pod),
        BTreeSet::from([
            "dbo-shop-orders-credentials".to_string(),
            "graph-main-admin".to_string()
        ])
    );
    let spec = Neo4j::commission(&commission_request(community()))
        .expect("commission")
        .expect("a job");
    assert_eq!(spec.backoff_limit, Some(6));

    let pod = commission_pod::<Neo4j>(&commission_request(enterprise()));
    let c = only_container(&pod);
    assert_eq!(env_value(c, "DB_EDITION"), Some("enterprise"));
    assert_eq!(env_value(c, "DB_ALLOW_RESTORE"), Some("false"));
    let pod = commission_pod::<Neo4j>(&CommissionRequest {
        database: restorable(),
        ..commission_request(enterprise())
    });
    assert_eq!(
        env_value(only_container(&pod), "DB_ALLOW_RESTORE"),
        Some("true")
    );
}

#[test]
fn restores_need_the_database_to_allow_them() {
    let err = Neo4j::restore(&RestoreRequest {
        database: testing::database(),
        ..restore_request(Snapshot::Latest)
    })
    .expect_err("not allowed");
    let found = invalid(err);
    assert_eq!(found[0].0, "spec.options.allowRestore");
    for needle in ["shop/orders", "DROP DATABASE", "allowRestore: true"] {
        assert!(found[0].1.contains(needle), "{needle}: {}", found[0].1);
    }
}

#[test]
fn restore_selects_the_snapshot_in_one_variable_and_runs_against_the_primary() {
    let snapshot_env = |snapshot: Snapshot| {
        let pod = restore_pod::<Neo4j>(&restore_request(snapshot));
        let c = only_container(&pod);
        ["SNAPSHOT_KEY", "SNAPSHOT_LATEST", "SNAPSHOT_POINT_IN_TIME"]
            .into_iter()
            .filter_map(|n| env_value(c, n).map(|v| (n.to_string(), v.to_string())))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        snapshot_env(Snapshot::Key(
            "/neo4j/shop-invoices/shop-invoices-20240501T080000Z.backup".into()
        )),
        [(
            "SNAPSHOT_KEY".to_string(),
            "neo4j/shop-invoices/shop-invoices-20240501T080000Z.backup".to_string()
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

    let request = restore_request(Snapshot::Latest);
    let pod = restore_pod::<Neo4j>(&request);
    let c = only_container(&pod);
    assert_eq!(c.name, "neo4j-restore");
    assert_eq!(
        env_value(c, "DB_ADDRESS"),
        Some("neo4j://graph-main.databases.svc.cluster.local:7687")
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));
    let spec = Neo4j::restore(&request).expect("restore");
    assert_eq!(
        spec.backoff_limit,
        Some(0),
        "a failed restore is not repeated"
    );

    let err = Neo4j::restore(&restore_request(Snapshot::PointInTime(
        "last tuesday".into(),
    )))
    .expect_err("not a time");
    assert_eq!(invalid(err)[0].0, "spec.snapshot.pointInTime");
    let err = Neo4j::restore(&restore_request(Snapshot::Key("neo4j/shop-orders/".into())))
        .expect_err("a folder");
    assert_eq!(invalid(err)[0].0, "spec.snapshot.key");
}

#[test]
fn output_is_deterministic() {
    let a = Neo4j::backup(&testing::backup_request_of::<Neo4j>(enterprise())).expect("backup");
    let b = Neo4j::backup(&testing::backup_request_of::<Neo4j>(enterprise())).expect("backup");
    assert_eq!(a, b);
    assert_eq!(Neo4j::describe(), Neo4j::describe());
}

/// The scripts' `require_env` lines name what they cannot run without; every rendered pod must
/// provide all of it, or the Job would fail on its first line.
#[test]
fn every_variable_a_script_requires_is_set_by_its_pod() {
    let pods = [
        (
            "db-backup",
            backup_pod::<Neo4j>(&testing::backup_request_of::<Neo4j>(enterprise())),
        ),
        (
            "db-commission",
            commission_pod::<Neo4j>(&commission_request(community())),
        ),
        (
            "db-commission",
            commission_pod::<Neo4j>(&commission_request(enterprise())),
        ),
        (
            "db-restore",
            restore_pod::<Neo4j>(&restore_request(Snapshot::Latest)),
        ),
    ];
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/images/neo4j/rootfs/usr/local/bin");
    for (script, pod) in pods {
        testing::assert_runs_script_with_its_env(&pod, &bin, script);
    }
}
