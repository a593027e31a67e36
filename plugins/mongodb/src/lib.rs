//! The MongoDB engine of db-operator (also for Amazon DocumentDB on the amazon backend).
//!
//! Pure functions from the host's request to pod specs: the work itself (create or update the
//! user, `mongodump` to S3, `mongorestore` from it) is done by the entrypoint scripts of the
//! image built from `deploy/images/mongodb/`, configured only by the env and files declared in
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
    "ghcr.io/db-operator-rs/mongodb-tools:",
    env!("CARGO_PKG_VERSION")
);

pub const DATABASE_KEY: &str = "MONGO_DATABASE";
pub const USER_KEY: &str = "MONGO_USER";
pub const PASSWORD_KEY: &str = "MONGO_PASSWORD";
/// Extra key with a `mongodb://` connection string for the app.
pub const URI_KEY: &str = "MONGODB_URI";
/// Length of generated passwords. MongoDB has no practical limit; DocumentDB takes up to 100
/// characters, so this fits both.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Mongodb;

impl Engine for Mongodb {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "mongodb",
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
        let options = jobs::instance_options(instance)?;
        let name = names::server_name(database);
        let auth_source = jobs::user_database(instance).unwrap_or("{database}");
        let mut query = format!("authSource={auth_source}");
        let extra = jobs::uri_options(instance, &options, false);
        if !extra.is_empty() {
            query = format!("{query}&{extra}");
        }
        Ok(CredentialLayout {
            database_name: name.clone(),
            user_name: name,
            database_key: DATABASE_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(
                URI_KEY.to_string(),
                format!("mongodb://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}?{query}"),
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
        // DbRestore has no options of its own: whether to drop first is the Database's choice.
        let (options, diagnostics) = DatabaseOptions::read(&request.database);
        PluginError::from_diagnostics(diagnostics)?;
        jobs::restore(request, &options)
    }
}

/// Everything the engine has to say about a Database (not its instance, which the host
/// validates on its own).
fn database_diagnostics(database: &Database) -> (DatabaseOptions, Vec<Diagnostic>) {
    let (options, mut diagnostics) = DatabaseOptions::read(database);
    if !database.extensions.is_empty() {
        diagnostics.push(Diagnostic::error(
            "spec.extensions",
            "MongoDB has no extensions; remove spec.extensions",
        ));
    }
    if database.schema.is_some() {
        diagnostics.push(Diagnostic::error(
            "spec.commission.schema",
            "the mongodb engine does not apply schemas; create collections, indexes and \
             validators from your application and remove spec.commission.schema",
        ));
    }
    let name = names::server_name(database);
    if name != format!("{}-{}", database.namespace, database.name) {
        diagnostics.push(Diagnostic::warning(
            "metadata.name",
            format!(
                "the database and its user are named {name:?} on the server: db-operator names \
                 MongoDB databases in lower-case [a-z0-9_-], at most {} bytes",
                names::MAX_DATABASE_BYTES
            ),
        ));
    }
    (options, diagnostics)
}

dbo_plugin_sdk::export_engine!(Mongodb);
