//! `kci:engine@0.1.0` (`wit/v0.1`) and its conversions to and from the internal model.

use dbo_engine as model;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use crate::sandbox::{LogLevel, State};

wasmtime::component::bindgen!({
    world: "engine-plugin",
    path: "../../wit/v0.1",
});

use exports::kci::engine::engine::Guest;
use kci::engine::types as wit;

pub(crate) const VERSION: &str = "0.1.0";

pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    EnginePlugin::add_to_linker::<State, HasSelf<State>>(linker, |state| state)
}

impl kci::engine::types::Host for State {}

impl kci::engine::host::Host for State {
    fn log(&mut self, level: kci::engine::host::Level, message: String) {
        use kci::engine::host::Level;
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.log(level, &message);
    }
}

fn guest(plugin: &EnginePlugin) -> &Guest {
    plugin.kci_engine_engine()
}

pub(crate) fn describe(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
) -> wasmtime::Result<model::EngineInfo> {
    Ok(guest(plugin).call_describe(store)?.into())
}

pub(crate) fn validate(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
    instance: &model::Instance,
    database: Option<&model::Database>,
) -> wasmtime::Result<Vec<model::Diagnostic>> {
    let database = database.map(wit::Database::from);
    let diagnostics = guest(plugin).call_validate(store, &instance.into(), database.as_ref())?;
    Ok(diagnostics.into_iter().map(Into::into).collect())
}

pub(crate) fn credentials(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
    instance: &model::Instance,
    database: &model::Database,
) -> wasmtime::Result<Result<model::CredentialLayout, model::PluginError>> {
    let answer = guest(plugin).call_credentials(store, &instance.into(), &database.into())?;
    Ok(answer.map(Into::into).map_err(Into::into))
}

pub(crate) fn backup(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
    request: &model::BackupRequest,
) -> wasmtime::Result<Result<model::JobSpec, model::PluginError>> {
    let answer = guest(plugin).call_backup(store, &request.into())?;
    Ok(answer.map(Into::into).map_err(Into::into))
}

pub(crate) fn commission(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
    request: &model::CommissionRequest,
) -> wasmtime::Result<Result<Option<model::JobSpec>, model::PluginError>> {
    let answer = guest(plugin).call_commission(store, &request.into())?;
    Ok(answer.map(|job| job.map(Into::into)).map_err(Into::into))
}

pub(crate) fn restore(
    plugin: &EnginePlugin,
    store: &mut Store<State>,
    request: &model::RestoreRequest,
) -> wasmtime::Result<Result<model::JobSpec, model::PluginError>> {
    let answer = guest(plugin).call_restore(store, &request.into())?;
    Ok(answer.map(Into::into).map_err(Into::into))
}

// Requests: internal model -> v0.1.

impl From<&model::Instance> for wit::Instance {
    fn from(instance: &model::Instance) -> Self {
        Self {
            name: instance.name.clone(),
            engine: instance.engine.clone(),
            backend: match instance.backend {
                model::BackendKind::Generic => wit::BackendKind::Generic,
                model::BackendKind::Amazon => wit::BackendKind::Amazon,
                model::BackendKind::Google => wit::BackendKind::Google,
            },
            host: instance.host.clone(),
            port: instance.port,
            backup_host: instance.backup_host.clone(),
            region: instance.region.clone(),
            tls: instance.tls,
            tls_skip_verify: instance.tls_skip_verify,
            monitoring: instance.monitoring,
            options: instance.options.clone(),
        }
    }
}

impl From<&model::Database> for wit::Database {
    fn from(database: &model::Database) -> Self {
        Self {
            namespace: database.namespace.clone(),
            name: database.name.clone(),
            extensions: database.extensions.clone(),
            schema: database.schema.as_ref().map(|schema| wit::SchemaRef {
                config_map: schema.config_map.clone(),
                version: schema.version,
            }),
            options: database.options.clone(),
        }
    }
}

impl From<&model::CredentialRefs> for wit::CredentialRefs {
    fn from(refs: &model::CredentialRefs) -> Self {
        Self {
            secret_name: refs.secret_name.clone(),
            database_key: refs.database_key.clone(),
            user_key: refs.user_key.clone(),
            password_key: refs.password_key.clone(),
        }
    }
}

