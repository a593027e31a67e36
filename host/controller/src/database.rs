//! The Database controller: credentials Secret, commissioning Job, backup CronJob, status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dbo_api::{BackupOutcome, Database, DatabaseStatus};
use dbo_render::{DatabaseInput, LABEL_COMPONENT, LABEL_DATABASE, LABEL_DATABASE_NAMESPACE};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::apply::{self, Outcome};
use crate::children::Lookup;
use crate::conditions::{self as cond, Want};
use crate::context::Context;
use crate::jobs::{self, JobState};
use crate::{Blocked, Error, finalizer, schedule};

/// Marks Databases whose cross-namespace objects (commissioning Job, credentials copy) the
/// operator must clean up before the Database goes away.
pub const FINALIZER: &str = "kci.rocks/database";

pub async fn reconcile(db: Arc<Database>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = db.namespace_or_default();
    let name = db.name_any();
    let key = format!("Database/{ns}/{name}");
    let api: Api<Database> = Api::namespaced(ctx.client.clone(), &ns);

    if db.metadata.deletion_timestamp.is_some() {
        cleanup(&db, &ns, &ctx).await?;
        finalizer::remove(&api, &db, FINALIZER).await?;
        finalizer::remove(&api, &db, &format!("db.{name}")).await?;
        return Ok(Action::await_change());
    }
    finalizer::ensure(&api, &db, FINALIZER).await?;

    let before = db.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let generation = db.metadata.generation;
    let now = Timestamp::now();
    let mut wants: Vec<Want> = Vec::new();
    let mut action = Action::requeue(ctx.config.resync);
    let mut failed = false;

    match converge(&db, &ns, &ctx, &mut status).await? {
        Ok(progress) => {
            wants.extend(progress.wants);
            if let Some(after) = progress.requeue {
                action = Action::requeue(after.min(ctx.config.resync));
            }
        }
        Err(blocked) => {
            if !crate::is_waiting(blocked.reason) {
                ctx.metrics.failed("database", blocked.reason);
            }
            wants.push(Want::new(
                cond::READY,
                false,
                blocked.reason,
                &blocked.message,
            ));
            status.phase = Some(phase_of(blocked.reason).into());
            if blocked.retry {
                failed = true;
                action = ctx.backoff(&key);
            } else {
                action = Action::requeue(ctx.config.recheck);
            }
        }
    }
    for want in &wants {
        cond::set(&mut status.conditions, want, generation, now);
    }
    if !wants.iter().any(|w| w.type_ == cond::BACKUP_SCHEDULED)
        && db.spec.backup.as_ref().is_none_or(|b| !b.enable)
    {
        for t in [
            cond::BACKUP_SCHEDULED,
            cond::LAST_BACKUP_SUCCEEDED,
            cond::BACKUP_OVERDUE,
        ] {
            cond::remove(&mut status.conditions, t);
        }
    }
    status.observed_generation = generation;
    apply::report(
        &ctx,
        &api,
        db.as_ref(),
        apply::StatusChange {
            before: &before,
            after: &status,
            conditions: |s: &DatabaseStatus| &s.conditions,
        },
        "",
        |t| is_warning(&t.type_, t.status, &t.reason),
    )
    .await?;
    if !failed {
        ctx.succeeded(&key);
    }
    Ok(action)
}

/// Failures are Warnings; waiting and progress (`Commissioning`, `InstanceNotReady`) are not.
fn is_warning(type_: &str, status: bool, reason: &str) -> bool {
    match type_ {
        cond::BACKUP_OVERDUE => status,
        _ if status => false,
        _ => !crate::is_waiting(reason),
    }
}

fn phase_of(reason: &str) -> &'static str {
    match reason {
        "InstanceNotFound" | "InstanceNotReady" => "Pending",
        "PluginFailed" => "Error",
        _ => "Invalid",
    }
}

struct Progress {
    wants: Vec<Want>,
    requeue: Option<Duration>,
}

