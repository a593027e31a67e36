//! Building blocks for the pod spec an engine returns.
//!
//! Secret values never pass through a plugin: env vars take them by `secretKeyRef`, files come
//! from Secret volumes. These helpers make the safe way the short way.

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, PodSpec,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};

use crate::{JobSpec, PluginError, SecretKeyRef};

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

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
}
