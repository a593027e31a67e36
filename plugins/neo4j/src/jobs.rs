//! The pods of the backup, commissioning and restore Jobs.
//!
//! Each pod runs one container of the engine's image with one of its entrypoints
//! (`deploy/images/neo4j/rootfs/usr/local/bin/`). The env and files declared here are the whole
//! contract with those scripts; `deploy/images/neo4j/README.md` lists it.
//!
//! The pods get no service-link env, which matters more here than elsewhere: a Service named
//! `neo4j` would set `NEO4J_*` variables that cypher-shell reads.

use dbo_plugin_sdk::k8s_openapi::api::core::v1::EnvVar;
use dbo_plugin_sdk::pod::{
    ADMIN_DIR, PASSWORD_FILE, admin_mount, admin_volume, app_mounts, app_volumes,
    backup_container_name, env, job_pod, job_spec, script_container, secret_env, tmp_mount,
    tmp_volume,
};
use dbo_plugin_sdk::{
    BackupRequest, CommissionRequest, CredentialRefs, Instance, JobSpec, PluginError,
    RestoreRequest, SecretKeyRef, s3, snapshot,
};

use crate::options::{DatabaseOptions, Edition, InstanceOptions};
use crate::{IMAGE, names};

/// User and group the image runs as (`USER` in its Dockerfile); also the pod's `fsGroup`, so the
/// mounted Secret files (mode 0440) are readable.
pub const RUN_AS: i64 = 10001;

pub const BACKUP_COMMAND: &str = "/usr/local/bin/db-backup";
pub const COMMISSION_COMMAND: &str = "/usr/local/bin/db-commission";
pub const RESTORE_COMMAND: &str = "/usr/local/bin/db-restore";

/// Container name of the backup Job unless the Database names one.
pub const BACKUP_CONTAINER: &str = "neo4j-backup";
pub const COMMISSION_CONTAINER: &str = "neo4j-commission";
pub const RESTORE_CONTAINER: &str = "neo4j-restore";

/// A server that is still starting, or a network policy being rolled out, is worth retrying;
/// Kubernetes backs off exponentially, so this spans about ten minutes.
const COMMISSION_BACKOFF_LIMIT: u32 = 6;
/// A restore drops the database before it seeds it again; when that fails, someone should read
/// the error before the database is dropped once more.
const RESTORE_BACKOFF_LIMIT: u32 = 0;

/// Community Edition's `neo4j-admin database dump` reads the store files of a stopped database
/// on the server's own disk; a Job can neither reach that disk (plugins may not mount the
/// server's volume) nor stop the database, so there is no honest backup to offer.
pub fn community_backup_unsupported(instance: &Instance) -> PluginError {
    PluginError::Unsupported(format!(
        "DbInstance {} is Neo4j Community Edition, which has no online backup: \
         `neo4j-admin database dump` only reads a stopped database from the server's own disk, \
         which a backup Job cannot reach. Set spec.backup.enable to false on its Databases and \
         back up the server's volume (stop Neo4j, or use volume snapshots), or use Enterprise \
         Edition (spec.options.edition: enterprise), whose backups db-operator takes online",
        instance.name
    ))
}

pub fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    if options.edition != Some(Edition::Enterprise) {
        return Err(community_backup_unsupported(&request.instance));
    }
    let container_name =
        backup_container_name(request.container_name.as_deref(), BACKUP_CONTAINER)?;
    // The backup protocol has no login: neo4j-admin needs the address and the database name
    // only, so the password is not mounted at all.
    let mut vars = vec![
        env(
            "BACKUP_FROM",
            host_port(&request.instance.backup_host, options.backup_port),
        ),
        secret_env(
            "DB_NAME",
            &SecretKeyRef::new(
                &request.credentials.secret_name,
                &request.credentials.database_key,
            ),
        ),
        env(
            "BACKUP_NAME",
            names::enterprise_database_name(&request.database),
        ),
    ];
    vars.extend(s3::rclone_env(&request.storage)?);
    let pod = job_pod(
        script_container(
            container_name,
            IMAGE,
            BACKUP_COMMAND,
            vars,
            vec![tmp_mount()],
        ),
        vec![tmp_volume()],
        RUN_AS,
    );
    job_spec(&pod, None, None)
}

