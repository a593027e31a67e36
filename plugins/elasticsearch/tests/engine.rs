//! The Elasticsearch engine as the host sees it: requests in, pod specs out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dbo_engine_elasticsearch::Elasticsearch;
use dbo_plugin_sdk::testing::{
    self, env_names, env_secret, env_value, invalid, literal_credentials, only_container,
    secrets_used,
};
use dbo_plugin_sdk::{
    BackendKind, BackupRequest, Capability, CommissionRequest, Database, Engine, Instance,
    PluginError, RestoreRequest, S3Auth, S3Target, SchemaRef, Snapshot, Storage,
};

fn instance() -> Instance {
    Instance {
        name: "search".into(),
        engine: "elasticsearch".into(),
        host: "es.search.svc".into(),
        backup_host: "es.search.svc".into(),
        port: 9200,
        ..testing::instance()
    }
}

fn amazon() -> Instance {
    Instance {
        backend: BackendKind::Amazon,
        host: "search-logs-abc.eu-west-1.es.amazonaws.com".into(),
        backup_host: "search-logs-abc.eu-west-1.es.amazonaws.com".into(),
        port: 443,
        region: Some("eu-west-1".into()),
        tls: true,
        ..instance()
    }
}

fn nodes_s3() -> Storage {
    testing::storage::ambient()
}

fn backup_request() -> BackupRequest {
    BackupRequest {
        storage: nodes_s3(),
        ..testing::backup_request_of::<Elasticsearch>(instance())
    }
}

fn commission_request() -> CommissionRequest {
    testing::commission_request_of::<Elasticsearch>(instance())
}

fn restore_request(snapshot: Snapshot) -> RestoreRequest {
    RestoreRequest {
        storage: nodes_s3(),
        ..testing::restore_request_of::<Elasticsearch>(instance(), snapshot)
    }
}

#[test]
fn describe_declares_schema_roll_forward_and_one_image() {
    let info = Elasticsearch::describe();
    assert_eq!(info.name, "elasticsearch");
    assert_eq!(
        info.capabilities,
        [
            Capability::Backup,
            Capability::Commission,
            Capability::Restore,
            Capability::SchemaRollForward
        ]
    );
    assert!(
        info.images
            .iter()
            .all(|i| i.reference == dbo_engine_elasticsearch::IMAGE)
    );
    assert!(dbo_engine_elasticsearch::IMAGE.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))));
    let schema: serde_json::Value = serde_json::from_str(&info.options_schema).expect("JSON");
    assert_eq!(schema["$defs"]["instance"]["type"], "object");
}

#[test]
fn credentials_name_the_prefix_user_and_url() {
    let layout = Elasticsearch::credentials(&instance(), &testing::database()).expect("layout");
    assert_eq!(layout.database_name, "shop_orders");
    assert_eq!(layout.user_name, "shop_orders");
    assert_eq!(
        (
            layout.database_key.as_str(),
            layout.user_key.as_str(),
            layout.password_key.as_str()
        ),
        ("ES_INDEX_PREFIX", "ES_USER", "ES_PASSWORD")
    );
    assert_eq!(
        layout.templates,
        [("ES_URL".to_string(), "http://{host}:{port}".to_string())]
    );
    let tls = Elasticsearch::credentials(&amazon(), &testing::database()).expect("layout");
    assert_eq!(tls.templates[0].1, "https://{host}:{port}");
}

