//! `DbInstance`: a database server the operator manages databases on.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ConfigMapKey, NamespacedName, PluginStatus};
use crate::schema::{port, preserve_unknown_object};

/// A database server that already exists (or, for Google, a Cloud SQL instance) and how to reach it with administrator rights. Databases refer to it by name in `spec.instance`.
// clippy reads the repeated `type_ = "string"` of kube's printcolumn lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kci.rocks",
    version = "v1alpha1",
    kind = "DbInstance",
    plural = "dbinstances",
    shortname = "dbin",
    category = "db-operator",
    status = "DbInstanceStatus",
    derive = "PartialEq",
    doc = "A database server (PostgreSQL, MySQL, ... or any engine a plugin provides) that Databases are created on.",
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engine"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["generic"] },
    { "required": ["amazon"] },
    { "required": ["google"] },
]))]
pub struct DbInstanceSpec {
    /// Name of the engine plugin that serves this server, e.g. `postgres` or `mysql`; any third-party engine name works once its plugin is installed. Lower case letters, digits and `-`, starting with a letter, at most 63 characters.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub engine: String,

    /// The Secret holding the server's administrator credentials (keys `user` and `password`; the engine documents fallbacks such as `postgresql-password`). Commissioning Jobs run in this Secret's namespace. Example: `{namespace: db-operator, name: pg-admin}`.
    pub admin_secret_ref: NamespacedName,

    /// A server reached at a fixed host and port (self-hosted, in-cluster, or any cloud database not covered by `amazon`). Set exactly one of `generic`, `amazon`, `google`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericBackend>,

    /// An AWS managed server (RDS, Aurora, DocumentDB, OpenSearch). Set exactly one of `generic`, `amazon`, `google`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amazon: Option<AmazonBackend>,

    /// A Google Cloud SQL instance, as in the original operator. Set exactly one of `generic`, `amazon`, `google`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleBackend>,

    /// Where backups of every Database on this server are stored. Without it, Databases on this server cannot enable backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<InstanceBackup>,

    /// Monitoring of the server. Default: disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,

    /// TLS between the operator's Jobs and the server. Default: no TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_connection: Option<SslConnection>,

    /// Engine-specific settings of the server, checked by the engine plugin (`db-operator plugin inspect <engine>` prints their schema). Example for postgres: `{sslMode: verify-full}`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub options: Option<serde_json::Value>,
}

/// A server at a fixed address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericBackend {
    /// Host name or IP address the operator's Jobs connect to, without port or scheme, e.g. `postgres.databases.svc.cluster.local`.
    pub host: String,

    /// TCP port of the server, 1-65535, e.g. `5432` for PostgreSQL, `3306` for MySQL.
    #[schemars(schema_with = "port")]
    pub port: u16,

    /// Address clients outside the cluster use; published as `DB_PUBLIC_IP` in `status.info`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,

    /// Host backups read from, e.g. a read replica, so dumps do not load the primary. Default: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_host: Option<String>,
}

/// An AWS managed server. Each field names the Terraform output that fills it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmazonBackend {
    /// Writer endpoint host name, without port. Terraform: `aws_db_instance.address` (RDS; not `.endpoint`, which appends the port), `aws_rds_cluster.endpoint` (Aurora), `aws_docdb_cluster.endpoint` (DocumentDB), `aws_opensearch_domain.endpoint` (OpenSearch).
    pub host: String,

    /// TCP port, 1-65535. Terraform: `aws_db_instance.port`, `aws_rds_cluster.port`, `aws_docdb_cluster.port`; `443` for OpenSearch.
    #[schemars(schema_with = "port")]
    pub port: u16,

    /// AWS region of the server, e.g. `eu-central-1`. Terraform: `data.aws_region.current.region` (or the provider's `region`).
    pub region: String,

    /// Host backups read from, so dumps do not load the writer. Terraform: `aws_rds_cluster.reader_endpoint` (Aurora), `aws_docdb_cluster.reader_endpoint` (DocumentDB), or the `address` of an `aws_db_instance` read replica. Default: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_host: Option<String>,

    // The CRD description comes from `AmazonService`'s doc: kube's rewrite of optional enums
    // replaces a field's description with the enum's.
    /// The AWS service; see [`AmazonService`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<AmazonService>,

    /// CA bundle to verify the server's TLS certificate, e.g. the Amazon RDS `global-bundle.pem` stored in a ConfigMap. The ConfigMap must exist in every namespace the operator's Jobs run in (the admin Secret's and each Database's). Default: the image's system CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ConfigMapKey>,
}

