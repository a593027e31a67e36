//! The object layout every engine's backups share: `<prefix>/<name>/<name>-<stamp><ext>` with
//! `<stamp>` the UTC time as `YYYYmmddTHHMMSSZ`, and `<prefix>/<name>/<name>-latest<ext>` as a
//! copy of the newest complete one.

use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::jiff::Timestamp;

use crate::pod_runner::PodOutcome;
use crate::services::{S3Object, S3Server};

/// The keys of one backup name's objects.
#[derive(Debug, Clone)]
pub struct BackupKeys {
    folder: String,
    name: String,
    ext: String,
}

impl BackupKeys {
    /// The keys of backups named `name` under `prefix` (no slashes at either end), each ending
    /// in `ext` (`.dump`, `.sql.gz`, ...).
    pub fn new(prefix: &str, name: &str, ext: &str) -> Self {
        BackupKeys {
            folder: format!("{prefix}/{name}"),
            name: name.to_owned(),
            ext: ext.to_owned(),
        }
    }

    /// `<prefix>/<name>`, the folder to list.
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// `<prefix>/<name>/<name>-latest<ext>`.
    pub fn latest(&self) -> String {
        format!("{}/{}-latest{}", self.folder, self.name, self.ext)
    }

    /// The `YYYYmmddTHHMMSSZ` of a timestamped key.
    pub fn stamp_of<'k>(&self, key: &'k str) -> Result<&'k str> {
        key.strip_prefix(&format!("{}/{}-", self.folder, self.name))
            .and_then(|rest| rest.strip_suffix(self.ext.as_str()))
            .filter(|stamp| stamp.len() == 16)
            .with_context(|| {
                format!(
                    "{key} is not named {}/{}-<YYYYmmddTHHMMSSZ>{}",
                    self.folder, self.name, self.ext
                )
            })
    }

    /// The time in a timestamped key.
    pub fn time_of(&self, key: &str) -> Result<Timestamp> {
        stamp_time(self.stamp_of(key)?).with_context(|| format!("the stamp of {key}"))
    }

    /// The timestamped objects of a listing of the folder: all but the `-latest` copy.
    pub fn timestamped<'o>(&self, objects: &'o [S3Object]) -> Vec<&'o S3Object> {
        let latest = self.latest();
        objects.iter().filter(|o| o.key != latest).collect()
    }

    /// The one timestamped object of listing `after` that listing `before` lacks: one backup
    /// adds exactly one.
    pub fn added<'o>(&self, before: &[S3Object], after: &'o [S3Object]) -> Result<&'o S3Object> {
        let new: Vec<&S3Object> = self
            .timestamped(after)
            .into_iter()
            .filter(|o| !before.iter().any(|b| b.key == o.key))
            .collect();
        let [object] = new.as_slice() else {
            bail!("one backup must add exactly one timestamped object, it added {new:?}");
        };
        Ok(object)
    }

    /// Checks what the successful backup `outcome` stored in `bucket`, given the folder's
    /// listing before it: one new object named by the layout, a `-latest` copy of it, and a
    /// termination message that names it. Returns the new key and its content.
    pub fn stored_backup(
        &self,
        s3: &S3Server,
        bucket: &str,
        before: &[S3Object],
        outcome: &PodOutcome,
    ) -> Result<(String, Vec<u8>)> {
        let after = s3.list(bucket, &self.folder)?;
        let object = self
            .added(before, &after)
            .with_context(|| outcome.to_string())?;
        self.time_of(&object.key)?;
        let content = s3.get(bucket, &object.key)?;
        ensure!(
            s3.get(bucket, &self.latest())? == content,
            "-latest{} must be a copy of the newest backup {}",
            self.ext,
            object.key
        );
        let message = outcome
            .containers
            .first()
            .map_or("", |c| c.termination_message.as_str());
        ensure!(
            message.contains(&object.key),
            "the termination message names the stored key, got {message:?}"
        );
        Ok((object.key.clone(), content))
    }
}

/// `20240501T080000Z` → 2024-05-01T08:00:00Z.
pub fn stamp_time(stamp: &str) -> Result<Timestamp> {
    let b = stamp.as_bytes();
    let shaped = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    anyhow::ensure!(shaped, "{stamp:?} is not a UTC time as YYYYmmddTHHMMSSZ");
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    rfc3339
        .parse()
        .with_context(|| format!("{stamp}: {rfc3339} is not a time"))
}

/// Backups are named to the second: a second backup must start in a later second than the
/// first, or it would replace it.
pub fn wait_for_the_next_second(after: Timestamp) {
    while Timestamp::now().as_second() <= after.as_second() {
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_shared_layout() {
        let keys = BackupKeys::new("e2e/cluster-1", "app-orders", ".dump");
        assert_eq!(keys.folder(), "e2e/cluster-1/app-orders");
        assert_eq!(
            keys.latest(),
            "e2e/cluster-1/app-orders/app-orders-latest.dump"
        );
        let key = "e2e/cluster-1/app-orders/app-orders-20240501T080000Z.dump";
        assert_eq!(keys.stamp_of(key).unwrap(), "20240501T080000Z");
        assert_eq!(
            keys.time_of(key).unwrap(),
            "2024-05-01T08:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn keys_of_another_name_extension_or_shape_are_refused() {
        let keys = BackupKeys::new("p", "db", ".sql.gz");
        for key in [
            "p/db/other-20240501T080000Z.sql.gz",
            "p/db/db-20240501T080000Z.dump",
            "p/db/db-latest.sql.gz",
            "p/db/db-2024-05-01T08:00Z.sql.gz",
            "p/db/db-20241301T080000Z.sql.gz",
        ] {
            assert!(keys.time_of(key).is_err(), "{key}");
        }
    }

    #[test]
    fn the_latest_copy_is_not_a_timestamped_backup() {
        let keys = BackupKeys::new("p", "db", ".dump");
        let objects: Vec<S3Object> = ["p/db/db-20240501T080000Z.dump", "p/db/db-latest.dump"]
            .iter()
            .map(|k| S3Object {
                key: (*k).to_owned(),
                size: 1,
                md5: None,
            })
            .collect();
        let stamped: Vec<&str> = keys
            .timestamped(&objects)
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(stamped, ["p/db/db-20240501T080000Z.dump"]);
    }
}
