//! The pure heart of db-operator: custom resources plus an engine's answers become the
//! complete Kubernetes objects the operator applies.
//!
//! Nothing here does I/O. The engine is any [`dbo_engine::Engine`] (a sandboxed plugin in
//! production, native code in benches); passwords come from a [`PasswordSource`] so tests are
//! deterministic; existing Secrets are inputs so re-rendering keeps what is already there.
//! The same functions serve `db-operator render` and, per object, the controllers.

mod model;
mod names;
mod objects;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet};

use dbo_api::manifest::Manifests;
use dbo_api::{Database, DbInstance, DbRestore};
use dbo_engine::{CallError, Engine, Severity};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};

/// Names and label values the controllers need to find rendered objects again.
pub use names::{backup_cron_job as backup_cron_job_name, label_value};
pub use objects::{
    LABEL_COMPONENT, LABEL_DATABASE, LABEL_DATABASE_NAMESPACE, LABEL_INSTANCE, LABEL_MANAGED_BY,
};
pub use policy::Policy;

/// Where generated passwords come from. The host generates them, never a plugin.
pub trait PasswordSource {
    fn generate(&mut self, length: usize) -> String;
}

/// Engines by the name users write in `DbInstance.spec.engine`.
pub trait Engines {
    fn engine(&self, name: &str) -> Option<&dyn Engine>;
    /// Names for "did you mean" messages.
    fn names(&self) -> Vec<String>;
}

impl<E: Engine> Engines for BTreeMap<String, E> {
    fn engine(&self, name: &str) -> Option<&dyn Engine> {
        self.get(name).map(|e| e as &dyn Engine)
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Host settings that shape every rendered object.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub policy: Policy,
    /// `activeDeadlineSeconds` of backup and restore Jobs when the engine sets none.
    pub default_job_deadline_seconds: i64,
    /// `backoffLimit` when the engine sets none.
    pub default_backoff_limit: i32,
    /// CronJob history limits.
    pub history_limit: i32,
    /// How late a missed backup may still start.
    pub starting_deadline_seconds: i64,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            default_job_deadline_seconds: 3600,
            default_backoff_limit: 3,
            history_limit: 3,
            starting_deadline_seconds: 300,
        }
    }
}

/// Everything rendered for one input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub secrets: Vec<Secret>,
    /// Copies of schema ConfigMaps beside the admin Secret, for the commissioning Job.
    pub config_maps: Vec<ConfigMap>,
    pub service_accounts: Vec<ServiceAccount>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    /// Engine warnings, each naming its object and field.
    pub warnings: Vec<String>,
    /// What the credentials Secret of a rendered Database holds; set by [`render_database`].
    pub credentials: Option<CredentialsInfo>,
}

/// The part of a credentials Secret the host owns: a controller applies exactly these keys, so
/// keys a user added stay theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsInfo {
    /// Name of the Secret, in the Database's namespace.
    pub secret_name: String,
    /// Keys the host writes (database, user, password, connection templates).
    pub keys: Vec<String>,
    /// Database name on the server, as the engine derived it.
    pub database: String,
    /// User name on the server, as the engine derived it.
    pub user: String,
}

impl Rendered {
    fn extend(&mut self, other: Rendered) {
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        // Backup and restore pods of a Database share one IRSA ServiceAccount.
        for sa in other.service_accounts {
            if !self
                .service_accounts
                .iter()
                .any(|s| s.metadata == sa.metadata)
            {
                self.service_accounts.push(sa);
            }
        }
        self.jobs.extend(other.jobs);
        self.cron_jobs.extend(other.cron_jobs);
        self.warnings.extend(other.warnings);
    }

    /// All objects as JSON, in apply order (Secrets and ServiceAccounts before their users).
    pub fn objects(&self) -> Vec<serde_json::Value> {
        fn push<T: serde::Serialize>(out: &mut Vec<serde_json::Value>, items: &[T]) {
            for item in items {
                // k8s-openapi types always serialise; a failure would be a bug in that crate.
                if let Ok(v) = serde_json::to_value(item) {
                    out.push(v);
                }
            }
        }
        let mut out = Vec::new();
        push(&mut out, &self.secrets);
        push(&mut out, &self.config_maps);
        push(&mut out, &self.service_accounts);
        push(&mut out, &self.jobs);
        push(&mut out, &self.cron_jobs);
        out
    }
}

