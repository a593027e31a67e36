//! Rendering through a real engine plugin as the operator does, and finding what it rendered.
//!
//! A test loads one engine with [`load_engine`], applies its manifests to a [`Cluster`] (which
//! keeps every Secret and ConfigMap, so a second render sees the passwords the first one
//! generated, as it would in a real cluster), and gives those objects to a
//! [`PodRunner`](crate::pod_runner::PodRunner) before running the rendered Jobs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dbo_api::manifest::{self, Manifests};
use dbo_engine::Engine as _;
use dbo_plugin_runtime::{Plugin, PluginRuntime, RuntimeConfig};
use dbo_render::{LABEL_COMPONENT, LABEL_DATABASE, PasswordSource, Rendered};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pod_runner::{ImageMap, PodRunner};
use crate::standin::StandIns;

/// Deterministic passwords from the alphabet the operator draws from (ASCII letters and digits),
/// so a failing run can be repeated exactly. The number is the count of passwords drawn so far.
pub struct TestPasswords(pub u32);

impl PasswordSource for TestPasswords {
    fn generate(&mut self, length: usize) -> String {
        self.0 += 1;
        let alphabet = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut state = u64::from(self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(alphabet[(state % alphabet.len() as u64) as usize])
            })
            .collect()
    }
}

/// A `DbRestore` to add to the manifests: its name, target Database and `snapshot` YAML
/// (`latest: true`, `key: ...` or `pointInTime: "..."`).
pub struct Restore<'a> {
    pub name: &'a str,
    pub database: &'a str,
    pub snapshot: String,
}

impl Restore<'_> {
    /// The DbRestore as a YAML document in `namespace` (the target Database's), `---` first.
    pub fn yaml(&self, namespace: &str) -> String {
        format!(
            r#"---
apiVersion: kci.rocks/v1alpha1
kind: DbRestore
metadata:
  name: {name}
  namespace: {namespace}
spec:
  database: {database}
  snapshot:
    {snapshot}
"#,
            name = self.name,
            database = self.database,
            snapshot = self.snapshot,
        )
    }
}

/// One engine plugin, loaded as the operator loads a built-in one, and the images its Jobs run.
pub struct LoadedEngine {
    engines: BTreeMap<String, Plugin>,
    images: ImageMap,
}

/// Loads the built-in engine `name` from its WebAssembly component `wasm` (one of
/// `dbo_plugin_artifacts`' constants) and maps its image to `deploy/images/<engine>/`.
pub fn load_engine(name: &str, wasm: &[u8]) -> Result<LoadedEngine> {
    let runtime = PluginRuntime::new(RuntimeConfig::default())?;
    let plugin = runtime
        .load(&format!("builtin:{name}"), wasm)
        .with_context(|| format!("loading the {name} plugin"))?;
    let info = plugin.describe()?;
    let images = ImageMap::for_engine(&info, &crate::image_dir(&info.name))?;
    Ok(LoadedEngine {
        engines: BTreeMap::from([(info.name.clone(), plugin)]),
        images,
    })
}

impl LoadedEngine {
    /// The images the engine's Jobs run, built from the repository's Dockerfiles.
    pub fn images(&self) -> &ImageMap {
        &self.images
    }

    /// Renders `manifests` with nothing else in the cluster.
    pub fn render(
        &self,
        manifests: &Manifests,
        passwords: &mut dyn PasswordSource,
    ) -> Result<Rendered> {
        dbo_render::render(manifests, &self.engines, passwords)
            .map_err(|e| anyhow::anyhow!("rendering: {e}"))
    }

    /// Parses and renders `yaml` with nothing else in the cluster.
    pub fn render_yaml(
        &self,
        yaml: &str,
        passwords: &mut dyn PasswordSource,
    ) -> Result<(Manifests, Rendered)> {
        let manifests = manifest::parse(yaml).context("parsing the manifests")?;
        let rendered = self.render(&manifests, passwords)?;
        Ok((manifests, rendered))
    }

    /// Parses and renders the repository's `examples/<file>`.
    pub fn render_example(
        &self,
        file: &str,
        passwords: &mut dyn PasswordSource,
    ) -> Result<Rendered> {
        let path = crate::repo_root().join("examples").join(file);
        let yaml = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let manifests = manifest::parse(&yaml).with_context(|| format!("parsing {file}"))?;
        dbo_render::render(&manifests, &self.engines, passwords)
            .map_err(|e| anyhow::anyhow!("rendering {file}: {e}"))
    }

    /// A pod runner for the engine's images, with the tools installed on this machine.
    pub fn runner(&self) -> Result<PodRunner> {
        Ok(PodRunner::new(self.images.clone())?)
    }

    /// A pod runner for the engine's images whose tools are `tools`' stand-ins.
    pub fn runner_with(&self, tools: &StandIns) -> Result<PodRunner> {
        Ok(PodRunner::new(self.images.clone())?.with_stand_ins(tools)?)
    }
}

/// The Secrets and ConfigMaps a cluster holds after each [`apply`](Cluster::apply): the
/// manifests' own and the rendered ones, the newest of each namespace and name.
#[derive(Default)]
pub struct Cluster {
    secrets: Vec<Secret>,
    config_maps: Vec<ConfigMap>,
}

