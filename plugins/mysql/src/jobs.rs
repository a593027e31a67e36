//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/mysql/rootfs/usr/local/bin/`). The env and files declared here are the
//! whole contract with those scripts; `deploy/images/mysql/README.md` lists it.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSecurityContext, PodSpec, Volume, VolumeMount,
};
use dbo_plugin_sdk::pod::{
    empty_dir, env, job_spec, mount, read_only_mount, restricted_security_context, secret_env,
    secret_files_volume, secret_volume,
};
use dbo_plugin_sdk::{
    BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, SecretKeyRef, Snapshot, s3, snapshot,
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

const CREDENTIALS_VOLUME: &str = "dbo-credentials";
const CREDENTIALS_DIR: &str = "/var/run/secrets/db-operator/database";
const PASSWORD_FILE: &str = "password";
const ADMIN_VOLUME: &str = "dbo-admin-credentials";
const ADMIN_DIR: &str = "/var/run/secrets/db-operator/admin";
const TMP_VOLUME: &str = "dbo-tmp";
const TMP_DIR: &str = "/tmp";

/// A server that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A dump replays from the top (every table is dropped and created again), so one retry after a
/// transient failure is safe; more only repeat a real problem.
const RESTORE_BACKOFF_LIMIT: u32 = 1;

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let container_name = match &request.container_name {
        Some(name) => container_name(name)?,
        None => BACKUP_CONTAINER.to_string(),
    };
    let mut vars = connection_env(
        &request.instance,
        &request.instance.backup_host,
        &options,
        &request.credentials,
    );
    vars.push(env("BACKUP_NAME", names::database_name(&request.database)));
    vars.extend(s3::rclone_env(&request.storage)?);
    let pod = pod(
        container(container_name, BACKUP_COMMAND, vars, app_mounts()),
        app_volumes(&request.credentials),
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
    mounts.push(read_only_mount(ADMIN_VOLUME, ADMIN_DIR));
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the password is only known at run time
    // (`password` or the original operator's `mysql-root-password`).
    volumes.push(secret_volume(ADMIN_VOLUME, request.admin.name.clone()));
    let pod = pod(
        container(COMMISSION_CONTAINER, COMMISSION_COMMAND, vars, mounts),
        volumes,
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
    vars.push(match &request.snapshot {
        Snapshot::Key(key) => env("SNAPSHOT_KEY", snapshot::key(key)?),
        Snapshot::Latest => env("SNAPSHOT_LATEST", "true"),
        Snapshot::PointInTime(t) => env("SNAPSHOT_POINT_IN_TIME", snapshot::point_in_time_utc(t)?),
    });
    let pod = pod(
        container(RESTORE_CONTAINER, RESTORE_COMMAND, vars, app_mounts()),
        app_volumes(&request.credentials),
    );
    job_spec(&pod, Some(RESTORE_BACKOFF_LIMIT), None)
}

/// The instance's options, or its errors, named as the instance's (the host reports them on
/// the object the call was for).
fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
    let (options, diagnostics) = InstanceOptions::read(instance);
    PluginError::from_diagnostics(
        diagnostics
            .into_iter()
            .map(|mut d| {
                d.message = format!("DbInstance {}: {}", instance.name, d.message);
                d
            })
            .collect(),
    )?;
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
        env(
            "DB_PASSWORD_FILE",
            format!("{CREDENTIALS_DIR}/{PASSWORD_FILE}"),
        ),
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

fn app_volumes(credentials: &CredentialRefs) -> Vec<Volume> {
    vec![
        secret_files_volume(
            CREDENTIALS_VOLUME,
            credentials.secret_name.clone(),
            &[(credentials.password_key.as_str(), PASSWORD_FILE)],
        ),
        empty_dir(TMP_VOLUME),
    ]
}

fn app_mounts() -> Vec<VolumeMount> {
    vec![
        read_only_mount(CREDENTIALS_VOLUME, CREDENTIALS_DIR),
        mount(TMP_VOLUME, TMP_DIR),
    ]
}

fn container(
    name: impl Into<String>,
    command: &str,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: name.into(),
        image: Some(IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(vec![command.to_string()]),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_security_context()),
        // The scripts write a one-line JSON summary there; on failure the log tail is shown.
        termination_message_path: Some("/dev/termination-log".to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

fn pod(container: Container, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        restart_policy: Some("Never".to_string()),
        // Service links would add `<SERVICE>_PORT`-style variables the scripts never asked for.
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// `name` if it is a valid container name (an RFC 1123 label).
fn container_name(name: &str) -> Result<String, PluginError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(PluginError::invalid(
            "spec.backup.containerName",
            format!(
                "{name:?} is not a container name: use at most 63 lower-case letters, digits and \
                 -, starting and ending with a letter or digit"
            ),
        ))
    }
}
