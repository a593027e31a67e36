//! `metav1.Condition` bookkeeping shared by the three controllers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const COMMISSIONED: &str = "Commissioned";
pub const BACKUP_SCHEDULED: &str = "BackupScheduled";
pub const LAST_BACKUP_SUCCEEDED: &str = "LastBackupSucceeded";
pub const BACKUP_OVERDUE: &str = "BackupOverdue";
pub const COMPLETE: &str = "Complete";

/// The state one condition should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Want {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Sets a condition; `lastTransitionTime` moves only when the status flips, as Kubernetes
/// conventions ask, so an unchanged condition compares equal and costs no write.
pub fn set(conditions: &mut Vec<Condition>, want: &Want, generation: Option<i64>, now: Timestamp) {
    let status = status_str(want.status);
    match conditions.iter_mut().find(|c| c.type_ == want.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.into();
            c.reason = want.reason.clone();
            c.message = want.message.clone();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: want.type_.into(),
            status: status.into(),
            reason: want.reason.clone(),
            message: want.message.clone(),
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Drops a condition that no longer applies (e.g. backup conditions once backups are disabled).
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

/// A condition that changed between two statuses: what an Event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Conditions whose status or reason differ from before (new conditions included).
pub fn transitions(before: &[Condition], after: &[Condition]) -> Vec<Transition> {
    after
        .iter()
        .filter(|a| {
            get(before, &a.type_).is_none_or(|b| b.status != a.status || b.reason != a.reason)
        })
        .map(|a| Transition {
            type_: a.type_.clone(),
            status: a.status == "True",
            reason: a.reason.clone(),
            message: a.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut c = Vec::new();
        set(
            &mut c,
            &Want::new(READY, false, "Pending", "a"),
            Some(1),
            at(10),
        );
        set(
            &mut c,
            &Want::new(READY, false, "Other", "b"),
            Some(2),
            at(20),
        );
        assert_eq!(c[0].last_transition_time, Time(at(10)));
        assert_eq!(c[0].reason, "Other");
        assert_eq!(c[0].observed_generation, Some(2));
        set(
            &mut c,
            &Want::new(READY, true, "Ready", "c"),
            Some(2),
            at(30),
        );
        assert_eq!(c[0].last_transition_time, Time(at(30)));
        assert!(is_true(&c, READY));
    }

    #[test]
    fn transitions_report_new_and_changed_conditions_only() {
        let mut before = Vec::new();
        set(
            &mut before,
            &Want::new(READY, false, "Pending", ""),
            None,
            at(1),
        );
        set(
            &mut before,
            &Want::new(COMMISSIONED, false, "Running", ""),
            None,
            at(1),
        );
        let mut after = before.clone();
        set(
            &mut after,
            &Want::new(COMMISSIONED, true, "JobSucceeded", "done"),
            None,
            at(2),
        );
        set(
            &mut after,
            &Want::new(BACKUP_SCHEDULED, true, "CronJobCreated", ""),
            None,
            at(2),
        );
        let t = transitions(&before, &after);
        let types: Vec<_> = t.iter().map(|t| t.type_.as_str()).collect();
        assert_eq!(types, [COMMISSIONED, BACKUP_SCHEDULED]);
        assert!(transitions(&after, &after).is_empty());
    }
}