/// Why something could not be rendered. Every variant names the object and, where a user can
/// fix it, the field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{object}: {}", fields(.problems))]
    Invalid {
        object: String,
        problems: Vec<(String, String)>,
    },
    #[error(
        "{object}: spec.instance: DbInstance {instance:?} does not exist; create it or fix the name"
    )]
    UnknownInstance { object: String, instance: String },
    #[error(
        "{object}: spec.database: Database {database:?} does not exist in namespace {namespace:?}; a DbRestore restores into a Database of its own namespace"
    )]
    UnknownDatabase {
        object: String,
        database: String,
        namespace: String,
    },
    /// May appear later: the controllers look for it again.
    #[error(
        "{object}: spec.commission.schema.configMapRef.name: ConfigMap {name:?} does not exist in namespace {namespace:?}; create it with the schema files the engine documents, or fix the name"
    )]
    MissingSchemaConfigMap {
        object: String,
        name: String,
        namespace: String,
    },
    #[error(
        "{object}: spec.engine: no plugin serves engine {engine:?} (available: {available}); install its plugin or fix the name"
    )]
    UnknownEngine {
        object: String,
        engine: String,
        available: String,
    },
    #[error("{object}: {source}")]
    Engine {
        object: String,
        #[source]
        source: CallError,
    },
    #[error("{object}: engine {engine} returned a pod spec the host refuses: {}; this is a bug in the plugin", .violations.join("; "))]
    Policy {
        object: String,
        engine: String,
        violations: Vec<String>,
    },
    #[error(
        "{object}: engine {engine} returned a pod spec that is not valid JSON for a PodSpec: {message}; this is a bug in the plugin"
    )]
    BadPluginOutput {
        object: String,
        engine: String,
        message: String,
    },
}

fn fields(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl RenderError {
    pub(crate) fn invalid(object: String, field: &str, message: &str) -> Self {
        RenderError::Invalid {
            object,
            problems: vec![(field.to_string(), message.to_string())],
        }
    }
}

/// All errors of one render, so a user fixes a file in one go.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct RenderErrors(pub Vec<RenderError>);

/// What rendering one Database needs.
pub struct DatabaseInput<'a> {
    pub database: &'a Database,
    pub instance: &'a DbInstance,
    /// The credentials Secret as it exists now (its values and foreign keys are kept).
    pub existing_secret: Option<&'a Secret>,
    /// The ConfigMap `spec.commission.schema.configMapRef` names, as it exists now (`None`
    /// when it does not exist or the Database has no schema).
    pub schema_config_map: Option<&'a ConfigMap>,
    pub engine: &'a dyn Engine,
}

/// Renders every object of every Database and DbRestore in `manifests`.
pub fn render(
    manifests: &Manifests,
    engines: &dyn Engines,
    passwords: &mut dyn PasswordSource,
) -> Result<Rendered, RenderErrors> {
    render_with(manifests, engines, passwords, &RenderOptions::default())
}

