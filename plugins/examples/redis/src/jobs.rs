//! The pods of the commissioning and backup Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`image/rootfs/usr/local/bin/`). The env and files declared here are the whole contract with
//! those scripts; `image/README.md` lists it.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::EnvVar;
use dbo_plugin_sdk::pod::{
    ADMIN_DIR, PASSWORD_FILE, admin_mount, admin_volume, app_mounts, app_volumes,
    backup_container_name, env, job_pod, job_spec, script_container, secret_env,
};
use dbo_plugin_sdk::{
    BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError, SecretKeyRef,
    s3,
};

use crate::options::DatabaseOptions;
use crate::{IMAGE, names};

/// User and group the image runs as (`USER` in its Dockerfile); also the pod's `fsGroup`, so the
/// mounted Secret files are readable.
pub const RUN_AS: i64 = 10001;

pub const BACKUP_COMMAND: &str = "/usr/local/bin/db-backup";
pub const COMMISSION_COMMAND: &str = "/usr/local/bin/db-commission";

pub const BACKUP_CONTAINER: &str = "redis-backup";
pub const COMMISSION_CONTAINER: &str = "redis-commission";

/// A server that is still starting is worth retrying; Kubernetes backs off exponentially, so
/// this spans about ten minutes. `ACL SETUSER` with `reset` is idempotent.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let container_name =
        backup_container_name(request.container_name.as_deref(), BACKUP_CONTAINER)?;
    let mut vars = connection_env(
        &request.instance,
        &request.instance.backup_host,
        &request.credentials,
    );
    vars.push(env("BACKUP_NAME", names::user_name(&request.database)));
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
    options: &DatabaseOptions,
) -> Result<JobSpec, PluginError> {
    let mut vars = connection_env(
        &request.instance,
        &request.instance.host,
        &request.credentials,
    );
    vars.push(secret_env(
        "DB_KEY_PREFIX",
        &SecretKeyRef::new(
            &request.credentials.secret_name,
            &request.credentials.database_key,
        ),
    ));
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    vars.push(env("DB_RDB_BACKUP", bool_str(options.rdb_backup)));
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: the script accepts `user`/`username` and `password`.
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

/// How a script reaches the server as the Database's user: address and TLS settings, the user
/// by reference to the credentials Secret and the password as a file.
fn connection_env(instance: &Instance, host: &str, credentials: &CredentialRefs) -> Vec<EnvVar> {
    vec![
        env("DB_HOST", host),
        env("DB_PORT", instance.port.to_string()),
        secret_env(
            "DB_USER",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.user_key),
        ),
        env("DB_PASSWORD_FILE", PASSWORD_FILE),
        env("DB_TLS", bool_str(instance.tls)),
        env(
            "DB_TLS_SKIP_VERIFY",
            bool_str(instance.tls && instance.tls_skip_verify),
        ),
    ]
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}
