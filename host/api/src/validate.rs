//! Checks the CRD schema cannot express, or that manifests read by the CLI never met an API
//! server for. Each returns every problem at once, so a user fixes a manifest in one round.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::instance::{AmazonBackend, GenericBackend, GoogleBackend, InstanceBackup, S3Storage};
use crate::{Database, DatabaseBackup, DbInstance, DbRestore, NamespacedName};

/// One problem with one field of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the resource root, e.g. `spec.backup.cron` or `spec.extensions[1]`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Checks a `DbInstance`; an empty list means valid.
pub fn validate_instance(instance: &DbInstance) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let spec = &instance.spec;
    errors.name(
        "metadata.name",
        instance.metadata.name.as_deref().unwrap_or(""),
        Rule::Subdomain,
        "the instance's name",
        "prod-postgres",
    );
    check_engine(&mut errors, &spec.engine);
    errors.namespaced_name(
        "spec.adminSecretRef",
        &spec.admin_secret_ref,
        "the admin Secret",
        "pg-admin",
    );

    let set = spec.backends_set();
    if set.len() != 1 {
        errors.push(
            "spec",
            format!(
                "set exactly one of generic, amazon, google; found {}",
                list_or_none(&set)
            ),
        );
    }
    if let Some(generic) = &spec.generic {
        check_generic(&mut errors, generic);
    }
    if let Some(amazon) = &spec.amazon {
        check_amazon(&mut errors, amazon);
    }
    if let Some(google) = &spec.google {
        check_google(&mut errors, google);
    }
    if let Some(backup) = &spec.backup {
        check_instance_backup(&mut errors, backup);
    }
    check_options(&mut errors, "spec.options", spec.options.as_ref());
    errors.0
}

/// Checks a `Database`; an empty list means valid.
pub fn validate_database(database: &Database) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let spec = &database.spec;
    errors.name(
        "metadata.name",
        database.metadata.name.as_deref().unwrap_or(""),
        Rule::Subdomain,
        "the Database's name",
        "app",
    );
    errors.name(
        "spec.instance",
        &spec.instance,
        Rule::Subdomain,
        "the name of a DbInstance",
        "prod-postgres",
    );
    errors.name(
        "spec.secretName",
        &spec.secret_name,
        Rule::Subdomain,
        "the name of the Secret that receives the credentials",
        "app-db-credentials",
    );

    let mut seen = BTreeSet::new();
    for (i, extension) in spec.extensions.iter().enumerate() {
        let field = format!("spec.extensions[{i}]");
        if extension.trim().is_empty() {
            errors.push(
                field,
                "must not be empty; name an extension, e.g. \"pgcrypto\", or remove the entry",
            );
        } else if !seen.insert(extension.as_str()) {
            errors.push(
                field,
                format!("{extension:?} is listed twice; remove the duplicate"),
            );
        }
    }

    if let Some(backup) = &spec.backup {
        check_database_backup(&mut errors, backup);
    }
    if let Some(schema) = spec.commission.as_ref().and_then(|c| c.schema.as_ref()) {
        errors.name(
            "spec.commission.schema.configMapRef.name",
            &schema.config_map_ref.name,
            Rule::Subdomain,
            "the name of the ConfigMap holding the schema",
            "app-schema",
        );
        if schema.version == 0 {
            errors.push(
                "spec.commission.schema.version",
                "must be at least 1; versions count up from 1 and each increase rolls the schema forward",
            );
        }
    }
    check_options(&mut errors, "spec.options", spec.options.as_ref());
    errors.0
}

