//! The MySQL engine of db-operator, for MySQL 5.7+ and MariaDB 10.3+ servers.
//!
//! Pure functions from the host's request to pod specs: the work itself (create database, user
//! and grant, `mariadb-dump` to S3, replay from it) is done by the entrypoint scripts of the
//! image built from `deploy/images/mysql/`, configured only by the env and files declared in
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
    "ghcr.io/db-operator-rs/mysql-tools:",
    env!("CARGO_PKG_VERSION")
);

/// Secret keys of the original operator, so existing Secrets and apps keep working.
pub const DATABASE_KEY: &str = "DB";
pub const USER_KEY: &str = "USER";
pub const PASSWORD_KEY: &str = "PASSWORD";
/// Extra key with a `mysql://` connection URL.
pub const URL_KEY: &str = "DATABASE_URL";
/// Length of generated passwords; MySQL and MariaDB take up to 80 characters, and 32 letters
/// and digits satisfy the default `validate_password` policy but for its special character.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Mysql;

impl Engine for Mysql {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "mysql",
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
            Some(database) => database_diagnostics(database).1,
        }
    }

    fn credentials(
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, PluginError> {
        let (options, diagnostics) = InstanceOptions::read(instance);
        PluginError::from_diagnostics(diagnostics)?;
        let query = jobs::url_query(options.effective_ssl_mode(instance));
        Ok(CredentialLayout {
            database_name: names::database_name(database),
            user_name: names::user_name(database),
            database_key: DATABASE_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(
                URL_KEY.to_string(),
                format!("mysql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}{query}"),
            )],
        })
    }

    fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
        jobs::backup(request)
    }

    fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
        let (options, diagnostics) = database_diagnostics(&request.database);
        PluginError::from_diagnostics(diagnostics)?;
        jobs::commission(request, &options).map(Some)
    }

    fn restore(request: &RestoreRequest) -> Result<JobSpec, PluginError> {
        jobs::restore(request)
    }
}

/// Everything the engine has to say about a Database (not its instance, which the host
/// validates on its own).
fn database_diagnostics(database: &Database) -> (DatabaseOptions, Vec<Diagnostic>) {
    let (options, mut diagnostics) = DatabaseOptions::read(database);
    if database.schema.is_some() {
        diagnostics.push(Diagnostic::error(
            "spec.commission.schema",
            "the mysql engine does not apply schemas; run migrations from your application and \
             remove spec.commission.schema",
        ));
    }
    for (i, extension) in database.extensions.iter().enumerate() {
        diagnostics.push(Diagnostic::warning(
            format!("spec.extensions[{i}]"),
            format!("MySQL has no extensions, so {extension:?} is ignored; remove spec.extensions"),
        ));
    }
    let database_name = names::database_name(database);
    if names::is_system_database(&database_name) {
        diagnostics.push(Diagnostic::error(
            "metadata.name",
            format!(
                "the database would be named {database_name:?} on the server, which is a \
                 schema of the server itself; rename the Database or move it to another \
                 namespace"
            ),
        ));
    }
    let user_name = names::user_name(database);
    // `-` always becomes `_` (it is not allowed unquoted), so only other changes are news.
    let expected = format!("{}_{}", database.namespace, database.name).replace('-', "_");
    if database_name != expected || user_name != expected {
        let same = if database_name == user_name {
            format!("the database and its user are named {database_name:?} on the server")
        } else {
            format!(
                "the database is named {database_name:?} and its user {user_name:?} on the \
                 server"
            )
        };
        diagnostics.push(Diagnostic::warning(
            "metadata.name",
            format!(
                "{same}: MySQL names here are lower-case [0-9a-z$_], databases at most {} and \
                 users at most {} bytes",
                names::MAX_DATABASE_BYTES,
                names::MAX_USER_BYTES
            ),
        ));
    }
    (options, diagnostics)
}

dbo_plugin_sdk::export_engine!(Mysql);
