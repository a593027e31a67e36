//! The inputs of the suite: a realistic request for every export, carrying canary Secret
//! references and a canary password, so any secret that ends up in output can be recognised.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbo_engine::{
    AccessKeySecret, AdminSecret, BackendKind, BackupRequest, CallError, CommissionRequest,
    CredentialLayout, CredentialRefs, Database, Diagnostic, Engine, EngineInfo, Instance, JobSpec,
    RestoreRequest, S3Auth, S3Target, Snapshot, Storage,
};
use rand::Rng;
use rand::distr::Alphanumeric;

pub const CREDENTIALS_SECRET: &str = "dbo-canary-credentials";
pub const S3_SECRET: &str = "dbo-canary-s3";
pub const ADMIN_SECRET: &str = "dbo-canary-admin";
pub const PASSWORD_PREFIX: &str = "dbo-canary-password-";
pub const NAMESPACE: &str = "dbo-conformance";
pub const INSTANCE: &str = "conformance";
pub const DATABASE: &str = "app";

pub fn instance(engine: &str, options: &str) -> Instance {
    Instance {
        name: INSTANCE.into(),
        engine: engine.into(),
        backend: BackendKind::Generic,
        host: "db.conformance.svc.cluster.local".into(),
        port: 5432,
        backup_host: "db-replica.conformance.svc.cluster.local".into(),
        region: None,
        tls: false,
        tls_skip_verify: false,
        monitoring: false,
        options: options.into(),
    }
}

pub fn database() -> Database {
    Database {
        namespace: NAMESPACE.into(),
        name: DATABASE.into(),
        extensions: Vec::new(),
        schema: None,
        options: "{}".into(),
    }
}

pub fn refs(layout: Option<&CredentialLayout>) -> CredentialRefs {
    let key = |k: Option<&String>, default: &str| k.cloned().unwrap_or_else(|| default.into());
    CredentialRefs {
        secret_name: CREDENTIALS_SECRET.into(),
        database_key: key(layout.map(|l| &l.database_key), "DBO_CANARY_DATABASE"),
        user_key: key(layout.map(|l| &l.user_key), "DBO_CANARY_USER"),
        password_key: key(layout.map(|l| &l.password_key), "DBO_CANARY_PASSWORD"),
    }
}

/// S3 storage with an access-key Secret, or (for engines whose servers hold their own S3
/// credentials) ambient credentials.
pub fn s3_with(ambient: bool) -> Storage {
    match s3() {
        Storage::S3(t) if ambient => Storage::S3(S3Target {
            auth: S3Auth::Ambient,
            ..t
        }),
        other => other,
    }
}

pub fn s3() -> Storage {
    Storage::S3(S3Target {
        bucket: "dbo-conformance-backups".into(),
        prefix: "conformance".into(),
        region: Some("eu-central-1".into()),
        endpoint: None,
        auth: S3Auth::AccessKey(AccessKeySecret {
            name: S3_SECRET.into(),
            access_key_id_key: "DBO_CANARY_ACCESS_KEY_ID".into(),
            secret_access_key_key: "DBO_CANARY_SECRET_ACCESS_KEY".into(),
        }),
    })
}

pub fn backup(instance: &Instance, database: &Database, refs: &CredentialRefs) -> BackupRequest {
    BackupRequest {
        instance: instance.clone(),
        database: database.clone(),
        credentials: refs.clone(),
        storage: s3_with(false),
        container_name: None,
    }
}

pub fn commission(
    instance: &Instance,
    database: &Database,
    refs: &CredentialRefs,
) -> CommissionRequest {
    CommissionRequest {
        instance: instance.clone(),
        database: database.clone(),
        credentials: refs.clone(),
        admin: AdminSecret {
            name: ADMIN_SECRET.into(),
        },
    }
}

pub fn restore(
    instance: &Instance,
    database: &Database,
    refs: &CredentialRefs,
    snapshot: Snapshot,
) -> RestoreRequest {
    RestoreRequest {
        instance: instance.clone(),
        database: database.clone(),
        credentials: refs.clone(),
        storage: s3(),
        snapshot,
    }
}