/// Checks a `DbRestore`; an empty list means valid.
pub fn validate_restore(restore: &DbRestore) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let spec = &restore.spec;
    errors.name(
        "metadata.name",
        restore.metadata.name.as_deref().unwrap_or(""),
        Rule::Subdomain,
        "the DbRestore's name",
        "app-restore",
    );
    errors.name(
        "spec.database",
        &spec.database,
        Rule::Subdomain,
        "the name of a Database in this namespace",
        "app",
    );

    let snapshot = &spec.snapshot;
    let set: Vec<&str> = [
        ("key", snapshot.key.is_some()),
        ("latest", snapshot.latest.is_some()),
        ("pointInTime", snapshot.point_in_time.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if set.len() != 1 {
        errors.push(
            "spec.snapshot",
            format!(
                "set exactly one of key, latest, pointInTime; found {}",
                list_or_none(&set)
            ),
        );
    }
    if let Some(key) = &snapshot.key {
        if key.trim().is_empty() {
            errors.push(
                "spec.snapshot.key",
                "must not be empty; set the object key of a backup, as in the Database's status.lastBackup.key",
            );
        } else if key.starts_with('/') {
            errors.push(
                "spec.snapshot.key",
                format!(
                    "{key:?} starts with '/'; keys are relative to the bucket, write {:?}",
                    key.trim_start_matches('/')
                ),
            );
        }
    }
    if snapshot.latest == Some(false) {
        errors.push(
            "spec.snapshot.latest",
            "only `true` is allowed; to restore an older backup set key or pointInTime instead",
        );
    }
    if let Some(time) = &snapshot.point_in_time
        && let Err(e) = chrono::DateTime::parse_from_rfc3339(time)
    {
        errors.push(
            "spec.snapshot.pointInTime",
            format!(
                "{time:?} is not an RFC 3339 time ({e}); write date, 'T', time and zone, e.g. \"2024-05-01T12:00:00Z\""
            ),
        );
    }
    errors.0
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

#[derive(Clone, Copy)]
enum Rule {
    /// RFC 1123 label: namespaces, container and volume names.
    Label,
    /// RFC 1123 subdomain: names of most objects.
    Subdomain,
    /// Key of a ConfigMap or Secret.
    DataKey,
}

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `what` completes "set it to ...", e.g. "the admin Secret's name".
    fn name(&mut self, field: &str, value: &str, rule: Rule, what: &str, example: &str) {
        if value.is_empty() {
            self.push(
                field,
                format!("must not be empty; set it to {what}, e.g. {example:?}"),
            );
            return;
        }
        let (ok, shape) = match rule {
            Rule::Label => (
                is_dns_label(value),
                "at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
            ),
            Rule::Subdomain => (
                is_dns_subdomain(value),
                "at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
            ),
            Rule::DataKey => (
                value.len() <= 253
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
                "at most 253 letters, digits, '-', '_' and '.'",
            ),
        };
        if !ok {
            self.push(
                field,
                format!("{value:?} is not valid here; use {shape}, e.g. {example:?}"),
            );
        }
    }

    fn namespaced_name(&mut self, field: &str, value: &NamespacedName, what: &str, example: &str) {
        self.name(
            &format!("{field}.namespace"),
            &value.namespace,
            Rule::Label,
            &format!("the namespace of {what}"),
            "db-operator",
        );
        self.name(
            &format!("{field}.name"),
            &value.name,
            Rule::Subdomain,
            &format!("the name of {what}"),
            example,
        );
    }

    fn host(&mut self, field: &str, host: &str, port_field: &str, hint: &str) {
        if host.trim().is_empty() {
            self.push(
                field,
                format!("must not be empty; set the server's host name or IP address{hint}"),
            );
        } else if let Some((scheme, rest)) = host.split_once("://") {
            self.push(
                field,
                format!(
                    "{host:?} has a scheme ({scheme}://); write the host alone, e.g. {:?}",
                    rest.trim_end_matches('/')
                ),
            );
        } else if let Some((name, port)) = host.rsplit_once(':')
            && !name.contains(':')
            && !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
        {
            self.push(
                field,
                format!(
                    "{host:?} includes a port; write the host {name:?} here and {port} in {port_field}{hint}"
                ),
            );
        } else if host.chars().any(|c| c.is_whitespace() || c == '/') {
            self.push(
                field,
                format!("{host:?} is not a host name or IP address; remove spaces and '/'"),
            );
        }
    }

    fn port(&mut self, field: &str, port: u16, example: u16) {
        if port == 0 {
            self.push(
                field,
                format!("must be between 1 and 65535; set the server's port, e.g. {example}"),
            );
        }
    }

    fn url(&mut self, field: &str, url: &str, example: &str) {
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace)
        {
            self.push(
                field,
                format!("{url:?} is not an http(s) URL; write e.g. {example:?}"),
            );
        }
    }

    fn non_empty(&mut self, field: &str, value: &str, what: &str) {
        if value.trim().is_empty() {
            self.push(field, format!("must not be empty; set {what} or remove it"));
        }
    }

    fn absolute_path(&mut self, field: &str, path: &str) {
        if !path.starts_with('/') {
            self.push(
                field,
                format!("{path:?} is not an absolute path; start it with '/', e.g. \"/backup\""),
            );
        }
    }
}

