//! The MongoDB engine as the host sees it: requests in, pod specs out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dbo_engine_mongodb::Mongodb;
use dbo_plugin_sdk::testing::{
    self, backup_pod, commission_pod, env_names, env_secret, env_value, invalid, invalid_fields,
    literal_credentials, only_container, restore_pod, secret_file, secrets_used,
};
use dbo_plugin_sdk::{
    AdminSecret, BackendKind, BackupRequest, Capability, CommissionRequest, Database, Engine,
    Instance, PluginError, RestoreRequest, SchemaRef, Severity, Snapshot, Storage,
};

/// A generic MongoDB replica set member with a secondary for backups.
fn instance() -> Instance {
    Instance {
        name: "mongo-main".into(),
        engine: "mongodb".into(),
        host: "mongo-0.mongo.databases.svc.cluster.local".into(),
        port: 27017,
        backup_host: "mongo-2.mongo.databases.svc.cluster.local".into(),
        ..testing::instance()
    }
}

/// Amazon DocumentDB with TLS, as the amazon backend renders it.
fn documentdb() -> Instance {
    Instance {
        name: "docdb-main".into(),
        engine: "mongodb".into(),
        backend: BackendKind::Amazon,
        host: "main.cluster-abc.eu-west-1.docdb.amazonaws.com".into(),
        port: 27017,
        backup_host: "main.cluster-ro-abc.eu-west-1.docdb.amazonaws.com".into(),
        region: Some("eu-west-1".into()),
        tls: true,
        ..testing::instance()
    }
}

fn backup_request() -> BackupRequest {
    testing::backup_request_of::<Mongodb>(instance())
}

fn commission_request() -> CommissionRequest {
    CommissionRequest {
        admin: AdminSecret {
            name: "mongo-main-admin".into(),
        },
        ..testing::commission_request_of::<Mongodb>(instance())
    }
}

fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    testing::restore_request_of::<Mongodb>(instance(), snapshot)
}

fn uri(instance: &Instance) -> String {
    Mongodb::credentials(instance, &testing::database())
        .expect("credentials")
        .templates[0]
        .1
        .clone()
}

#[test]
fn describe_reports_the_contract_and_one_image_for_every_role() {
    let info = Mongodb::describe();
    assert_eq!(info.name, "mongodb");
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
            .all(|i| i.reference == dbo_engine_mongodb::IMAGE)
    );
    assert_eq!(
        dbo_engine_mongodb::IMAGE,
        format!(
            "ghcr.io/db-operator-rs/mongodb-tools:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let schema: serde_json::Value =
        serde_json::from_str(&info.options_schema).expect("the options schema is JSON");
    assert_eq!(
        schema["$defs"]["database"]["properties"]["roles"]["items"]["enum"],
        serde_json::json!(["read", "readWrite", "dbAdmin", "dbOwner", "userAdmin"])
    );
    assert_eq!(
        schema["$defs"]["instance"]["additionalProperties"],
        serde_json::json!(false)
    );
}

#[test]
fn credentials_are_mongo_keys_and_a_connection_string_authenticating_at_the_database() {
    let layout = Mongodb::credentials(&instance(), &testing::database()).expect("credentials");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("MONGO_DATABASE", "MONGO_USER", "MONGO_PASSWORD")
    );
    assert_eq!(layout.database_name, "shop-orders");
    assert_eq!(layout.user_name, "shop-orders");
    assert_eq!(layout.password_length, 32);
    assert_eq!(
        layout.templates,
        [(
            "MONGODB_URI".to_string(),
            "mongodb://{user}:{password}@{host}:{port}/{database}?authSource={database}"
                .to_string()
        )]
    );
}

