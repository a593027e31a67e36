//! Building the objects: the host wraps what a plugin returns, names and places it, and adds
//! what users configured on the Database.

use std::collections::{BTreeMap, BTreeSet};

use dbo_api::{DatabaseBackup, DbRestore};
use dbo_engine as engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, Secret, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{DatabaseInput, RenderError, RenderOptions, model, names, policy};

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_DATABASE: &str = "kci.rocks/database";
pub const LABEL_DATABASE_NAMESPACE: &str = "kci.rocks/database-namespace";
pub const LABEL_INSTANCE: &str = "kci.rocks/dbinstance";
const MANAGER: &str = "db-operator";
const API_VERSION: &str = "kci.rocks/v1alpha1";
const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const PVC_VOLUME: &str = "backup-pvc";

/// RFC 3986 unreserved characters stay; everything else in a URL's userinfo or path is encoded.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub struct Context<'a> {
    pub namespace: String,
    pub database: String,
    pub secret_name: String,
    pub engine: String,
    pub instance: &'a engine::Instance,
    owner: Option<OwnerReference>,
    options: &'a RenderOptions,
    object: String,
}

impl<'a> Context<'a> {
    pub fn new(
        input: &DatabaseInput<'_>,
        instance: &'a engine::Instance,
        database: &engine::Database,
        options: &'a RenderOptions,
    ) -> Self {
        let meta = &input.database.metadata;
        Context {
            namespace: database.namespace.clone(),
            database: database.name.clone(),
            secret_name: input.database.spec.secret_name.clone(),
            engine: instance.engine.clone(),
            instance,
            owner: owner_reference("Database", meta),
            options,
            object: model::object_name("Database", Some(&database.namespace), Some(&database.name)),
        }
    }