/// Renders and applies everything the Database needs; the outer `Result` is an API failure
/// (retried with backoff), the inner one a reason the Database cannot progress.
async fn converge(
    db: &Database,
    ns: &str,
    ctx: &Context,
    status: &mut DatabaseStatus,
) -> Result<Result<Progress, Blocked>, Error> {
    let Some(instance) = ctx.instance(&db.spec.instance).await? else {
        return Ok(Err(Blocked {
            reason: "InstanceNotFound",
            message: format!(
                "DbInstance {:?} does not exist; create it or fix spec.instance",
                db.spec.instance
            ),
            retry: false,
        }));
    };
    let instance_ready = instance
        .status
        .as_ref()
        .is_some_and(|s| cond::is_true(&s.conditions, cond::READY));
    if !instance_ready {
        let why = instance
            .status
            .as_ref()
            .and_then(|s| cond::get(&s.conditions, cond::READY))
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "not reconciled yet".into());
        return Ok(Err(Blocked {
            reason: "InstanceNotReady",
            message: format!("DbInstance {:?} is not ready: {why}", db.spec.instance),
            retry: false,
        }));
    }
    let Some(served) = ctx.catalog.engine(&instance.spec.engine) else {
        if let Some(why) = ctx.catalog.refused(&instance.spec.engine) {
            return Ok(Err(Blocked {
                reason: "PluginRefused",
                message: format!("DbInstance {:?} spec.engine: {why}", db.spec.instance),
                retry: false,
            }));
        }
        return Ok(Err(Blocked {
            reason: "EngineUnavailable",
            message: format!(
                "no engine plugin {:?} is loaded (DbInstance {:?} spec.engine); available: {}",
                instance.spec.engine,
                db.spec.instance,
                ctx.catalog.names().join(", ")
            ),
            retry: false,
        }));
    };
    status.engine = Some(served.plugin.clone());

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // Read unless it is still the Secret last applied. A Secret the user made without the
    // operator's labels is not watched, so "not seen" is no proof of absence here: reading it
    // is what keeps an existing password from being replaced.
    let existing = match ctx
        .children
        .current::<Secret>("Secret", ns, &db.spec.secret_name)
    {
        Ok(secret) => Some(secret),
        Err(_) => secrets.get_opt(&db.spec.secret_name).await?,
    };
    let schema = db.spec.commission.as_ref().and_then(|c| c.schema.as_ref());
    let schema_config_map = match schema {
        Some(schema) => {
            let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
            config_maps.get_opt(&schema.config_map_ref.name).await?
        }
        None => None,
    };
    let rendered = {
        let (db, instance, existing) = (db.clone(), instance.clone(), existing.clone());
        let schema_config_map = schema_config_map.clone();
        let engine = served.engine.clone();
        let options = ctx.config.render.clone();
        tokio::task::spawn_blocking(move || {
            let input = DatabaseInput {
                database: &db,
                instance: &instance,
                existing_secret: existing.as_ref(),
                schema_config_map: schema_config_map.as_ref(),
                engine: engine.as_ref(),
            };
            dbo_render::render_database(&input, &mut crate::os_passwords(), &options)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    };
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => return Ok(Err(Blocked::render(&e))),
    };
    let Some(credentials) = rendered.credentials.clone() else {
        return Ok(Err(Blocked {
            reason: "RenderFailed",
            message: "the renderer returned no credentials layout".into(),
            retry: true,
        }));
    };
    status.database = Some(credentials.database.clone());
    status.user = Some(credentials.user.clone());

    let mut wants = Vec::new();
    let mut requeue = None;

    // Credentials: only the keys the host owns, so users' keys and annotations stay theirs.
    let owned_secret = existing.as_ref().is_none_or(|s| owned_by(&s.metadata, db));
    if let Some(secret) = rendered
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(credentials.secret_name.as_str()))
    {
        let desired =
            credentials_apply(secret, &credentials.keys, existing.is_none(), owned_secret);
        let (mut live, _) = apply::ensure(&secrets, &desired, existing.as_ref()).await?;
        if let Some(version) = live.resource_version() {
            live.metadata.managed_fields = None;
            ctx.children.remember(
                "Secret",
                ns,
                &db.spec.secret_name,
                version,
                crate::children::fingerprint(&desired),
                live,
            );
        }
    }

    // Commissioning, beside the admin Secret.
    let admin_ns = instance.spec.admin_secret_ref.namespace.clone();
    let admin_secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &admin_ns);
    for copy in rendered
        .secrets
        .iter()
        .filter(|s| label(&s.metadata, LABEL_COMPONENT) == Some("commission"))
    {
        let desired = data_only(copy);
        apply::ensure_tracked(
            &ctx.children,
            &admin_secrets,
            &admin_ns,
            &desired,
            name_only,
        )
        .await?;
    }
    // Schema copies are immutable and named by version: created once, never patched.
    let admin_config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &admin_ns);
    for copy in &rendered.config_maps {
        let exists = match ctx
            .children
            .lookup("ConfigMap", &admin_ns, &copy.name_any())
        {
            Lookup::Present(_) => true,
            Lookup::Absent => false,
            Lookup::Unknown => admin_config_maps.get_opt(&copy.name_any()).await?.is_some(),
        };
        if !exists {
            apply::ensure(&admin_config_maps, copy, None).await?;
        }
    }
    let jobs_admin: Api<Job> = Api::namespaced(ctx.client.clone(), &admin_ns);
    let commission = rendered
        .jobs
        .iter()
        .find(|j| label(&j.metadata, LABEL_COMPONENT) == Some("commission"));
    match commission {
        None => wants.push(Want::new(
            cond::COMMISSIONED,
            true,
            "NotRequired",
            format!("engine {} needs no commissioning Job", instance.spec.engine),
        )),
        Some(job) => {
            let (live, _) =
                apply::ensure_tracked(&ctx.children, &jobs_admin, &admin_ns, job, status_only)
                    .await?;
            let job_name = live.name_any();
            match jobs::state(&live) {
                JobState::Succeeded { .. } => {
                    wants.push(Want::new(
                        cond::COMMISSIONED,
                        true,
                        "JobSucceeded",
                        format!("commissioning Job {admin_ns}/{job_name} succeeded"),
                    ));
                    if let Some(schema) = schema {
                        status.schema_version = Some(
                            status
                                .schema_version
                                .map_or(schema.version, |v| v.max(schema.version)),
                        );
                    }
                    prune_old_commission_jobs(ctx, &jobs_admin, db, ns, &job_name).await?;
                    prune_old_schema_copies(ctx, &admin_config_maps, db, ns, &rendered).await?;
                }
                JobState::Failed { message } => wants.push(Want::new(
                    cond::COMMISSIONED,
                    false,
                    "JobFailed",
                    format!(
                        "commissioning Job {admin_ns}/{job_name} failed: {message}; see `kubectl -n {admin_ns} logs job/{job_name}`"
                    ),
                )),
                JobState::Running => {
                    wants.push(Want::new(
                        cond::COMMISSIONED,
                        false,
                        "Commissioning",
                        format!("commissioning Job {admin_ns}/{job_name} is running"),
                    ));
                    requeue = Some(ctx.config.recheck);
                }
            }
        }
    }

    // Backups.
    let cron_jobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    match rendered.cron_jobs.first() {
        Some(cron) => {
            for sa in &rendered.service_accounts {
                apply::ensure_tracked(&ctx.children, &accounts, ns, sa, name_only).await?;
            }
            let (live, outcome) =
                apply::ensure_tracked(&ctx.children, &cron_jobs, ns, cron, status_only).await?;
            let verb = match outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Unchanged => "in place",
            };
            wants.push(Want::new(
                cond::BACKUP_SCHEDULED,
                true,
                "CronJobReady",
                format!(
                    "backup CronJob {ns}/{} {verb}, schedule {:?} (UTC)",
                    live.name_any(),
                    cron.spec.schedule
                ),
            ));
            let since = live
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now);
            let scheduled = live
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0);
            let (mut backup_wants, recheck) =
                backup_status(db, ns, ctx, status, since, scheduled).await?;
            wants.append(&mut backup_wants);
            if let Some(r) = recheck {
                requeue = Some(requeue.map_or(r, |q: Duration| q.min(r)));
            }
        }
        None => {
            let name = dbo_render::backup_cron_job_name(&db.name_any());
            apply::delete_if_present(&cron_jobs, &name).await?;
            for sa in owned_service_accounts(&accounts, db).await? {
                apply::delete_if_present(&accounts, &sa).await?;
            }
        }
    }

    let commissioned = wants
        .iter()
        .any(|w| w.type_ == cond::COMMISSIONED && w.status);
    let (phase, ready) = if commissioned {
        (
            "Ready",
            Want::new(
                cond::READY,
                true,
                "Ready",
                "database commissioned; credentials in Secret ".to_string()
                    + &credentials.secret_name,
            ),
        )
    } else if wants
        .iter()
        .any(|w| w.type_ == cond::COMMISSIONED && w.reason == "JobFailed")
    {
        (
            "Failed",
            Want::new(
                cond::READY,
                false,
                "CommissioningFailed",
                "the commissioning Job failed; see the Commissioned condition",
            ),
        )
    } else {
        (
            "Commissioning",
            Want::new(
                cond::READY,
                false,
                "Commissioning",
                "waiting for the commissioning Job",
            ),
        )
    };
    status.phase = Some(phase.into());
    wants.push(ready);
    for w in &rendered.warnings {
        tracing::warn!(database = %db.name_any(), "{w}");
    }
    Ok(Ok(Progress { wants, requeue }))
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn owned_by(meta: &ObjectMeta, db: &Database) -> bool {
    let uid = db.metadata.uid.as_deref();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid)
}

