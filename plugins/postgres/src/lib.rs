//! The PostgreSQL engine of db-operator.
//!
//! Pure functions from the host's request to pod specs: the work itself (create role and
//! database, `pg_dump` to S3, `pg_restore` from it) is done by the entrypoint scripts of the
//! image built from `deploy/images/postgres/`, configured only by the env and files declared in
//! [`jobs`].

use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
    EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
};

pub mod jobs;
pub mod names;
pub mod options;

use options::{DatabaseOptions, InstanceOptions};

/// The one image all roles use; its tag follows this crate's version.
pub const IMAGE: &str = concat!(
    "ghcr.io/db-operator-rs/postgres-tools:",
    env!("CARGO_PKG_VERSION")
);

/// Secret keys of the original operator, so existing Secrets and apps keep working.
pub const DATABASE_KEY: &str = "POSTGRES_DB";
pub const USER_KEY: &str = "POSTGRES_USER";
pub const PASSWORD_KEY: &str = "POSTGRES_PASSWORD";
/// Extra key with a libpq connection URI.
pub const URL_KEY: &str = "DATABASE_URL";
/// Length of generated passwords; PostgreSQL itself has no practical limit.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Postgres;

impl Engine for Postgres {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "postgres",
            env!("CARGO_PKG_VERSION"),
            vec![
                Capability::Backup,
                Capability::Commission,
                Capability::Restore,
            ],
            IMAGE,
            options::schema().to_string(),
        )
    }

    fn validate(instance: &Instance, database: Option<&Database>) -> Vec<Diagnostic> {
        match database {
            None => InstanceOptions::read(instance).1,
            Some(database) => database_diagnostics(instance, database).1,
        }
    }

    fn credentials(
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, PluginError> {
        let (options, diagnostics) = InstanceOptions::read(instance);
        PluginError::from_diagnostics(diagnostics)?;
        let name = names::server_name(database);
        let query = jobs::url_query(options.effective_ssl_mode(instance));
        Ok(CredentialLayout {
            database_name: name.clone(),
            user_name: name,
            database_key: DATABASE_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(
                URL_KEY.to_string(),
                format!("postgresql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}{query}"),
            )],
        })
    }

    fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
        jobs::backup(request)
    }

    fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
        let (options, diagnostics) = database_diagnostics(&request.instance, &request.database);
        PluginError::from_diagnostics(diagnostics)?;
        jobs::commission(request, &options).map(Some)
    }

    fn restore(request: &RestoreRequest) -> Result<JobSpec, PluginError> {
        jobs::restore(request)
    }
}

/// Everything the engine has to say about a Database (not its instance, which the host
/// validates on its own).
fn database_diagnostics(
    instance: &Instance,
    database: &Database,
) -> (DatabaseOptions, Vec<Diagnostic>) {
    let (options, mut diagnostics) = DatabaseOptions::read(instance, database);
    if database.schema.is_some() {
        diagnostics.push(Diagnostic::error(
            "spec.commission.schema",
            "the postgres engine does not apply schemas yet; run migrations from your \
             application and remove spec.commission.schema",
        ));
    }
    let name = names::server_name(database);
    if name != format!("{}-{}", database.namespace, database.name) {
        diagnostics.push(Diagnostic::warning(
            "metadata.name",
            format!(
                "the database and its user are named {name:?} on the server: PostgreSQL names \
                 are lower-case [a-z0-9_-] and at most {} bytes",
                names::MAX_IDENTIFIER_BYTES
            ),
        ));
    }
    (options, diagnostics)
}

dbo_plugin_sdk::export_engine!(Postgres);