pub fn render_with(
    manifests: &Manifests,
    engines: &dyn Engines,
    passwords: &mut dyn PasswordSource,
    options: &RenderOptions,
) -> Result<Rendered, RenderErrors> {
    let mut out = Rendered::default();
    let mut errors = Vec::new();

    let mut instances = BTreeMap::new();
    // Databases on a broken instance are not reported again as "unknown instance".
    let mut broken = BTreeSet::new();
    for inst in &manifests.instances {
        let name = inst.metadata.name.clone().unwrap_or_default();
        match check_instance(inst, engines) {
            Ok((engine, warnings)) => {
                out.warnings.extend(warnings);
                instances.insert(name, (inst, engine));
            }
            Err(e) => {
                errors.push(e);
                broken.insert(name);
            }
        }
    }

    for db in &manifests.databases {
        let object = db_object(db);
        let Some((instance, engine)) = instances.get(&db.spec.instance) else {
            if !broken.contains(&db.spec.instance) {
                errors.push(RenderError::UnknownInstance {
                    object,
                    instance: db.spec.instance.clone(),
                });
            }
            continue;
        };
        let ns = model::namespace_of(db.metadata.namespace.as_deref());
        let existing = manifests.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(db.spec.secret_name.as_str())
                && model::namespace_of(s.metadata.namespace.as_deref()) == ns
        });
        let schema_config_map = db
            .spec
            .commission
            .as_ref()
            .and_then(|c| c.schema.as_ref())
            .and_then(|schema| {
                manifests.config_maps.iter().find(|c| {
                    c.metadata.name.as_deref() == Some(schema.config_map_ref.name.as_str())
                        && model::namespace_of(c.metadata.namespace.as_deref()) == ns
                })
            });
        let input = DatabaseInput {
            database: db,
            instance,
            existing_secret: existing,
            schema_config_map,
            engine: *engine,
        };
        match render_database(&input, passwords, options) {
            Ok(r) => out.extend(r),
            Err(e) => errors.push(e),
        }
    }

    for restore in &manifests.restores {
        let ns = model::namespace_of(restore.metadata.namespace.as_deref());
        let object = model::object_name("DbRestore", Some(&ns), restore.metadata.name.as_deref());
        let Some(db) = manifests.databases.iter().find(|d| {
            d.metadata.name.as_deref() == Some(restore.spec.database.as_str())
                && model::namespace_of(d.metadata.namespace.as_deref()) == ns
        }) else {
            errors.push(RenderError::UnknownDatabase {
                object,
                database: restore.spec.database.clone(),
                namespace: ns,
            });
            continue;
        };
        let Some((instance, engine)) = instances.get(&db.spec.instance) else {
            // Already reported against the Database.
            continue;
        };
        match render_restore(restore, db, instance, *engine, options) {
            Ok(r) => out.extend(r),
            Err(e) => errors.push(e),
        }
    }

    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RenderErrors(errors))
    }
}

fn db_object(db: &Database) -> String {
    model::object_name(
        "Database",
        Some(&model::namespace_of(db.metadata.namespace.as_deref())),
        db.metadata.name.as_deref(),
    )
}

fn instance_object(inst: &DbInstance) -> String {
    model::object_name("DbInstance", None, inst.metadata.name.as_deref())
}

/// Validates an instance with the host's rules and its engine's; returns the engine serving it.
pub fn check_instance<'e>(
    inst: &DbInstance,
    engines: &'e dyn Engines,
) -> Result<(&'e dyn Engine, Vec<String>), RenderError> {
    let object = instance_object(inst);
    reject_invalid(&object, dbo_api::validate_instance(inst))?;
    let engine = engines
        .engine(&inst.spec.engine)
        .ok_or_else(|| RenderError::UnknownEngine {
            object: object.clone(),
            engine: inst.spec.engine.clone(),
            available: engines.names().join(", "),
        })?;
    let model = model::instance(inst)?;
    let diags = engine
        .validate(&model, None)
        .map_err(|source| RenderError::Engine {
            object: object.clone(),
            source,
        })?;
    let warnings = split_diagnostics(&object, diags)?;
    Ok((engine, warnings))
}

/// The host's own validation of a resource: any finding stops rendering that object.
fn reject_invalid(object: &str, errors: Vec<dbo_api::FieldError>) -> Result<(), RenderError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(RenderError::Invalid {
        object: object.to_string(),
        problems: errors.into_iter().map(|e| (e.field, e.message)).collect(),
    })
}

/// Engine errors stop rendering; warnings are returned, prefixed with their object.
fn split_diagnostics(
    object: &str,
    diags: Vec<dbo_engine::Diagnostic>,
) -> Result<Vec<String>, RenderError> {
    let (errors, warnings): (Vec<_>, Vec<_>) = diags
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(RenderError::Invalid {
            object: object.to_string(),
            problems: errors.into_iter().map(|d| (d.field, d.message)).collect(),
        });
    }
    Ok(warnings
        .into_iter()
        .map(|d| format!("{object}: {}: {}", d.field, d.message))
        .collect())
}