#[test]
fn the_connection_string_carries_tls_replica_set_and_documentdb_quirks() {
    let tls = Instance {
        tls: true,
        ..instance()
    };
    assert!(
        uri(&tls).ends_with("?authSource={database}&tls=true"),
        "{}",
        uri(&tls)
    );
    let skip = Instance {
        tls_skip_verify: true,
        ..tls.clone()
    };
    assert!(
        uri(&skip).ends_with("&tls=true&tlsInsecure=true"),
        "{}",
        uri(&skip)
    );
    let set = Instance {
        options: r#"{"replicaSet": "rs0", "directConnection": false, "tlsCAFile": "/etc/ssl/corp/ca.pem"}"#
            .into(),
        ..tls
    };
    assert!(
        uri(&set).ends_with(
            "?authSource={database}&replicaSet=rs0&directConnection=false&tls=true&tlsCAFile=/etc/ssl/corp/ca.pem"
        ),
        "{}",
        uri(&set)
    );
    let docdb = Instance {
        options: r#"{"replicaSet": "rs0"}"#.into(),
        ..documentdb()
    };
    assert_eq!(
        uri(&docdb),
        "mongodb://{user}:{password}@{host}:{port}/{database}?authSource=admin&replicaSet=rs0\
         &tls=true&tlsCAFile=/etc/ssl/aws/global-bundle.pem&retryWrites=false",
        "DocumentDB users live in admin, need the Amazon CA and cannot retry writes"
    );
}

#[test]
fn long_or_odd_database_names_are_sanitised_with_a_warning() {
    let database = Database {
        namespace: "payments-settlement-reconciliation".into(),
        name: "ledger.entries.archive-for-the-auditors".into(),
        ..testing::database()
    };
    let layout = Mongodb::credentials(&instance(), &database).expect("credentials");
    assert!(layout.database_name.len() < 64, "{}", layout.database_name);
    assert!(
        !layout.database_name.contains('.'),
        "{}",
        layout.database_name
    );
    assert_eq!(layout.database_name, layout.user_name);
    let d = Mongodb::validate(&instance(), Some(&database));
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
fn bad_input_ends_in_diagnostics_that_name_the_field_and_the_fix() {
    let instance = Instance {
        options: r#"{"authSource": "my.admin", "replicaSet": "rs0&ssl=false", "tlsCaFile": "/x"}"#
            .into(),
        ..instance()
    };
    let on_instance = Mongodb::validate(&instance, None);
    let fields: Vec<&str> = on_instance.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.options.tlsCaFile",
            "spec.options.authSource",
            "spec.options.replicaSet"
        ]
    );
    assert!(
        on_instance[0].message.contains("tlsCAFile"),
        "names the known keys"
    );
    assert!(
        on_instance[1].message.contains("cannot contain"),
        "{}",
        on_instance[1].message
    );

    let database = Database {
        options: r#"{"roles": ["readWrite", "root"], "dropBeforeRestore": "yes", "owner": "x"}"#
            .into(),
        extensions: vec!["pgcrypto".into()],
        schema: Some(SchemaRef {
            config_map: "migrations".into(),
            version: 3,
        }),
        ..testing::database()
    };
    let on_database = Mongodb::validate(&instance, Some(&database));
    let fields: Vec<&str> = on_database.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.options.owner",
            "spec.options.roles[1]",
            "spec.options.dropBeforeRestore",
            "spec.extensions",
            "spec.commission.schema"
        ],
        "database findings only: the instance's are reported on the DbInstance"
    );
    assert!(
        on_database[1]
            .message
            .contains("read, readWrite, dbAdmin, dbOwner, userAdmin")
    );
    assert!(on_database[2].message.contains("true or false"));
    assert!(Mongodb::validate(&self::instance(), Some(&testing::database())).is_empty());

    let err = Mongodb::commission(&CommissionRequest {
        database: database.clone(),
        ..commission_request()
    })
    .expect_err("commissioning refuses what validation refuses");
    assert_eq!(invalid_fields(err).len(), 5);
    let err = Mongodb::restore(&RestoreRequest {
        database: Database {
            options: r#"{"dropBeforeRestore": 1}"#.into(),
            ..testing::database()
        },
        ..restore_request(Snapshot::Latest)
    })
    .expect_err("an unreadable dropBeforeRestore must not default to anything");
    assert_eq!(invalid_fields(err), ["spec.options.dropBeforeRestore"]);
}

