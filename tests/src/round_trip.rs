//! What the backup → S3 → restore tests against a real database server share: one DbInstance
//! with S3 backups, Databases backed up daily, DbRestores, and the Jobs rendered from them run in
//! the pod runner against the server and a real S3 server.
//!
//! A test's world is a [`RoundTrip`] plus its server: the server knows its port, admin password
//! and how to log in; the round trip renders, runs and lists what was stored.

use anyhow::{Context, Result, ensure};
use dbo_render::Rendered;

use crate::backups::BackupKeys;
use crate::checks::expect_success;
use crate::pod_runner::{PodOutcome, PodRunner};
pub use crate::render::Restore;
use crate::render::{Cluster, LoadedEngine, TestPasswords, cron_job, job, restore_job};
use crate::services::{HOST, S3Object, S3Server};

/// The namespace of the Databases, their credentials Secrets and the S3 access-key Secret.
pub const NAMESPACE: &str = "app";
/// The namespace of the admin Secret, where the commissioning Jobs run.
pub const ADMIN_NAMESPACE: &str = "db-operator";
pub const BUCKET: &str = "db-backups";
/// The DbInstance's `backup.s3.prefix`, without its slashes.
pub const PREFIX: &str = "e2e/cluster-1";
const S3_SECRET: &str = "s3-backup";

/// The engine's side of the manifests: the DbInstance and its admin Secret.
#[derive(Debug, Clone, Copy)]
pub struct Instance {
    /// The DbInstance's name.
    pub name: &'static str,
    /// `spec.engine`.
    pub engine: &'static str,
    /// The admin Secret in [`ADMIN_NAMESPACE`], holding `user` and `password`.
    pub admin_secret: &'static str,
    pub admin_user: &'static str,
}

/// The manifests of a round trip: the admin and S3 access-key Secrets, the DbInstance of the
/// server at `HOST:port` backing up to [`BUCKET`] under [`PREFIX`] at `s3_endpoint`, each of
/// `databases` (in [`NAMESPACE`], credentials in `<database>-db`, backed up daily) and each of
/// `restores`.
pub fn manifest_yaml(
    instance: &Instance,
    port: u16,
    s3_endpoint: &str,
    (access_key, secret_key): (&str, &str),
    admin_password: &str,
    databases: &[&str],
    restores: &[Restore<'_>],
) -> String {
    let Instance {
        name,
        engine,
        admin_secret,
        admin_user,
    } = instance;
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: {admin_secret}
  namespace: {ADMIN_NAMESPACE}
stringData:
  user: {admin_user}
  password: "{admin_password}"
---
apiVersion: v1
kind: Secret
metadata:
  name: {S3_SECRET}
  namespace: {NAMESPACE}
stringData:
  AWS_ACCESS_KEY_ID: "{access_key}"
  AWS_SECRET_ACCESS_KEY: "{secret_key}"
---
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: {name}
spec:
  engine: {engine}
  adminSecretRef:
    namespace: {ADMIN_NAMESPACE}
    name: {admin_secret}
  generic:
    host: {HOST}
    port: {port}
  backup:
    s3:
      bucket: {BUCKET}
      prefix: /{PREFIX}/
      endpoint: {s3_endpoint}
      auth:
        accessKeySecret:
          name: {S3_SECRET}
"#
    );
    for database in databases {
        yaml.push_str(&format!(
            r#"---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: {database}
  namespace: {NAMESPACE}
spec:
  instance: {name}
  secretName: {database}-db
  backup:
    enable: true
    cron: "0 3 * * *"
"#
        ));
    }
    for restore in restores {
        yaml.push_str(&restore.yaml(NAMESPACE));
    }
    yaml
}

/// One test's S3 server, engine, runner, and what has been "applied" so far.
pub struct RoundTrip {
    pub s3: S3Server,
    /// Knows every Secret applied or rendered so far; a test may give it more.
    pub runner: PodRunner,
    /// The S3 secret key the access-key Secret holds (a test may break it).
    pub s3_secret_key: String,
    instance: Instance,
    engine: LoadedEngine,
    passwords: TestPasswords,
    cluster: Cluster,
}

impl RoundTrip {
    /// Starts an S3 server with [`BUCKET`] for `engine`'s `instance`.
    pub fn start(instance: Instance, engine: LoadedEngine) -> Result<RoundTrip> {
        let s3 = S3Server::start_with_bucket(BUCKET).context("starting the S3 server")?;
        let runner = engine.runner()?;
        let s3_secret_key = s3.secret_key().to_owned();
        Ok(RoundTrip {
            s3,
            runner,
            s3_secret_key,
            instance,
            engine,
            passwords: TestPasswords(0),
            cluster: Cluster::default(),
        })
    }

    /// The manifests for the server at `port` whose admin logs in with `admin_password`, with
    /// this S3 server and the access-key Secret holding [`s3_secret_key`](Self::s3_secret_key).
    pub fn manifest(
        &self,
        port: u16,
        admin_password: &str,
        databases: &[&str],
        restores: &[Restore<'_>],
    ) -> String {
        manifest_yaml(
            &self.instance,
            port,
            &self.s3.endpoint(),
            (self.s3.access_key(), &self.s3_secret_key),
            admin_password,
            databases,
            restores,
        )
    }

    /// Parses and renders `yaml` as the operator would, with the Secrets rendered before as
    /// existing objects, and hands every Secret to the runner.
    pub fn render(&mut self, yaml: &str) -> Result<Rendered> {
        let rendered = self
            .cluster
            .apply(&self.engine, yaml, &mut self.passwords)?;
        self.cluster.give_to(&mut self.runner);
        Ok(rendered)
    }

    /// The Secrets applied and rendered so far.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The Secrets applied and rendered so far, to change one as a user editing it would.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Runs `database`'s commissioning Job, which must run beside the admin Secret and succeed.
    pub fn commission(&self, rendered: &Rendered, database: &str) -> Result<PodOutcome> {
        let job = job(rendered, "commission", database)?;
        ensure!(
            job.metadata.namespace.as_deref() == Some(ADMIN_NAMESPACE),
            "the commissioning Job runs beside the admin Secret, not in {:?}",
            job.metadata.namespace
        );
        let outcome = self.runner.run_job(job)?;
        expect_success(&outcome)?;
        Ok(outcome)
    }

    /// Runs `database`'s backup CronJob once.
    pub fn backup(&self, rendered: &Rendered, database: &str) -> Result<PodOutcome> {
        Ok(self
            .runner
            .run_cron_job(cron_job(rendered, NAMESPACE, database)?)?)
    }

    /// Runs the Job of DbRestore `restore`.
    pub fn restore(&self, rendered: &Rendered, restore: &str) -> Result<PodOutcome> {
        Ok(self.runner.run_job(restore_job(rendered, restore)?)?)
    }

    /// The objects in the backup folder of `keys`.
    pub fn stored(&self, keys: &BackupKeys) -> Result<Vec<S3Object>> {
        Ok(self.s3.list(BUCKET, keys.folder())?)
    }

    /// Runs `database`'s backup, which must succeed and store one object named by `keys` with
    /// its `-latest` copy; returns the object's key and content.
    pub fn backup_ok(
        &self,
        rendered: &Rendered,
        database: &str,
        keys: &BackupKeys,
    ) -> Result<(String, Vec<u8>)> {
        let before = self.stored(keys)?;
        let outcome = self.backup(rendered, database)?;
        expect_success(&outcome)?;
        keys.stored_backup(&self.s3, BUCKET, &before, &outcome)
    }
}
