//! The Elasticsearch (and OpenSearch) engine of db-operator.
//!
//! A Database is an index prefix on a cluster: its user has a role with every index privilege on
//! the indices `<prefix>` and `<prefix>_*` ([`names`]), commissioning applies the index and
//! component templates of the Database's schema ConfigMap, backups are snapshots the cluster
//! writes into an S3 snapshot repository, and restores bring a snapshot's indices back. The work
//! is done by the entrypoint scripts of the image built from `deploy/images/elasticsearch/`,
//! configured only by the env and files declared in [`jobs`].
//!
//! # Schema ConfigMap layout
//!
//! With `spec.commission.schema`, every key of the ConfigMap is one template body, applied in
//! this order at version `spec.commission.schema.version`:
//!
//! 1. `<name>.component-template.json`, in key order: `PUT _component_template/<prefix>_<name>`;
//! 2. `<name>.index-template.json`, in key order: `PUT _index_template/<prefix>_<name>`, where
//!    `composed_of` entries naming a component template of the same ConfigMap by its `<name>`
//!    are rewritten to `<prefix>_<name>`; then the template's `mappings` are put on the
//!    existing indices it matches, so added fields reach them too.
//!
//! `<name>` is lower-case `[a-z0-9][a-z0-9._-]*`. Every `index_patterns` entry and alias of an
//! index template must be `<prefix>` or start with `<prefix>_`; the Job refuses the whole
//! version, naming the key, otherwise, before applying anything. Other keys are refused too.
//! Snapshots are not continuous point-in-time recovery: a restore brings back the newest
//! snapshot at or before the requested time.

use dbo_plugin_sdk::{
    BackupRequest, Capability, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
    EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
};

pub mod jobs;
pub mod names;
pub mod options;

use options::InstanceOptions;

/// The one image all roles use; its tag follows this crate's version.
pub const IMAGE: &str = concat!(
    "ghcr.io/db-operator-rs/elasticsearch-tools:",
    env!("CARGO_PKG_VERSION")
);

/// Credentials Secret keys.
pub const DATABASE_KEY: &str = "ES_INDEX_PREFIX";
pub const USER_KEY: &str = "ES_USER";
pub const PASSWORD_KEY: &str = "ES_PASSWORD";
/// Extra key with the cluster's base URL.
pub const URL_KEY: &str = "ES_URL";
/// Length of generated passwords; Elasticsearch wants at least 6 characters.
pub const PASSWORD_LENGTH: u32 = 32;

pub struct Elasticsearch;

impl Engine for Elasticsearch {
    fn describe() -> EngineInfo {
        EngineInfo::single_image(
            "elasticsearch",
            env!("CARGO_PKG_VERSION"),
            vec![
                Capability::Backup,
                Capability::Commission,
                Capability::Restore,
                Capability::SchemaRollForward,
            ],
            IMAGE,
            options::schema().to_string(),
        )
    }

    fn validate(instance: &Instance, database: Option<&Database>) -> Vec<Diagnostic> {
        match database {
            None => InstanceOptions::read(instance).1,
            Some(database) => database_diagnostics(database),
        }
    }

    fn credentials(
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, PluginError> {
        jobs::instance_options(instance)?;
        let prefix = names::index_prefix(database);
        // `{host}` and `{port}` are the instance's, as the host fills them in.
        let scheme = if instance.tls { "https" } else { "http" };
        Ok(CredentialLayout {
            database_name: prefix.clone(),
            user_name: prefix,
            database_key: DATABASE_KEY.to_string(),
            user_key: USER_KEY.to_string(),
            password_key: PASSWORD_KEY.to_string(),
            password_length: PASSWORD_LENGTH,
            templates: vec![(URL_KEY.to_string(), format!("{scheme}://{{host}}:{{port}}"))],
        })
    }

    fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
        jobs::backup(request)
    }

    fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
        let options = jobs::instance_options(&request.instance)?;
        PluginError::from_diagnostics(database_diagnostics(&request.database))?;
        jobs::commission(request, &options).map(Some)
    }

    fn restore(request: &RestoreRequest) -> Result<JobSpec, PluginError> {
        jobs::restore(request)
    }
}

/// Everything the engine has to say about a Database (not its instance, which the host
/// validates on its own).
fn database_diagnostics(database: &Database) -> Vec<Diagnostic> {
    let mut diagnostics = options::database_diagnostics(database);
    let prefix = names::index_prefix(database);
    if prefix
        != format!(
            "{}{}{}",
            database.namespace,
            names::SEPARATOR,
            database.name
        )
    {
        diagnostics.push(Diagnostic::warning(
            "metadata.name",
            format!(
                "the Database's indices are named {prefix:?} and {prefix}_*: index names are \
                 lower-case and this engine keeps prefixes to {} bytes",
                names::MAX_PREFIX_BYTES
            ),
        ));
    }
    diagnostics
}

dbo_plugin_sdk::export_engine!(Elasticsearch);