#[test]
fn broken_instance_options_stop_every_job_and_say_which_instance() {
    let broken = Instance {
        options: r#"{"directConnection": "yes"}"#.into(),
        ..instance()
    };
    let errors = [
        Mongodb::backup(&BackupRequest {
            instance: broken.clone(),
            ..backup_request()
        })
        .expect_err("backup"),
        Mongodb::commission(&CommissionRequest {
            instance: broken.clone(),
            ..commission_request()
        })
        .expect_err("commission"),
        Mongodb::restore(&RestoreRequest {
            instance: broken.clone(),
            ..restore_request(Snapshot::Latest)
        })
        .expect_err("restore"),
        Mongodb::credentials(&broken, &testing::database()).expect_err("credentials"),
    ];
    for err in errors {
        let d = invalid(err);
        assert_eq!(d[0].0, "spec.options.directConnection");
        assert!(d[0].1.starts_with("DbInstance mongo-main:"), "{}", d[0].1);
    }
}

#[test]
fn backup_dumps_from_the_backup_host_preferring_secondaries() {
    let pod = backup_pod::<Mongodb>(&backup_request());
    let c = only_container(&pod);
    assert_eq!(c.name, "mongodb-backup");
    assert_eq!(c.image.as_deref(), Some(dbo_engine_mongodb::IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-backup".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("mongo-2.mongo.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "DB_PORT"), Some("27017"));
    assert_eq!(
        env_value(c, "MONGO_URI_OPTIONS"),
        Some("readPreference=secondaryPreferred")
    );
    assert_eq!(
        env_value(c, "DB_AUTH_SOURCE"),
        None,
        "users live in their database"
    );
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop-orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("postgres"));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.enable_service_links, Some(false));

    let primary_only = backup_pod::<Mongodb>(&BackupRequest {
        instance: Instance {
            backup_host: instance().host,
            ..instance()
        },
        ..backup_request()
    });
    assert_eq!(
        env_value(only_container(&primary_only), "MONGO_URI_OPTIONS"),
        None,
        "no read preference when the backup host is the host"
    );

    let named = backup_pod::<Mongodb>(&BackupRequest {
        container_name: Some("nightly-dump".into()),
        ..backup_request()
    });
    assert_eq!(only_container(&named).name, "nightly-dump");
    let err = Mongodb::backup(&BackupRequest {
        container_name: Some("Nightly_Dump".into()),
        ..backup_request()
    })
    .expect_err("not a container name");
    assert_eq!(invalid_fields(err), ["spec.backup.containerName"]);
}

#[test]
fn documentdb_jobs_authenticate_at_admin_over_verified_tls() {
    let pod = backup_pod::<Mongodb>(&BackupRequest {
        instance: documentdb(),
        storage: testing::storage::irsa(),
        ..backup_request()
    });
    let c = only_container(&pod);
    assert_eq!(env_value(c, "DB_AUTH_SOURCE"), Some("admin"));
    assert_eq!(
        env_value(c, "MONGO_URI_OPTIONS"),
        Some(
            "tls=true&tlsCAFile=/etc/ssl/aws/global-bundle.pem&retryWrites=false\
             &readPreference=secondaryPreferred"
        )
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("main.cluster-ro-abc.eu-west-1.docdb.amazonaws.com")
    );
    let skip = backup_pod::<Mongodb>(&BackupRequest {
        instance: Instance {
            tls_skip_verify: true,
            ..documentdb()
        },
        ..backup_request()
    });
    assert!(
        env_value(only_container(&skip), "MONGO_URI_OPTIONS")
            .is_some_and(|o| o.starts_with("tls=true&tlsInsecure=true&retryWrites=false")),
        "skip-verify drops the CA file"
    );
}

