//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/mysql/rootfs/usr/local/bin/`). The env and files declared here are the
//! whole contract with those scripts; `deploy/images/mysql/README.md` lists it.

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
pub const BACKUP_CONTAINER: &str = "mysql-backup";
pub const COMMISSION_CONTAINER: &str = "mysql-commission";
pub const RESTORE_CONTAINER: &str = "mysql-restore";

/// A server that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A dump replays from the top (every table is dropped and created again), so one retry after a
/// transient failure is safe; more only repeat a real problem.
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
    );
    vars.push(env("BACKUP_NAME", names::database_name(&request.database)));
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
    );
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    if let Some(set) = &database.character_set {
        vars.push(env("DB_CHARACTER_SET", set.clone()));
    }
    if let Some(collation) = &database.collation {
        vars.push(env("DB_COLLATION", collation.clone()));
    }
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the password is only known at run time
    // (`password` or the original operator's `mysql-root-password`).
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
    );
    vars.push(env("BACKUP_NAME", names::database_name(&request.database)));
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
) -> Vec<EnvVar> {
    vec![
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
        env("DB_SSL_MODE", options.effective_ssl_mode(instance).as_str()),
    ]
}

/// The `DATABASE_URL` query for `mode`, in the `ssl-mode` spelling of MySQL's URI-like
/// connection strings (MySQL Shell, Connector/J, Connector/Python and Connector/Node.js read
/// it); drivers' default is `PREFERRED`, which needs none.
pub fn url_query(mode: SslMode) -> String {
    match mode {
        SslMode::Preferred => String::new(),
        other => format!("?ssl-mode={}", other.as_str()),
    }
}