fn check_engine(errors: &mut Errors, engine: &str) {
    let mut chars = engine.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && engine.len() <= 63;
    if !ok {
        errors.push(
            "spec.engine",
            format!(
                "{engine:?} is not an engine name; use at most 63 lower-case letters, digits and '-', starting with a letter, e.g. \"postgres\""
            ),
        );
    }
}

fn check_generic(errors: &mut Errors, generic: &GenericBackend) {
    errors.host("spec.generic.host", &generic.host, "spec.generic.port", "");
    errors.port("spec.generic.port", generic.port, 5432);
    if let Some(backup_host) = &generic.backup_host {
        errors.host(
            "spec.generic.backupHost",
            backup_host,
            "spec.generic.port",
            ", or remove backupHost to back up from host",
        );
    }
    if let Some(public_ip) = &generic.public_ip {
        errors.non_empty("spec.generic.publicIp", public_ip, "the public address");
    }
}

fn check_amazon(errors: &mut Errors, amazon: &AmazonBackend) {
    errors.host(
        "spec.amazon.host",
        &amazon.host,
        "spec.amazon.port",
        " (Terraform: aws_db_instance.address, not .endpoint)",
    );
    errors.port("spec.amazon.port", amazon.port, 5432);
    if amazon.region.trim().is_empty() {
        errors.push(
            "spec.amazon.region",
            "must not be empty; set the server's AWS region, e.g. \"eu-central-1\"",
        );
    }
    if let Some(backup_host) = &amazon.backup_host {
        errors.host(
            "spec.amazon.backupHost",
            backup_host,
            "spec.amazon.port",
            " (Terraform: aws_rds_cluster.reader_endpoint), or remove backupHost to back up from host",
        );
    }
    if let Some(ca) = &amazon.ca_bundle {
        errors.name(
            "spec.amazon.caBundle.name",
            &ca.name,
            Rule::Subdomain,
            "the name of the ConfigMap holding the CA bundle",
            "rds-ca-bundle",
        );
        errors.name(
            "spec.amazon.caBundle.key",
            &ca.key,
            Rule::DataKey,
            "the ConfigMap key holding the PEM bundle",
            "global-bundle.pem",
        );
    }
}

fn check_google(errors: &mut Errors, google: &GoogleBackend) {
    if google.instance.trim().is_empty() {
        errors.push(
            "spec.google.instance",
            "must not be empty; set the Cloud SQL instance name, e.g. \"prod-pg-1\"",
        );
    }
    errors.namespaced_name(
        "spec.google.configmapRef",
        &google.configmap_ref,
        "the ConfigMap with the Cloud SQL instance config",
        "prod-pg-1-config",
    );
    if let Some(endpoint) = &google.api_endpoint {
        errors.url(
            "spec.google.apiEndpoint",
            endpoint,
            "https://sqladmin.googleapis.com/",
        );
    }
    if let Some(secret) = &google.client_secret_ref {
        errors.namespaced_name(
            "spec.google.clientSecretRef",
            secret,
            "the Cloud SQL client credentials Secret",
            "cloudsql-client",
        );
    }
}

