//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/mongodb/rootfs/usr/local/bin/`). The env and files declared here are the
//! whole contract with those scripts; `deploy/images/mongodb/README.md` lists it.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSecurityContext, PodSpec, Volume, VolumeMount,
};
use dbo_plugin_sdk::pod::{
    empty_dir, env, job_spec, mount, read_only_mount, restricted_security_context, secret_env,
    secret_files_volume, secret_volume,
};
use dbo_plugin_sdk::{
    BackendKind, BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, SecretKeyRef, Snapshot, s3, snapshot,
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
/// A restore that failed half-way has written documents, so a retry would only be refused by
/// the emptiness check (or, with dropBeforeRestore, repeat the same failure), hiding the first
/// error under a second one.
const RESTORE_BACKOFF_LIMIT: u32 = 0;

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let container_name = match &request.container_name {
        Some(name) => container_name(name)?,
        None => BACKUP_CONTAINER.to_string(),
    };
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
    mounts.push(read_only_mount(ADMIN_VOLUME, ADMIN_DIR));
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the user and password is only known at
    // run time (`user`/`password`, or the keys of the common Helm charts).
    volumes.push(secret_volume(ADMIN_VOLUME, request.admin.name.clone()));
    let pod = pod(
        container(COMMISSION_CONTAINER, COMMISSION_COMMAND, vars, mounts),
        volumes,
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
    vars.push(match &request.snapshot {
        Snapshot::Key(key) => env("SNAPSHOT_KEY", snapshot::key(key)?),
        Snapshot::Latest => env("SNAPSHOT_LATEST", "true"),
        Snapshot::PointInTime(t) => env("SNAPSHOT_POINT_IN_TIME", snapshot::point_in_time_utc(t)?),
    });
    if database.drop_before_restore {
        vars.push(env("DB_DROP_BEFORE_RESTORE", "true"));
    }
    let pod = pod(
        container(RESTORE_CONTAINER, RESTORE_COMMAND, vars, app_mounts()),
        app_volumes(&request.credentials),
    );
    job_spec(&pod, Some(RESTORE_BACKOFF_LIMIT), None)
}

/// The instance's options, or its errors, named as the instance's (the host reports them on
/// the object the call was for).
pub(crate) fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
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
        env(
            "DB_PASSWORD_FILE",
            format!("{CREDENTIALS_DIR}/{PASSWORD_FILE}"),
        ),
    ];
    if let Some(db) = user_database(instance) {
        vars.push(env("DB_AUTH_SOURCE", db));
    }
    if !uri_options.is_empty() {
        vars.push(env("MONGO_URI_OPTIONS", uri_options));
    }
    vars
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