#[test]
fn backup_snapshots_through_the_nodes_s3_client_as_the_database_user() {
    let pod = testing::pod(&Elasticsearch::backup(&backup_request()).expect("backup"));
    let c = only_container(&pod);
    assert_eq!(c.name, "elasticsearch-backup");
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/db-backup".to_string()][..])
    );
    assert_eq!(env_value(c, "ES_URL"), Some("http://es.search.svc:9200"));
    assert_eq!(env_value(c, "ES_FLAVOR"), Some("elasticsearch"));
    assert_eq!(env_value(c, "BACKUP_NAME"), Some("shop_orders"));
    assert_eq!(env_value(c, "BACKUP_BUCKET"), Some("acme-db-backups"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("postgres"));
    assert_eq!(env_value(c, "SNAPSHOT_S3_CLIENT"), Some("default"));
    assert_eq!(
        env_secret(c, "ES_USER"),
        Some(("orders-credentials", "ES_USER"))
    );
    assert_eq!(
        env_secret(c, "ES_INDEX_PREFIX"),
        Some(("orders-credentials", "ES_INDEX_PREFIX"))
    );
    assert!(
        !env_names(c).iter().any(|n| n.starts_with("AWS_")),
        "the Job never holds S3 keys: the cluster writes the snapshot"
    );
    assert_eq!(literal_credentials(&pod), Vec::<String>::new());
    assert_eq!(
        secrets_used(&pod),
        BTreeSet::from(["orders-credentials".to_string()])
    );

    let named = testing::pod(
        &Elasticsearch::backup(&BackupRequest {
            container_name: Some("nightly-snapshot".into()),
            ..backup_request()
        })
        .expect("backup"),
    );
    assert_eq!(only_container(&named).name, "nightly-snapshot");
    let err = Elasticsearch::backup(&BackupRequest {
        container_name: Some("Nightly_Snapshot".into()),
        ..backup_request()
    })
    .expect_err("not an RFC 1123 label");
    assert_eq!(invalid(err)[0].0, "spec.backup.containerName");
}

#[test]
fn s3_auth_the_cluster_cannot_use_is_refused_with_the_way_out() {
    let with = |instance: Instance, storage: Storage| {
        Elasticsearch::backup(&BackupRequest {
            instance,
            storage,
            ..backup_request()
        })
    };
    let keys = invalid(with(instance(), testing::storage::access_key()).expect_err("keys"));
    assert_eq!(keys[0].0, "spec.backup.s3.auth.accessKeySecret");
    assert!(keys[0].1.starts_with("DbInstance search:"), "{}", keys[0].1);
    assert!(keys[0].1.contains("keystore"), "{}", keys[0].1);
    let irsa = invalid(with(instance(), testing::storage::irsa()).expect_err("irsa"));
    assert_eq!(irsa[0].0, "spec.backup.s3.auth.irsa");
    let ambient = invalid(with(amazon(), nodes_s3()).expect_err("ambient on amazon"));
    assert_eq!(ambient[0].0, "spec.backup.s3.auth.ambient");
    assert!(ambient[0].1.contains("roleArn"), "{}", ambient[0].1);
    let gcs = with(instance(), testing::storage::gcs()).expect_err("gcs");
    assert!(matches!(gcs, PluginError::Unsupported(_)), "{gcs:?}");
    let restore = Elasticsearch::restore(&RestoreRequest {
        storage: testing::storage::access_key(),
        ..restore_request(Snapshot::Latest)
    })
    .expect_err("restore too");
    assert_eq!(invalid(restore)[0].0, "spec.backup.s3.auth.accessKeySecret");
}

#[test]
fn amazon_opensearch_gets_the_irsa_role_as_role_arn_and_signs_with_the_domain_region() {
    let storage = Storage::S3(S3Target {
        bucket: "acme-search-snapshots".into(),
        prefix: "prod/".into(),
        region: Some("eu-central-1".into()),
        endpoint: None,
        auth: S3Auth::Irsa("arn:aws:iam::123456789012:role/search-snapshots".into()),
    });
    let pod = testing::pod(
        &Elasticsearch::backup(&BackupRequest {
            instance: amazon(),
            storage,
            ..backup_request()
        })
        .expect("backup"),
    );
    let c = only_container(&pod);
    assert_eq!(
        env_value(c, "ES_URL"),
        Some("https://search-logs-abc.eu-west-1.es.amazonaws.com:443")
    );
    assert_eq!(env_value(c, "ES_FLAVOR"), Some("opensearch"));
    assert_eq!(
        env_value(c, "SNAPSHOT_ROLE_ARN"),
        Some("arn:aws:iam::123456789012:role/search-snapshots")
    );
    assert_eq!(env_value(c, "ES_AWS_REGION"), Some("eu-west-1"));
    assert_eq!(env_value(c, "SNAPSHOT_S3_REGION"), Some("eu-central-1"));
    assert_eq!(env_value(c, "BACKUP_PREFIX"), Some("prod"));
    assert_eq!(env_value(c, "SNAPSHOT_S3_CLIENT"), None);
    assert_eq!(env_value(c, "ES_INSECURE"), None);
}

