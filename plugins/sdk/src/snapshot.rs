//! Which backup a restore means, checked before a Job is rendered for it.
//!
//! Field paths are those of the `DbRestore` resource, whose `spec.snapshot` the host turned into
//! the contract's [`Snapshot`](crate::Snapshot).

use k8s_openapi::jiff::Timestamp;

use k8s_openapi::api::core::v1::EnvVar;

use crate::pod::env;
use crate::{PluginError, Snapshot};

/// Field of a snapshot given by object key.
pub const KEY_FIELD: &str = "spec.snapshot.key";
/// Field of a snapshot given by point in time.
pub const POINT_IN_TIME_FIELD: &str = "spec.snapshot.pointInTime";

/// The strftime layout of the timestamp in backup object names (UTC, second precision), e.g.
/// `20240501T080000Z`. Names sort in time order because the layout is fixed-width.
pub const OBJECT_TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// An object key relative to the bucket, without a leading `/`.
pub fn key(value: &str) -> Result<String, PluginError> {
    let key = value.trim().trim_start_matches('/');
    if key.is_empty() {
        return Err(PluginError::invalid(
            KEY_FIELD,
            "is empty; give the object key of a backup relative to the bucket, e.g. \
             `postgres/shop-orders/shop-orders-20240501T080000Z.dump`",
        ));
    }
    if key.ends_with('/') {
        return Err(PluginError::invalid(
            KEY_FIELD,
            format!("{key:?} names a folder; give the key of one backup object in it"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(PluginError::invalid(
            KEY_FIELD,
            "contains control characters; give the object key exactly as the bucket lists it",
        ));
    }
    Ok(key.to_string())
}

/// `value` (RFC 3339, any offset) as UTC RFC 3339 with whole seconds, e.g.
/// `2024-05-01T08:00:00Z` for `2024-05-01T10:00:00.5+02:00`.
///
/// Truncating the fraction loses nothing: backups are named to the second, and one taken at
/// second `s` is at or before every instant within `s`.
pub fn point_in_time_utc(value: &str) -> Result<String, PluginError> {
    let ts: Timestamp = value.trim().parse().map_err(|e| {
        PluginError::invalid(
            POINT_IN_TIME_FIELD,
            format!(
                "{value:?} is not an RFC 3339 time with an offset ({e}); write e.g. \
                 `2024-05-01T08:00:00Z` or `2024-05-01T10:00:00+02:00`"
            ),
        )
    })?;
    let whole = Timestamp::from_second(ts.as_second()).map_err(|e| {
        PluginError::invalid(
            POINT_IN_TIME_FIELD,
            format!("{value:?} is out of range: {e}"),
        )
    })?;
    Ok(whole.to_string())
}

/// The object key of the backup to restore ([`key`]).
pub const KEY_ENV: &str = "SNAPSHOT_KEY";
/// `true`: restore the `<name>-latest` copy.
pub const LATEST_ENV: &str = "SNAPSHOT_LATEST";
/// UTC RFC 3339 ([`point_in_time_utc`]): restore the newest backup taken at or before it.
pub const POINT_IN_TIME_ENV: &str = "SNAPSHOT_POINT_IN_TIME";

/// The one env var that tells a restore script which backup to read: exactly one of
/// [`KEY_ENV`], [`LATEST_ENV`] and [`POINT_IN_TIME_ENV`] is set, so the script need not
/// decide between contradicting ones.
pub fn selection_env(snapshot: &Snapshot) -> Result<EnvVar, PluginError> {
    Ok(match snapshot {
        Snapshot::Key(k) => env(KEY_ENV, key(k)?),
        Snapshot::Latest => env(LATEST_ENV, "true"),
        Snapshot::PointInTime(t) => env(POINT_IN_TIME_ENV, point_in_time_utc(t)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_in_time_are_normalised_to_utc_seconds() {
        assert_eq!(
            point_in_time_utc("2024-05-01T08:00:00Z").expect("valid"),
            "2024-05-01T08:00:00Z"
        );
        assert_eq!(
            point_in_time_utc("2024-05-01T10:00:00.999+02:00").expect("valid"),
            "2024-05-01T08:00:00Z"
        );
        assert_eq!(
            point_in_time_utc("2024-05-01T00:30:00-01:00").expect("valid"),
            "2024-05-01T01:30:00Z"
        );
    }

    #[test]
    fn a_time_without_offset_or_in_another_format_is_refused_at_its_field() {
        for bad in ["2024-05-01T08:00:00", "yesterday", "2024-05-01", ""] {
            let err = point_in_time_utc(bad).expect_err(bad);
            let PluginError::Invalid(d) = err else {
                panic!("{bad:?} must be invalid input")
            };
            assert_eq!(d[0].field, POINT_IN_TIME_FIELD);
            assert!(
                d[0].message.contains("2024-05-01T08:00:00Z"),
                "{}",
                d[0].message
            );
        }
    }

    #[test]
    fn keys_are_made_relative_and_folders_refused() {
        assert_eq!(
            key("/pg/a/a-latest.dump").expect("valid"),
            "pg/a/a-latest.dump"
        );
        assert!(key("  ").is_err());
        assert!(key("pg/a/").is_err());
        assert!(key("pg/a\nb").is_err());
    }

    #[test]
    fn a_restore_gets_exactly_the_variable_of_its_selection() {
        let pair = |s: Snapshot| {
            let e = selection_env(&s).expect("valid");
            (e.name, e.value.expect("a literal"))
        };
        assert_eq!(
            pair(Snapshot::Key("/pg/a/a-20240501T080000Z.dump".into())),
            (KEY_ENV.into(), "pg/a/a-20240501T080000Z.dump".into())
        );
        assert_eq!(pair(Snapshot::Latest), (LATEST_ENV.into(), "true".into()));
        assert_eq!(
            pair(Snapshot::PointInTime("2024-05-01T10:00:00+02:00".into())),
            (POINT_IN_TIME_ENV.into(), "2024-05-01T08:00:00Z".into())
        );
        assert!(matches!(
            selection_env(&Snapshot::Key("pg/".into())),
            Err(PluginError::Invalid(d)) if d[0].field == KEY_FIELD
        ));
    }
}