/// Which AWS service the server is, one of `rds`, `aurora`, `documentdb`, `opensearch`; engines use it for service quirks (e.g. DocumentDB needs TLS with the Amazon CA). Default: inferred by the engine from `engine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmazonService {
    /// Amazon RDS (`aws_db_instance`).
    Rds,
    /// Amazon Aurora (`aws_rds_cluster`).
    Aurora,
    /// Amazon DocumentDB (`aws_docdb_cluster`).
    DocumentDb,
    /// Amazon OpenSearch Service (`aws_opensearch_domain`).
    OpenSearch,
}

impl AmazonService {
    /// The JSON spelling, as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rds => "rds",
            Self::Aurora => "aurora",
            Self::DocumentDb => "documentdb",
            Self::OpenSearch => "opensearch",
        }
    }
}

/// A Google Cloud SQL instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleBackend {
    /// Cloud SQL instance name, e.g. `prod-pg-1`.
    pub instance: String,

    /// ConfigMap whose key `config` holds the Cloud SQL Admin API `DatabaseInstance` body (databaseVersion, settings.tier, region, ...), as in the original operator. Example: `{namespace: db-operator, name: prod-pg-1-config}`.
    #[serde(rename = "configmapRef")]
    pub configmap_ref: NamespacedName,

    /// Override of the Cloud SQL Admin API endpoint URL, e.g. for a mock server in tests. Default: Google's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,

    /// Secret with a Cloud SQL Client service account key (key `credentials.json`) for this instance. Default: the operator-wide client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<NamespacedName>,
}

/// Where backups of the instance's Databases go. Set exactly one of `s3` or `bucket`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["s3"] },
    { "required": ["bucket"] },
]))]
pub struct InstanceBackup {
    /// An S3 or S3-compatible bucket (AWS, MinIO, Ceph, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,

    /// Google Cloud Storage bucket of the original operator, e.g. `my-db-backups`. Kept for migration; prefer `s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

/// An S3 bucket and how Jobs authenticate to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name, e.g. `acme-db-backups`.
    pub bucket: String,

    /// Key prefix under which every backup is stored, e.g. `prod/eu`; leading and trailing `/` are ignored. Default: none (bucket root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// Region of the bucket, e.g. `eu-central-1`. Default: the region the S3 client discovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Endpoint URL of an S3-compatible server, e.g. `https://minio.storage.svc:9000`. Default: AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// How backup and restore Jobs authenticate. Set exactly one of `irsa`, `accessKeySecret`, `ambient`.
    pub auth: S3Auth,
}

impl S3Storage {
    /// The prefix without leading or trailing `/`, empty when unset: the form the engine
    /// contract expects, so `prod/` and `/prod` mean the same thing to users.
    pub fn normalized_prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("").trim_matches('/')
    }
}

/// Credentials for S3. Set exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["irsa"] },
    { "required": ["accessKeySecret"] },
    { "required": ["ambient"] },
]))]
pub struct S3Auth {
    /// EKS IAM Roles for Service Accounts: the operator annotates the Jobs' ServiceAccount with this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irsa: Option<IrsaAuth>,

    /// An access key pair in a Secret. The Secret must exist in each Database's namespace, because backups run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<AccessKeySecretRef>,

    /// Whatever credentials the pod's environment provides (node instance profile, EKS Pod Identity, ...). Write `ambient: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient: Option<AmbientAuth>,
}

/// IAM role assumed through web identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IrsaAuth {
    /// ARN of the IAM role, e.g. `arn:aws:iam::123456789012:role/db-backups`. Terraform: `aws_iam_role.arn`.
    pub role_arn: String,
}

/// A Secret holding an S3 access key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySecretRef {
    /// Name of the Secret, e.g. `s3-backup-credentials`.
    pub name: String,

    /// Key holding the access key id. Default: `AWS_ACCESS_KEY_ID`.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,

    /// Key holding the secret access key. Default: `AWS_SECRET_ACCESS_KEY`.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

impl Default for AccessKeySecretRef {
    /// The default key names, as serde fills them in; the name is left empty.
    fn default() -> Self {
        Self::new("")
    }
}

impl AccessKeySecretRef {
    /// A reference with the default key names.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            access_key_id_key: default_access_key_id_key(),
            secret_access_key_key: default_secret_access_key_key(),
        }
    }
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}

/// Marker for ambient credentials; it has no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AmbientAuth {}

/// Monitoring settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Monitoring {
    /// Turn on engine monitoring support (for postgres: the `pg_stat_statements` extension in every Database). Default: `false`.
    #[serde(default)]
    pub enabled: bool,
}

