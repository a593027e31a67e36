//! Runs a rendered pod's containers on this machine with exactly what its PodSpec declares.
//!
//! The point is fidelity: a backup script that works here must work in a cluster, so a container
//! gets only
//! - the env its spec declares (literals, `secretKeyRef`, `configMapKeyRef`, a few `fieldRef`s,
//!   `envFrom`; `$(VAR)` expanded as the kubelet does), the image's Dockerfile `ENV`, and a `PATH`
//!   that adds the image emulation (this machine's PostgreSQL client binaries and rclone);
//! - its volumes (Secret, ConfigMap, emptyDir, PersistentVolumeClaim) at their `mountPath`, with
//!   `subPath` and `readOnly`, inside a private mount namespace, so scripts see the paths the
//!   spec names;
//! - the image's `rootfs/` at `/`, its `ENTRYPOINT`/`CMD`/`WORKDIR`/`USER` under the Kubernetes
//!   rules for `command`/`args`, and the user and groups of its `securityContext`.
//!
//! A reference that the kubelet would refuse (a missing Secret or key) is an error naming it,
//! like the kubelet's `CreateContainerConfigError`. Init containers run first, in order, and a
//! failing one stops the pod; then the containers run one after another.
//!
//! Not emulated: networking (pods share this machine's network, so `127.0.0.1` reaches the test
//! servers), resource limits, capabilities and seccomp, restarts and `backoffLimit`.

mod env;
mod image;
mod sandbox;
mod volumes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbo_engine::EngineInfo;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret};

pub use image::{DEFAULT_PATH, Image, ImageError};

use crate::standin::StandIns;
use crate::tools::{self, MissingTool};

/// Where the emulated image tools (rclone, stand-ins) appear inside a container; first on its
/// `PATH`.
pub const TOOLS_DIR: &str = "/opt/image-emulation/bin";

/// How long a container may run when its Job sets no shorter `activeDeadlineSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of each of stdout and stderr is kept (the end of it).
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;

/// Image references and the build directories that stand in for them.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    images: BTreeMap<String, Arc<Image>>,
}

impl ImageMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every image an engine names in `describe()`, all built from `dir`.
    pub fn for_engine(info: &EngineInfo, dir: &Path) -> Result<Self, ImageError> {
        let mut map = Self::new();
        for image in &info.images {
            map.insert(&image.reference, dir)?;
        }
        Ok(map)
    }

    /// Runs containers with image `reference` from the build directory `dir`.
    pub fn insert(&mut self, reference: &str, dir: &Path) -> Result<(), ImageError> {
        let image = Image::load(dir)?;
        self.images.insert(reference.to_owned(), Arc::new(image));
        Ok(())
    }

    fn get(&self, reference: &str) -> Option<&Arc<Image>> {
        self.images.get(reference)
    }
}

/// Secret and ConfigMap data by namespace and name, decoded (`stringData` wins over `data`, as
/// the API server merges them).
#[derive(Debug, Clone, Default)]
pub struct Objects {
    secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
    config_maps: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

impl Objects {
    /// Adds or replaces a Secret. One without a namespace is in `default`, as `kubectl apply`
    /// would put it.
    pub fn insert_secret(&mut self, secret: &Secret) {
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        self.secrets.insert(key_of(&secret.metadata), data);
    }

    /// Adds or replaces a ConfigMap.
    pub fn insert_config_map(&mut self, config_map: &ConfigMap) {
        let mut data: BTreeMap<String, Vec<u8>> = config_map
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in config_map.data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        self.config_maps.insert(key_of(&config_map.metadata), data);
    }

    /// Removes a Secret; returns whether it existed.
    pub fn remove_secret(&mut self, namespace: &str, name: &str) -> bool {
        self.secrets
            .remove(&(namespace.to_owned(), name.to_owned()))
            .is_some()
    }