#[test]
fn database_credentials_come_by_reference_and_the_password_as_a_projected_file() {
    for pod in [
        backup_pod::<Mongodb>(&backup_request()),
        commission_pod::<Mongodb>(&commission_request()),
        restore_pod::<Mongodb>(&restore_request(Snapshot::Latest)),
    ] {
        let c = only_container(&pod);
        let secret = secrets_used(&pod)
            .into_iter()
            .find(|s| s.ends_with("orders-credentials"))
            .expect("the credentials Secret");
        assert_eq!(
            env_secret(c, "DB_NAME"),
            Some((secret.as_str(), "MONGO_DATABASE"))
        );
        assert_eq!(
            env_secret(c, "DB_USER"),
            Some((secret.as_str(), "MONGO_USER"))
        );
        let password_file = env_value(c, "DB_PASSWORD_FILE").expect("DB_PASSWORD_FILE");
        assert_eq!(
            secret_file(&pod, password_file),
            (secret.clone(), Some("MONGO_PASSWORD".to_string())),
            "only the password key is projected into the file the script reads"
        );
        assert_eq!(literal_credentials(&pod), Vec::<String>::new());
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let pod_sc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(
            (pod_sc.run_as_user, pod_sc.run_as_group, pod_sc.fs_group),
            (Some(10001), Some(10001), Some(10001))
        );
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
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
    }
}

#[test]
fn pods_use_only_the_secrets_the_request_names() {
    assert_eq!(
        secrets_used(&backup_pod::<Mongodb>(&backup_request())),
        BTreeSet::from([
            "orders-credentials".to_string(),
            "s3-backup-keys".to_string()
        ])
    );
    assert_eq!(
        secrets_used(&commission_pod::<Mongodb>(&commission_request())),
        BTreeSet::from([
            "dbo-shop-orders-credentials".to_string(),
            "mongo-main-admin".to_string()
        ])
    );
    let irsa = RestoreRequest {
        storage: testing::storage::irsa(),
        ..restore_request(Snapshot::Latest)
    };
    assert_eq!(
        secrets_used(&restore_pod::<Mongodb>(&irsa)),
        BTreeSet::from(["orders-credentials".to_string()])
    );
}