/// The manifests a user would apply for the sample: what the renderer gets.
pub fn manifests_yaml(
    engine: &str,
    options: &serde_json::Value,
    database_options: Option<&serde_json::Value>,
    ambient: bool,
    backup: bool,
    restore: bool,
) -> String {
    let options = serde_json::to_string(options).unwrap_or_else(|_| "{}".into());
    let database_options = database_options
        .and_then(|o| serde_json::to_string(o).ok())
        .unwrap_or_else(|| "{}".into());
    let auth = if ambient {
        "ambient: {}".to_string()
    } else {
        format!(
            "accessKeySecret:\n          name: {S3_SECRET}\n          accessKeyIdKey: \
             DBO_CANARY_ACCESS_KEY_ID\n          secretAccessKeyKey: DBO_CANARY_SECRET_ACCESS_KEY"
        )
    };
    let mut yaml = format!(
        r#"apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: {INSTANCE}
spec:
  engine: {engine:?}
  adminSecretRef:
    namespace: {NAMESPACE}
    name: {ADMIN_SECRET}
  generic:
    host: db.conformance.svc.cluster.local
    port: 5432
    backupHost: db-replica.conformance.svc.cluster.local
  backup:
    s3:
      bucket: dbo-conformance-backups
      prefix: conformance
      region: eu-central-1
      auth:
        {auth}
  options: {options}
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: {DATABASE}
  namespace: {NAMESPACE}
spec:
  instance: {INSTANCE}
  secretName: {CREDENTIALS_SECRET}
  options: {database_options}
  backup:
    enable: {backup}
    cron: "15 3 * * *"
"#
    );
    if restore {
        yaml.push_str(&format!(
            r#"---
apiVersion: kci.rocks/v1alpha1
kind: DbRestore
metadata:
  name: {DATABASE}-restore
  namespace: {NAMESPACE}
spec:
  database: {DATABASE}
  snapshot:
    latest: true
"#
        ));
    }
    yaml
}

/// Passwords that are recognisable anywhere in output: the same canary for a given seed, so
/// two renders of one input can be compared byte for byte.
pub struct CanaryPasswords {
    pub canary: String,
}

impl CanaryPasswords {
    pub fn new() -> Self {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        Self {
            canary: format!("{PASSWORD_PREFIX}{random}"),
        }
    }
}

impl dbo_render::PasswordSource for CanaryPasswords {
    fn generate(&mut self, _length: usize) -> String {
        self.canary.clone()
    }
}

/// The plugin, timing every call by export for the figures.
pub struct Timed<'a> {
    pub engine: &'a dyn Engine,
    pub times: Mutex<BTreeMap<&'static str, Vec<Duration>>>,
}

impl<'a> Timed<'a> {
    pub fn new(engine: &'a dyn Engine) -> Self {
        Self {
            engine,
            times: Mutex::new(BTreeMap::new()),
        }
    }

    fn time<T>(&self, export: &'static str, call: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = call();
        let took = start.elapsed();
        if let Ok(mut times) = self.times.lock() {
            times.entry(export).or_default().push(took);
        }
        out
    }
}

impl Engine for Timed<'_> {
    fn describe(&self) -> Result<EngineInfo, CallError> {
        self.time("describe", || self.engine.describe())
    }
    fn validate(
        &self,
        instance: &Instance,
        database: Option<&Database>,
    ) -> Result<Vec<Diagnostic>, CallError> {
        self.time("validate", || self.engine.validate(instance, database))
    }
    fn credentials(
        &self,
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, CallError> {
        self.time("credentials", || {
            self.engine.credentials(instance, database)
        })
    }
    fn backup(&self, request: &BackupRequest) -> Result<JobSpec, CallError> {
        self.time("backup", || self.engine.backup(request))
    }
    fn commission(&self, request: &CommissionRequest) -> Result<Option<JobSpec>, CallError> {
        self.time("commission", || self.engine.commission(request))
    }
    fn restore(&self, request: &RestoreRequest) -> Result<JobSpec, CallError> {
        self.time("restore", || self.engine.restore(request))
    }
}

/// Serves one engine under its own name to the renderer.
pub struct One<'a> {
    pub name: String,
    pub engine: &'a dyn Engine,
}

impl dbo_render::Engines for One<'_> {
    fn engine(&self, name: &str) -> Option<&dyn Engine> {
        (name == self.name).then_some(self.engine)
    }
    fn names(&self) -> Vec<String> {
        vec![self.name.clone()]
    }
}
