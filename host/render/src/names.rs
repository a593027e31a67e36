//! Object names and labels the host chooses. Kubernetes limits names and label values, and a
//! name that is silently cut can collide, so anything too long keeps a readable head and gets a
//! stable hash of the full name as its tail.

use sha2::{Digest, Sha256};

/// CronJob names are limited to 52 characters because the controller appends an 11-character
/// suffix to the Jobs it creates.
pub const CRON_JOB_NAME_MAX: usize = 52;
/// DNS-1123 label: Jobs (their name becomes a pod label), label values.
pub const LABEL_MAX: usize = 63;
/// DNS-1123 subdomain: Secrets, ServiceAccounts.
pub const SUBDOMAIN_MAX: usize = 253;

pub fn short_hash(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    hex::encode(&digest[..4])
}

/// Fits `name` into `max` characters: unchanged when it fits, else `<head>-<hash8>`.
pub fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = short_hash(name);
    let keep = max - hash.len() - 1;
    let mut head: String = name.chars().take(keep).collect();
    while head.ends_with(['-', '.']) {
        head.pop();
    }
    format!("{head}-{hash}")
}

/// A valid label value (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, ≤ 63) derived from `value`.
pub fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fitted = fit(&cleaned, LABEL_MAX);
    fitted
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

pub fn backup_cron_job(database: &str) -> String {
    fit(&format!("{database}-backup"), CRON_JOB_NAME_MAX)
}

pub fn backup_service_account(database: &str) -> String {
    fit(&format!("{database}-backup"), SUBDOMAIN_MAX)
}

/// The commissioning Job carries a hash of what it will do: Job specs are immutable, so a
/// changed request (a new schema version, new extensions) must be a new Job.
pub fn commission_job(namespace: &str, database: &str, spec_fingerprint: &str) -> String {
    let hash = short_hash(spec_fingerprint);
    let base = fit(
        &format!("dbo-{namespace}-{database}-commission"),
        LABEL_MAX - hash.len() - 1,
    );
    format!("{base}-{hash}")
}

/// Copy of the app credentials beside the admin Secret, for the commissioning Job.
pub fn commission_credentials(namespace: &str, database: &str) -> String {
    fit(
        &format!("dbo-{namespace}-{database}-credentials"),
        SUBDOMAIN_MAX,
    )
}

/// Copy of a schema ConfigMap at one version, beside the admin Secret. The version comes last
/// and is never cut off, so two versions never share a name.
pub fn schema_copy(namespace: &str, database: &str, version: u32) -> String {
    let suffix = format!("-schema-v{version}");
    let base = fit(
        &format!("dbo-{namespace}-{database}"),
        SUBDOMAIN_MAX - suffix.len(),
    );
    format!("{base}{suffix}")
}

pub fn restore_job(restore: &str) -> String {
    fit(&format!("{restore}-restore"), LABEL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(backup_cron_job("orders"), "orders-backup");
        assert_eq!(restore_job("r1"), "r1-restore");
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let a = "a".repeat(60);
        let b = format!("{}b", "a".repeat(59));
        let na = backup_cron_job(&a);
        let nb = backup_cron_job(&b);
        assert!(na.len() <= CRON_JOB_NAME_MAX, "{na}");
        assert!(nb.len() <= CRON_JOB_NAME_MAX, "{nb}");
        assert_ne!(na, nb);
        let job = commission_job(&"n".repeat(63), &"d".repeat(63), "x");
        assert!(job.len() <= LABEL_MAX, "{job}");
    }

    #[test]
    fn commission_job_changes_with_its_spec() {
        assert_ne!(
            commission_job("app", "orders", "v1"),
            commission_job("app", "orders", "v2")
        );
        assert_eq!(
            commission_job("app", "orders", "v1"),
            commission_job("app", "orders", "v1")
        );
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("app/orders"), "app-orders");
        let long = label_value(&"x".repeat(100));
        assert!(long.len() <= LABEL_MAX);
        assert_eq!(label_value("-a-"), "a");
    }
}
