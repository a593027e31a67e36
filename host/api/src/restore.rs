//! `DbRestore`: a one-off restore of a backup into a Database.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Restores one backup into the database of a Database in the same namespace with a Job that runs once; delete and re-create the resource to restore again.
// clippy reads the repeated `type_ = "string"` of kube's printcolumn lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kci.rocks",
    version = "v1alpha1",
    kind = "DbRestore",
    plural = "dbrestores",
    shortname = "dbr",
    category = "db-operator",
    namespaced,
    status = "DbRestoreStatus",
    derive = "PartialEq",
    doc = "A one-off restore of a backup (by key, the latest, or the newest before a time) into a Database.",
    printcolumn(name = "Database", type_ = "string", json_path = ".spec.database"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DbRestoreSpec {
    /// Name of the Database in this namespace to restore into, e.g. `app`. Its backup storage (from the DbInstance) is where the snapshot is looked up.
    pub database: String,

    /// Which backup to restore. Set exactly one of `key`, `latest`, `pointInTime`.
    pub snapshot: SnapshotSpec,
}

/// Which backup to restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["key"] },
    { "required": ["latest"] },
    { "required": ["pointInTime"] },
]))]
pub struct SnapshotSpec {
    /// Object key of the backup relative to the bucket, as shown in `Database.status.lastBackup.key`, e.g. `prod/app/app-2024-05-01T03:00:00Z.dump`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,

    /// Restore the newest backup. Only `true` is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [true]))]
    pub latest: Option<bool>,

    /// Restore the newest backup taken at or before this time (RFC 3339), e.g. `2024-05-01T12:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub point_in_time: Option<String>,
}

/// What the operator last observed about the restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbRestoreStatus {
    /// `metadata.generation` the status describes; older means the operator has not caught up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` once the restore Job was created, `Complete` or `Failed` when it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Short human-readable state: `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// Name of the restore Job, in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// Object key of the backup that was restored (resolved from `latest` or `pointInTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_key: Option<String>,

    /// When the restore Job started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub started_at: Option<String>,

    /// When the restore Job finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub completed_at: Option<String>,
}

impl DbRestore {
    /// The namespace, `default` when unset (as `kubectl apply` treats a manifest without one).
    pub fn namespace_or_default(&self) -> String {
        self.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned())
    }
}