    fn labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".into(),
                names::label_value(&self.engine),
            ),
            (
                "app.kubernetes.io/instance".into(),
                names::label_value(&self.database),
            ),
            (LABEL_COMPONENT.into(), component.into()),
            (LABEL_MANAGED_BY.into(), MANAGER.into()),
            (LABEL_DATABASE.into(), names::label_value(&self.database)),
            (
                LABEL_DATABASE_NAMESPACE.into(),
                names::label_value(&self.namespace),
            ),
            (
                LABEL_INSTANCE.into(),
                names::label_value(&self.instance.name),
            ),
        ])
    }

    fn meta(&self, name: String, namespace: &str, component: &str, owned: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(self.labels(component)),
            owner_references: if owned {
                self.owner.clone().map(|o| vec![o])
            } else {
                None
            },
            ..ObjectMeta::default()
        }
    }

    /// Parses a plugin's pod spec, refuses what policy forbids, and pins what the host decides.
    pub fn police(
        &self,
        spec: &engine::JobSpec,
        secrets: &BTreeSet<String>,
    ) -> Result<PodSpec, RenderError> {
        let mut pod: PodSpec =
            serde_json::from_str(&spec.pod_spec).map_err(|e| RenderError::BadPluginOutput {
                object: self.object.clone(),
                engine: self.engine.clone(),
                message: e.to_string(),
            })?;
        let violations = policy::check(&pod, &self.options.policy, secrets);
        if !violations.is_empty() {
            return Err(RenderError::Policy {
                object: self.object.clone(),
                engine: self.engine.clone(),
                violations,
            });
        }
        pod.restart_policy = Some("Never".into());
        // These pods talk to a database and to S3, never to the Kubernetes API.
        pod.automount_service_account_token = Some(false);
        let psc = pod
            .security_context
            .get_or_insert_with(PodSecurityContext::default);
        psc.run_as_non_root.get_or_insert(true);
        psc.seccomp_profile.get_or_insert_with(|| SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        });
        for c in pod
            .init_containers
            .iter_mut()
            .flatten()
            .chain(pod.containers.iter_mut())
        {
            let sc = c
                .security_context
                .get_or_insert_with(SecurityContext::default);
            sc.allow_privilege_escalation.get_or_insert(false);
            sc.capabilities.get_or_insert_with(|| Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            });
        }
        Ok(pod)
    }

    /// Adds the user's `spec.backup` settings to the engine's pod: extra volumes and mounts,
    /// a PVC, fsGroup, resources, container name, and the ServiceAccount (IRSA).
    pub fn merge_backup_options(
        &self,
        mut pod: PodSpec,
        backup: Option<&DatabaseBackup>,
        storage: &engine::Storage,
    ) -> Result<(PodSpec, Vec<ServiceAccount>), RenderError> {
        let mut problems = Vec::new();
        let mut service_accounts = Vec::new();
        if let Some(b) = backup {
            let volumes = pod.volumes.get_or_insert_with(Vec::new);
            for (i, v) in b.volumes.iter().enumerate() {
                if volumes.iter().any(|existing| existing.name == v.name) {
                    problems.push((
                        format!("spec.backup.volumes[{i}].name"),
                        format!(
                            "volume name {:?} is used by the engine; choose another name",
                            v.name
                        ),
                    ));
                } else if v.host_path.is_some() && !self.options.policy.allow_host_path {
                    problems.push((
                        format!("spec.backup.volumes[{i}]"),
                        "hostPath volumes are not allowed by the operator's policy".into(),
                    ));
                } else {
                    volumes.push(v.clone());
                }
            }
            let mut mounts: Vec<VolumeMount> = b.volume_mounts.clone();
            if let Some(pvc) = &b.persistent_volume_claim {
                if volumes.iter().any(|v| v.name == PVC_VOLUME) {
                    problems.push((
                        "spec.backup.persistentVolumeClaim".into(),
                        format!("the volume name {PVC_VOLUME:?} is already taken by spec.backup.volumes; rename that volume"),
                    ));
                }
                volumes.push(Volume {
                    name: PVC_VOLUME.into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: pvc.claim_name.clone(),
                        read_only: None,
                    }),
                    ..Volume::default()
                });
                mounts.push(VolumeMount {
                    name: PVC_VOLUME.into(),
                    mount_path: pvc.mount_path.clone(),
                    ..VolumeMount::default()
                });
            }
            for (i, m) in b.volume_mounts.iter().enumerate() {
                if !volumes.iter().any(|v| v.name == m.name) {
                    problems.push((
                        format!("spec.backup.volumeMounts[{i}].name"),
                        format!(
                            "no volume named {:?}; add it to spec.backup.volumes",
                            m.name
                        ),
                    ));
                }
            }
            if let Some(main) = pod.containers.first_mut() {
                if let Some(name) = &b.container_name {
                    main.name = name.clone();
                }
                main.volume_mounts
                    .get_or_insert_with(Vec::new)
                    .extend(mounts);
                if let Some(r) = &b.resources {
                    main.resources = Some(r.clone());
                }
            }
            if let Some(fs_group) = b.fs_group {
                pod.security_context
                    .get_or_insert_with(PodSecurityContext::default)
                    .fs_group = Some(fs_group);
            }
            pod.service_account_name = b.service_account_name.clone();
        }
        if !problems.is_empty() {
            return Err(RenderError::Invalid {
                object: self.object.clone(),
                problems,
            });
        }
        if pod.service_account_name.is_none()
            && let engine::Storage::S3(engine::S3Target {
                auth: engine::S3Auth::Irsa(role_arn),
                ..
            }) = storage
        {
            let name = names::backup_service_account(&self.database);
            let mut meta = self.meta(name.clone(), &self.namespace, "backup", true);
            meta.annotations = Some(BTreeMap::from([(IRSA_ANNOTATION.into(), role_arn.clone())]));
            service_accounts.push(ServiceAccount {
                metadata: meta,
                automount_service_account_token: Some(false),
                ..ServiceAccount::default()
            });
            pod.service_account_name = Some(name);
        }
        Ok((pod, service_accounts))
    }

    fn job_spec(&self, pod: PodSpec, spec: &engine::JobSpec, component: &str) -> JobSpec {
        JobSpec {
            backoff_limit: Some(
                spec.backoff_limit
                    .and_then(|b| i32::try_from(b).ok())
                    .unwrap_or(self.options.default_backoff_limit),
            ),
            active_deadline_seconds: Some(
                spec.active_deadline_seconds
                    .and_then(|d| i64::try_from(d).ok())
                    .unwrap_or(self.options.default_job_deadline_seconds),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(self.labels(component)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }
    }

    pub fn backup_cron_job(&self, pod: PodSpec, spec: &engine::JobSpec, schedule: &str) -> CronJob {
        let job = self.job_spec(pod, spec, "backup");
        CronJob {
            metadata: self.meta(
                names::backup_cron_job(&self.database),
                &self.namespace,
                "backup",
                true,
            ),
            spec: CronJobSpec {
                schedule: schedule.trim().to_string(),
                time_zone: Some("Etc/UTC".into()),
                concurrency_policy: Some("Forbid".into()),
                suspend: Some(false),
                starting_deadline_seconds: Some(self.options.starting_deadline_seconds),
                successful_jobs_history_limit: Some(self.options.history_limit),
                failed_jobs_history_limit: Some(self.options.history_limit),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels("backup")),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(job),
                },
            },
            ..CronJob::default()
        }
    }

    pub fn restore_job(&self, restore: &DbRestore, pod: PodSpec, spec: &engine::JobSpec) -> Job {
        let name = restore.metadata.name.clone().unwrap_or_default();
        let mut meta = self.meta(names::restore_job(&name), &self.namespace, "restore", false);
        meta.owner_references = owner_reference("DbRestore", &restore.metadata).map(|o| vec![o]);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kci.rocks/dbrestore".into(), names::label_value(&name));
        Job {
            metadata: meta,
            spec: Some(self.job_spec(pod, spec, "restore")),
            ..Job::default()
        }
    }
}