/// Renders the credentials Secret, commissioning Job (+ its copy of the credentials) and,
/// when enabled, the backup CronJob (+ IRSA ServiceAccount) of one Database.
pub fn render_database(
    input: &DatabaseInput<'_>,
    passwords: &mut dyn PasswordSource,
    options: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let object = db_object(input.database);
    reject_invalid(&object, dbo_api::validate_database(input.database))?;
    let instance = model::instance(input.instance)?;
    let mut database = model::database(input.database);
    let engine_err = |source| RenderError::Engine {
        object: object.clone(),
        source,
    };
    check_schema(input, &object)?;
    let mut out = Rendered {
        warnings: split_diagnostics(
            &object,
            input
                .engine
                .validate(&instance, Some(&database))
                .map_err(engine_err)?,
        )?,
        ..Rendered::default()
    };
    let layout = input
        .engine
        .credentials(&instance, &database)
        .map_err(engine_err)?;
    let ctx = objects::Context::new(input, &instance, &database, options);

    let secret = objects::credentials_secret(&ctx, &layout, input.existing_secret, passwords);
    out.credentials = Some(CredentialsInfo {
        secret_name: input.database.spec.secret_name.clone(),
        keys: [&layout.database_key, &layout.user_key, &layout.password_key]
            .into_iter()
            .cloned()
            .chain(layout.templates.iter().map(|(key, _)| key.clone()))
            .collect(),
        database: layout.database_name.clone(),
        user: layout.user_name.clone(),
    });
    let refs = dbo_engine::CredentialRefs {
        secret_name: input.database.spec.secret_name.clone(),
        database_key: layout.database_key.clone(),
        user_key: layout.user_key.clone(),
        password_key: layout.password_key.clone(),
    };

    // Commissioning runs beside the admin Secret with a copy of the app credentials.
    let admin_ns = input.instance.spec.admin_secret_ref.namespace.clone();
    let copy = objects::commission_credentials(&ctx, &secret, &layout, &admin_ns);
    let commission_refs = dbo_engine::CredentialRefs {
        secret_name: copy.metadata.name.clone().unwrap_or_default(),
        ..refs.clone()
    };
    // The engine reads the schema from a copy beside the Job; its name carries the version, so
    // a Job of one version never sees the files of another.
    let schema_copy = match (&mut database.schema, input.schema_config_map) {
        (Some(schema), Some(source)) => {
            let copy = objects::schema_copy(&ctx, source, schema.version, &admin_ns);
            schema.config_map = copy.metadata.name.clone().unwrap_or_default();
            Some(copy)
        }
        _ => None,
    };
    let request = dbo_engine::CommissionRequest {
        instance: instance.clone(),
        database: database.clone(),
        credentials: commission_refs.clone(),
        admin: dbo_engine::AdminSecret {
            name: input.instance.spec.admin_secret_ref.name.clone(),
        },
    };
    if let Some(spec) = input.engine.commission(&request).map_err(engine_err)? {
        let allowed = BTreeSet::from([
            commission_refs.secret_name.clone(),
            request.admin.name.clone(),
        ]);
        let pod = ctx.police(&spec, &allowed)?;
        out.jobs
            .push(objects::commission_job(&ctx, &admin_ns, pod, &spec));
        out.secrets.push(secret);
        out.secrets.push(copy);
        out.config_maps.extend(schema_copy);
    } else {
        out.secrets.push(secret);
    }

    if let Some(backup) = input.database.spec.backup.as_ref().filter(|b| b.enable) {
        let storage = model::storage(input.instance).ok_or_else(|| {
            RenderError::invalid(
                object.clone(),
                "spec.backup.enable",
                &format!(
                    "backups are enabled but DbInstance {} has no spec.backup.s3; configure the instance's storage or set enable: false",
                    instance.name
                ),
            )
        })?;
        let request = dbo_engine::BackupRequest {
            instance: instance.clone(),
            database: database.clone(),
            credentials: refs.clone(),
            storage: storage.clone(),
            container_name: backup.container_name.clone(),
        };
        let spec = input.engine.backup(&request).map_err(engine_err)?;
        let pod = ctx.police(&spec, &objects::storage_secrets(&refs, &storage))?;
        let (pod, sa) = ctx.merge_backup_options(pod, Some(backup), &storage)?;
        out.service_accounts.extend(sa);
        out.cron_jobs
            .push(ctx.backup_cron_job(pod, &spec, &backup.cron));
    }
    Ok(out)
}