pub fn commission(
    request: &CommissionRequest,
    database: &DatabaseOptions,
) -> Result<JobSpec, PluginError> {
    let options = instance_options(&request.instance)?;
    let edition = options.edition.unwrap_or(Edition::Community);
    let mut vars = connection_env(&request.instance, &request.credentials);
    vars.push(env("DB_EDITION", edition.as_str()));
    vars.push(env("ADMIN_SECRET_DIR", ADMIN_DIR));
    if edition == Edition::Enterprise {
        vars.push(env(
            "DB_ALLOW_RESTORE",
            if database.allow_restore {
                "true"
            } else {
                "false"
            },
        ));
    }
    let mut mounts = app_mounts();
    mounts.push(admin_mount());
    let mut volumes = app_volumes(&request.credentials);
    // The whole admin Secret: which of its keys holds the password is only known at run time
    // (`password`, or `NEO4J_AUTH` as the Neo4j Helm chart writes it).
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
    if options.edition != Some(Edition::Enterprise) {
        return Err(PluginError::Unsupported(format!(
            "DbInstance {} is Neo4j Community Edition: db-operator takes no backups of it, so \
             it restores none either; load a dump by hand with `neo4j-admin database load` on \
             the stopped server",
            request.instance.name
        )));
    }
    let (database, diagnostics) = DatabaseOptions::read(options.edition, &request.database);
    PluginError::from_diagnostics(diagnostics)?;
    if !database.allow_restore {
        return Err(PluginError::invalid(
            "spec.options.allowRestore",
            format!(
                "Database {}/{}: a restore drops the database and creates it again from the \
                 backup as the Database's own user, who may do so only with CREATE DATABASE and \
                 DROP DATABASE on the DBMS; set spec.options.allowRestore: true on the Database \
                 (commissioning then grants them), or restore by hand as an admin",
                request.database.namespace, request.database.name
            ),
        ));
    }
    let mut vars = connection_env(&request.instance, &request.credentials);
    vars.push(env(
        "BACKUP_NAME",
        names::enterprise_database_name(&request.database),
    ));
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
pub fn instance_options(instance: &Instance) -> Result<InstanceOptions, PluginError> {
    let (options, diagnostics) = InstanceOptions::read(instance);
    PluginError::from_instance_diagnostics(instance, diagnostics)?;
    Ok(options)
}

/// The Bolt URI scheme for the instance's TLS settings: `neo4j` routes in a cluster (so
/// administration commands reach the writer of `system`), `+s` verifies the certificate
/// against the system CAs, `+ssc` accepts any certificate.
pub fn scheme(instance: &Instance) -> &'static str {
    match (instance.tls, instance.tls_skip_verify) {
        (true, true) => "neo4j+ssc",
        (true, false) => "neo4j+s",
        (false, _) => "neo4j",
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How a script reaches the server as the Database's user: the Bolt address, names by
/// reference to the credentials Secret and the password as a file.
fn connection_env(instance: &Instance, credentials: &CredentialRefs) -> Vec<EnvVar> {
    vec![
        env(
            "DB_ADDRESS",
            format!(
                "{}://{}",
                scheme(instance),
                host_port(&instance.host, instance.port)
            ),
        ),
        secret_env(
            "DB_NAME",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.database_key),
        ),
        secret_env(
            "DB_USER",
            &SecretKeyRef::new(&credentials.secret_name, &credentials.user_key),
        ),
        env("DB_PASSWORD_FILE", PASSWORD_FILE),
    ]
}
