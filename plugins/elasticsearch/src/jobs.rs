//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/elasticsearch/rootfs/usr/local/bin/`), which talk to the cluster's REST API
//! with curl. The env and files declared here are the whole contract with those scripts;
//! `deploy/images/elasticsearch/README.md` lists it.
//!
//! Snapshots are written by the cluster itself into an S3 snapshot repository, so the Jobs never
//! touch the bucket: they only tell the cluster where it is. That is also why S3 credentials
//! cannot come from the DbInstance: Elasticsearch nodes read them from their own keystore (per
//! named S3 client), and Amazon OpenSearch Service from the IAM role it assumes.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::{ConfigMapVolumeSource, EnvVar, Volume};
use dbo_plugin_sdk::pod::{
    ADMIN_DIR, PASSWORD_FILE, admin_mount, admin_volume, app_mounts, app_volumes,
    backup_container_name, env, job_pod, job_spec, read_only_mount, script_container, secret_env,
};
use dbo_plugin_sdk::{
    BackendKind, BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, S3Auth, SecretKeyRef, Snapshot, Storage, s3, snapshot,
};

use crate::options::InstanceOptions;
use crate::{IMAGE, names};

/// User and group the image runs as (`USER` in its Dockerfile); also the pod's `fsGroup`, so the
/// mounted Secret files (mode 0440) are readable.
pub const RUN_AS: i64 = 10001;

pub const BACKUP_COMMAND: &str = "/usr/local/bin/db-backup";
pub const COMMISSION_COMMAND: &str = "/usr/local/bin/db-commission";
pub const RESTORE_COMMAND: &str = "/usr/local/bin/db-restore";

/// Container name of the backup Job unless the Database names one.
pub const BACKUP_CONTAINER: &str = "elasticsearch-backup";
pub const COMMISSION_CONTAINER: &str = "elasticsearch-commission";
pub const RESTORE_CONTAINER: &str = "elasticsearch-restore";

/// Where the schema ConfigMap's keys appear as files.
pub const SCHEMA_DIR: &str = "/etc/db-operator/schema";

const SCHEMA_VOLUME: &str = "dbo-schema";

/// A cluster that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes. Every request the
/// script makes is idempotent.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A restore closes and overwrites the Database's indices; running it again after a transient
/// failure restores the same snapshot again, but more than one retry only repeats a real problem.
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
    vars.push(env("BACKUP_NAME", names::index_prefix(&request.database)));
    vars.extend(repository_env(
        &request.instance,
        &options,
        &request.storage,
    )?);
    let pod = job_pod(
        script_container(container_name, IMAGE, BACKUP_COMMAND, vars, app_mounts()),
        app_volumes(&request.credentials),
        RUN_AS,
    );
    job_spec(&pod, None, None)
}