    /// The decoded data of Secret `namespace/name`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The data of ConfigMap `namespace/name`.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// What one container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerOutcome {
    pub name: String,
    /// The exit code; `128 + n` when killed by signal `n`, as Kubernetes reports it.
    pub exit_code: i32,
    /// Killed because it ran past the timeout.
    pub timed_out: bool,
    /// The end of its stdout.
    pub stdout: String,
    /// The end of its stderr.
    pub stderr: String,
    /// Output beyond the limit was dropped from the front.
    pub truncated: bool,
    /// What the container wrote to its `terminationMessagePath` (or, with
    /// `FallbackToLogsOnError` and a failure, the end of its log), as `kubectl` would show it.
    pub termination_message: String,
}

impl ContainerOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// What a pod did: init containers then containers, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOutcome {
    pub pod: String,
    pub containers: Vec<ContainerOutcome>,
    /// Containers that never ran because an init container failed.
    pub not_started: Vec<String>,
}

impl PodOutcome {
    /// Every container ran and exited 0.
    pub fn succeeded(&self) -> bool {
        self.not_started.is_empty() && self.containers.iter().all(ContainerOutcome::succeeded)
    }

    pub fn container(&self, name: &str) -> Option<&ContainerOutcome> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Everything the containers printed, for assertion messages.
    pub fn logs(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PodOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pod {}:", self.pod)?;
        for c in &self.containers {
            let state = if c.timed_out {
                "timed out".to_owned()
            } else {
                format!("exit {}", c.exit_code)
            };
            writeln!(f, "--- container {} ({state})", c.name)?;
            if !c.stdout.is_empty() {
                writeln!(f, "stdout:\n{}", c.stdout.trim_end())?;
            }
            if !c.stderr.is_empty() {
                writeln!(f, "stderr:\n{}", c.stderr.trim_end())?;
            }
        }
        for name in &self.not_started {
            writeln!(f, "--- container {name} (not started)")?;
        }
        Ok(())
    }
}

/// Why a pod could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "secret {namespace}/{name} not found ({used_by}); create Secret {name:?} in namespace {namespace:?}"
    )]
    SecretNotFound {
        namespace: String,
        name: String,
        used_by: String,
    },
    #[error(
        "couldn't find key {key:?} in Secret {namespace}/{name} ({used_by}); add the key or fix the reference"
    )]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
        used_by: String,
    },
    #[error(
        "configmap {namespace}/{name} not found ({used_by}); create ConfigMap {name:?} in namespace {namespace:?}"
    )]
    ConfigMapNotFound {
        namespace: String,
        name: String,
        used_by: String,
    },
    #[error(
        "couldn't find key {key:?} in ConfigMap {namespace}/{name} ({used_by}); add the key or fix the reference"
    )]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
        used_by: String,
    },
    #[error(
        "container {container:?}: image {image:?} is not in the runner's image table (known: {known}); map it to an image directory"
    )]
    UnknownImage {
        container: String,
        image: String,
        known: String,
    },
    #[error(
        "container {container:?}: volumeMounts: volume {volume:?} is not among the pod's volumes"
    )]
    UnknownVolume { container: String, volume: String },
    #[error(
        "container {container:?}: neither the pod spec (command/args) nor the image (ENTRYPOINT/CMD) gives a command"
    )]
    NoCommand { container: String },
    #[error("container {container:?}: {reason}")]
    User { container: String, reason: String },
    #[error("{field}: {value:?} {reason}")]
    InvalidField {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{what}: {detail}")]
    Unsupported { what: String, detail: String },
    #[error("{}{message}", container.as_ref().map(|c| format!("container {c:?}: ")).unwrap_or_default())]
    Sandbox {
        container: Option<String>,
        message: String,
    },
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path, source: std::io::Error) -> RunError {
    RunError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Who the pod is, for `fieldRef`s.
struct PodIdentity<'a> {
    namespace: &'a str,
    name: &'a str,
    service_account: &'a str,
}