#[test]
fn skip_verify_turns_into_insecure_only_with_tls() {
    let value = |instance: Instance| {
        let pod = testing::pod(
            &Elasticsearch::backup(&BackupRequest {
                instance,
                ..backup_request()
            })
            .expect("backup"),
        );
        env_value(only_container(&pod), "ES_INSECURE").map(str::to_string)
    };
    let skip = Instance {
        tls: true,
        tls_skip_verify: true,
        ..instance()
    };
    assert_eq!(value(skip), Some("true".into()));
    assert_eq!(value(instance()), None);
}

#[test]
fn commissioning_without_schema_mounts_the_admin_secret_and_no_config_map() {
    let request = commission_request();
    let spec = Elasticsearch::commission(&request)
        .expect("commission")
        .expect("a Job");
    assert_eq!(spec.backoff_limit, Some(6));
    let pod = testing::pod(&spec);
    let c = only_container(&pod);
    assert_eq!(env_value(c, "ES_ROLE"), Some("dbo-shop_orders"));
    assert_eq!(env_value(c, "ES_SNAPSHOT_PRIVILEGES"), Some("true"));
    assert_eq!(
        env_value(c, "ADMIN_SECRET_DIR"),
        Some("/var/run/secrets/db-operator/admin")
    );
    assert_eq!(env_value(c, "SCHEMA_DIR"), None);
    assert_eq!(env_value(c, "SCHEMA_VERSION"), None);
    assert!(pod.volumes.iter().flatten().all(|v| v.config_map.is_none()));
    assert_eq!(
        secrets_used(&pod),
        BTreeSet::from([
            "dbo-shop-orders-credentials".to_string(),
            "pg-main-admin".to_string()
        ])
    );
}

#[test]
fn a_schema_is_mounted_read_only_and_its_version_changes_the_pod() {
    let with_version = |version: u32| {
        let mut request = commission_request();
        request.database.schema = Some(SchemaRef {
            config_map: "dbo-shop-orders-schema".into(),
            version,
        });
        Elasticsearch::commission(&request)
            .expect("commission")
            .expect("a Job")
    };
    let v2 = with_version(2);
    let pod = testing::pod(&v2);
    let c = only_container(&pod);
    assert_eq!(env_value(c, "SCHEMA_VERSION"), Some("2"));
    assert_eq!(env_value(c, "SCHEMA_DIR"), Some("/etc/db-operator/schema"));
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/etc/db-operator/schema")
        .expect("schema mount");
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("schema volume");
    assert_eq!(
        volume.config_map.as_ref().map(|c| c.name.as_str()),
        Some("dbo-shop-orders-schema")
    );
    assert_ne!(v2, with_version(3), "a new version is a new Job");
    assert_eq!(v2, with_version(2), "the same version is the same Job");
}

#[test]
fn instance_options_select_flavor_client_and_privileges() {
    let custom = Instance {
        options:
            r#"{"flavor": "opensearch", "s3Client": "snapshots", "snapshotPrivileges": false}"#
                .into(),
        ..instance()
    };
    let mut request = commission_request();
    request.instance = custom.clone();
    let pod = testing::pod(
        &Elasticsearch::commission(&request)
            .expect("ok")
            .expect("job"),
    );
    assert_eq!(
        env_value(only_container(&pod), "ES_FLAVOR"),
        Some("opensearch")
    );
    assert_eq!(
        env_value(only_container(&pod), "ES_SNAPSHOT_PRIVILEGES"),
        Some("false")
    );
    let pod = testing::pod(
        &Elasticsearch::backup(&BackupRequest {
            instance: custom,
            ..backup_request()
        })
        .expect("backup"),
    );
    assert_eq!(
        env_value(only_container(&pod), "SNAPSHOT_S3_CLIENT"),
        Some("snapshots")
    );

    let bad = Instance {
        options: r#"{"flavor": "kibana"}"#.into(),
        ..instance()
    };
    let fields: Vec<String> = Elasticsearch::validate(&bad, None)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(fields, ["spec.options.flavor"]);
    let err = Elasticsearch::credentials(&bad, &testing::database()).expect_err("bad flavor");
    assert_eq!(invalid(err)[0].0, "spec.options.flavor");
    let database = Database {
        options: r#"{"replicas": 2}"#.into(),
        ..testing::database()
    };
    let mut request = commission_request();
    request.database = database;
    let err = Elasticsearch::commission(&request).expect_err("database options");
    assert_eq!(invalid(err)[0].0, "spec.options.replicas");
}

