//! Requests for the sandbox tests and the benchmark.
//!
//! They start from the SDK's realistic test requests (`dbo_plugin_sdk::testing`), converted into
//! the host's model, so the sandboxed component and the plugin's native code are asked exactly
//! the same thing.

#![allow(dead_code, reason = "each test binary uses a different part")]

use dbo_engine as model;
use dbo_plugin_sdk as sdk;
use dbo_plugin_sdk::testing;

pub fn backup_request() -> model::BackupRequest {
    backup_request_from(&testing::backup_request())
}

pub fn restore_request() -> model::RestoreRequest {
    let request = testing::restore_request(sdk::Snapshot::Latest);
    model::RestoreRequest {
        instance: instance(&request.instance),
        database: database(&request.database),
        credentials: credential_refs(&request.credentials),
        storage: storage(&request.storage),
        snapshot: model::Snapshot::Latest,
    }
}

pub fn instance_and_database() -> (model::Instance, model::Database) {
    (
        instance(&testing::instance()),
        database(&testing::database()),
    )
}

pub fn backup_request_from(request: &sdk::BackupRequest) -> model::BackupRequest {
    model::BackupRequest {
        instance: instance(&request.instance),
        database: database(&request.database),
        credentials: credential_refs(&request.credentials),
        storage: storage(&request.storage),
        container_name: request.container_name.clone(),
    }
}

fn instance(instance: &sdk::Instance) -> model::Instance {
    model::Instance {
        name: instance.name.clone(),
        engine: instance.engine.clone(),
        backend: match instance.backend {
            sdk::BackendKind::Generic => model::BackendKind::Generic,
            sdk::BackendKind::Amazon => model::BackendKind::Amazon,
            sdk::BackendKind::Google => model::BackendKind::Google,
        },
        host: instance.host.clone(),
        port: instance.port,
        backup_host: instance.backup_host.clone(),
        region: instance.region.clone(),
        tls: instance.tls,
        tls_skip_verify: instance.tls_skip_verify,
        monitoring: instance.monitoring,
        options: instance.options.clone(),
    }
}

fn database(database: &sdk::Database) -> model::Database {
    model::Database {
        namespace: database.namespace.clone(),
        name: database.name.clone(),
        extensions: database.extensions.clone(),
        schema: database.schema.as_ref().map(|schema| model::SchemaRef {
            config_map: schema.config_map.clone(),
            version: schema.version,
        }),
        options: database.options.clone(),
    }
}

fn credential_refs(refs: &sdk::CredentialRefs) -> model::CredentialRefs {
    model::CredentialRefs {
        secret_name: refs.secret_name.clone(),
        database_key: refs.database_key.clone(),
        user_key: refs.user_key.clone(),
        password_key: refs.password_key.clone(),
    }
}

fn storage(storage: &sdk::Storage) -> model::Storage {
    match storage {
        sdk::Storage::S3(target) => model::Storage::S3(model::S3Target {
            bucket: target.bucket.clone(),
            prefix: target.prefix.clone(),
            region: target.region.clone(),
            endpoint: target.endpoint.clone(),
            auth: match &target.auth {
                sdk::S3Auth::Irsa(role) => model::S3Auth::Irsa(role.clone()),
                sdk::S3Auth::AccessKey(secret) => {
                    model::S3Auth::AccessKey(model::AccessKeySecret {
                        name: secret.name.clone(),
                        access_key_id_key: secret.access_key_id_key.clone(),
                        secret_access_key_key: secret.secret_access_key_key.clone(),
                    })
                }
                sdk::S3Auth::Ambient => model::S3Auth::Ambient,
            },
        }),
        sdk::Storage::Gcs(bucket) => model::Storage::Gcs(bucket.clone()),
    }
}
