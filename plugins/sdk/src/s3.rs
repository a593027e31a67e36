//! The environment an image's rclone needs to reach the instance's S3 target.
//!
//! Images ship an rclone remote named [`REMOTE`] in `rclone.conf` (`type = s3`,
//! `provider = AWS`, `env_auth = true`); everything that differs per target is overridden
//! through rclone's `RCLONE_CONFIG_<REMOTE>_<OPTION>` env vars, so one image serves AWS and any
//! S3-compatible server. `env_auth` makes rclone take credentials from the standard AWS chain:
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (set here from a Secret), the web identity that EKS
//! injects for IRSA (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`), or the node's instance role.

use k8s_openapi::api::core::v1::EnvVar;

use crate::pod::{env, secret_env};
use crate::{PluginError, S3Auth, S3Target, SecretKeyRef, Storage};

/// Name of the rclone remote every image configures for the backup target.
pub const REMOTE: &str = "s3";
/// Env var holding the bucket name.
pub const BUCKET_ENV: &str = "BACKUP_BUCKET";
/// Env var holding the instance's key prefix (no leading or trailing `/`; may be empty).
pub const PREFIX_ENV: &str = "BACKUP_PREFIX";

/// The S3 target of `storage`, or `Unsupported` for the legacy GCS bucket.
pub fn target(storage: &Storage) -> Result<&S3Target, PluginError> {
    match storage {
        Storage::S3(target) => Ok(target),
        Storage::Gcs(bucket) => Err(PluginError::Unsupported(format!(
            "the DbInstance uses the legacy Google Cloud Storage bucket {bucket:?} \
             (spec.backup.bucket), which this operator does not write to; move it to \
             spec.backup.s3 (Cloud Storage speaks S3 at endpoint https://storage.googleapis.com \
             with HMAC keys in spec.backup.s3.auth.accessKeySecret)"
        ))),
    }
}

/// Env vars that point the image's rclone remote at `storage` and name the bucket and prefix
/// (`BACKUP_BUCKET`, `BACKUP_PREFIX`). Access keys come by `secretKeyRef`, never as values.
pub fn rclone_env(storage: &Storage) -> Result<Vec<EnvVar>, PluginError> {
    let target = target(storage)?;
    let mut vars = vec![
        env(BUCKET_ENV, target.bucket.clone()),
        env(PREFIX_ENV, target.prefix.trim_matches('/')),
    ];
    if let Some(region) = target.region.as_deref().filter(|r| !r.is_empty()) {
        vars.push(env(rclone_option("REGION"), region));
    }
    if let Some(endpoint) = target.endpoint.as_deref().filter(|e| !e.is_empty()) {
        vars.push(env(rclone_option("ENDPOINT"), endpoint));
        // S3-compatible servers rarely serve virtual-host-style bucket names, and rclone's
        // `AWS` provider would apply AWS-only quirks to them.
        vars.push(env(rclone_option("PROVIDER"), "Other"));
        vars.push(env(rclone_option("FORCE_PATH_STYLE"), "true"));
    }
    match &target.auth {
        S3Auth::AccessKey(keys) => {
            vars.push(secret_env(
                "AWS_ACCESS_KEY_ID",
                &SecretKeyRef::new(&keys.name, &keys.access_key_id_key),
            ));
            vars.push(secret_env(
                "AWS_SECRET_ACCESS_KEY",
                &SecretKeyRef::new(&keys.name, &keys.secret_access_key_key),
            ));
        }
        // EKS injects the web identity env into pods of the annotated ServiceAccount (the host
        // creates it), and `env_auth` picks it up; ambient credentials need nothing either.
        S3Auth::Irsa(_) | S3Auth::Ambient => {}
    }
    Ok(vars)
}

/// Env var name of an option of the [`REMOTE`] remote, e.g. `RCLONE_CONFIG_S3_REGION`.
pub fn rclone_option(option: &str) -> String {
    format!("RCLONE_CONFIG_{}_{option}", REMOTE.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn value<'a>(vars: &'a [EnvVar], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|v| v.name == name)
            .and_then(|v| v.value.as_deref())
    }

    fn names(vars: &[EnvVar]) -> Vec<&str> {
        vars.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn aws_with_irsa_sets_region_bucket_and_prefix_only() {
        let vars = rclone_env(&testing::storage::irsa()).expect("S3");
        assert_eq!(
            names(&vars),
            ["BACKUP_BUCKET", "BACKUP_PREFIX", "RCLONE_CONFIG_S3_REGION"]
        );
        assert_eq!(
            value(&vars, "RCLONE_CONFIG_S3_REGION"),
            Some("eu-central-1")
        );
        assert_eq!(value(&vars, "BACKUP_BUCKET"), Some("acme-db-backups"));
        assert_eq!(value(&vars, "BACKUP_PREFIX"), Some("postgres"));
    }

    #[test]
    fn access_keys_come_from_the_secret_by_reference() {
        let vars = rclone_env(&testing::storage::access_key()).expect("S3");
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let var = vars.iter().find(|v| v.name == name).expect(name);
            assert_eq!(var.value, None, "{name} must not be a literal");
            let r = var
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .expect("secretKeyRef");
            assert_eq!(r.name, "s3-backup-keys");
        }
    }

    #[test]
    fn an_s3_compatible_endpoint_switches_provider_and_path_style() {
        let vars = rclone_env(&testing::storage::s3_compatible()).expect("S3");
        assert_eq!(
            value(&vars, "RCLONE_CONFIG_S3_ENDPOINT"),
            Some("http://minio.storage:9000")
        );
        assert_eq!(value(&vars, "RCLONE_CONFIG_S3_PROVIDER"), Some("Other"));
        assert_eq!(
            value(&vars, "RCLONE_CONFIG_S3_FORCE_PATH_STYLE"),
            Some("true")
        );
        assert_eq!(value(&vars, "BACKUP_PREFIX"), Some(""));
    }

    #[test]
    fn ambient_credentials_need_no_env() {
        let vars = rclone_env(&testing::storage::ambient()).expect("S3");
        assert!(
            !names(&vars).iter().any(|n| n.starts_with("AWS_")),
            "{vars:?}"
        );
    }

    #[test]
    fn gcs_is_unsupported_and_says_where_to_move() {
        let err = rclone_env(&testing::storage::gcs()).expect_err("GCS");
        assert!(
            matches!(&err, PluginError::Unsupported(m) if m.contains("spec.backup.s3")),
            "{err:?}"
        );
    }
}