#[test]
fn restore_takes_a_lower_case_snapshot_name_latest_or_a_time() {
    let chosen = |snapshot: Snapshot| {
        let pod = testing::pod(&Elasticsearch::restore(&restore_request(snapshot)).expect("ok"));
        let c = only_container(&pod);
        assert_eq!(c.name, "elasticsearch-restore");
        ["SNAPSHOT_KEY", "SNAPSHOT_LATEST", "SNAPSHOT_POINT_IN_TIME"]
            .into_iter()
            .filter_map(|n| env_value(c, n).map(|v| (n.to_string(), v.to_string())))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        chosen(Snapshot::Key("shop_invoices-20240501t080000z".into())),
        [(
            "SNAPSHOT_KEY".to_string(),
            "shop_invoices-20240501t080000z".to_string()
        )]
    );
    assert_eq!(
        chosen(Snapshot::Latest),
        [("SNAPSHOT_LATEST".to_string(), "true".to_string())]
    );
    assert_eq!(
        chosen(Snapshot::PointInTime("2024-05-01T10:00:00+02:00".into())),
        [(
            "SNAPSHOT_POINT_IN_TIME".to_string(),
            "2024-05-01T08:00:00Z".to_string()
        )]
    );
    let err = Elasticsearch::restore(&restore_request(Snapshot::Key(
        "shop_orders-20240501T080000Z".into(),
    )))
    .expect_err("upper case");
    let d = invalid(err);
    assert_eq!(d[0].0, "spec.snapshot.key");
    assert!(
        d[0].1.contains("shop_orders-20240501t080000z"),
        "{}",
        d[0].1
    );
    let err = Elasticsearch::restore(&restore_request(Snapshot::Key(
        "postgres/shop-orders/shop-orders-20240501T080000Z.dump".into(),
    )))
    .expect_err("an object key");
    assert_eq!(invalid(err)[0].0, "spec.snapshot.key");
}

/// Every variable a script's `require_env` names must be set by its pod.
#[test]
fn every_variable_a_script_requires_is_set_by_its_pod() {
    let pods = [
        (
            "db-backup",
            testing::pod(&Elasticsearch::backup(&backup_request()).expect("backup")),
        ),
        (
            "db-commission",
            testing::pod(
                &Elasticsearch::commission(&commission_request())
                    .expect("commission")
                    .expect("job"),
            ),
        ),
        (
            "db-restore",
            testing::pod(&Elasticsearch::restore(&restore_request(Snapshot::Latest)).expect("ok")),
        ),
    ];
    let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/images/elasticsearch");
    let library =
        std::fs::read_to_string(image.join("rootfs/usr/local/lib/db-operator/elasticsearch.sh"))
            .expect("library");
    let connection: Vec<&str> = library
        .lines()
        .filter_map(|l| l.trim().strip_prefix("require_env ES_URL"))
        .flat_map(|rest| std::iter::once("ES_URL").chain(rest.split_whitespace()))
        .collect();
    assert!(connection.contains(&"ES_PASSWORD_FILE"), "{connection:?}");
    for (script, pod) in pods {
        let source = std::fs::read_to_string(image.join("rootfs/usr/local/bin").join(script))
            .unwrap_or_else(|e| panic!("reading {script}: {e}"));
        let required: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("require_env "))
            .flat_map(str::split_whitespace)
            .chain(connection.iter().copied())
            .collect();
        let set = env_names(only_container(&pod));
        for name in required {
            assert!(
                set.contains(name),
                "{script} requires {name}, which its pod does not set"
            );
        }
    }
}