pub fn commission(
    request: &CommissionRequest,
    options: &InstanceOptions,
) -> Result<JobSpec, PluginError> {
    let prefix = names::index_prefix(&request.database);
    let mut vars = connection_env(
        &request.instance,
        &request.instance.host,
        options,
        &request.credentials,
    );
    vars.push(env("ES_ROLE", names::role(&prefix)));
    vars.push(env(
        "ES_SNAPSHOT_PRIVILEGES",
        options.snapshot_privileges.to_string(),
    ));
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: whether the user is under `user` or `username` is only known at
    // run time.
    volumes.push(admin_volume(&request.admin));
    if let Some(schema) = &request.database.schema {
        // The version is in the pod spec so that a new version is a new Job (the host names
        // commissioning Jobs by a hash of their spec) and the same version the same Job.
        vars.push(env("SCHEMA_DIR", SCHEMA_DIR));
        vars.push(env("SCHEMA_VERSION", schema.version.to_string()));
        mounts.push(read_only_mount(SCHEMA_VOLUME, SCHEMA_DIR));
        volumes.push(Volume {
            name: SCHEMA_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: schema.config_map.clone(),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
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
    vars.push(env("BACKUP_NAME", names::index_prefix(&request.database)));
    vars.extend(repository_env(
        &request.instance,
        &options,
        &request.storage,
    )?);
    vars.push(match &request.snapshot {
        Snapshot::Key(key) => env("SNAPSHOT_KEY", snapshot_name(key)?),
        Snapshot::Latest => env("SNAPSHOT_LATEST", "true"),
        Snapshot::PointInTime(t) => env("SNAPSHOT_POINT_IN_TIME", snapshot::point_in_time_utc(t)?),
    });
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
pub fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
    let (options, diagnostics) = InstanceOptions::read(instance);
    PluginError::from_instance_diagnostics(instance, diagnostics)?;
    Ok(options)
}

fn on_instance(
    instance: &Instance,
    field: impl Into<String>,
    message: impl AsRef<str>,
) -> dbo_plugin_sdk::Diagnostic {
    dbo_plugin_sdk::Diagnostic::error(
        field,
        format!("DbInstance {}: {}", instance.name, message.as_ref()),
    )
}

/// The cluster's base URL: `https` when the instance asks for TLS.
pub fn base_url(instance: &Instance, host: &str) -> String {
    let scheme = if instance.tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", instance.port)
}

/// How a script reaches the cluster as the Database's user: URL, TLS, the prefix and user by
/// reference to the credentials Secret, and the password as a file.
fn connection_env(
    instance: &Instance,
    host: &str,
    options: &InstanceOptions,
    credentials: &CredentialRefs,
) -> Vec<EnvVar> {
    let mut vars = vec![
        env("ES_URL", base_url(instance, host)),
        env("ES_FLAVOR", options.flavor.as_str()),
        secret_env(
            "ES_INDEX_PREFIX",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.database_key),
        ),
        secret_env(
            "ES_USER",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.user_key),
        ),
        env("ES_PASSWORD_FILE", PASSWORD_FILE),
    ];
    if instance.tls && instance.tls_skip_verify {
        vars.push(env("ES_INSECURE", "true"));
    }
    vars
}

/// Where the cluster keeps the Database's snapshot repository, or why it cannot.
///
/// The Jobs only register the repository; the nodes read and write the bucket with their own
/// credentials, so the DbInstance's auth must be one the cluster itself can use.
fn repository_env(
    instance: &Instance,
    options: &InstanceOptions,
    storage: &Storage,
) -> Result<Vec<EnvVar>, PluginError> {
    let target = s3::target(storage)?;
    let mut vars = vec![
        env(s3::BUCKET_ENV, target.bucket.clone()),
        env(s3::PREFIX_ENV, target.prefix.trim_matches('/')),
    ];
    let amazon = instance.backend == BackendKind::Amazon;
    match (&target.auth, amazon) {
        (S3Auth::AccessKey(_), _) => {
            let how = if amazon {
                "Amazon OpenSearch Service reaches the bucket only through an IAM role: use \
                 auth.irsa.roleArn with a role the service may assume (es.amazonaws.com)"
            } else {
                "put the keys into the nodes' keystore as s3.client.<client>.access_key and \
                 secret_key (the client named by spec.options.s3Client, default `default`) and \
                 use `auth: {ambient: {}}`"
            };
            return Err(PluginError::Invalid(vec![on_instance(
                instance,
                "spec.backup.s3.auth.accessKeySecret",
                format!(
                    "the cluster writes snapshots to S3 itself, with credentials it holds; an \
                     access key Secret cannot be handed to it through its API; {how}"
                ),
            )]));
        }
        (S3Auth::Irsa(_), false) => {
            return Err(PluginError::Invalid(vec![on_instance(
                instance,
                "spec.backup.s3.auth.irsa",
                "the cluster's nodes, not the Job, read and write the bucket, with the \
                 credentials of their own S3 client (spec.options.s3Client); give the nodes \
                 access to the bucket and use `auth: {ambient: {}}`",
            )]));
        }
        (S3Auth::Ambient, true) => {
            return Err(PluginError::Invalid(vec![on_instance(
                instance,
                "spec.backup.s3.auth.ambient",
                "Amazon OpenSearch Service registers S3 repositories only with an IAM role it \
                 assumes (role_arn); use auth.irsa.roleArn with a role trusted by \
                 es.amazonaws.com and by the backup pods' web identity",
            )]));
        }
        (S3Auth::Ambient, false) => {
            vars.push(env("SNAPSHOT_S3_CLIENT", options.s3_client.clone()));
        }
        (S3Auth::Irsa(role_arn), true) => {
            let Some(region) = instance.region.as_deref().filter(|r| !r.is_empty()) else {
                return Err(PluginError::Invalid(vec![on_instance(
                    instance,
                    "spec.amazon.region",
                    "is needed to sign the snapshot repository registration; set the \
                     domain's region",
                )]));
            };
            vars.push(env("SNAPSHOT_ROLE_ARN", role_arn.clone()));
            vars.push(env("ES_AWS_REGION", region));
            if let Some(bucket_region) = target.region.as_deref().filter(|r| !r.is_empty()) {
                vars.push(env("SNAPSHOT_S3_REGION", bucket_region));
            }
        }
    }
    Ok(vars)
}

/// A snapshot named in `DbRestore.spec.snapshot.key`.
fn snapshot_name(key: &str) -> Result<String, PluginError> {
    let name = key.trim();
    match names::snapshot_name_problem(name) {
        None => Ok(name.to_string()),
        Some(problem) => Err(PluginError::invalid(
            snapshot::KEY_FIELD,
            format!("{problem}; for Elasticsearch the key is a snapshot name, not an object key"),
        )),
    }
}