fn check_instance_backup(errors: &mut Errors, backup: &InstanceBackup) {
    match (&backup.s3, &backup.bucket) {
        (Some(_), Some(_)) => errors.push(
            "spec.backup",
            "set exactly one of s3, bucket; found s3 and bucket (bucket is the original operator's Google Cloud Storage bucket: remove it when moving to s3)",
        ),
        (None, None) => errors.push(
            "spec.backup",
            "set exactly one of s3, bucket; found none (remove backup if Databases on this instance take no backups)",
        ),
        _ => {}
    }
    if let Some(s3) = &backup.s3 {
        check_s3(errors, s3);
    }
    if let Some(bucket) = &backup.bucket {
        errors.non_empty(
            "spec.backup.bucket",
            bucket,
            "the Google Cloud Storage bucket",
        );
    }
}

fn check_s3(errors: &mut Errors, s3: &S3Storage) {
    let bucket = s3.bucket.trim();
    if bucket.is_empty() {
        errors.push(
            "spec.backup.s3.bucket",
            "must not be empty; set the bucket name, e.g. \"acme-db-backups\"",
        );
    } else if let Some((name, path)) = bucket.split_once('/') {
        errors.push(
            "spec.backup.s3.bucket",
            format!(
                "{bucket:?} contains '/'; set bucket to {name:?} and prefix to {:?}",
                path.trim_matches('/')
            ),
        );
    } else if bucket.starts_with("s3://") || bucket.contains(char::is_whitespace) {
        errors.push(
            "spec.backup.s3.bucket",
            format!(
                "{bucket:?} is not a bucket name; write the name alone, e.g. \"acme-db-backups\""
            ),
        );
    }
    if let Some(region) = &s3.region {
        errors.non_empty("spec.backup.s3.region", region, "the bucket's region");
    }
    if let Some(endpoint) = &s3.endpoint {
        errors.url(
            "spec.backup.s3.endpoint",
            endpoint,
            "https://minio.storage.svc:9000",
        );
    }

    let auth = &s3.auth;
    let set: Vec<&str> = [
        ("irsa", auth.irsa.is_some()),
        ("accessKeySecret", auth.access_key_secret.is_some()),
        ("ambient", auth.ambient.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if set.len() != 1 {
        errors.push(
            "spec.backup.s3.auth",
            format!(
                "set exactly one of irsa, accessKeySecret, ambient; found {}",
                list_or_none(&set)
            ),
        );
    }
    if let Some(irsa) = &auth.irsa {
        let arn = &irsa.role_arn;
        if !(arn.starts_with("arn:") && arn.contains(":role/")) {
            errors.push(
                "spec.backup.s3.auth.irsa.roleArn",
                format!(
                    "{arn:?} is not an IAM role ARN; write arn:aws:iam::<account>:role/<name>, e.g. \"arn:aws:iam::123456789012:role/db-backups\""
                ),
            );
        }
    }
    if let Some(secret) = &auth.access_key_secret {
        let field = "spec.backup.s3.auth.accessKeySecret";
        errors.name(
            &format!("{field}.name"),
            &secret.name,
            Rule::Subdomain,
            "the name of the Secret with the access key",
            "s3-backup-credentials",
        );
        errors.name(
            &format!("{field}.accessKeyIdKey"),
            &secret.access_key_id_key,
            Rule::DataKey,
            "the Secret key holding the access key id",
            "AWS_ACCESS_KEY_ID",
        );
        errors.name(
            &format!("{field}.secretAccessKeyKey"),
            &secret.secret_access_key_key,
            Rule::DataKey,
            "the Secret key holding the secret access key",
            "AWS_SECRET_ACCESS_KEY",
        );
    }
}

fn check_database_backup(errors: &mut Errors, backup: &DatabaseBackup) {
    let cron = backup.cron.trim();
    if cron.is_empty() {
        if backup.enable {
            errors.push(
                "spec.backup.cron",
                format!("backups are enabled but no schedule is set; {CRON_EXAMPLE}"),
            );
        }
    } else if let Err(problem) = check_cron(cron) {
        errors.push(
            "spec.backup.cron",
            format!("{cron:?} is not a valid schedule: {problem}; {CRON_EXAMPLE}"),
        );
    }

    let mut volumes = BTreeSet::new();
    for (i, volume) in backup.volumes.iter().enumerate() {
        let field = format!("spec.backup.volumes[{i}].name");
        errors.name(&field, &volume.name, Rule::Label, "a volume name", "certs");
        if !volume.name.is_empty() && !volumes.insert(volume.name.as_str()) {
            errors.push(
                field,
                format!(
                    "{:?} is used by another volume; give each volume its own name",
                    volume.name
                ),
            );
        }
    }

    // Every path the backup container mounts, with the field that mounts it: two mounts on one
    // path make the pod invalid, and the API server would only say so when the CronJob fires.
    let mut mount_paths: Vec<(String, &str)> = Vec::new();
    for (i, mount) in backup.volume_mounts.iter().enumerate() {
        let field = format!("spec.backup.volumeMounts[{i}]");
        if !volumes.contains(mount.name.as_str()) {
            let known: Vec<&str> = volumes.iter().copied().collect();
            errors.push(
                format!("{field}.name"),
                format!(
                    "{:?} is not one of spec.backup.volumes ({}); add a volume of that name or fix the name",
                    mount.name,
                    if known.is_empty() {
                        "there are none".to_owned()
                    } else {
                        format!("declared: {}", known.join(", "))
                    }
                ),
            );
        }
        errors.absolute_path(&format!("{field}.mountPath"), &mount.mount_path);
        mount_paths.push((format!("{field}.mountPath"), mount.mount_path.as_str()));
    }
    if let Some(pvc) = &backup.persistent_volume_claim {
        let field = "spec.backup.persistentVolumeClaim";
        errors.name(
            &format!("{field}.claimName"),
            &pvc.claim_name,
            Rule::Subdomain,
            "the name of a PersistentVolumeClaim in this namespace",
            "backup-scratch",
        );
        errors.absolute_path(&format!("{field}.mountPath"), &pvc.mount_path);
        mount_paths.push((format!("{field}.mountPath"), pvc.mount_path.as_str()));
    }
    for (i, (field, path)) in mount_paths.iter().enumerate() {
        let normalized = path.trim_end_matches('/');
        if let Some((first, _)) = mount_paths[..i]
            .iter()
            .find(|(_, p)| p.trim_end_matches('/') == normalized)
        {
            errors.push(
                field.as_str(),
                format!("{path:?} is already mounted by {first}; choose another path"),
            );
        }
    }

    if let Some(fs_group) = backup.fs_group
        && fs_group < 0
    {
        errors.push(
            "spec.backup.fsGroup",
            format!("{fs_group} is negative; set a group id of 0 or more, e.g. 1000"),
        );
    }
    if let Some(name) = &backup.container_name {
        errors.name(
            "spec.backup.containerName",
            name,
            Rule::Label,
            "a container name",
            "postgres-dump",
        );
    }
    if let Some(name) = &backup.service_account_name {
        errors.name(
            "spec.backup.serviceAccountName",
            name,
            Rule::Subdomain,
            "the name of a ServiceAccount in this namespace",
            "db-backup",
        );
    }
}

fn check_options(errors: &mut Errors, field: &str, options: Option<&Value>) {
    let found = match options {
        None | Some(Value::Object(_)) => return,
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
    };
    errors.push(
        field,
        format!("must be an object of engine settings, e.g. {{sslMode: require}}; found {found}"),
    );
}

/// "none", "a", "a and b", "a, b and c".
fn list_or_none(items: &[&str]) -> String {
    match items {
        [] => "none".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

const CRON_EXAMPLE: &str = "write 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\" for 03:00 every day";

/// The macros the Kubernetes CronJob controller accepts besides 5 fields.
const CRON_MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names accepted instead of numbers, in order from `min`.
    names: &'static [&'static str],
}

const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    CronField {
        name: "day-of-week",
        min: 0,
        max: 6,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    },
];

/// Checks a schedule against what the Kubernetes CronJob controller parses.
///
/// croner alone is not enough: it also accepts seconds, `L`, `W`, `#` and day-of-week 7, which
/// the API server rejects when the CronJob is applied, far from the field the user wrote.
fn check_cron(expr: &str) -> Result<(), String> {
    if expr.starts_with('@') {
        return if CRON_MACROS.contains(&expr) {
            Ok(())
        } else {
            Err(format!(
                "unknown macro; use one of {}",
                CRON_MACROS.join(", ")
            ))
        };
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        let seconds = if fields.len() == 6 {
            " (a seconds field is not supported)"
        } else {
            ""
        };
        return Err(format!(
            "it has {} fields, a schedule has 5{seconds}",
            fields.len()
        ));
    }
    for (text, field) in fields.iter().zip(&CRON_FIELDS) {
        check_cron_field(text, field)?;
    }
    croner::Cron::new(expr)
        .parse()
        .map(drop)
        .map_err(|e| e.to_string())
}

fn check_cron_field(text: &str, field: &CronField) -> Result<(), String> {
    let name = field.name;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step
            && !step.parse::<u32>().is_ok_and(|s| s > 0)
        {
            return Err(format!(
                "the {name} field {text:?} has step {step:?}; a step is a positive number, e.g. */15"
            ));
        }
        if range == "*" || range == "?" {
            continue;
        }
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let low = cron_value(low, field, text)?;
        let high = cron_value(high, field, text)?;
        if low > high {
            return Err(format!(
                "the {name} field {text:?} has the range {range:?} backwards; write the smaller value first"
            ));
        }
    }
    Ok(())
}

