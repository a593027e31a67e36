//! End-to-end scenarios of the controllers, as a user sees them through the API. They run
//! against the in-process API server, or against a real cluster when `KUBECONFIG` is set.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use dbo_api::{Database, DbRestore};
use dbo_controller::Config;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn owner_uids(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.clone())
        .collect()
}

async fn commission_job(env: &Env, db: &str) -> Job {
    let jobs: Api<Job> = env.api();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = jobs
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/component=commission,kci.rocks/database={db}"
            )))
            .await
            .expect("jobs list");
        if let Some(job) = list.items.into_iter().next() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no commissioning Job for {db}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates an instance + admin Secret + Database and waits until the Database is Ready.
async fn ready_database(env: &Env, name: &str, cron: Option<&str>) -> Database {
    env.create_admin_secret().await;
    let inst = env.instance("pg", "postgres");
    env.instances()
        .create(&PostParams::default(), &inst)
        .await
        .expect("instance");
    let dbs: Api<Database> = env.api();
    dbs.create(
        &PostParams::default(),
        &env.database(name, &inst.name_any(), cron),
    )
    .await
    .expect("database");
    let job = commission_job(env, name).await;
    env.finish_job(&job.name_any(), true).await;
    wait_for(&dbs, name, "Database Ready", |d| {
        is(&db_condition(d, "Ready"), "True", "Ready")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_its_admin_secret_waits_then_becomes_ready() {
    let env = Env::start("instance-ready").await;
    let inst = env.instance("pg", "postgres");
    env.instances()
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();
    let waiting = wait_for(
        &env.instances(),
        &inst.name_any(),
        "AdminSecretMissing",
        |i| {
            is(
                &instance_condition(i, "Ready"),
                "False",
                "AdminSecretMissing",
            )
        },
    )
    .await;
    let (_, _, message) = instance_condition(&waiting, "Ready").unwrap();
    assert!(
        message.contains(&format!("{}/admin", env.ns)),
        "the condition names the missing Secret: {message}"
    );

    let dbs: Api<Database> = env.api();
    dbs.create(
        &PostParams::default(),
        &env.database("app", &inst.name_any(), None),
    )
    .await
    .unwrap();
    wait_for(&dbs, "app", "InstanceNotReady", |d| {
        is(&db_condition(d, "Ready"), "False", "InstanceNotReady")
    })
    .await;

    env.create_admin_secret().await;
    let ready = wait_for(&env.instances(), &inst.name_any(), "instance Ready", |i| {
        is(&instance_condition(i, "Ready"), "True", "Ready")
    })
    .await;
    let status = ready.status.unwrap();
    let plugin = status.engine.expect("status names the plugin");
    assert_eq!(plugin.name, "postgres");
    assert!(plugin.digest.starts_with("sha256:"), "{}", plugin.digest);
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!(
        status.info.get("DB_CONN").map(String::as_str),
        Some("pg.example")
    );

    // The Database stops waiting on its own once the instance is ready.
    commission_job(&env, "app").await;
    wait_for(&dbs, "app", "Commissioning", |d| {
        is(&db_condition(d, "Commissioned"), "False", "Commissioning")
    })
    .await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gets_its_secret_job_and_cronjob_and_is_commissioned_when_the_job_completes() {
    let env = Env::start("database-objects").await;
    env.create_admin_secret().await;
    let inst = env.instance("pg", "postgres");
    env.instances()
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();
    let dbs: Api<Database> = env.api();
    let db = dbs
        .create(
            &PostParams::default(),
            &env.database("orders", &inst.name_any(), Some("15 3 * * *")),
        )
        .await
        .unwrap();
    let uid = db.uid().unwrap();

    let secrets: Api<Secret> = env.api();
    let secret = wait_for(&secrets, "orders-credentials", "credentials Secret", |_| {
        true
    })
    .await;
    assert_eq!(owner_uids(&secret.metadata), std::slice::from_ref(&uid));
    let keys: BTreeSet<_> = secret.data.unwrap_or_default().into_keys().collect();
    for key in ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"] {
        assert!(keys.contains(key), "Secret has {key}: {keys:?}");
    }

    let cron_jobs: Api<CronJob> = env.api();
    let cron = wait_for(&cron_jobs, "orders-backup", "backup CronJob", |_| true).await;
    assert_eq!(owner_uids(&cron.metadata), std::slice::from_ref(&uid));
    assert_eq!(cron.spec.schedule, "15 3 * * *");
    assert_eq!(cron.spec.concurrency_policy.as_deref(), Some("Forbid"));

    let job = commission_job(&env, "orders").await;
    let ready_before = dbs.get("orders").await.unwrap();
    assert!(is(
        &db_condition(&ready_before, "Commissioned"),
        "False",
        "Commissioning"
    ));

    env.finish_job(&job.name_any(), true).await;
    let done = wait_for(&dbs, "orders", "Commissioned", |d| {
        is(&db_condition(d, "Commissioned"), "True", "JobSucceeded")
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Ready"));
    assert!(is(
        &condition(Some(&status.conditions), "BackupScheduled"),
        "True",
        "CronJobReady"
    ));
    assert!(status.database.is_some() && status.user.is_some());

    let reasons: Vec<String> = env
        .events_for("Database", "orders", "JobSucceeded")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "JobSucceeded"),
        "events: {reasons:?}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_schedule_changes_update_or_remove_the_cronjob() {
    let env = Env::start("backup-toggle").await;
    ready_database(&env, "app", Some("0 1 * * *")).await;
    let dbs: Api<Database> = env.api();
    let cron_jobs: Api<CronJob> = env.api();
    wait_for(&cron_jobs, "app-backup", "CronJob", |c| {
        c.spec.schedule == "0 1 * * *"
    })
    .await;

    dbs.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backup": {"cron": "30 2 * * 0"}}})),
    )
    .await
    .unwrap();
    wait_for(&cron_jobs, "app-backup", "CronJob schedule updated", |c| {
        c.spec.schedule == "30 2 * * 0"
    })
    .await;

    dbs.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backup": {"enable": false}}})),
    )
    .await
    .unwrap();
    wait_gone(&cron_jobs, "app-backup", "CronJob").await;
    let db = wait_for(&dbs, "app", "backup conditions gone", |d| {
        db_condition(d, "BackupScheduled").is_none()
    })
    .await;
    assert!(is(&db_condition(&db, "Ready"), "True", "Ready"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_annotations_a_user_adds_to_the_secret_are_kept() {
    let env = Env::start("secret-keys").await;
    ready_database(&env, "app", None).await;
    let secrets: Api<Secret> = env.api();
    let before = secrets.get("app-credentials").await.unwrap();
    let password = before.data.as_ref().unwrap()["POSTGRES_PASSWORD"].clone();

    secrets
        .patch(
            "app-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"team": "payments"}},
                "stringData": {"EXTRA": "mine"}
            })),
        )
        .await
        .unwrap();
    // A spec change makes the operator re-render and re-apply the Secret.
    let dbs: Api<Database> = env.api();
    dbs.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"extensions": ["pgcrypto"]}})),
    )
    .await
    .unwrap();
    wait_for(&dbs, "app", "new generation observed", |d| {
        d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
    })
    .await;
    let after = secrets.get("app-credentials").await.unwrap();
    let data = after.data.unwrap();
    assert_eq!(data["EXTRA"].0, b"mine");
    assert_eq!(
        data["POSTGRES_PASSWORD"], password,
        "the password is never regenerated"
    );
    assert_eq!(
        after
            .metadata
            .annotations
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("payments")
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_commissioning_request_runs_a_new_job() {
    let env = Env::start("recommission").await;
    ready_database(&env, "app", None).await;
    let first = commission_job(&env, "app").await.name_any();
    let dbs: Api<Database> = env.api();
    dbs.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"extensions": ["pgcrypto"]}})),
    )
    .await
    .unwrap();
    let jobs: Api<Job> = env.api();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let second = loop {
        let names: Vec<String> = jobs
            .list(&ListParams::default().labels("app.kubernetes.io/component=commission"))
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .filter(|n| *n != first)
            .collect();
        if let Some(n) = names.into_iter().next() {
            break n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second commissioning Job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_for(&dbs, "app", "commissioning again", |d| {
        is(&db_condition(d, "Commissioned"), "False", "Commissioning")
    })
    .await;
    env.finish_job(&second, true).await;
    wait_for(&dbs, "app", "commissioned again", |d| {
        is(&db_condition(d, "Commissioned"), "True", "JobSucceeded")
    })
    .await;
    wait_gone(&jobs, &first, "the old commissioning Job").await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commissioning_job_is_reported_with_the_way_to_its_logs() {
    let env = Env::start("commission-fails").await;
    env.create_admin_secret().await;
    let inst = env.instance("pg", "postgres");
    env.instances()
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();
    let dbs: Api<Database> = env.api();
    dbs.create(
        &PostParams::default(),
        &env.database("app", &inst.name_any(), None),
    )
    .await
    .unwrap();
    let job = commission_job(&env, "app").await;
    env.finish_job(&job.name_any(), false).await;
    let db = wait_for(&dbs, "app", "JobFailed", |d| {
        is(&db_condition(d, "Commissioned"), "False", "JobFailed")
    })
    .await;
    let (_, _, message) = db_condition(&db, "Commissioned").unwrap();
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(
        message.contains(&format!("logs job/{}", job.name_any())),
        "{message}"
    );
    assert_eq!(db.status.unwrap().phase.as_deref(), Some("Failed"));
    let events = env.events_for("Database", "app", "JobFailed").await;
    assert!(
        events
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("JobFailed")),
        "a Warning Event reports the failure: {events:?}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_database_runs_the_finalizer_and_collects_what_it_owned() {
    let env = Env::start("delete").await;
    ready_database(&env, "app", Some("0 4 * * *")).await;
    let dbs: Api<Database> = env.api();
    let db = dbs.get("app").await.unwrap();
    assert!(
        db.finalizers()
            .iter()
            .any(|f| f == dbo_controller::DATABASE_FINALIZER),
        "finalizer set: {:?}",
        db.finalizers()
    );
    let job = commission_job(&env, "app").await.name_any();
    dbs.delete("app", &DeleteParams::default()).await.unwrap();
    wait_gone(&dbs, "app", "Database").await;
    wait_gone(
        &env.api::<CronJob>(),
        "app-backup",
        "CronJob (garbage-collected)",
    )
    .await;
    wait_gone(
        &env.api::<Secret>(),
        "app-credentials",
        "credentials Secret (garbage-collected)",
    )
    .await;
    // Not owned (they live beside the admin Secret): the finalizer removes them.
    wait_gone(&env.api::<Job>(), &job, "commissioning Job").await;
    let copies = env
        .api::<Secret>()
        .list(&ListParams::default().labels("app.kubernetes.io/component=commission"))
        .await
        .unwrap();
    assert!(
        copies.items.is_empty(),
        "credentials copy removed: {:?}",
        copies.items
    );
    let kept = env.events_for("Database", "app", "DatabaseKept").await;
    assert!(
        kept.iter()
            .any(|e| e.reason.as_deref() == Some("DatabaseKept")),
        "an Event says the server-side database was kept: {kept:?}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_trap_fails_only_its_database() {
    let env = Env::start("plugin-trap").await;
    env.create_admin_secret().await;
    let good = env.instance("pg", "postgres");
    let bad = env.instance("panic", "panic");
    for i in [&good, &bad] {
        env.instances()
            .create(&PostParams::default(), i)
            .await
            .unwrap();
    }
    let dbs: Api<Database> = env.api();
    dbs.create(
        &PostParams::default(),
        &env.database("victim", &bad.name_any(), Some("0 3 * * *")),
    )
    .await
    .unwrap();
    dbs.create(
        &PostParams::default(),
        &env.database("bystander", &good.name_any(), Some("0 3 * * *")),
    )
    .await
    .unwrap();
    let victim = wait_for(&dbs, "victim", "PluginFailed", |d| {
        is(&db_condition(d, "Ready"), "False", "PluginFailed")
    })
    .await;
    let (_, _, message) = db_condition(&victim, "Ready").unwrap();
    assert!(
        message.contains("panics on purpose"),
        "the trap's message reaches the user: {message}"
    );
    commission_job(&env, "bystander").await;
    wait_for(
        &env.api::<CronJob>(),
        "bystander-backup",
        "the other Database's CronJob",
        |_| true,
    )
    .await;
    let events = env.events_for("Database", "victim", "PluginFailed").await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("PluginFailed")),
        "{events:?}"
    );
    // What an alert on /metrics sees: the trap, by engine, and the failure, by reason.
    let traps = env
        .metric(r#"db_operator_plugin_traps_total{engine="panic",operation="backup"}"#)
        .unwrap_or(0.0);
    assert!(traps >= 1.0, "{}", env.metrics.encode());
    assert_eq!(
        env.metric(r#"db_operator_plugin_traps_total{engine="postgres",operation="backup"}"#),
        None,
        "the healthy engine has no traps"
    );
    assert!(
        env.metric(
            r#"db_operator_reconcile_errors_total{controller="database",reason="PluginFailed"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{}",
        env.metrics.encode()
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_operator_makes_no_writes() {
    let mut env = Env::start("no-op").await;
    ready_database(&env, "app", Some("0 3 * * *")).await;
    let dbs: Api<Database> = env.api();
    wait_for(&env.api::<CronJob>(), "app-backup", "CronJob", |_| true).await;
    // Let the last status write land, then restart the controllers: every object is reconciled
    // again from scratch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.stop_controllers().await;
    let snapshot = async |env: &Env| {
        let mut v = Vec::new();
        for d in dbs.list(&ListParams::default()).await.unwrap().items {
            v.push((d.name_any(), d.resource_version()));
        }
        for s in env
            .api::<Secret>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            v.push((s.name_any(), s.resource_version()));
        }
        for j in env
            .api::<Job>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            v.push((j.name_any(), j.resource_version()));
        }
        for c in env
            .api::<CronJob>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            v.push((c.name_any(), c.resource_version()));
        }
        for i in env
            .instances()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            v.push((i.name_any(), i.resource_version()));
        }
        v
    };
    let before = snapshot(&env).await;
    env.reset_stats();
    env.start_controllers().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(stats) = env.stats() {
        assert_eq!(
            stats.writes, 0,
            "a reconcile of converged objects writes nothing; writes by resource: {:?}",
            stats.writes_by_resource
        );
        assert!(stats.requests > 0, "the controllers did run and read");
    }
    assert_eq!(snapshot(&env).await, before, "no object changed");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_backup_job_is_recorded_in_the_status() {
    let env = Env::start("last-backup").await;
    let db = ready_database(&env, "app", Some("0 3 * * *")).await;
    let cron = wait_for(&env.api::<CronJob>(), "app-backup", "CronJob", |_| true).await;
    // What the CronJob controller would create at 03:00: a Job from the template, and its pod.
    let template = cron.spec.job_template.clone();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "app-backup-29000000", "namespace": env.ns,
            "labels": template.metadata.as_ref().and_then(|m| m.labels.clone())},
        "spec": template.spec,
    }))
    .unwrap();
    env.api::<Job>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let report = r#"{"key":"backups/app/app-2026-12-03T03:00:00Z.dump","latestKey":"backups/app/app-latest.dump","size":1234,"time":"2026-12-03T03:00:42Z"}"#;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app-backup-29000000-x1", "namespace": env.ns,
            "labels": {"job-name": "app-backup-29000000", "batch.kubernetes.io/job-name": "app-backup-29000000"}},
        "spec": {"containers": [{"name": "backup", "image": "x"}], "restartPolicy": "Never"}
    }))
    .unwrap();
    let pods: Api<Pod> = env.api();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        "app-backup-29000000-x1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "backup", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": report}}}]}}),
        ),
    )
    .await
    .unwrap();
    env.finish_job("app-backup-29000000", true).await;
    let dbs: Api<Database> = env.api();
    let after = wait_for(&dbs, &db.name_any(), "lastBackup recorded", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.last_backup.as_ref())
            .is_some()
    })
    .await;
    let last = after.status.as_ref().unwrap().last_backup.clone().unwrap();
    assert!(last.succeeded);
    assert_eq!(
        last.key.as_deref(),
        Some("backups/app/app-2026-12-03T03:00:00Z.dump")
    );
    assert_eq!(last.size_bytes, Some(1234));
    assert!(is(
        &db_condition(&after, "LastBackupSucceeded"),
        "True",
        "BackupSucceeded"
    ));
    assert!(is(
        &db_condition(&after, "BackupOverdue"),
        "False",
        "OnSchedule"
    ));
    let series = format!(
        r#"db_operator_backup_last_success_timestamp_seconds{{namespace="{}",database="app"}}"#,
        env.ns
    );
    let job = env.api::<Job>().get("app-backup-29000000").await.unwrap();
    let completed = job
        .status
        .and_then(|s| s.completion_time)
        .expect("the finished Job has a completion time")
        .0
        .as_second();
    assert_eq!(
        env.metric(&series),
        Some(completed as f64),
        "{}",
        env.metrics.encode()
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_cronjob_started_that_never_succeeded_raises_backup_overdue() {
    let mut env = Env::start("overdue").await;
    env.stop_controllers().await;
    let mut config = env.config();
    config.backup_grace = Duration::from_secs(1);
    env.start_controllers_with(config).await;
    ready_database(&env, "app", Some("0 3 * * *")).await;
    let cron_jobs: Api<CronJob> = env.api();
    wait_for(&cron_jobs, "app-backup", "CronJob", |_| true).await;
    let scheduled = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(5))
    .to_string();
    cron_jobs
        .patch_status(
            "app-backup",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": scheduled}})),
        )
        .await
        .unwrap();
    let dbs: Api<Database> = env.api();
    let db = wait_for(&dbs, "app", "BackupOverdue", |d| {
        is(&db_condition(d, "BackupOverdue"), "True", "ScheduleMissed")
    })
    .await;
    let (_, _, message) = db_condition(&db, "BackupOverdue").unwrap();
    assert!(
        message.contains(&scheduled[..16]),
        "names the missed run: {message}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_run_one_at_a_time_and_report_their_outcome() {
    let env = Env::start("restore").await;
    ready_database(&env, "app", Some("0 3 * * *")).await;
    let restores: Api<DbRestore> = env.api();
    for (name, snapshot) in [
        ("first", json!({"latest": true})),
        (
            "second",
            json!({"key": "backups/app/app-2026-12-01T03:00:00Z.dump"}),
        ),
    ] {
        let r: DbRestore = serde_json::from_value(json!({
            "apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore",
            "metadata": {"name": name, "namespace": env.ns},
            "spec": {"database": "app", "snapshot": snapshot}
        }))
        .unwrap();
        restores.create(&PostParams::default(), &r).await.unwrap();
    }
    let first = wait_for(&restores, "first", "first restore running", |r| {
        r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let second = wait_for(&restores, "second", "second restore waiting", |r| {
        r.status.as_ref().is_some_and(|s| {
            condition(Some(&s.conditions), "Ready")
                .is_some_and(|(_, reason, _)| reason == "WaitingForRestore")
        })
    })
    .await;
    assert!(
        second.status.unwrap().job_name.is_none(),
        "no second Job while the first runs"
    );
    let job = first.status.unwrap().job_name.unwrap();
    env.finish_job(&job, true).await;
    let done = wait_for(&restores, "first", "first restore Succeeded", |r| {
        r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    assert!(done.status.unwrap().completed_at.is_some());
    let second = wait_for(&restores, "second", "second restore running", |r| {
        r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let status = second.status.unwrap();
    assert_eq!(
        status.snapshot_key.as_deref(),
        Some("backups/app/app-2026-12-01T03:00:00Z.dump")
    );
    env.finish_job(status.job_name.as_deref().unwrap(), false)
        .await;
    let failed = wait_for(&restores, "second", "second restore Failed", |r| {
        r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let (_, reason, _) =
        condition(failed.status.as_ref().map(|s| &s.conditions), "Complete").unwrap();
    assert_eq!(reason, "RestoreFailed");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_a_missing_database_says_so() {
    let env = Env::start("restore-missing").await;
    let restores: Api<DbRestore> = env.api();
    let r: DbRestore = serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbRestore",
        "metadata": {"name": "r", "namespace": env.ns},
        "spec": {"database": "nope", "snapshot": {"latest": true}}
    }))
    .unwrap();
    restores.create(&PostParams::default(), &r).await.unwrap();
    let r = wait_for(&restores, "r", "DatabaseNotFound", |r| {
        r.status.as_ref().is_some_and(|s| {
            condition(Some(&s.conditions), "Ready")
                .is_some_and(|(_, reason, _)| reason == "DatabaseNotFound")
        })
    })
    .await;
    let (_, _, message) = condition(r.status.as_ref().map(|s| &s.conditions), "Ready").unwrap();
    assert!(
        message.contains("spec.database") && message.contains("nope"),
        "{message}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_of_converged_databases_reads_and_writes_nothing() {
    let mut env = Env::start("quiet-resync").await;
    ready_database(&env, "app", Some("0 3 * * *")).await;
    wait_for(&env.api::<CronJob>(), "app-backup", "CronJob", |_| true).await;
    env.stop_controllers().await;
    // Resync every 500 ms: several full reconciles of the converged Database in the window.
    let config = Config {
        resync: Duration::from_millis(500),
        ..env.config()
    };
    env.start_controllers_with(config).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.reset_stats();
    let reconciles = |env: &Env| {
        env.metric(r#"db_operator_reconciles_total{controller="database"}"#)
            .unwrap_or(0.0)
    };
    let instance_reconciles = |env: &Env| {
        env.metric(r#"db_operator_reconciles_total{controller="dbinstance"}"#)
            .unwrap_or(0.0)
    };
    let before = reconciles(&env);
    let instances_before = instance_reconciles(&env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The DbInstance's check reads its admin Secret (not watched: it is not the operator's).
    let admin_reads = instance_reconciles(&env) - instances_before;
    assert!(
        reconciles(&env) >= before + 3.0,
        "the Database was resynced: {} -> {}",
        before,
        reconciles(&env)
    );
    if let Some(stats) = env.stats() {
        assert_eq!(stats.writes, 0, "{:?}", stats.writes_by_resource);
        let reads = stats.by_verb.get("get").copied().unwrap_or(0)
            + stats.by_verb.get("list").copied().unwrap_or(0);
        assert!(
            reads as f64 <= admin_reads + 1.0,
            "what the watches already told is not read again: {:?} with {admin_reads} DbInstance checks",
            stats.by_verb
        );
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_changed_by_someone_else_is_put_back() {
    let env = Env::start("drift").await;
    ready_database(&env, "app", Some("0 3 * * *")).await;
    let crons: Api<CronJob> = env.api();
    wait_for(&crons, "app-backup", "CronJob", |_| true).await;
    // Another manager (a person with kubectl) changes the schedule and adds a label.
    crons
        .patch(
            "app-backup",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"team": "x"}}, "spec": {"schedule": "0 9 * * *"}}),
            ),
        )
        .await
        .unwrap();
    let put_back = wait_for(&crons, "app-backup", "the schedule put back", |c| {
        c.spec.schedule == "0 3 * * *"
    })
    .await;
    assert_eq!(
        put_back.labels().get("team").map(String::as_str),
        Some("x"),
        "fields the operator does not own stay"
    );
    // And the commissioning Job, deleted by hand, comes back.
    let job = commission_job(&env, "app").await;
    env.api::<Job>()
        .delete(&job.name_any(), &DeleteParams::background())
        .await
        .unwrap();
    wait_for(
        &env.api::<Job>(),
        &job.name_any(),
        "the Job recreated",
        |j| j.uid() != job.uid(),
    )
    .await;
    env.shutdown().await;
}