/// The credentials Secret as the operator applies it: its own keys as `data`, its labels, the
/// owner reference only on a Secret the operator created (a user's own Secret outlives the
/// Database), and `type` only on creation (it is immutable).
fn credentials_apply(rendered: &Secret, keys: &[String], create: bool, owned: bool) -> Secret {
    let values = rendered.string_data.clone().unwrap_or_default();
    let data: BTreeMap<String, ByteString> = keys
        .iter()
        .filter_map(|k| {
            values
                .get(k)
                .map(|v| (k.clone(), ByteString(v.clone().into_bytes())))
        })
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: rendered.metadata.name.clone(),
            namespace: rendered.metadata.namespace.clone(),
            labels: rendered.metadata.labels.clone(),
            owner_references: if owned {
                rendered.metadata.owner_references.clone()
            } else {
                None
            },
            ..ObjectMeta::default()
        },
        type_: if create { rendered.type_.clone() } else { None },
        data: Some(data),
        ..Secret::default()
    }
}

/// A rendered Secret with `stringData` folded into `data`, as the API server stores it, so the
/// drift check compares like with like.
fn data_only(secret: &Secret) -> Secret {
    let mut data = secret.data.clone().unwrap_or_default();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), ByteString(v.clone().into_bytes()));
    }
    Secret {
        data: Some(data),
        string_data: None,
        ..secret.clone()
    }
}