/// Runs pods. Secrets and ConfigMaps are looked up in the pod's namespace; PersistentVolumeClaim
/// directories persist across the pods of one runner.
#[derive(Debug)]
pub struct PodRunner {
    images: ImageMap,
    objects: Objects,
    programs: sandbox::Programs,
    tools: Vec<(String, PathBuf)>,
    tool_path: Vec<String>,
    visible_dirs: Vec<PathBuf>,
    writable_dirs: Vec<PathBuf>,
    timeout: Duration,
    output_limit: usize,
    scratch: tempfile::TempDir,
    claims: Mutex<BTreeMap<(String, String), PathBuf>>,
}

impl PodRunner {
    /// A runner for `images`, with this machine's PostgreSQL client binaries and rclone as the
    /// image emulation. Fails when a needed program is missing or private namespaces cannot be
    /// created here.
    pub fn new(images: ImageMap) -> Result<Self, RunError> {
        let programs = sandbox::Programs {
            unshare: tools::program("unshare").map_err(|mut e| {
                e.install = "the Debian package `util-linux`".into();
                e
            })?,
            chroot: tools::program("chroot")?,
            env: tools::program("env")?,
            sh: tools::program("sh")?,
        };
        sandbox::preflight(&programs)?;
        let rclone = tools::rclone()?;
        let pg_bin = tools::postgres_bindir()?;
        // The PostgreSQL directory is visible in the new root when it lies in an OS directory
        // (Debian: under /usr); otherwise it is bind-mounted at the same path.
        let under_os = ["/usr", "/etc", "/var", "/bin", "/sbin", "/lib", "/lib64"]
            .iter()
            .any(|p| pg_bin.starts_with(p));
        let scratch = tempfile::Builder::new()
            .prefix("dbo-pods-")
            .tempdir()
            .map_err(|e| io_error(Path::new("temp dir"), e))?;
        Ok(PodRunner {
            images,
            objects: Objects::default(),
            programs,
            tools: vec![("rclone".to_owned(), rclone)],
            tool_path: vec![TOOLS_DIR.to_owned(), pg_bin.display().to_string()],
            visible_dirs: if under_os { Vec::new() } else { vec![pg_bin] },
            writable_dirs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            scratch,
            claims: Mutex::new(BTreeMap::new()),
        })
    }

    /// Containers running longer are killed (a Job's shorter `activeDeadlineSeconds` wins).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Puts the stand-in programs first on every container's `PATH` (a stand-in replaces the
    /// emulated tool of the same name) and makes their call log writable.
    pub fn with_stand_ins(mut self, stand_ins: &StandIns) -> Result<Self, RunError> {
        let programs = stand_ins
            .programs()
            .map_err(|e| io_error(stand_ins.dir(), e))?;
        for (name, path) in programs {
            self.tools.retain(|(n, _)| *n != name);
            self.tools.push((name, path));
        }
        self.writable_dirs.push(stand_ins.dir().to_owned());
        Ok(self)
    }

