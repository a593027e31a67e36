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
//! The probes panic with a readable message when the plugin's output is malformed: they are for
//! tests, where that is the failure report.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::{
    AccessKeySecret, AdminSecret, BackendKind, BackupRequest, CommissionRequest, CredentialLayout,
    CredentialRefs, Database, Instance, JobSpec, RestoreRequest, S3Auth, S3Target, Snapshot,
    Storage,
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
    use crate::SecretKeyRef;
    use crate::pod::{env, secret_env};

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
