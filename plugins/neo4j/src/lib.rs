//! The Neo4j engine of db-operator.
//!
//! Pure functions from the host's request to pod specs: the work itself (a user, and on
//! Enterprise Edition a database and a role, with `cypher-shell`; online backups with
//! `neo4j-admin database backup` uploaded to S3; restores by seeding the database from that
//! backup) is done by the entrypoint scripts of the image built from `deploy/images/neo4j/`,
//! configured only by the env and files declared in [`jobs`].
//!
//! The instance option `edition` (required) decides what is possible: Community Edition has a
//! single user database (`neo4j`) and no roles, and no online backup, so its Databases get a
//! user only, and backup and restore are refused with the reason.

use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
    EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
};

pub mod jobs;
pub mod names;
pub mod options;

use options::{DatabaseOptions, Edition, InstanceOptions};

/// The one image all roles use; its tag follows this crate's version.
pub const IMAGE: &str = concat!(
    "ghcr.io/db-operator-rs/neo4j-tools:",
    env!("CARGO_PKG_VERSION")
);

/// Secret keys named as the Neo4j drivers and `cypher-shell` read them from the environment,
/// so the Secret works as an application's `envFrom` as it is.
pub const DATABASE_KEY: &str = "NEO4J_DATABASE";
pub const USER_KEY: &str = "NEO4J_USERNAME";
pub const PASSWORD_KEY: &str = "NEO4J_PASSWORD";
/// Extra key with the server's Bolt URI (`neo4j://`, `neo4j+s://` or `neo4j+ssc://`).
pub const URI_KEY: &str = "NEO4J_URI";
/// Length of generated passwords; well above Neo4j's default minimum of 8.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Neo4j;

impl Engine for Neo4j {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "neo4j",
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
        let options = jobs::instance_options(instance)?;
        Ok(CredentialLayout {
            database_name: database_name(options.edition, database),
            user_name: names::user_name(database),
            database_key: DATABASE_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(
                URI_KEY.to_string(),
                format!("{}://{{host}}:{{port}}", jobs::scheme(instance)),
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

/// The database a Database's user works in: the only user database on Community Edition,
/// one of its own on Enterprise Edition.
pub fn database_name(edition: Option<Edition>, database: &Database) -> String {
    match edition {
        Some(Edition::Enterprise) => names::enterprise_database_name(database),
        Some(Edition::Community) | None => names::COMMUNITY_DATABASE.to_string(),
    }
}

/// Everything the engine has to say about a Database (not its instance, which the host
/// validates on its own; when the instance's edition is unreadable, the checks that depend on
/// it are skipped).
fn database_diagnostics(
    instance: &Instance,
    database: &Database,
) -> (DatabaseOptions, Vec<Diagnostic>) {
    let edition = InstanceOptions::read(instance).0.edition;
    let (options, mut diagnostics) = DatabaseOptions::read(edition, database);
    for (i, extension) in database.extensions.iter().enumerate() {
        diagnostics.push(Diagnostic::error(
            format!("spec.extensions[{i}]"),
            format!(
                "Neo4j has no per-database extensions; install {extension:?} as a plugin of the \
                 server (e.g. NEO4J_PLUGINS) and remove it here"
            ),
        ));
    }
    if database.schema.is_some() {
        diagnostics.push(Diagnostic::error(
            "spec.commission.schema",
            "the neo4j engine does not apply schemas; create indexes and constraints from your \
             application (the Database's user may manage them) and remove spec.commission.schema",
        ));
    }
    let user = names::user_name(database);
    if user != format!("{}_{}", database.namespace, database.name) {
        diagnostics.push(Diagnostic::warning(
            "metadata.name",
            format!(
                "the Database's user is named {user:?} on the server: Neo4j user names here are \
                 letters, digits and _, starting with a letter, at most {} characters",
                names::MAX_USER_NAME
            ),
        ));
    }
    match edition {
        Some(Edition::Community) => diagnostics.push(Diagnostic::warning(
            "spec.instance",
            format!(
                "DbInstance {} is Neo4j Community Edition: this Database's user {user:?} works \
                 in the instance's only user database, {:?}, shared with every other Database \
                 of the instance, and Community Edition has no roles, so every user has full \
                 access to the server; use Enterprise Edition for a database and a role per \
                 Database",
                instance.name,
                names::COMMUNITY_DATABASE
            ),
        )),
        Some(Edition::Enterprise) => {
            let name = names::enterprise_database_name(database);
            if name != format!("{}-{}", database.namespace, database.name) {
                diagnostics.push(Diagnostic::warning(
                    "metadata.name",
                    format!(
                        "the database is named {name:?} on the server: Neo4j database names are \
                         lower-case a-z, 0-9, . and -, start with a letter (not system) and \
                         have 3 to {} characters",
                        names::MAX_DATABASE_NAME
                    ),
                ));
            }
        }
        None => {}
    }
    (options, diagnostics)
}

dbo_plugin_sdk::export_engine!(Neo4j);