impl From<&model::Storage> for wit::Storage {
    fn from(storage: &model::Storage) -> Self {
        match storage {
            model::Storage::S3(target) => Self::S3(wit::S3Target {
                bucket: target.bucket.clone(),
                prefix: target.prefix.clone(),
                region: target.region.clone(),
                endpoint: target.endpoint.clone(),
                auth: match &target.auth {
                    model::S3Auth::Irsa(role) => wit::S3Auth::Irsa(role.clone()),
                    model::S3Auth::AccessKey(secret) => {
                        wit::S3Auth::AccessKey(wit::AccessKeySecret {
                            name: secret.name.clone(),
                            access_key_id_key: secret.access_key_id_key.clone(),
                            secret_access_key_key: secret.secret_access_key_key.clone(),
                        })
                    }
                    model::S3Auth::Ambient => wit::S3Auth::Ambient,
                },
            }),
            model::Storage::Gcs(bucket) => Self::Gcs(bucket.clone()),
        }
    }
}

impl From<&model::BackupRequest> for wit::BackupRequest {
    fn from(request: &model::BackupRequest) -> Self {
        Self {
            instance: (&request.instance).into(),
            database: (&request.database).into(),
            credentials: (&request.credentials).into(),
            storage: (&request.storage).into(),
            container_name: request.container_name.clone(),
        }
    }
}

impl From<&model::CommissionRequest> for wit::CommissionRequest {
    fn from(request: &model::CommissionRequest) -> Self {
        Self {
            instance: (&request.instance).into(),
            database: (&request.database).into(),
            credentials: (&request.credentials).into(),
            admin: wit::AdminSecret {
                name: request.admin.name.clone(),
            },
        }
    }
}

impl From<&model::RestoreRequest> for wit::RestoreRequest {
    fn from(request: &model::RestoreRequest) -> Self {
        Self {
            instance: (&request.instance).into(),
            database: (&request.database).into(),
            credentials: (&request.credentials).into(),
            storage: (&request.storage).into(),
            snapshot: match &request.snapshot {
                model::Snapshot::Key(key) => wit::Snapshot::Key(key.clone()),
                model::Snapshot::Latest => wit::Snapshot::Latest,
                model::Snapshot::PointInTime(time) => wit::Snapshot::PointInTime(time.clone()),
            },
        }
    }
}

// Answers: v0.1 -> internal model.

impl From<wit::EngineInfo> for model::EngineInfo {
    fn from(info: wit::EngineInfo) -> Self {
        Self {
            name: info.name,
            version: info.version,
            api_version: info.api_version,
            capabilities: info
                .capabilities
                .into_iter()
                .map(|capability| match capability {
                    wit::Capability::Backup => model::Capability::Backup,
                    wit::Capability::Commission => model::Capability::Commission,
                    wit::Capability::Restore => model::Capability::Restore,
                    wit::Capability::SchemaRollForward => model::Capability::SchemaRollForward,
                })
                .collect(),
            images: info
                .images
                .into_iter()
                .map(|image| model::Image {
                    role: image.role,
                    reference: image.reference,
                })
                .collect(),
            options_schema: info.options_schema,
        }
    }
}

impl From<wit::Diagnostic> for model::Diagnostic {
    fn from(diagnostic: wit::Diagnostic) -> Self {
        Self {
            field: diagnostic.field,
            severity: match diagnostic.severity {
                wit::Severity::Error => model::Severity::Error,
                wit::Severity::Warning => model::Severity::Warning,
            },
            message: diagnostic.message,
        }
    }
}

impl From<wit::CredentialLayout> for model::CredentialLayout {
    fn from(layout: wit::CredentialLayout) -> Self {
        Self {
            database_name: layout.database_name,
            user_name: layout.user_name,
            database_key: layout.database_key,
            user_key: layout.user_key,
            password_key: layout.password_key,
            password_length: layout.password_length,
            templates: layout.templates,
        }
    }
}

impl From<wit::JobSpec> for model::JobSpec {
    fn from(job: wit::JobSpec) -> Self {
        Self {
            pod_spec: job.pod_spec,
            backoff_limit: job.backoff_limit,
            active_deadline_seconds: job.active_deadline_seconds,
        }
    }
}

impl From<wit::PluginError> for model::PluginError {
    fn from(error: wit::PluginError) -> Self {
        match error {
            wit::PluginError::Invalid(diagnostics) => {
                Self::Invalid(diagnostics.into_iter().map(Into::into).collect())
            }
            wit::PluginError::Unsupported(message) => Self::Unsupported(message),
            wit::PluginError::Internal(message) => Self::Internal(message),
        }
    }
}