impl Cluster {
    /// Parses and renders `yaml` as the operator would, with the Secrets held so far as existing
    /// objects (a Secret that `yaml` itself declares replaces the held one), then holds the
    /// manifests' and the rendered Secrets and ConfigMaps.
    ///
    /// Held ConfigMaps are not rendered again: the operator reads only the schema ConfigMaps
    /// the manifests name, and those are in `yaml`.
    pub fn apply(
        &mut self,
        engine: &LoadedEngine,
        yaml: &str,
        passwords: &mut dyn PasswordSource,
    ) -> Result<Rendered> {
        let mut manifests: Manifests = manifest::parse(yaml).context("parsing the manifests")?;
        let existing: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| {
                !manifests
                    .secrets
                    .iter()
                    .any(|m| same_object(&m.metadata, &s.metadata))
            })
            .cloned()
            .collect();
        manifests.secrets.extend(existing);
        let rendered = engine.render(&manifests, passwords)?;
        for secret in manifests.secrets.iter().chain(&rendered.secrets) {
            hold(&mut self.secrets, secret, |s| &s.metadata);
        }
        for config_map in manifests.config_maps.iter().chain(&rendered.config_maps) {
            hold(&mut self.config_maps, config_map, |c| &c.metadata);
        }
        Ok(rendered)
    }

    /// Every Secret held.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// The Secret `namespace/name`.
    pub fn secret(&self, namespace: &str, name: &str) -> Result<&Secret> {
        find_secret(&self.secrets, namespace, name)
    }

    /// The Secret `namespace/name`, to change it as a user editing it would.
    pub fn secret_mut(&mut self, namespace: &str, name: &str) -> Result<&mut Secret> {
        self.secrets
            .iter_mut()
            .find(|s| is_named(&s.metadata, namespace, name))
            .with_context(|| format!("no Secret {namespace}/{name} was applied or rendered"))
    }

    /// The value of `key` in Secret `namespace/name`.
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Result<String> {
        secret_value(self.secret(namespace, name)?, key)
            .with_context(|| format!("Secret {namespace}/{name} has no {key}"))
    }

    /// Gives `runner` every Secret and ConfigMap held, as the kubelet would find them.
    pub fn give_to(&self, runner: &mut PodRunner) {
        runner.add_secrets(&self.secrets);
        runner.add_config_maps(&self.config_maps);
    }

    /// A runner for `engine`'s images whose tools are `tools`' stand-ins, holding every Secret
    /// and ConfigMap of the cluster.
    pub fn runner_with(&self, engine: &LoadedEngine, tools: &StandIns) -> Result<PodRunner> {
        let mut runner = engine.runner_with(tools)?;
        self.give_to(&mut runner);
        Ok(runner)
    }
}

/// Kubernetes identifies an object by namespace and name; labels and the rest may change.
fn same_object(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.namespace == b.namespace && a.name == b.name
}

fn is_named(meta: &ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name)
}

fn hold<T: Clone>(objects: &mut Vec<T>, object: &T, meta: impl Fn(&T) -> &ObjectMeta) {
    objects.retain(|o| !same_object(meta(o), meta(object)));
    objects.push(object.clone());
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// The rendered Job of `component` (`commission`, say) for the Database named `database`.
pub fn job<'a>(rendered: &'a Rendered, component: &str, database: &str) -> Result<&'a Job> {
    rendered
        .jobs
        .iter()
        .find(|j| {
            label(&j.metadata, LABEL_COMPONENT) == Some(component)
                && label(&j.metadata, LABEL_DATABASE) == Some(database)
        })
        .with_context(|| format!("no {component} Job for Database {database} was rendered"))
}

/// The rendered Job of DbRestore `restore`: `<restore>-restore`.
pub fn restore_job<'a>(rendered: &'a Rendered, restore: &str) -> Result<&'a Job> {
    let name = format!("{restore}-restore");
    rendered
        .jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
        .with_context(|| format!("no restore Job {name} in the rendered objects"))
}

/// The backup CronJob of Database `namespace/database`, which runs in the Database's namespace.
pub fn cron_job<'a>(
    rendered: &'a Rendered,
    namespace: &str,
    database: &str,
) -> Result<&'a CronJob> {
    rendered
        .cron_jobs
        .iter()
        .find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && label(&c.metadata, LABEL_DATABASE) == Some(database)
        })
        .with_context(|| {
            format!("no backup CronJob for Database {namespace}/{database} was rendered")
        })
}

/// The first container of `job`'s pod.
pub fn job_container(job: &Job) -> Result<&Container> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .with_context(|| format!("Job {:?} has no container", job.metadata.name))
}

/// The first container of the pod `cron_job` starts.
pub fn cron_job_container(cron_job: &CronJob) -> Result<&Container> {
    cron_job
        .spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .with_context(|| format!("CronJob {:?} has no container", cron_job.metadata.name))
}

/// The literal value of environment variable `name` (not one taken from a Secret).
pub fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// The Secret `namespace/name` among `secrets`.
pub fn find_secret<'a>(secrets: &'a [Secret], namespace: &str, name: &str) -> Result<&'a Secret> {
    secrets
        .iter()
        .find(|s| is_named(&s.metadata, namespace, name))
        .with_context(|| format!("no Secret {namespace}/{name} was applied or rendered"))
}

/// The value of `key` in `secret`, from `stringData` (as rendered) or `data` (as stored).
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        })
}

/// Sets `key` of `secret` to `value` as `kubectl edit` would: `stringData` wins over `data`,
/// so the old value is removed from `data`.
pub fn set_secret_value(secret: &mut Secret, key: &str, value: &str) {
    if let Some(data) = secret.data.as_mut() {
        data.remove(key);
    }
    secret
        .string_data
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
}