/// Owner references need the owner's uid, which only the API server assigns; objects rendered
/// from files without one get none (the controller always has it).
fn owner_reference(kind: &str, meta: &ObjectMeta) -> Option<OwnerReference> {
    let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
    Some(OwnerReference {
        api_version: API_VERSION.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Secret names a backup or restore pod may use.
pub fn storage_secrets(
    refs: &engine::CredentialRefs,
    storage: &engine::Storage,
) -> BTreeSet<String> {
    let mut s = BTreeSet::from([refs.secret_name.clone()]);
    if let engine::Storage::S3(engine::S3Target {
        auth: engine::S3Auth::AccessKey(k),
        ..
    }) = storage
    {
        s.insert(k.name.clone());
    }
    s
}

fn secret_values(secret: &Secret) -> (BTreeMap<String, String>, BTreeMap<String, ByteString>) {
    let mut text = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        match String::from_utf8(v.0.clone()) {
            Ok(s) => {
                text.insert(k.clone(), s);
            }
            Err(_) => {
                binary.insert(k.clone(), v.clone());
            }
        }
    }
    // stringData wins over data, as on the API server.
    for (k, v) in secret.string_data.iter().flatten() {
        binary.remove(k);
        text.insert(k.clone(), v.clone());
    }
    (text, binary)
}

/// The credentials Secret: existing keys, labels and annotations are kept (users add their own),
/// an existing password is never replaced, generated values come from the host.
pub fn credentials_secret(
    ctx: &Context<'_>,
    layout: &engine::CredentialLayout,
    existing: Option<&Secret>,
    passwords: &mut dyn crate::PasswordSource,
) -> Secret {
    let (mut text, binary) = existing.map(secret_values).unwrap_or_default();
    let password = text
        .get(&layout.password_key)
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| passwords.generate(layout.password_length.max(16) as usize));
    text.insert(layout.database_key.clone(), layout.database_name.clone());
    text.insert(layout.user_key.clone(), layout.user_name.clone());
    text.insert(layout.password_key.clone(), password.clone());
    for (key, template) in &layout.templates {
        text.insert(
            key.clone(),
            render_template(
                template,
                ctx.instance,
                &layout.database_name,
                &layout.user_name,
                &password,
            ),
        );
    }
    let mut meta = ctx.meta(ctx.secret_name.clone(), &ctx.namespace, "credentials", true);
    if let Some(e) = existing {
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in e.metadata.labels.iter().flatten() {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        meta.annotations = e.metadata.annotations.clone();
    }
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        string_data: Some(text),
        data: (!binary.is_empty()).then_some(binary),
        ..Secret::default()
    }
}

/// The commissioning Job's copy of the app credentials, beside the admin Secret.
pub fn commission_credentials(
    ctx: &Context<'_>,
    secret: &Secret,
    layout: &engine::CredentialLayout,
    admin_namespace: &str,
) -> Secret {
    let values = secret.string_data.clone().unwrap_or_default();
    let copy = [&layout.database_key, &layout.user_key, &layout.password_key]
        .into_iter()
        .filter_map(|k| values.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    Secret {
        metadata: ctx.meta(
            names::commission_credentials(&ctx.namespace, &ctx.database),
            admin_namespace,
            "commission",
            false,
        ),
        type_: Some("Opaque".into()),
        string_data: Some(copy),
        ..Secret::default()
    }
}

/// The commissioning Job's copy of a schema ConfigMap at `version`, beside the admin Secret.
pub fn schema_copy(
    ctx: &Context<'_>,
    source: &ConfigMap,
    version: u32,
    admin_namespace: &str,
) -> ConfigMap {
    ConfigMap {
        metadata: ctx.meta(
            names::schema_copy(&ctx.namespace, &ctx.database, version),
            admin_namespace,
            "commission",
            false,
        ),
        data: source.data.clone(),
        binary_data: source.binary_data.clone(),
        // A copy is never edited: a new version is a new copy.
        immutable: Some(true),
    }
}

pub fn commission_job(
    ctx: &Context<'_>,
    admin_namespace: &str,
    pod: PodSpec,
    spec: &engine::JobSpec,
) -> Job {
    let fingerprint = serde_json::to_string(&pod).unwrap_or_default();
    Job {
        metadata: ctx.meta(
            names::commission_job(&ctx.namespace, &ctx.database, &fingerprint),
            admin_namespace,
            "commission",
            false,
        ),
        spec: Some(ctx.job_spec(pod, spec, "commission")),
        ..Job::default()
    }
}

fn render_template(
    template: &str,
    instance: &engine::Instance,
    database: &str,
    user: &str,
    password: &str,
) -> String {
    let enc = |s: &str| utf8_percent_encode(s, URL_COMPONENT).to_string();
    template
        .replace("{host}", &instance.host)
        .replace("{port}", &instance.port.to_string())
        .replace("{database}", &enc(database))
        .replace("{user}", &enc(user))
        .replace("{password}", &enc(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_encode_what_a_url_cannot_carry() {
        let inst = engine::Instance {
            name: "pg".into(),
            engine: "postgres".into(),
            backend: engine::BackendKind::Generic,
            host: "db.example".into(),
            port: 5432,
            backup_host: "db.example".into(),
            region: None,
            tls: false,
            tls_skip_verify: false,
            monitoring: false,
            options: "{}".into(),
        };
        let url = render_template(
            "postgresql://{user}:{password}@{host}:{port}/{database}",
            &inst,
            "app-orders",
            "app-orders",
            "p@ss/w:rd",
        );
        assert_eq!(
            url,
            "postgresql://app-orders:p%40ss%2Fw%3Ard@db.example:5432/app-orders"
        );
    }
}