fn selector(db: &Database, ns: &str, component: &str) -> String {
    format!(
        "{LABEL_COMPONENT}={component},{LABEL_DATABASE}={},{LABEL_DATABASE_NAMESPACE}={}",
        dbo_render::label_value(&db.name_any()),
        dbo_render::label_value(ns)
    )
}

/// Schema copies of earlier versions go once the current version is applied.
async fn prune_old_schema_copies(
    ctx: &Context,
    api: &Api<ConfigMap>,
    db: &Database,
    ns: &str,
    rendered: &dbo_render::Rendered,
) -> Result<(), kube::Error> {
    let keep: Vec<String> = rendered.config_maps.iter().map(|c| c.name_any()).collect();
    for old in labelled(ctx, api, db, ns, "commission").await? {
        if !keep.contains(&old) {
            apply::delete_if_present(api, &old).await?;
        }
    }
    Ok(())
}

/// Names of the Database's `component` objects in `api`'s namespace, from the watch index when
/// it covers them, else listed.
async fn labelled<K>(
    ctx: &Context,
    api: &Api<K>,
    db: &Database,
    ns: &str,
    component: &str,
) -> Result<Vec<String>, kube::Error>
where
    K: k8s_openapi::Resource + Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let namespace = api.namespace().unwrap_or(ns);
    if let Some(names) = ctx.children.labelled(
        <K as k8s_openapi::Resource>::KIND,
        namespace,
        component,
        &dbo_render::label_value(&db.name_any()),
        &dbo_render::label_value(ns),
    ) {
        return Ok(names);
    }
    let list = api
        .list_metadata(&ListParams::default().labels(&selector(db, ns, component)))
        .await?;
    Ok(list.items.iter().map(|o| o.name_any()).collect())
}

