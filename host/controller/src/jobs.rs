//! Reading what a Job's run did, as a cluster's job controller reports it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded { at: Option<Timestamp> },
    Failed { message: String },
}

/// The outcome of a Job from its conditions (`Complete` / `Failed`), falling back to the
/// counters older job controllers set without conditions.
pub fn state(job: &Job) -> JobState {
    let Some(status) = job.status.as_ref() else {
        return JobState::Running;
    };
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => {
                return JobState::Succeeded {
                    at: status.completion_time.as_ref().map(|t| t.0),
                };
            }
            "Failed" => {
                let message = [c.reason.as_deref(), c.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                return JobState::Failed {
                    message: if message.is_empty() {
                        "the Job failed".into()
                    } else {
                        message
                    },
                };
            }
            _ => {}
        }
    }
    if status.succeeded.unwrap_or(0) > 0 && status.active.unwrap_or(0) == 0 {
        return JobState::Succeeded {
            at: status.completion_time.as_ref().map(|t| t.0),
        };
    }
    JobState::Running
}

/// When a finished Job's final condition was set.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.status == "True")
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

/// What the backup and restore entrypoints write to `/dev/termination-log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub key: Option<String>,
    pub latest_key: Option<String>,
    pub size: Option<u64>,
    pub time: Option<String>,
}

/// The report of the Job's succeeded pod, if it left one.
pub async fn termination_report(pods: &Api<Pod>, job: &str) -> Result<Option<Report>, kube::Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(list.items.iter().rev().find_map(report_of))
}

fn report_of(pod: &Pod) -> Option<Report> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .filter(|t| t.exit_code == 0)
        .find_map(|t| serde_json::from_str(t.message.as_deref()?.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    #[test]
    fn conditions_decide_the_outcome() {
        assert_eq!(state(&job(json!({"active": 1}))), JobState::Running);
        assert!(matches!(
            state(&job(
                json!({"succeeded": 1, "completionTime": "2026-12-01T03:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]})
            )),
            JobState::Succeeded { at: Some(_) }
        ));
        assert_eq!(
            state(&job(
                json!({"failed": 4, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
            )),
            JobState::Failed {
                message: "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            }
        );
    }

    #[test]
    fn the_backup_report_comes_from_the_succeeded_container() {
        let pod: Pod = serde_json::from_value(json!({"status": {"containerStatuses": [{
            "name": "backup", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0,
                "message": "{\"key\":\"p/orders-2026.dump\",\"latestKey\":\"p/orders-latest.dump\",\"size\":42,\"time\":\"2026-12-01T03:00:42Z\"}\n"}}
        }]}}))
        .unwrap();
        let report = report_of(&pod).unwrap();
        assert_eq!(report.key.as_deref(), Some("p/orders-2026.dump"));
        assert_eq!(report.size, Some(42));
    }
}
