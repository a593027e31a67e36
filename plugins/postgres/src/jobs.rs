//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/postgres/rootfs/usr/local/bin/`). The env and files declared here are the
//! whole contract with those scripts; `deploy/images/postgres/README.md` lists it.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::EnvVar;
use dbo_plugin_sdk::pod::{
    ADMIN_DIR, PASSWORD_FILE, admin_mount, admin_volume, app_mounts, app_volumes,
    backup_container_name, env, job_pod, job_spec, script_container, secret_env,
};
use dbo_plugin_sdk::{
    BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, SecretKeyRef, s3, snapshot,
};

use crate::options::{DatabaseOptions, InstanceOptions, SslMode};
use crate::{IMAGE, names};

/// User and group the image runs as (`USER` in its Dockerfile); also the pod's `fsGroup`, so the
/// mounted Secret files (mode 0440) are readable.
pub const RUN_AS: i64 = 10001;

pub const BACKUP_COMMAND: &str = "/usr/local/bin/db-backup";
pub const COMMISSION_COMMAND: &str = "/usr/local/bin/db-commission";
pub const RESTORE_COMMAND: &str = "/usr/local/bin/db-restore";

/// Container name of the backup Job unless the Database names one.
pub const BACKUP_CONTAINER: &str = "postgres-backup";
pub const COMMISSION_CONTAINER: &str = "postgres-commission";
pub const RESTORE_CONTAINER: &str = "postgres-restore";

/// libpq waits this long for a connection before the script fails, instead of the TCP timeout.
const CONNECT_TIMEOUT_SECONDS: &str = "30";

/// A server that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A restore runs in one transaction, so a retry after a transient failure is safe; more than
/// one retry only repeats a real problem.
const RESTORE_BACKOFF_LIMIT: u32 = 1;

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let container_name =
        backup_container_name(request.container_name.as_deref(), BACKUP_CONTAINER)?;
    let mut vars = connection_env(
        &request.instance,
        &request.instance.backup_host,
        &options,
        &request.credentials,
        "backup",
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
    let mut vars = connection_env(
        &request.instance,
        &request.instance.host,
        &options,
        &request.credentials,
        "commission",
    );
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    vars.push(env("ADMIN_DATABASE", options.admin_database.clone()));
    if !database.extensions.is_empty() {
        vars.push(env("DB_EXTENSIONS", database.extensions.join(",")));
    }
    if !database.schemas.is_empty() {
        vars.push(env("DB_SCHEMAS", database.schemas.join(",")));
    }
    if database.drop_public_schema {
        vars.push(env("DB_DROP_PUBLIC_SCHEMA", "true"));
    }
    if let Some(template) = &database.template {
        vars.push(env("DB_TEMPLATE", template.clone()));
    }
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the password is only known at run time
    // (`password`, `postgresql-password` or `postgresql-postgres-password`).
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

pub fn restore(request: &RestoreRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let mut vars = connection_env(
        &request.instance,
        &request.instance.host,
        &options,
        &request.credentials,
        "restore",
    );
    vars.push(env("BACKUP_NAME", names::server_name(&request.database)));
    vars.extend(s3::rclone_env(&request.storage)?);
    vars.push(snapshot::selection_env(&request.snapshot)?);
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
fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
    let (options, diagnostics) = InstanceOptions::read(instance);
    PluginError::from_instance_diagnostics(instance, diagnostics)?;
    Ok(options)
}

/// How a script reaches the server as the Database's user: address, TLS mode, names by
/// reference to the credentials Secret and the password as a file.
fn connection_env(
    instance: &Instance,
    host: &str,
    options: &InstanceOptions,
    credentials: &CredentialRefs,
    role: &str,
) -> Vec<EnvVar> {
    let ssl_mode = options.effective_ssl_mode(instance);
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
        env("PGSSLMODE", ssl_mode.as_str()),
    ];
    if ssl_mode.verifies() {
        // The contract carries no CA bundle yet: verify against the image's system CAs
        // (libpq 16+ understands `system`).
        vars.push(env("PGSSLROOTCERT", "system"));
    }
    vars.push(env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS));
    vars.push(env("PGAPPNAME", format!("db-operator-{role}")));
    vars
}

/// The `DATABASE_URL` query for `mode`; libpq's default needs none.
pub fn url_query(mode: SslMode) -> String {
    match mode {
        SslMode::Prefer => String::new(),
        other => format!("?sslmode={}", other.as_str()),
    }
}