/// What is read later from an applied object that is only created and deleted.
fn name_only<K: Resource + Default>(live: &K) -> K {
    let mut trimmed = K::default();
    trimmed.meta_mut().name = live.meta().name.clone();
    trimmed
}

/// What is read later from an applied Job or CronJob: its name, age and status.
fn status_only<K: Resource + Default + HasStatus>(live: &K) -> K {
    let mut trimmed = name_only(live);
    trimmed.meta_mut().creation_timestamp = live.meta().creation_timestamp.clone();
    trimmed.copy_status(live);
    trimmed
}

trait HasStatus {
    fn copy_status(&mut self, from: &Self);
}

impl HasStatus for Job {
    fn copy_status(&mut self, from: &Self) {
        self.status = from.status.clone();
    }
}

impl HasStatus for CronJob {
    fn copy_status(&mut self, from: &Self) {
        self.status = from.status.clone();
    }
}

/// Old commissioning Jobs (from earlier specs) go once the current one has succeeded.
async fn prune_old_commission_jobs(
    ctx: &Context,
    jobs: &Api<Job>,
    db: &Database,
    ns: &str,
    current: &str,
) -> Result<(), Error> {
    for name in labelled(ctx, jobs, db, ns, "commission").await? {
        if name != current {
            apply::delete_if_present(jobs, &name).await?;
        }
    }
    Ok(())
}

async fn owned_service_accounts(
    accounts: &Api<ServiceAccount>,
    db: &Database,
) -> Result<Vec<String>, Error> {
    let ns = db.namespace_or_default();
    let list = accounts
        .list(&ListParams::default().labels(&selector(db, &ns, "backup")))
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|sa| owned_by(&sa.metadata, db))
        .map(ResourceExt::name_any)
        .collect())
}

/// Last backup outcome and schedule conditions, from the Jobs the CronJob created.
async fn backup_status(
    db: &Database,
    ns: &str,
    ctx: &Context,
    status: &mut DatabaseStatus,
    since: Timestamp,
    last_scheduled: Option<Timestamp>,
) -> Result<(Vec<Want>, Option<Duration>), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let none_yet = ctx
        .children
        .labelled(
            "Job",
            ns,
            "backup",
            &dbo_render::label_value(&db.name_any()),
            &dbo_render::label_value(ns),
        )
        .is_some_and(|names| names.is_empty());
    let items = if none_yet {
        Vec::new()
    } else {
        jobs.list(&ListParams::default().labels(&selector(db, ns, "backup")))
            .await?
            .items
    };
    let mut finished: Vec<(Timestamp, bool, Job)> = items
        .into_iter()
        .filter_map(|j| match jobs::state(&j) {
            JobState::Succeeded { at } => Some((at.unwrap_or(since), true, j)),
            JobState::Failed { .. } => Some((jobs::finished_at(&j).unwrap_or(since), false, j)),
            JobState::Running => None,
        })
        .collect();
    finished.sort_by_key(|(t, _, _)| *t);
    let mut wants = Vec::new();
    if let Some((at, ok, job)) = finished.last() {
        let report = if *ok {
            jobs::termination_report(
                &Api::<Pod>::namespaced(ctx.client.clone(), ns),
                &job.name_any(),
            )
            .await?
        } else {
            None
        };
        let outcome = BackupOutcome {
            time: Some(
                report
                    .as_ref()
                    .and_then(|r| r.time.clone())
                    .unwrap_or_else(|| at.to_string()),
            ),
            key: report.as_ref().and_then(|r| r.key.clone()),
            size_bytes: report.as_ref().and_then(|r| r.size),
            succeeded: *ok,
        };
        wants.push(if *ok {
            Want::new(
                cond::LAST_BACKUP_SUCCEEDED,
                true,
                "BackupSucceeded",
                format!(
                    "backup Job {ns}/{} succeeded{}",
                    job.name_any(),
                    outcome
                        .key
                        .as_deref()
                        .map(|k| format!(": {k}"))
                        .unwrap_or_default()
                ),
            )
        } else {
            Want::new(
                cond::LAST_BACKUP_SUCCEEDED,
                false,
                "BackupFailed",
                format!(
                    "backup Job {ns}/{} failed; see `kubectl -n {ns} logs job/{}`",
                    job.name_any(),
                    job.name_any()
                ),
            )
        });
        status.last_backup = Some(outcome);
    }
    let last_success = finished
        .iter()
        .rev()
        .find(|(_, ok, _)| *ok)
        .map(|(t, _, _)| to_chrono(*t));
    if let Some(t) = last_success {
        ctx.metrics
            .backup_succeeded(ns, &db.name_any(), t.timestamp());
    }
    let cron = db
        .spec
        .backup
        .as_ref()
        .map(|b| b.cron.clone())
        .unwrap_or_default();
    let now = chrono::Utc::now();
    let mut recheck = None;
    let due = schedule::due(
        &cron,
        to_chrono(since),
        last_success,
        last_scheduled.map(to_chrono),
        now,
        ctx.config.backup_grace,
    );
    match due {
        Some(schedule::Due::Overdue { fired }) => wants.push(Want::new(
            cond::BACKUP_OVERDUE,
            true,
            "ScheduleMissed",
            format!(
                "the backup scheduled for {} has not succeeded within {}s",
                fired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ctx.config.backup_grace.as_secs()
            ),
        )),
        Some(schedule::Due::OnTime { recheck: at }) => {
            wants.push(Want::new(
                cond::BACKUP_OVERDUE,
                false,
                "OnSchedule",
                "backups run on schedule",
            ));
            recheck = (at - now).to_std().ok().map(|d| d + Duration::from_secs(1));
        }
        None => {}
    }
    Ok((wants, recheck))
}

