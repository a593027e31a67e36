//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/mongodb/rootfs/usr/local/bin/`). The env and files declared here are the
//! whole contract with those scripts; `deploy/images/mongodb/README.md` lists it.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::EnvVar;
use dbo_plugin_sdk::pod::{
    ADMIN_DIR, PASSWORD_FILE, admin_mount, admin_volume, app_mounts, app_volumes,
    backup_container_name, env, job_pod, job_spec, script_container, secret_env,
};
use dbo_plugin_sdk::{
    BackendKind, BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, SecretKeyRef, s3, snapshot,
};

use crate::options::{DatabaseOptions, InstanceOptions, Tls};
use crate::{IMAGE, names};

/// User and group the image runs as (`USER` in its Dockerfile); also the pod's `fsGroup`, so the
/// mounted Secret files (mode 0440) are readable.
pub const RUN_AS: i64 = 10001;

pub const BACKUP_COMMAND: &str = "/usr/local/bin/db-backup";
pub const COMMISSION_COMMAND: &str = "/usr/local/bin/db-commission";
pub const RESTORE_COMMAND: &str = "/usr/local/bin/db-restore";

/// Container name of the backup Job unless the Database names one.
pub const BACKUP_CONTAINER: &str = "mongodb-backup";
pub const COMMISSION_CONTAINER: &str = "mongodb-commission";
pub const RESTORE_CONTAINER: &str = "mongodb-restore";

/// Database Amazon DocumentDB keeps every user in: users cannot be created anywhere else there.
pub const DOCUMENTDB_USER_DATABASE: &str = "admin";

/// A server that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A restore that failed half-way has written documents, so a retry would only be refused by
/// the emptiness check (or, with dropBeforeRestore, repeat the same failure), hiding the first
/// error under a second one.
const RESTORE_BACKOFF_LIMIT: u32 = 0;

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let container_name =
        backup_container_name(request.container_name.as_deref(), BACKUP_CONTAINER)?;
    let instance = &request.instance;
    // A replica set connection would route reads to the primary even when the host names a
    // secondary (a DocumentDB reader endpoint, say); this keeps the dump's load where asked.
    let read_from_backup_host = instance.backup_host != instance.host;
    let mut vars = connection_env(
        instance,
        &instance.backup_host,
        &uri_options(instance, &options, read_from_backup_host),
        &request.credentials,
    );
    vars.push(env("BACKUP_NAME", names::server_name(&request.database)));
    vars.extend(s3::rclone_env(&request.storage)?);
    let pod = job_pod(
        script_container(container_name, IMAGE, BACKUP_COMMAND, vars, app_mounts()),
        app_volumes(&request.credentials),
        RUN_AS,
    );
    job_spec(&pod, None, None)
}

pub fn commission(
    request: &CommissionRequest,
    database: &DatabaseOptions,
) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let instance = &request.instance;
    let mut vars = connection_env(
        instance,
        &instance.host,
        &uri_options(instance, &options, false),
        &request.credentials,
    );
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    vars.push(env("ADMIN_AUTH_SOURCE", options.auth_source.clone()));
    vars.push(env(
        "DB_ROLES",
        database
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ));
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the user and password is only known at
    // run time (`user`/`password`, or the keys of the common Helm charts).
    volumes.push(admin_volume(&request.admin));
    let pod = job_pod(
        script_container(
            COMMISSION_CONTAINER,
            IMAGE,
            COMMISSION_COMMAND,
            vars,
            mounts,
        ),
        volumes,
        RUN_AS,
    );
    job_spec(&pod, Some(COMMISSION_BACKOFF_LIMIT), None)
}

pub fn restore(
    request: &RestoreRequest,
    database: &DatabaseOptions,
) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let instance = &request.instance;
    let mut vars = connection_env(
        instance,
        &instance.host,
        &uri_options(instance, &options, false),
        &request.credentials,
    );
    vars.push(env("BACKUP_NAME", names::server_name(&request.database)));
    vars.extend(s3::rclone_env(&request.storage)?);
    vars.push(snapshot::selection_env(&request.snapshot)?);
    if database.drop_before_restore {
        vars.push(env("DB_DROP_BEFORE_RESTORE", "true"));
    }
    let pod = job_pod(
        script_container(
            RESTORE_CONTAINER,
            IMAGE,
            RESTORE_COMMAND,
            vars,
            app_mounts(),
        ),
        app_volumes(&request.credentials),
        RUN_AS,
    );
    job_spec(&pod, Some(RESTORE_BACKOFF_LIMIT), None)
}

/// The instance's options, or its errors, named as the instance's (the host reports them on
/// the object the call was for).
pub(crate) fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
    let (options, diagnostics) = InstanceOptions::read(instance);
    PluginError::from_instance_diagnostics(instance, diagnostics)?;
    Ok(options)
}

/// The database the Database's user is defined in (its `authSource`), when it is not the
/// Database's own: DocumentDB keeps all users in `admin`.
pub fn user_database(instance: &Instance) -> Option<&'static str> {
    (instance.backend == BackendKind::Amazon).then_some(DOCUMENTDB_USER_DATABASE)
}

/// Connection-string options (`k=v&k=v`, no `?`, no `authSource`) every connection to the
/// instance uses, the app's `MONGODB_URI` included. All values are plain (validated names and
/// paths), so nothing needs URL encoding.
pub fn uri_options(
    instance: &Instance,
    options: &InstanceOptions,
    secondary_reads: bool,
) -> String {
    let mut o: Vec<(&str, String)> = Vec::new();
    if let Some(set) = &options.replica_set {
        o.push(("replicaSet", set.clone()));
    }
    if let Some(direct) = options.direct_connection {
        o.push(("directConnection", direct.to_string()));
    }
    match options.tls(instance) {
        Tls::Off => {}
        Tls::Insecure => {
            o.push(("tls", "true".into()));
            o.push(("tlsInsecure", "true".into()));
        }
        Tls::Verified { ca_file } => {
            o.push(("tls", "true".into()));
            if let Some(ca) = ca_file {
                o.push(("tlsCAFile", ca));
            }
        }
    }
    if instance.backend == BackendKind::Amazon {
        // DocumentDB rejects retryable writes, which drivers turn on by default.
        o.push(("retryWrites", "false".into()));
    }
    if secondary_reads {
        o.push(("readPreference", "secondaryPreferred".into()));
    }
    o.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// How a script reaches the server as the Database's user: address, connection-string
/// options, names by reference to the credentials Secret and the password as a file.
fn connection_env(
    instance: &Instance,
    host: &str,
    uri_options: &str,
    credentials: &CredentialRefs,
) -> Vec<EnvVar> {
    let mut vars = vec![
        env("DB_HOST", host),
        env("DB_PORT", instance.port.to_string()),
        secret_env(
            "DB_NAME",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.database_key),
        ),
        secret_env(
            "DB_USER",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.user_key),
        ),
        env("DB_PASSWORD_FILE", PASSWORD_FILE),
    ];
    if let Some(db) = user_database(instance) {
        vars.push(env("DB_AUTH_SOURCE", db));
    }
    if !uri_options.is_empty() {
        vars.push(env("MONGO_URI_OPTIONS", uri_options));
    }
    vars
}