#[test]
fn storage_variants_set_the_rclone_remote_and_gcs_is_refused() {
    let compatible = backup_pod::<Mongodb>(&BackupRequest {
        storage: testing::storage::s3_compatible(),
        ..backup_request()
    });
    let c = only_container(&compatible);
    assert_eq!(
        env_value(c, "RCLONE_CONFIG_S3_ENDPOINT"),
        Some("http://minio.storage:9000")
    );
    assert_eq!(
        env_secret(c, "AWS_SECRET_ACCESS_KEY"),
        Some(("minio-keys", "secretkey"))
    );
    let irsa = backup_pod::<Mongodb>(&BackupRequest {
        storage: testing::storage::irsa(),
        ..backup_request()
    });
    assert!(
        !env_names(only_container(&irsa))
            .iter()
            .any(|n| n.starts_with("AWS_")),
        "IRSA needs no keys"
    );
    for err in [
        Mongodb::backup(&BackupRequest {
            storage: testing::storage::gcs(),
            ..backup_request()
        })
        .expect_err("GCS"),
        Mongodb::restore(&RestoreRequest {
            storage: Storage::Gcs("legacy".into()),
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
fn commissioning_runs_as_admin_on_the_primary_with_the_roles_and_the_whole_admin_secret() {
    let request = commission_request();
    let pod = commission_pod::<Mongodb>(&request);
    let c = only_container(&pod);
    assert_eq!(c.name, "mongodb-commission");
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-commission".to_string()][..])
    );
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("mongo-0.mongo.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "ADMIN_AUTH_SOURCE"), Some("admin"));
    assert_eq!(env_value(c, "DB_ROLES"), Some("readWrite"));
    assert_eq!(env_value(c, "MONGO_URI_OPTIONS"), None);
    let admin_dir = env_value(c, "ADMIN_SECRET_DIR").expect("ADMIN_SECRET_DIR");
    let (secret, key) = secret_file(&pod, admin_dir);
    assert_eq!(secret, "mongo-main-admin");
    assert_eq!(
        key, None,
        "every admin key is mounted: the script picks them"
    );
    let spec = Mongodb::commission(&request)
        .expect("commission")
        .expect("a job");
    assert_eq!(spec.backoff_limit, Some(6));

    let custom = commission_pod::<Mongodb>(&CommissionRequest {
        instance: Instance {
            options: r#"{"authSource": "users", "replicaSet": "rs0"}"#.into(),
            ..instance()
        },
        database: Database {
            options: r#"{"roles": ["read", "dbAdmin"]}"#.into(),
            ..testing::database()
        },
        ..commission_request()
    });
    let c = only_container(&custom);
    assert_eq!(env_value(c, "ADMIN_AUTH_SOURCE"), Some("users"));
    assert_eq!(env_value(c, "DB_ROLES"), Some("read,dbAdmin"));
    assert_eq!(env_value(c, "MONGO_URI_OPTIONS"), Some("replicaSet=rs0"));
}

#[test]
fn restore_selects_the_snapshot_and_drops_only_when_the_database_opts_in() {
    let snapshot_env = |snapshot: Snapshot| {
        let pod = restore_pod::<Mongodb>(&restore_request(snapshot));
        let c = only_container(&pod);
        ["SNAPSHOT_KEY", "SNAPSHOT_LATEST", "SNAPSHOT_POINT_IN_TIME"]
            .into_iter()
            .filter_map(|n| env_value(c, n).map(|v| (n.to_string(), v.to_string())))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        snapshot_env(Snapshot::Key(
            "/mongodb/shop-invoices/shop-invoices-20240501T080000Z.archive.gz".into()
        )),
        [(
            "SNAPSHOT_KEY".to_string(),
            "mongodb/shop-invoices/shop-invoices-20240501T080000Z.archive.gz".to_string()
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

    let pod = restore_pod::<Mongodb>(&restore_request(Snapshot::Latest));
    let c = only_container(&pod);
    assert_eq!(c.name, "mongodb-restore");
    assert_eq!(
        env_value(c, "DB_HOST"),
        Some("mongo-0.mongo.databases.svc.cluster.local")
    );
    assert_eq!(env_value(c, "DB_DROP_BEFORE_RESTORE"), None);
    assert_eq!(
        Mongodb::restore(&restore_request(Snapshot::Latest))
            .expect("restore")
            .backoff_limit,
        Some(0)
    );
    let dropping = restore_pod::<Mongodb>(&RestoreRequest {
        database: Database {
            options: r#"{"dropBeforeRestore": true}"#.into(),
            ..testing::database()
        },
        ..restore_request(Snapshot::Latest)
    });
    assert_eq!(
        env_value(only_container(&dropping), "DB_DROP_BEFORE_RESTORE"),
        Some("true")
    );

    let err = Mongodb::restore(&restore_request(Snapshot::PointInTime(
        "last tuesday".into(),
    )))
    .expect_err("not a time");
    assert_eq!(invalid_fields(err), ["spec.snapshot.pointInTime"]);
    let err = Mongodb::restore(&restore_request(Snapshot::Key(
        "mongodb/shop-orders/".into(),
    )))
    .expect_err("a folder");
    assert_eq!(invalid_fields(err), ["spec.snapshot.key"]);
}

#[test]
fn output_is_deterministic() {
    assert_eq!(
        Mongodb::backup(&backup_request()).expect("backup"),
        Mongodb::backup(&backup_request()).expect("backup")
    );
    assert_eq!(Mongodb::describe(), Mongodb::describe());
}

/// The scripts' `require_env` lines name what they cannot run without; every rendered pod must
/// provide all of it, or the Job would fail on its first line.
#[test]
fn every_variable_a_script_requires_is_set_by_its_pod() {
    let pods = [
        ("db-backup", backup_pod::<Mongodb>(&backup_request())),
        (
            "db-commission",
            commission_pod::<Mongodb>(&commission_request()),
        ),
        (
            "db-restore",
            restore_pod::<Mongodb>(&restore_request(Snapshot::Latest)),
        ),
    ];
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/images/mongodb/rootfs/usr/local/bin");
    for (script, pod) in pods {
        testing::assert_runs_script_with_its_env(&pod, &bin, script);
    }
}