fn to_chrono(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// On deletion: the commissioning Job and credentials copy live in the admin Secret's
/// namespace, where owner references cannot reach; everything else the Database owns is
/// garbage-collected. The database on the server is kept: the engine contract has no drop
/// operation, so `dropOnDelete` is reported instead of silently ignored.
async fn cleanup(db: &Database, ns: &str, ctx: &Context) -> Result<(), Error> {
    ctx.metrics.forget_database(ns, &db.name_any());
    let admin_ns = ctx
        .instance(&db.spec.instance)
        .await?
        .map(|i| i.spec.admin_secret_ref.namespace);
    let namespaces: Vec<String> = admin_ns.into_iter().collect();
    for admin_ns in &namespaces {
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), admin_ns);
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), admin_ns);
        let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), admin_ns);
        let sel = selector(db, ns, "commission");
        for copy in config_maps
            .list(&ListParams::default().labels(&sel))
            .await?
            .items
        {
            apply::delete_if_present(&config_maps, &copy.name_any()).await?;
        }
        for job in jobs.list(&ListParams::default().labels(&sel)).await?.items {
            apply::delete_if_present(&jobs, &job.name_any()).await?;
        }
        for secret in secrets
            .list(&ListParams::default().labels(&sel))
            .await?
            .items
        {
            apply::delete_if_present(&secrets, &secret.name_any()).await?;
        }
    }
    let reference = db.object_ref(&());
    let database = db
        .status
        .as_ref()
        .and_then(|s| s.database.clone())
        .unwrap_or_else(|| db.name_any());
    if db.spec.drop_on_delete && !db.spec.deletion_protected {
        ctx.event(
            &reference,
            true,
            "DropNotSupported",
            "Delete",
            format!(
                "dropOnDelete is set, but engine contract kci:engine@0.1.0 has no drop operation: database {database:?} was kept on the server; drop it by hand"
            ),
        )
        .await;
    } else {
        ctx.event(
            &reference,
            false,
            "DatabaseKept",
            "Delete",
            format!("database {database:?} was kept on the server (dropOnDelete is off or deletionProtected is on)"),
        )
        .await;
    }
    Ok(())
}
