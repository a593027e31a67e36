//! When a backup is overdue. Pure: the controller passes in the clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The CronJob controller's macros, as croner spells them.
fn expand(expr: &str) -> &str {
    match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    }
}

/// The first time the schedule fires strictly after `after` (UTC, as the CronJob's timeZone).
pub fn next_fire(cron: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = croner::Cron::new(expand(cron)).parse().ok()?;
    cron.find_next_occurrence(&after, false).ok()
}

/// The state of a backup schedule at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// The run that fired at `fired` has not succeeded although `grace` has passed.
    Overdue { fired: DateTime<Utc> },
    /// Nothing is late; check again at `recheck` (the next fire time plus grace).
    OnTime { recheck: DateTime<Utc> },
}

/// Whether a backup is overdue: the schedule fired after the last successful backup (or, before
/// the first one, after the schedule was set up) and `grace` has passed since without a success.
/// `last_scheduled` is the CronJob's `status.lastScheduleTime`: a run the CronJob controller
/// started that has not succeeded counts as fired even when the schedule cannot say so.
pub fn due(
    cron: &str,
    since: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    last_scheduled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<Due> {
    let anchor = last_success.map_or(since, |s| s.max(since));
    let mut fired = next_fire(cron, anchor)?;
    if let Some(scheduled) = last_scheduled
        && last_success.is_none_or(|s| scheduled > s)
    {
        fired = fired.min(scheduled);
    }
    let grace = chrono::Duration::from_std(grace).ok()?;
    if fired + grace <= now {
        Some(Due::Overdue { fired })
    } else {
        Some(Due::OnTime {
            recheck: fired + grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const GRACE: Duration = Duration::from_secs(3600);

    #[test]
    fn a_nightly_backup_that_ran_is_on_time_until_the_next_night_plus_grace() {
        let due = due(
            "15 3 * * *",
            t("2026-11-01T00:00:00Z"),
            Some(t("2026-12-02T03:20:00Z")),
            None,
            t("2026-12-02T12:00:00Z"),
            GRACE,
        );
        assert_eq!(
            due,
            Some(Due::OnTime {
                recheck: t("2026-12-03T04:15:00Z")
            })
        );
    }

    #[test]
    fn a_missed_night_is_overdue_from_its_fire_time() {
        let due = due(
            "15 3 * * *",
            t("2026-11-01T00:00:00Z"),
            Some(t("2026-12-01T03:20:00Z")),
            None,
            t("2026-12-02T12:00:00Z"),
            GRACE,
        );
        assert_eq!(
            due,
            Some(Due::Overdue {
                fired: t("2026-12-02T03:15:00Z")
            })
        );
    }

    #[test]
    fn before_the_first_backup_the_schedule_start_is_the_anchor() {
        let since = t("2026-12-02T10:00:00Z");
        assert!(matches!(
            due(
                "@daily",
                since,
                None,
                None,
                t("2026-12-02T23:00:00Z"),
                GRACE
            ),
            Some(Due::OnTime { .. })
        ));
        assert_eq!(
            due(
                "@daily",
                since,
                None,
                None,
                t("2026-12-03T01:00:01Z"),
                GRACE
            ),
            Some(Due::Overdue {
                fired: t("2026-12-03T00:00:00Z")
            })
        );
    }

    #[test]
    fn a_run_the_cronjob_started_that_never_succeeded_is_overdue() {
        // Created an hour ago; the CronJob controller says it started a run 50 minutes ago.
        let due = due(
            "@daily",
            t("2026-12-02T10:00:00Z"),
            None,
            Some(t("2026-12-02T10:10:00Z")),
            t("2026-12-02T11:00:00Z"),
            Duration::from_secs(600),
        );
        assert_eq!(
            due,
            Some(Due::Overdue {
                fired: t("2026-12-02T10:10:00Z")
            })
        );
    }

    #[test]
    fn an_unparsable_schedule_has_no_due_date() {
        assert_eq!(
            due(
                "61 * * * *",
                t("2026-12-02T10:00:00Z"),
                None,
                None,
                t("2026-12-03T10:00:00Z"),
                GRACE
            ),
            None
        );
    }
}
