//! Building blocks for the pod spec an engine returns.
//!
//! Secret values never pass through a plugin: env vars take them by `secretKeyRef`, files come
//! from Secret volumes. These helpers make the safe way the short way.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    PodSecurityContext, PodSpec, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};

use crate::{AdminSecret, CredentialRefs, JobSpec, PluginError, SecretKeyRef};

/// File mode of mounted Secret files: readable by their owner and by the pod's `fsGroup`
/// (Kubernetes makes the files group-owned by it), so a non-root container can read them
/// without making them world-readable.
pub const SECRET_FILE_MODE: i32 = 0o440;

/// Serialises `pod_spec` into the contract's job spec.
///
/// `None` leaves the choice to the host (which applies the operator's defaults).
pub fn job_spec(
    pod_spec: &PodSpec,
    backoff_limit: Option<u32>,
    active_deadline_seconds: Option<u64>,
) -> Result<JobSpec, PluginError> {
    let pod_spec = serde_json::to_string(pod_spec)
        .map_err(|e| PluginError::Internal(format!("cannot serialise the pod spec: {e}")))?;
    Ok(JobSpec {
        pod_spec,
        backoff_limit,
        active_deadline_seconds,
    })
}

impl JobSpec {
    /// A job spec with the host's default retry and deadline.
    pub fn from_pod_spec(pod_spec: &PodSpec) -> Result<Self, PluginError> {
        job_spec(pod_spec, None, None)
    }

    /// The pod spec back as a typed value, as the host will parse it.
    pub fn pod(&self) -> Result<PodSpec, PluginError> {
        serde_json::from_str(&self.pod_spec)
            .map_err(|e| PluginError::Internal(format!("the pod spec does not parse: {e}")))
    }
}

