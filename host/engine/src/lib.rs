//! The host's one internal model of what an engine plugin does.
//!
//! Every supported WIT major (`wit/vX.Y/`) gets a bindings module in the plugin runtime that
//! converts into these types, so the renderer and controllers never see a versioned binding.
//! Nothing here knows wasmtime or Kubernetes clients; Kubernetes objects travel as JSON strings
//! exactly as in the contract and are parsed (and policed) by the renderer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Dotted path from the resource root, e.g. `spec.backup.cron`.
    pub field: String,
    pub severity: Severity,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Backup,
    Commission,
    Restore,
    SchemaRollForward,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub role: String,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub capabilities: Vec<Capability>,
    pub images: Vec<Image>,
    /// JSON Schema of the engine-specific options, as a JSON string.
    pub options_schema: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    Generic,
    Amazon,
    Google,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub name: String,
    pub engine: String,
    pub backend: BackendKind,
    pub host: String,
    pub port: u16,
    pub backup_host: String,
    pub region: Option<String>,
    pub tls: bool,
    pub tls_skip_verify: bool,
    pub monitoring: bool,
    /// Engine-specific options as a JSON object string (`{}` when none).
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRef {
    pub config_map: String,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    pub namespace: String,
    pub name: String,
    pub extensions: Vec<String>,
    pub schema: Option<SchemaRef>,
    /// Engine-specific options as a JSON object string (`{}` when none).
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRefs {
    pub secret_name: String,
    pub database_key: String,
    pub user_key: String,
    pub password_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialLayout {
    pub database_name: String,
    pub user_name: String,
    pub database_key: String,
    pub user_key: String,
    pub password_key: String,
    pub password_length: u32,
    /// `(key, template)` pairs; placeholders `{host}`, `{port}`, `{database}`, `{user}`, `{password}`.
    pub templates: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySecret {
    pub name: String,
    pub access_key_id_key: String,
    pub secret_access_key_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum S3Auth {
    Irsa(String),
    AccessKey(AccessKeySecret),
    Ambient,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Target {
    pub bucket: String,
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub auth: S3Auth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Storage {
    S3(S3Target),
    Gcs(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSecret {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    pub instance: Instance,
    pub database: Database,
    pub credentials: CredentialRefs,
    pub storage: Storage,
    pub container_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommissionRequest {
    pub instance: Instance,
    pub database: Database,
    pub credentials: CredentialRefs,
    pub admin: AdminSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Snapshot {
    Key(String),
    Latest,
    PointInTime(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    pub instance: Instance,
    pub database: Database,
    pub credentials: CredentialRefs,
    pub storage: Storage,
    pub snapshot: Snapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// A Kubernetes `PodSpec` as JSON; parsed and policed by the renderer.
    pub pod_spec: String,
    pub backoff_limit: Option<u32>,
    pub active_deadline_seconds: Option<u64>,
}

/// What an engine itself reported as the reason it could not serve a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub enum PluginError {
    #[error("invalid input: {}", join(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("internal plugin error: {0}")]
    Internal(String),
}

fn join(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failure to get an answer from an engine: either the engine answered with an error, or the
/// sandbox stopped it (trap, deadline, memory cap, bad output ...). `Runtime` carries the
/// runtime's own message, which already names the plugin and its digest.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("engine {engine} refused: {error}")]
    Plugin { engine: String, error: PluginError },
    #[error(transparent)]
    Runtime(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// One engine, wherever it runs (a sandboxed component, or native code in tests and benches).
///
/// Implementations must be pure: same input, same output.
pub trait Engine: Send + Sync {
    fn describe(&self) -> Result<EngineInfo, CallError>;
    fn validate(
        &self,
        instance: &Instance,
        database: Option<&Database>,
    ) -> Result<Vec<Diagnostic>, CallError>;
    fn credentials(
        &self,
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, CallError>;
    fn backup(&self, request: &BackupRequest) -> Result<JobSpec, CallError>;
    fn commission(&self, request: &CommissionRequest) -> Result<Option<JobSpec>, CallError>;
    fn restore(&self, request: &RestoreRequest) -> Result<JobSpec, CallError>;
}
