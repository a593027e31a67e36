//! `Database`: one database and its user on a `DbInstance`.

use k8s_openapi::api::core::v1::{ResourceRequirements, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalRef, PluginStatus};
use crate::schema::{CRON_PATTERN, preserve_unknown_object};

/// A database and a user owning it, created on the server of `spec.instance`; the credentials land in the Secret `spec.secretName` of this namespace.
// clippy reads the repeated `type_ = "string"` of kube's printcolumn lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kci.rocks",
    version = "v1alpha1",
    kind = "Database",
    plural = "databases",
    shortname = "db",
    category = "db-operator",
    namespaced,
    status = "DatabaseStatus",
    derive = "PartialEq",
    doc = "A database and its user on a DbInstance, with generated credentials, optional commissioning and scheduled backups.",
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.instance"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Protected",
        type_ = "boolean",
        json_path = ".spec.deletionProtected"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Name of the (cluster-scoped) DbInstance to create the database on, e.g. `prod-postgres`.
    pub instance: String,

    /// Name of the Secret, in this namespace, that receives the database name, user and generated password (the key names depend on the engine). Example: `app-db-credentials`.
    pub secret_name: String,

    /// Keep the database and user on the server when this resource is deleted, whatever `dropOnDelete` says. Default: `false`.
    #[serde(default)]
    pub deletion_protected: bool,

    /// Drop the database and user on the server when this resource is deleted. Takes effect only with `deletionProtected: false`; by default data is kept. Default: `false`.
    #[serde(default)]
    pub drop_on_delete: bool,

    /// Engine extensions to enable in the database, e.g. `[pgcrypto, uuid-ossp]` for postgres. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,

    /// Scheduled backups of this database to the storage of its DbInstance (`spec.backup` there). Default: no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<DatabaseBackup>,

    /// What the commissioning Job sets up beyond database and user. Default: nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Commission>,

    /// Engine-specific settings of this database, checked by the engine plugin (`db-operator plugin inspect <engine>` prints their schema). Example for postgres: `{dropPublicSchema: true}`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub options: Option<serde_json::Value>,
}

/// The backup CronJob of a Database and the pod settings of its Jobs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBackup {
    /// Run scheduled backups. Default: `false`.
    #[serde(default)]
    pub enable: bool,

    /// Schedule in 5-field cron syntax (minute hour day-of-month month day-of-week, UTC) or a macro such as `@daily`. Example: `0 3 * * *` (03:00 every day). Required when `enable` is `true`.
    #[serde(default)]
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub cron: String,

    /// Extra volumes for the backup pod, e.g. a Secret with a client certificate. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,

    /// Where the backup container mounts `volumes`; each `name` must be one of `volumes`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,

    /// A PersistentVolumeClaim mounted as scratch space for dumps larger than the pod's disk. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PvcMount>,

    /// Group id that owns mounted volumes (`securityContext.fsGroup` of the pod), e.g. `1000`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub fs_group: Option<i64>,

    /// Name of the backup container, e.g. `postgres-dump`. Default: chosen by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,

    /// CPU and memory of the backup container, e.g. `{requests: {cpu: 100m, memory: 256Mi}}`. Default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// ServiceAccount the backup pod runs as, e.g. one annotated for IRSA. Default: the operator-managed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// A PersistentVolumeClaim mounted into the backup container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcMount {
    /// Name of the PersistentVolumeClaim in this namespace, e.g. `backup-scratch`.
    pub claim_name: String,

    /// Absolute path where the claim is mounted, e.g. `/backup`.
    pub mount_path: String,
}

/// Commissioning beyond database, user and grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Commission {
    /// A schema to apply (migrations, index templates, ... as the engine defines). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaSpec>,
}

/// A versioned schema kept in a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSpec {
    /// ConfigMap in this namespace holding the schema files, in the layout the engine documents.
    pub config_map_ref: LocalRef,

    /// Schema version to roll forward to, starting at 1. Raising it runs a new commissioning Job.
    #[schemars(range(min = 1))]
    pub version: u32,
}

/// What the operator last observed about the Database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// `metadata.generation` the status describes; older means the operator has not caught up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready`, `Commissioned`, `BackupScheduled`, `LastBackupSucceeded`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Short human-readable state, e.g. `Ready` or `Commissioning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// Name of the database on the server (engine naming rules applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// Name of the user on the server (engine naming rules applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// The engine plugin that rendered this Database's Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<PluginStatus>,

    /// Outcome of the most recent backup Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupOutcome>,

    /// `spec.commission.schema.version` of the last commissioning Job that succeeded. A lower
    /// version in the spec is refused: schemas only roll forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
}

/// The result of one backup run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupOutcome {
    /// When the backup finished (RFC 3339), e.g. `2024-05-01T03:00:42Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub time: Option<String>,

    /// Object key of the backup relative to the bucket, e.g. `prod/app/app-2024-05-01T03:00:00Z.dump`; usable as `DbRestore.spec.snapshot.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,

    /// Size of the stored backup in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,

    /// Whether the backup Job succeeded.
    #[serde(default)]
    pub succeeded: bool,
}

impl Database {
    /// The namespace, `default` when unset (as `kubectl apply` treats a manifest without one).
    pub fn namespace_or_default(&self) -> String {
        self.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned())
    }
}