/// An env var with a literal value. Never use it for a secret.
pub fn env(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An env var read by the kubelet from a Secret key (`valueFrom.secretKeyRef`).
pub fn secret_env(name: impl Into<String>, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// A volume with every key of Secret `secret_name` as a file.
pub fn secret_volume(volume_name: impl Into<String>, secret_name: impl Into<String>) -> Volume {
    Volume {
        name: volume_name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name.into()),
            default_mode: Some(SECRET_FILE_MODE),
            optional: Some(false),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A volume with only the listed `(key, file path)` pairs of Secret `secret_name`, so the
/// container sees no more of the Secret than it needs.
pub fn secret_files_volume(
    volume_name: impl Into<String>,
    secret_name: impl Into<String>,
    files: &[(&str, &str)],
) -> Volume {
    let mut volume = secret_volume(volume_name, secret_name);
    if let Some(secret) = volume.secret.as_mut() {
        secret.items = Some(
            files
                .iter()
                .map(|(key, path)| KeyToPath {
                    key: (*key).to_string(),
                    path: (*path).to_string(),
                    ..KeyToPath::default()
                })
                .collect(),
        );
    }
    volume
}

/// A scratch volume that lives as long as the pod, for a read-only root filesystem.
pub fn empty_dir(volume_name: impl Into<String>) -> Volume {
    Volume {
        name: volume_name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// Mounts `volume_name` read-only at `mount_path` (Secrets, ConfigMaps).
pub fn read_only_mount(
    volume_name: impl Into<String>,
    mount_path: impl Into<String>,
) -> VolumeMount {
    VolumeMount {
        name: volume_name.into(),
        mount_path: mount_path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// Mounts `volume_name` writable at `mount_path` (scratch space).
pub fn mount(volume_name: impl Into<String>, mount_path: impl Into<String>) -> VolumeMount {
    VolumeMount {
        name: volume_name.into(),
        mount_path: mount_path.into(),
        ..VolumeMount::default()
    }
}

/// The container security context of a job that needs no privilege at all: no escalation, no
/// capabilities, a read-only root filesystem (mount an [`empty_dir`] where it must write).
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// Volume of the Database's password file ([`password_file_volume`]).
pub const CREDENTIALS_VOLUME: &str = "dbo-credentials";
/// Folder the Database's credentials are mounted at, read-only.
pub const CREDENTIALS_DIR: &str = "/var/run/secrets/db-operator/database";
/// The Database's password, the only key of the credentials Secret a Job sees as a file. Tell
/// the script by env (e.g. `DB_PASSWORD_FILE`); the name and user go by [`secret_env`].
pub const PASSWORD_FILE: &str = "/var/run/secrets/db-operator/database/password";
/// [`PASSWORD_FILE`] within [`CREDENTIALS_DIR`].
const PASSWORD_FILE_NAME: &str = "password";
/// Volume of the admin Secret ([`admin_volume`]).
pub const ADMIN_VOLUME: &str = "dbo-admin-credentials";
/// Folder every key of the admin Secret is mounted at, read-only, for commissioning.
pub const ADMIN_DIR: &str = "/var/run/secrets/db-operator/admin";
/// Volume of the writable scratch folder ([`tmp_volume`]).
pub const TMP_VOLUME: &str = "dbo-tmp";
/// Where the scratch volume is mounted: the one writable path under a read-only root.
pub const TMP_DIR: &str = "/tmp";
/// Where a container writes its termination message; the host shows it on the resource.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The credentials Secret projected down to its password key, as the file [`PASSWORD_FILE`]:
/// the name and user are not secret and go by env, so the pod sees no more than it must.
pub fn password_file_volume(credentials: &CredentialRefs) -> Volume {
    secret_files_volume(
        CREDENTIALS_VOLUME,
        credentials.secret_name.clone(),
        &[(credentials.password_key.as_str(), PASSWORD_FILE_NAME)],
    )
}

/// Mounts [`password_file_volume`] at [`CREDENTIALS_DIR`].
pub fn password_file_mount() -> VolumeMount {
    read_only_mount(CREDENTIALS_VOLUME, CREDENTIALS_DIR)
}

/// The pod's scratch space, mounted by [`tmp_mount`] at [`TMP_DIR`].
pub fn tmp_volume() -> Volume {
    empty_dir(TMP_VOLUME)
}

/// Mounts [`tmp_volume`] writable at [`TMP_DIR`].
pub fn tmp_mount() -> VolumeMount {
    mount(TMP_VOLUME, TMP_DIR)
}

/// The volumes of a Job that works as the Database's user: its password file and `/tmp`.
/// [`app_mounts`] mounts them in the same order.
pub fn app_volumes(credentials: &CredentialRefs) -> Vec<Volume> {
    vec![password_file_volume(credentials), tmp_volume()]
}

/// The mounts of [`app_volumes`].
pub fn app_mounts() -> Vec<VolumeMount> {
    vec![password_file_mount(), tmp_mount()]
}

/// The whole admin Secret as files in [`ADMIN_DIR`] (mounted by [`admin_mount`]). Whole,
/// because which keys hold the user and password differs between the charts and services
/// that write such Secrets, so only the script can tell at run time.
pub fn admin_volume(admin: &AdminSecret) -> Volume {
    secret_volume(ADMIN_VOLUME, admin.name.clone())
}

/// Mounts [`admin_volume`] read-only at [`ADMIN_DIR`].
pub fn admin_mount() -> VolumeMount {
    read_only_mount(ADMIN_VOLUME, ADMIN_DIR)
}

/// The one container of an engine Job: `command` of `image` with only the given env and
/// mounts, under [`restricted_security_context`].
///
/// Its termination message is the file the script writes its one-line summary to, or the log
/// tail when the script failed before writing one, so a failed Job explains itself.
pub fn script_container(
    name: impl Into<String>,
    image: impl Into<String>,
    command: impl Into<String>,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(vec![command.into()]),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_security_context()),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

/// The pod of a Job that runs `container` once, as user and group `run_as`.
///
/// `run_as` must be the image's `USER`; it is also the pod's `fsGroup`, which makes mounted
/// Secret files ([`SECRET_FILE_MODE`]) readable to it. The pod never restarts in place (the
/// Job's backoff decides on retries) and gets no service-link env: those `<SERVICE>_PORT`-style
/// variables are nothing a script asked for, and some tools read variables of that shape.
pub fn job_pod(container: Container, volumes: Vec<Volume>, run_as: i64) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        restart_policy: Some("Never".to_string()),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(run_as),
            run_as_group: Some(run_as),
            fs_group: Some(run_as),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// Field of the backup container name a Database may set.
pub const BACKUP_CONTAINER_NAME_FIELD: &str = "spec.backup.containerName";

/// The backup Job's container name: the one the Database asks for (`spec.backup.containerName`,
/// e.g. to match a log pipeline or a policy) if it is a valid container name, else `default`.
pub fn backup_container_name(
    requested: Option<&str>,
    default: &str,
) -> Result<String, PluginError> {
    let Some(name) = requested else {
        return Ok(default.to_string());
    };
    // A container name is an RFC 1123 label; the API server would reject the Job otherwise,
    // long after the user could have been told.
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(PluginError::invalid(
            BACKUP_CONTAINER_NAME_FIELD,
            format!(
                "{name:?} is not a container name: use at most 63 lower-case letters, digits and \
                 -, starting and ending with a letter or digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_env_refers_to_the_key_and_carries_no_value() {
        let e = secret_env(
            "DB_USER",
            &SecretKeyRef::new("orders-credentials", "POSTGRES_USER"),
        );
        assert_eq!(e.value, None);
        let r = e
            .value_from
            .and_then(|f| f.secret_key_ref)
            .expect("secretKeyRef");
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            ("orders-credentials", "POSTGRES_USER")
        );
    }

    #[test]
    fn secret_files_volume_projects_only_the_listed_keys() {
        let v = secret_files_volume(
            "creds",
            "orders-credentials",
            &[("POSTGRES_PASSWORD", "password")],
        );
        let s = v.secret.expect("secret volume");
        assert_eq!(s.secret_name.as_deref(), Some("orders-credentials"));
        assert_eq!(s.default_mode, Some(0o440));
        let items = s.items.expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("POSTGRES_PASSWORD", "password")
        );
    }

    #[test]
    fn job_spec_round_trips_through_json_in_kubernetes_field_names() {
        let pod = PodSpec {
            containers: vec![Container {
                name: "backup".into(),
                image: Some("img".into()),
                env: Some(vec![env("A", "1")]),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let spec = job_spec(&pod, Some(2), Some(600)).expect("serialises");
        assert!(
            spec.pod_spec.contains(r#""containers":[{"#),
            "{}",
            spec.pod_spec
        );
        assert_eq!(
            (spec.backoff_limit, spec.active_deadline_seconds),
            (Some(2), Some(600))
        );
        assert_eq!(spec.pod().expect("parses"), pod);
        assert_eq!(
            JobSpec::from_pod_spec(&pod)
                .expect("serialises")
                .backoff_limit,
            None
        );
    }

    #[test]
    fn app_volumes_expose_only_the_password_and_a_writable_tmp() {
        let refs = CredentialRefs {
            secret_name: "orders-credentials".into(),
            database_key: "DB".into(),
            user_key: "USER".into(),
            password_key: "PASSWORD".into(),
        };
        let volumes = app_volumes(&refs);
        let mounts = app_mounts();
        assert_eq!(
            mounts
                .iter()
                .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
                .collect::<Vec<_>>(),
            [
                (CREDENTIALS_VOLUME, CREDENTIALS_DIR, Some(true)),
                (TMP_VOLUME, TMP_DIR, None)
            ]
        );
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, [CREDENTIALS_VOLUME, TMP_VOLUME]);
        let secret = volumes[0].secret.as_ref().expect("a Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("orders-credentials"));
        let items = secret.items.as_ref().expect("only listed keys");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key, "PASSWORD");
        assert_eq!(
            format!("{}/{}", CREDENTIALS_DIR, items[0].path),
            PASSWORD_FILE
        );
        assert!(volumes[1].empty_dir.is_some());
    }

    #[test]
    fn the_admin_secret_is_mounted_whole_and_read_only() {
        let v = admin_volume(&AdminSecret {
            name: "pg-main-admin".into(),
        });
        let s = v.secret.expect("a Secret volume");
        assert_eq!(s.secret_name.as_deref(), Some("pg-main-admin"));
        assert_eq!(s.items, None, "every key, whatever the chart named them");
        let m = admin_mount();
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str(), m.read_only),
            (ADMIN_VOLUME, ADMIN_DIR, Some(true))
        );
    }

    #[test]
    fn job_pods_run_once_unprivileged_as_the_given_user() {
        let c = script_container(
            "x-backup",
            "img:1",
            "/usr/local/bin/db-backup",
            vec![],
            vec![],
        );
        assert_eq!(
            c.command,
            Some(vec!["/usr/local/bin/db-backup".to_string()])
        );
        assert_eq!(c.image.as_deref(), Some("img:1"));
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));

        let pod = job_pod(c, vec![tmp_volume()], 4242);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.enable_service_links, Some(false));
        let psc = pod.security_context.expect("pod security context");
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(4242), Some(4242), Some(4242))
        );
        assert_eq!(psc.run_as_non_root, Some(true));
    }

    #[test]
    fn backup_container_names_are_checked_and_default_when_absent() {
        assert_eq!(
            backup_container_name(None, "pg-backup").as_deref(),
            Ok("pg-backup")
        );
        assert_eq!(
            backup_container_name(Some("nightly-dump"), "pg-backup").as_deref(),
            Ok("nightly-dump")
        );
        let long = "a".repeat(64);
        for bad in ["", "Dump", "dump_1", "-dump", "dump-", long.as_str()] {
            match backup_container_name(Some(bad), "pg-backup") {
                Err(PluginError::Invalid(d)) => {
                    assert_eq!(d[0].field, BACKUP_CONTAINER_NAME_FIELD, "{bad:?}");
                    assert!(d[0].message.contains("63 lower-case"), "{}", d[0].message);
                }
                other => panic!("{bad:?} was accepted: {other:?}"),
            }
        }
        assert!(backup_container_name(Some(&"a".repeat(63)), "x").is_ok());
    }
}