/// A schema goes only to engines that apply schemas, only forward, and only from a ConfigMap
/// that exists.
fn check_schema(input: &DatabaseInput<'_>, object: &str) -> Result<(), RenderError> {
    let Some(schema) = input
        .database
        .spec
        .commission
        .as_ref()
        .and_then(|c| c.schema.as_ref())
    else {
        return Ok(());
    };
    let info = input
        .engine
        .describe()
        .map_err(|source| RenderError::Engine {
            object: object.to_string(),
            source,
        })?;
    if !info
        .capabilities
        .contains(&dbo_engine::Capability::SchemaRollForward)
    {
        return Err(RenderError::invalid(
            object.to_string(),
            "spec.commission.schema",
            &format!(
                "engine {} does not apply schemas (its plugin does not declare \
                 schema-roll-forward); remove spec.commission.schema and migrate from the \
                 application",
                info.name
            ),
        ));
    }
    let applied = input
        .database
        .status
        .as_ref()
        .and_then(|s| s.schema_version);
    if let Some(applied) = applied.filter(|applied| schema.version < *applied) {
        return Err(RenderError::invalid(
            object.to_string(),
            "spec.commission.schema.version",
            &format!(
                "version {} is lower than version {applied}, which is already applied; schemas \
                 only roll forward: to undo a change, write the old schema as version {}",
                schema.version,
                applied + 1
            ),
        ));
    }
    if input.schema_config_map.is_none() {
        return Err(RenderError::MissingSchemaConfigMap {
            object: object.to_string(),
            name: schema.config_map_ref.name.clone(),
            namespace: model::namespace_of(input.database.metadata.namespace.as_deref()),
        });
    }
    Ok(())
}

/// Renders the restore Job of one DbRestore into its Database.
pub fn render_restore(
    restore: &DbRestore,
    db: &Database,
    instance: &DbInstance,
    engine: &dyn Engine,
    options: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let ns = model::namespace_of(restore.metadata.namespace.as_deref());
    let object = model::object_name("DbRestore", Some(&ns), restore.metadata.name.as_deref());
    reject_invalid(&object, dbo_api::validate_restore(restore))?;
    let engine_err = |source| RenderError::Engine {
        object: object.clone(),
        source,
    };
    let inst = model::instance(instance)?;
    let database = model::database(db);
    let layout = engine.credentials(&inst, &database).map_err(engine_err)?;
    let storage = model::storage(instance).ok_or_else(|| {
        RenderError::invalid(
            object.clone(),
            "spec.database",
            &format!(
                "DbInstance {} has no spec.backup.s3 to restore from",
                inst.name
            ),
        )
    })?;
    let refs = dbo_engine::CredentialRefs {
        secret_name: db.spec.secret_name.clone(),
        database_key: layout.database_key,
        user_key: layout.user_key,
        password_key: layout.password_key,
    };
    let request = dbo_engine::RestoreRequest {
        instance: inst.clone(),
        database: database.clone(),
        credentials: refs.clone(),
        storage: storage.clone(),
        snapshot: model::snapshot(restore)?,
    };
    let spec = engine.restore(&request).map_err(engine_err)?;
    let input = DatabaseInput {
        database: db,
        instance,
        existing_secret: None,
        schema_config_map: None,
        engine,
    };
    let ctx = objects::Context::new(&input, &inst, &database, options);
    let pod = ctx.police(&spec, &objects::storage_secrets(&refs, &storage))?;
    let (pod, sa) = ctx.merge_backup_options(pod, db.spec.backup.as_ref(), &storage)?;
    Ok(Rendered {
        service_accounts: sa,
        jobs: vec![ctx.restore_job(restore, pod, &spec)],
        ..Rendered::default()
    })
}
