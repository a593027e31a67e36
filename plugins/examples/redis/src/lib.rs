//! An example third-party engine for db-operator: Redis 6+ ACL users and RDB backups to S3.
//!
//! It is built exactly as an engine from outside the operator's repository would be: a crate of
//! its own that depends only on the plugin SDK, compiled with
//! `cargo build --release --target wasm32-wasip2` and loaded with `--plugin-dir`.
//!
//! Redis has no databases per user, so a Database is a key prefix `<namespace>:<name>:` and an
//! ACL user that may touch only keys and channels under it. The work is done by the entrypoints
//! of the image in `image/`, configured only by the env and files declared in [`jobs`].

use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
    EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
};

pub mod jobs;
pub mod names;
pub mod options;

use options::DatabaseOptions;

/// The one image all roles use; its tag follows this crate's version.
pub const IMAGE: &str = concat!(
    "ghcr.io/db-operator-rs/redis-tools:",
    env!("CARGO_PKG_VERSION")
);

/// Keys of the credentials Secret. The "database" of a Redis Database is its key prefix.
pub const KEY_PREFIX_KEY: &str = "REDIS_KEY_PREFIX";
pub const USER_KEY: &str = "REDIS_USER";
pub const PASSWORD_KEY: &str = "REDIS_PASSWORD";
/// Extra key with a connection URL as Redis clients take it.
pub const URL_KEY: &str = "REDIS_URL";
/// Redis compares ACL passwords by their SHA-256, so length costs nothing; 32 random characters
/// are far beyond guessing.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Redis;

impl Engine for Redis {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "redis",
            env!("CARGO_PKG_VERSION"),
            vec![Capability::Backup, Capability::Commission],
            IMAGE,
            options::schema().to_string(),
        )
    }

    fn validate(instance: &Instance, database: Option<&Database>) -> Vec<Diagnostic> {
        match database {
            None => options::read_instance(instance),
            Some(database) => database_diagnostics(database).1,
        }
    }

    fn credentials(
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, PluginError> {
        PluginError::from_diagnostics(database_diagnostics(database).1)?;
        let scheme = if instance.tls { "rediss" } else { "redis" };
        Ok(CredentialLayout {
            database_name: names::key_prefix(database),
            user_name: names::user_name(database),
            database_key: KEY_PREFIX_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(
                URL_KEY.to_string(),
                format!("{scheme}://{{user}}:{{password}}@{{host}}:{{port}}"),
            )],
        })
    }

    fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
        let (options, diagnostics) = database_diagnostics(&request.database);
        PluginError::from_diagnostics(diagnostics)?;
        if !options.rdb_backup {
            return Err(PluginError::invalid(
                options::field_of(options::RDB_BACKUP),
                "a Redis backup is an RDB snapshot of the whole server, which the Database's \
                 user may only take with the replication commands (SYNC, PSYNC); set \
                 spec.options.rdbBackup: true to grant them (the user can then read every key \
                 on the server) or disable spec.backup",
            ));
        }
        jobs::backup(request)
    }

    fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
        let (options, diagnostics) = database_diagnostics(&request.database);
        PluginError::from_diagnostics(diagnostics)?;
        jobs::commission(request, &options).map(Some)
    }

    fn restore(_request: &RestoreRequest) -> Result<JobSpec, PluginError> {
        Err(PluginError::Unsupported(
            "the redis engine does not restore: loading an RDB file means replacing the \
             server's dump.rdb in its data directory and restarting it, which only whoever runs \
             the server can do; copy the backup object there by hand"
                .to_string(),
        ))
    }
}

/// Everything the engine has to say about a Database.
fn database_diagnostics(database: &Database) -> (DatabaseOptions, Vec<Diagnostic>) {
    let (options, mut diagnostics) = DatabaseOptions::read(database);
    if let Some(problem) = names::prefix_problem(database) {
        diagnostics.push(Diagnostic::error("metadata.name", problem));
    }
    if !database.extensions.is_empty() {
        diagnostics.push(Diagnostic::error(
            "spec.extensions",
            "Redis modules are loaded by the server's configuration, not per Database; remove \
             spec.extensions",
        ));
    }
    if database.schema.is_some() {
        diagnostics.push(Diagnostic::error(
            "spec.commission.schema",
            "the redis engine applies no schemas; remove spec.commission.schema",
        ));
    }
    if options.rdb_backup {
        diagnostics.push(Diagnostic::warning(
            options::field_of(options::RDB_BACKUP),
            format!(
                "backups are RDB snapshots of the whole server, not of the keys under {:?}: \
                 every backup object holds every Database's data, and the user {:?} may read all \
                 of it through SYNC; keep the bucket as private as the server",
                names::key_prefix(database),
                names::user_name(database)
            ),
        ));
    }
    (options, diagnostics)
}

dbo_plugin_sdk::export_engine!(Redis);