fn cron_value(token: &str, field: &CronField, text: &str) -> Result<u32, String> {
    let name = field.name;
    if let Ok(value) = token.parse::<u32>() {
        return if (field.min..=field.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "the {name} field {text:?} is out of range {}-{}",
                field.min, field.max
            ))
        };
    }
    if let Some((_, value)) = field
        .names
        .iter()
        .zip(field.min..)
        .find(|(n, _)| n.eq_ignore_ascii_case(token))
    {
        return Ok(value);
    }
    let names = match (field.names.first(), field.names.last()) {
        (Some(first), Some(last)) => format!("names ({first}-{last}), "),
        _ => String::new(),
    };
    Err(format!(
        "the {name} field {text:?} is not supported; Kubernetes CronJobs accept numbers, {names}*, ?, ranges (1-5), lists (1,15) and steps (*/10)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_schedules_pass() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * *",
            "30 2 * JAN-MAR mon-fri",
            "0 */6 ? * 0",
            "@daily",
            "@midnight",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn schedules_kubernetes_rejects_fail_with_the_field_named() {
        for (bad, says) in [
            ("0 3 * *", "4 fields"),
            ("0 0 3 * * *", "seconds"),
            ("61 * * * *", "minute field \"61\" is out of range 0-59"),
            ("0 0 L * *", "day-of-month field \"L\""),
            ("0 0 * * 5#3", "day-of-week field \"5#3\""),
            ("0 0 * * 7", "out of range 0-6"),
            ("*/0 * * * *", "step \"0\""),
            ("0 5-1 * * *", "backwards"),
            ("@reboot", "unknown macro"),
            ("0 0 * FOO *", "names (JAN-DEC)"),
        ] {
            let err = check_cron(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("app-db.credentials"));
        assert!(!is_dns_subdomain("App"));
        assert!(!is_dns_subdomain("app."));
        assert!(is_dns_label("db-operator"));
        assert!(!is_dns_label("db.operator"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn lists_read_as_english() {
        assert_eq!(list_or_none(&[]), "none");
        assert_eq!(list_or_none(&["generic", "amazon"]), "generic and amazon");
        assert_eq!(list_or_none(&["a", "b", "c"]), "a, b and c");
    }
}