/// TLS settings of connections to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SslConnection {
    /// Connect with TLS. Default: `false`.
    #[serde(default)]
    pub enabled: bool,

    /// Use TLS without verifying the server certificate (only with `enabled: true`). Default: `false`.
    #[serde(default, rename = "skip-verify")]
    pub skip_verify: bool,
}

/// What the operator last observed about the instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbInstanceStatus {
    /// `metadata.generation` the status describes; older means the operator has not caught up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` is `True` once the spec is valid and the engine plugin accepted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Short human-readable state, e.g. `Ready` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// The engine plugin serving this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<PluginStatus>,

    /// Connection facts for consumers, as in the original operator: `DB_CONN` (host), `DB_PORT`, `DB_PUBLIC_IP`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<String, String>,
}

/// The one backend a valid `DbInstanceSpec` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend<'a> {
    Generic(&'a GenericBackend),
    Amazon(&'a AmazonBackend),
    Google(&'a GoogleBackend),
}

impl Backend<'_> {
    /// The field name of the backend in `spec`: `generic`, `amazon` or `google`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Generic(_) => "generic",
            Self::Amazon(_) => "amazon",
            Self::Google(_) => "google",
        }
    }
}

impl DbInstanceSpec {
    /// The backend, when exactly one of `generic`, `amazon`, `google` is set; `None` when none or
    /// several are (`validate_instance` says which).
    pub fn backend(&self) -> Option<Backend<'_>> {
        match (&self.generic, &self.amazon, &self.google) {
            (Some(generic), None, None) => Some(Backend::Generic(generic)),
            (None, Some(amazon), None) => Some(Backend::Amazon(amazon)),
            (None, None, Some(google)) => Some(Backend::Google(google)),
            _ => None,
        }
    }

    /// Names of the backend fields that are set, in declaration order.
    pub(crate) fn backends_set(&self) -> Vec<&'static str> {
        [
            ("generic", self.generic.is_some()),
            ("amazon", self.amazon.is_some()),
            ("google", self.google.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DbInstanceSpec {
        serde_yaml::from_str(yaml).expect("test spec parses")
    }

    #[test]
    fn original_capitalised_refs_read_and_write_back_lower_case() {
        let spec = spec("engine: mysql\nadminSecretRef: {Namespace: ops, Name: root}\n");
        assert_eq!(spec.admin_secret_ref, NamespacedName::new("ops", "root"));
        let json = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"engine": "mysql", "adminSecretRef": {"namespace": "ops", "name": "root"}}),
            "unset options are omitted, not null"
        );
    }

    #[test]
    fn backend_is_the_one_set() {
        let base = "engine: pg\nadminSecretRef: {namespace: a, name: b}\n";
        let google = spec(&format!(
            "{base}google: {{instance: i, configmapRef: {{namespace: a, name: c}}}}"
        ));
        assert_eq!(google.backend().map(|b| b.field()), Some("google"));
        assert_eq!(spec(base).backend(), None);
        let two = spec(&format!(
            "{base}generic: {{host: h, port: 1}}\namazon: {{host: h, port: 1, region: r}}"
        ));
        assert_eq!(two.backend(), None);
    }

    #[test]
    fn s3_details_default_as_documented() {
        let s3: S3Storage = serde_yaml::from_str(
            "bucket: b\nprefix: /prod/eu/\nauth: {accessKeySecret: {name: creds}}",
        )
        .expect("parses");
        assert_eq!(s3.normalized_prefix(), "prod/eu");
        assert_eq!(
            s3.auth.access_key_secret,
            Some(AccessKeySecretRef::new("creds"))
        );
        let access = AccessKeySecretRef::new("creds");
        assert_eq!(access.access_key_id_key, "AWS_ACCESS_KEY_ID");
        assert_eq!(access.secret_access_key_key, "AWS_SECRET_ACCESS_KEY");
    }

    #[test]
    fn amazon_services_use_their_lower_case_names() {
        for service in [
            AmazonService::Rds,
            AmazonService::Aurora,
            AmazonService::DocumentDb,
            AmazonService::OpenSearch,
        ] {
            assert_eq!(
                serde_json::to_value(service).expect("serializes"),
                serde_json::json!(service.as_str())
            );
        }
    }

    #[test]
    fn ssl_skip_verify_keeps_the_original_spelling() {
        let ssl: SslConnection =
            serde_yaml::from_str("enabled: true\nskip-verify: true").expect("parses");
        assert!(ssl.enabled && ssl.skip_verify);
    }
}
