//! The DbRestore controller: one restore Job per DbRestore, one restore at a time per Database.

use std::sync::Arc;

use dbo_api::{Database, DbInstance, DbRestore, DbRestoreStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;

use crate::apply;
use crate::conditions::{self as cond, Want};
use crate::context::Context;
use crate::jobs::{self, JobState};
use crate::{Blocked, Error};

const SUCCEEDED: &str = "Succeeded";
const FAILED: &str = "Failed";

pub async fn reconcile(restore: Arc<DbRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = restore.namespace_or_default();
    let name = restore.name_any();
    let key = format!("DbRestore/{ns}/{name}");
    let api: Api<DbRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let before = restore.status.clone().unwrap_or_default();
    if matches!(before.phase.as_deref(), Some(SUCCEEDED | FAILED)) {
        // A restore runs once; a finished DbRestore is a record.
        return Ok(Action::await_change());
    }
    let mut status = before.clone();
    let (wants, action, retried) = match step(&restore, &ns, &ctx, &mut status).await? {
        Ok((wants, action)) => (wants, action, false),
        Err(Blocked {
            reason,
            message,
            retry,
        }) => {
            if !crate::is_waiting(reason) {
                ctx.metrics.failed("dbrestore", reason);
            }
            status.phase = Some("Pending".into());
            let action = if retry {
                ctx.backoff(&key)
            } else {
                Action::requeue(ctx.config.recheck)
            };
            (
                vec![Want::new(cond::READY, false, reason, message)],
                action,
                retry,
            )
        }
    };
    let now = Timestamp::now();
    for w in &wants {
        cond::set(&mut status.conditions, w, restore.metadata.generation, now);
    }
    status.observed_generation = restore.metadata.generation;
    apply::report(
        &ctx,
        &api,
        restore.as_ref(),
        apply::StatusChange {
            before: &before,
            after: &status,
            conditions: |s: &DbRestoreStatus| &s.conditions,
        },
        "Restore",
        |t| !t.status && !t.reason.starts_with("Waiting"),
    )
    .await?;
    if !retried {
        ctx.succeeded(&key);
    }
    Ok(action)
}

async fn step(
    restore: &DbRestore,
    ns: &str,
    ctx: &Context,
    status: &mut DbRestoreStatus,
) -> Result<Result<(Vec<Want>, Action), Blocked>, Error> {
    let dbs: Api<Database> = Api::namespaced(ctx.client.clone(), ns);
    let Some(db) = dbs.get_opt(&restore.spec.database).await? else {
        return Ok(Err(Blocked::new(
            "DatabaseNotFound",
            format!(
                "spec.database: Database {ns}/{} does not exist; create it or fix the name",
                restore.spec.database
            ),
            false,
        )));
    };
    let db_ready = db
        .status
        .as_ref()
        .is_some_and(|s| cond::is_true(&s.conditions, cond::READY));
    if !db_ready {
        return Ok(Err(Blocked::new(
            "WaitingForDatabase",
            format!(
                "Database {ns}/{} is not ready yet (see its Ready condition); the restore starts once it is",
                db.name_any()
            ),
            false,
        )));
    }
    let instances: Api<DbInstance> = Api::all(ctx.client.clone());
    let Some(instance) = instances.get_opt(&db.spec.instance).await? else {
        return Ok(Err(Blocked::new(
            "InstanceNotFound",
            format!(
                "DbInstance {:?} of Database {ns}/{} does not exist",
                db.spec.instance,
                db.name_any()
            ),
            false,
        )));
    };
    let Some(served) = ctx.catalog.engine(&instance.spec.engine) else {
        return Ok(Err(Blocked::new(
            "EngineUnavailable",
            format!("no engine plugin {:?} is loaded", instance.spec.engine),
            false,
        )));
    };
    let rendered = {
        let (restore, db, instance) = (restore.clone(), db.clone(), instance.clone());
        let engine = served.engine.clone();
        let options = ctx.config.render.clone();
        tokio::task::spawn_blocking(move || {
            dbo_render::render_restore(&restore, &db, &instance, engine.as_ref(), &options)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    };
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => {
            return Ok(Err(Blocked::render(&e)));
        }
    };
    let Some(job) = rendered.jobs.first() else {
        return Ok(Err(Blocked::new(
            "RenderFailed",
            "the renderer returned no restore Job",
            true,
        )));
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let live = jobs_api.get_opt(&job.name_any()).await?;
    if live.is_none()
        && let Some(other) = blocking_restore(restore, &db, ns, ctx).await?
    {
        return Ok(Err(Blocked::new(
            "WaitingForRestore",
            format!(
                "{other} is restoring Database {ns}/{} right now; this restore starts after it",
                db.name_any()
            ),
            false,
        )));
    }
    let accounts = Api::namespaced(ctx.client.clone(), ns);
    for sa in &rendered.service_accounts {
        let live_sa = accounts.get_opt(&sa.name_any()).await?;
        apply::ensure(&accounts, sa, live_sa.as_ref()).await?;
    }
    let (live, _) = apply::ensure(&jobs_api, job, live.as_ref()).await?;
    let job_name = live.name_any();
    status.job_name = Some(job_name.clone());
    if status.started_at.is_none() {
        status.started_at = Some(
            live.metadata
                .creation_timestamp
                .as_ref()
                .map_or_else(|| Timestamp::now().to_string(), |t| t.0.to_string()),
        );
    }
    if let Some(k) = &restore.spec.snapshot.key {
        status.snapshot_key = Some(k.clone());
    }
    let created = Want::new(
        cond::READY,
        true,
        "JobCreated",
        format!("restore Job {ns}/{job_name} created"),
    );
    Ok(Ok(match jobs::state(&live) {
        JobState::Running => {
            status.phase = Some("Running".into());
            (
                vec![
                    created,
                    Want::new(
                        cond::COMPLETE,
                        false,
                        "Running",
                        format!("restore Job {ns}/{job_name} is running"),
                    ),
                ],
                Action::requeue(ctx.config.recheck),
            )
        }
        JobState::Succeeded { at } => {
            status.phase = Some(SUCCEEDED.into());
            status.completed_at = Some(at.unwrap_or_else(Timestamp::now).to_string());
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
            if let Some(report) = jobs::termination_report(&pods, &job_name).await? {
                status.snapshot_key = report.key.or(status.snapshot_key.take());
            }
            (
                vec![
                    created,
                    Want::new(
                        cond::COMPLETE,
                        true,
                        "RestoreSucceeded",
                        format!(
                            "restored {} into Database {ns}/{}",
                            status.snapshot_key.as_deref().unwrap_or("the snapshot"),
                            db.name_any()
                        ),
                    ),
                ],
                Action::await_change(),
            )
        }
        JobState::Failed { message } => {
            status.phase = Some(FAILED.into());
            status.completed_at = Some(
                jobs::finished_at(&live)
                    .unwrap_or_else(Timestamp::now)
                    .to_string(),
            );
            (
                vec![
                    created,
                    Want::new(
                        cond::COMPLETE,
                        false,
                        "RestoreFailed",
                        format!(
                            "restore Job {ns}/{job_name} failed: {message}; see `kubectl -n {ns} logs job/{job_name}`"
                        ),
                    ),
                ],
                Action::await_change(),
            )
        }
    }))
}

/// Another restore that runs first: one already running, or an older pending one (oldest first,
/// then by name, so concurrent reconciles of two new DbRestores agree on who goes first).
async fn blocking_restore(
    restore: &DbRestore,
    db: &Database,
    ns: &str,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let api: Api<DbRestore> = Api::namespaced(ctx.client.clone(), ns);
    let me = (
        restore.metadata.creation_timestamp.clone(),
        restore.name_any(),
    );
    for other in api.list(&ListParams::default()).await?.items {
        if other.spec.database != db.name_any() || other.name_any() == restore.name_any() {
            continue;
        }
        let phase = other.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some(SUCCEEDED | FAILED)) {
            continue;
        }
        let running = phase == Some("Running");
        // A pending restore that cannot run (invalid spec, ...) must not hold up the others.
        let queued = phase.is_none()
            || other.status.as_ref().is_some_and(|s| {
                cond::get(&s.conditions, cond::READY)
                    .is_some_and(|c| c.reason == "WaitingForRestore")
            });
        let earlier = queued && (other.metadata.creation_timestamp.clone(), other.name_any()) < me;
        if running || earlier {
            return Ok(Some(format!("DbRestore {ns}/{}", other.name_any())));
        }
    }
    Ok(None)
}