    /// How much of each output stream is kept.
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// The Secrets and ConfigMaps pods can reference.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub fn objects_mut(&mut self) -> &mut Objects {
        &mut self.objects
    }

    /// Adds or replaces Secrets.
    pub fn add_secrets<'a>(&mut self, secrets: impl IntoIterator<Item = &'a Secret>) {
        for secret in secrets {
            self.objects.insert_secret(secret);
        }
    }

    /// Adds or replaces ConfigMaps.
    pub fn add_config_maps<'a>(&mut self, config_maps: impl IntoIterator<Item = &'a ConfigMap>) {
        for config_map in config_maps {
            self.objects.insert_config_map(config_map);
        }
    }

    /// Runs the pod of a Job, in the Job's namespace.
    pub fn run_job(&self, job: &Job) -> Result<PodOutcome, RunError> {
        let name = job.metadata.name.as_deref().unwrap_or("job");
        let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
        let spec = job.spec.as_ref();
        let pod = spec.and_then(|s| s.template.spec.as_ref());
        let deadline = spec.and_then(|s| s.active_deadline_seconds);
        self.run_pod_with_deadline(namespace, &format!("{name}-run"), pod, deadline)
    }

    /// Runs the pod of one Job of a CronJob, as if its schedule fired now.
    pub fn run_cron_job(&self, cron_job: &CronJob) -> Result<PodOutcome, RunError> {
        let name = cron_job.metadata.name.as_deref().unwrap_or("cronjob");
        let namespace = cron_job.metadata.namespace.as_deref().unwrap_or("default");
        let job = cron_job.spec.job_template.spec.as_ref();
        let pod = job.and_then(|j| j.template.spec.as_ref());
        let deadline = job.and_then(|j| j.active_deadline_seconds);
        self.run_pod_with_deadline(namespace, &format!("{name}-manual"), pod, deadline)
    }

    /// Runs `pod` as pod `name` in `namespace`.
    pub fn run_pod(
        &self,
        namespace: &str,
        name: &str,
        pod: &PodSpec,
    ) -> Result<PodOutcome, RunError> {
        self.run_pod_with_deadline(namespace, name, Some(pod), None)
    }

    fn run_pod_with_deadline(
        &self,
        namespace: &str,
        name: &str,
        pod: Option<&PodSpec>,
        deadline_seconds: Option<i64>,
    ) -> Result<PodOutcome, RunError> {
        let pod = pod.ok_or_else(|| RunError::Unsupported {
            what: format!("pod {namespace}/{name}"),
            detail: "the object has no pod template".into(),
        })?;
        let timeout = deadline_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .map_or(self.timeout, |d| d.min(self.timeout));
        let identity = PodIdentity {
            namespace,
            name,
            service_account: pod.service_account_name.as_deref().unwrap_or("default"),
        };
        let pod_dir = tempfile::Builder::new()
            .prefix("pod-")
            .tempdir_in(self.scratch.path())
            .map_err(|e| io_error(self.scratch.path(), e))?;
        let volumes_dir = pod_dir.path().join("volumes");
        std::fs::create_dir_all(&volumes_dir).map_err(|e| io_error(&volumes_dir, e))?;

        let pod_sc = pod.security_context.as_ref();
        let fs_group = pod_sc
            .and_then(|sc| sc.fs_group)
            .map(|g| id_u32(g, "securityContext.fsGroup"))
            .transpose()?;
        let volumes = volumes::prepare(
            pod.volumes.as_deref().unwrap_or_default(),
            namespace,
            &self.objects,
            &volumes_dir,
            &|claim| self.claim_dir(namespace, claim),
            fs_group,
        )?;

        // Everything is checked before the first container runs, as the kubelet does not start
        // a pod whose config it cannot build.
        let init = pod.init_containers.iter().flatten().map(|c| (c, true));
        let main = pod.containers.iter().map(|c| (c, false));
        let mut plans = Vec::new();
        for (container, is_init) in init.chain(main) {
            plans.push((
                self.plan(container, pod, &identity, &volumes, timeout)?,
                is_init,
            ));
        }

        let mut outcome = PodOutcome {
            pod: format!("{namespace}/{name}"),
            containers: Vec::new(),
            not_started: Vec::new(),
        };
        let mut init_failed = false;
        for (index, (plan, is_init)) in plans.iter().enumerate() {
            if init_failed {
                outcome.not_started.push(plan.name.clone());
                continue;
            }
            let dir = pod_dir.path().join(format!("container-{index}"));
            let result = sandbox::run(&self.programs, plan, &dir, &volumes_dir)?;
            if *is_init && !result.succeeded() {
                init_failed = true;
            }
            outcome.containers.push(result);
        }
        Ok(outcome)
    }

    fn claim_dir(&self, namespace: &str, claim: &str) -> Result<PathBuf, RunError> {
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = claims.get(&(namespace.to_owned(), claim.to_owned())) {
            return Ok(dir.clone());
        }
        let dir = self
            .scratch
            .path()
            .join("claims")
            .join(namespace)
            .join(claim);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        claims.insert((namespace.to_owned(), claim.to_owned()), dir.clone());
        Ok(dir)
    }

    fn plan(
        &self,
        container: &Container,
        pod: &PodSpec,
        identity: &PodIdentity<'_>,
        volumes: &BTreeMap<String, volumes::Prepared>,
        timeout: Duration,
    ) -> Result<sandbox::Plan, RunError> {
        let reference = container.image.clone().unwrap_or_default();
        let image = self
            .images
            .get(&reference)
            .ok_or_else(|| RunError::UnknownImage {
                container: container.name.clone(),
                image: reference.clone(),
                known: self
                    .images
                    .images
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;

        let declared = env::declared(container, identity, &self.objects)?;
        // The image's ENV is the base; the spec's variables override it. The emulated tools go in
        // front of the image's PATH unless the spec sets PATH itself.
        let mut vars = image.env.clone();
        let path = format!("{}:{}", self.tool_path.join(":"), image.path());
        env::set(&mut vars, "PATH".into(), path);
        for (k, v) in &declared {
            env::set(&mut vars, k.clone(), v.clone());
        }

        let expand = |args: &[String]| -> Vec<String> {
            args.iter().map(|a| env::expand(a, &declared)).collect()
        };
        let argv = match (&container.command, &container.args) {
            (Some(command), Some(args)) => [expand(command), expand(args)].concat(),
            (Some(command), None) => expand(command),
            (None, Some(args)) => {
                [image.entrypoint.clone().unwrap_or_default(), expand(args)].concat()
            }
            (None, None) => [
                image.entrypoint.clone().unwrap_or_default(),
                image.cmd.clone().unwrap_or_default(),
            ]
            .concat(),
        };
        if argv.is_empty() {
            return Err(RunError::NoCommand {
                container: container.name.clone(),
            });
        }

        let mut mounts = Vec::new();
        let mut claims = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = volumes
                .get(&mount.name)
                .ok_or_else(|| RunError::UnknownVolume {
                    container: container.name.clone(),
                    volume: mount.name.clone(),
                })?;
            if !mount.mount_path.starts_with('/') {
                return Err(RunError::InvalidField {
                    field: format!("container {:?}: volumeMounts[].mountPath", container.name),
                    value: mount.mount_path.clone(),
                    reason: "must be absolute".into(),
                });
            }
            let sub_path = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => volumes::relative_path(sub, "volumeMounts[].subPath")?.to_owned(),
                None => PathBuf::new(),
            };
            let source = volume.host_dir.join(&sub_path);
            if !source.exists() {
                if volume.always_read_only {
                    return Err(RunError::InvalidField {
                        field: format!("container {:?}: volumeMounts[].subPath", container.name),
                        value: sub_path.display().to_string(),
                        reason: format!("does not exist in volume {:?}", mount.name),
                    });
                }
                // The kubelet creates a missing subPath in a writable volume.
                std::fs::create_dir_all(&source).map_err(|e| io_error(&source, e))?;
            }
            if volume.claim
                && !claims
                    .iter()
                    .any(|(n, _): &(String, PathBuf)| *n == mount.name)
            {
                claims.push((mount.name.clone(), volume.host_dir.clone()));
            }
            mounts.push(sandbox::Mount {
                volume: mount.name.clone(),
                file: source.is_file(),
                sub_path,
                target: mount.mount_path.clone(),
                read_only: volume.always_read_only || mount.read_only.unwrap_or(false),
            });
        }

        let sc = container.security_context.as_ref();
        let pod_sc = pod.security_context.as_ref();
        let run_as_user = sc
            .and_then(|s| s.run_as_user)
            .or_else(|| pod_sc.and_then(|s| s.run_as_user));
        let run_as_group = sc
            .and_then(|s| s.run_as_group)
            .or_else(|| pod_sc.and_then(|s| s.run_as_group));
        let run_as_non_root = sc
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
            .unwrap_or(false);
        let user = self.user(
            &container.name,
            image,
            run_as_user,
            run_as_group,
            run_as_non_root,
            pod,
        )?;
        let termination_message_path = container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".to_owned());
        if !termination_message_path.starts_with('/') {
            return Err(RunError::InvalidField {
                field: format!("container {:?}: terminationMessagePath", container.name),
                value: termination_message_path,
                reason: "must be absolute".into(),
            });
        }
        let read_only_root = sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false);

        Ok(sandbox::Plan {
            name: container.name.clone(),
            argv,
            env: vars,
            workdir: container
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| image.workdir.clone())
                .unwrap_or_else(|| "/".to_owned()),
            user,
            rootfs: image.rootfs.clone(),
            mounts,
            claims,
            tools: self.tools.clone(),
            visible_dirs: self.visible_dirs.clone(),
            writable_dirs: self.writable_dirs.clone(),
            read_only_root,
            termination_message_path,
            fallback_to_logs: container.termination_message_policy.as_deref()
                == Some("FallbackToLogsOnError"),
            timeout,
            output_limit: self.output_limit,
        })
    }

    /// The user a container runs as, under the kubelet's rules: the spec's `runAsUser` /
    /// `runAsGroup` win over the image's `USER`; `runAsNonRoot` refuses uid 0 and an image user
    /// given by name (which the kubelet cannot verify).
    fn user(
        &self,
        container: &str,
        image: &Image,
        run_as_user: Option<i64>,
        run_as_group: Option<i64>,
        run_as_non_root: bool,
        pod: &PodSpec,
    ) -> Result<Option<(u32, u32, Vec<u32>)>, RunError> {
        let refuse = |reason: String| RunError::User {
            container: container.to_owned(),
            reason,
        };
        let image_user = image.user.as_deref().filter(|u| !u.is_empty());
        let (image_uid, image_gid) = match image_user.map(|u| u.split_once(':').unwrap_or((u, "")))
        {
            None => (None, None),
            Some((user, group)) => {
                let uid = match user.parse::<u32>() {
                    Ok(uid) => Some(uid),
                    Err(_) if run_as_user.is_none() && run_as_non_root => {
                        return Err(refuse(format!(
                            "runAsNonRoot is set and the image's USER {user:?} is not numeric, \
                             so it cannot be verified to be non-root; set securityContext.runAsUser \
                             or a numeric USER in the Dockerfile"
                        )));
                    }
                    Err(_) => Some(lookup_user(user).ok_or_else(|| {
                        refuse(format!(
                            "the image's USER {user:?} does not exist in /etc/passwd"
                        ))
                    })?),
                };
                (uid, group.parse::<u32>().ok())
            }
        };
        let uid = match run_as_user {
            Some(u) => Some(id_u32(u, "securityContext.runAsUser")?),
            None => image_uid,
        };
        if run_as_non_root && uid.unwrap_or(0) == 0 {
            return Err(refuse(
                "runAsNonRoot is set and the container would run as root (uid 0); set \
                 securityContext.runAsUser or a non-root numeric USER in the Dockerfile"
                    .into(),
            ));
        }
        let Some(uid) = uid else {
            return Ok(None);
        };
        let gid = match run_as_group {
            Some(g) => id_u32(g, "securityContext.runAsGroup")?,
            None => image_gid.unwrap_or(0),
        };
        let sc = pod.security_context.as_ref();
        let mut groups = vec![gid];
        if let Some(g) = sc.and_then(|s| s.fs_group) {
            groups.push(id_u32(g, "securityContext.fsGroup")?);
        }
        for g in sc
            .and_then(|s| s.supplemental_groups.as_ref())
            .into_iter()
            .flatten()
        {
            groups.push(id_u32(*g, "securityContext.supplementalGroups")?);
        }
        groups.dedup();
        Ok(Some((uid, gid, groups)))
    }
}

fn id_u32(value: i64, field: &str) -> Result<u32, RunError> {
    u32::try_from(value).map_err(|_| RunError::InvalidField {
        field: field.to_owned(),
        value: value.to_string(),
        reason: "is not a valid user or group id".into(),
    })
}

/// The uid of `name` in this machine's `/etc/passwd`, which is the emulated image's.
fn lookup_user(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}
