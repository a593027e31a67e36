//! The MongoDB engine's Jobs by contract: manifests are rendered through the real WebAssembly
//! plugin and each Job's container runs in the pod runner with exactly its env and files, but
//! `mongodump`, `mongorestore` and `mongosh` are stand-ins that record how the scripts call
//! them (no MongoDB server can be installed here). `rclone` is the real one, recorded on its
//! way, against a real S3 server, so object keys and the `-latest` copy are checked in the
//! bucket itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use dbo_api::manifest::{self, Manifests};
use dbo_e2e::pod_runner::{ImageMap, PodOutcome, PodRunner};
use dbo_e2e::services::{S3Object, S3Server};
use dbo_e2e::standin::{Call, StandIn, StandIns};
use dbo_engine::Engine;
use dbo_plugin_runtime::{Plugin, PluginRuntime, RuntimeConfig};
use dbo_render::{LABEL_COMPONENT, LABEL_DATABASE, PasswordSource, Rendered};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Secret};
use k8s_openapi::jiff::Timestamp;

const NAMESPACE: &str = "app";
const ADMIN_NAMESPACE: &str = "db-operator";
const BUCKET: &str = "db-backups";
const PREFIX: &str = "e2e/mongo";
const S3_SECRET: &str = "s3-backup";
const INSTANCE: &str = "local-mongo";
/// Nobody listens there: every program that would connect is a stand-in.
const PRIMARY: &str = "mongo-0.mongo.test";
const SECONDARY: &str = "mongo-1.mongo.test";
const ADMIN_PASSWORD: &str = "admin-S3cret-pw";
const SCRIPT: &str = "/usr/local/lib/db-operator/mongodb/db-operator.js";

/// Deterministic passwords with a quote and a dash, which the tools' YAML config file and the
/// connection string must carry intact (an adopted Secret may hold any password).
struct TestPasswords(u32);

impl PasswordSource for TestPasswords {
    fn generate(&mut self, length: usize) -> String {
        self.0 += 1;
        let head = format!("pw'{}-", self.0);
        let tail: String = "abcdefghijkmnpqrstuvwxyz23456789"
            .chars()
            .cycle()
            .skip(self.0 as usize)
            .take(length.saturating_sub(head.len()))
            .collect();
        head + &tail
    }
}

/// One test's world: the S3 server, the plugin, and what has been "applied" so far.
struct World {
    s3: S3Server,
    engines: BTreeMap<String, Plugin>,
    images: ImageMap,
    passwords: TestPasswords,
    /// Every Secret the cluster would hold: the manifests' and the rendered ones.
    secrets: Vec<Secret>,
}

impl World {
    fn start() -> Result<World> {
        let s3 = S3Server::start().context("starting the S3 server")?;
        s3.create_bucket(BUCKET)?;
        let (engines, images) = engine()?;
        Ok(World {
            s3,
            engines,
            images,
            passwords: TestPasswords(0),
            secrets: Vec::new(),
        })
    }

    /// Parses and renders `yaml` as the operator would, with the Secrets rendered before as
    /// existing objects.
    fn render(&mut self, yaml: &str) -> Result<Rendered> {
        let mut manifests: Manifests = manifest::parse(yaml).context("parsing the manifests")?;
        let rendered_before: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| !manifests.secrets.iter().any(|m| m.metadata == s.metadata))
            .cloned()
            .collect();
        manifests.secrets.extend(rendered_before);
        let rendered = dbo_render::render(&manifests, &self.engines, &mut self.passwords)
            .map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
        for secret in manifests.secrets.iter().chain(&rendered.secrets) {
            self.secrets.retain(|s| s.metadata != secret.metadata);
            self.secrets.push(secret.clone());
        }
        Ok(rendered)
    }

    /// A pod runner whose `mongodump`, `mongorestore` and `mongosh` are `tools`, and whose
    /// `rclone` is the real one, recorded.
    fn runner(&self, tools: Vec<StandIn>) -> Result<(StandIns, PodRunner)> {
        let mut stand_ins = StandIns::new()?;
        for tool in tools {
            stand_ins.add(tool);
        }
        stand_ins.add(StandIn::wrap("rclone", dbo_e2e::tools::rclone()?));
        let mut runner = PodRunner::new(self.images.clone())?.with_stand_ins(&stand_ins)?;
        runner.add_secrets(&self.secrets);
        Ok((stand_ins, runner))
    }

    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Result<String> {
        let secret = self
            .secrets
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .with_context(|| format!("no Secret {namespace}/{name}"))?;
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
            .with_context(|| format!("Secret {namespace}/{name} has no {key}"))
    }

    /// The app password of `database` (from its rendered credentials Secret).
    fn password(&self, database: &str) -> Result<String> {
        self.secret_value(NAMESPACE, &format!("{database}-db"), "MONGO_PASSWORD")
    }

    /// The objects in `database`'s backup folder.
    fn backups(&self, database: &str) -> Result<Vec<S3Object>> {
        Ok(self.s3.list(BUCKET, &folder(database))?)
    }

    /// Runs `database`'s backup with a `mongodump` that prints `archive`.
    fn backup(&self, rendered: &Rendered, database: &str, archive: &[u8]) -> Result<String> {
        let before = self.backups(database)?;
        let (_tools, runner) =
            self.runner(vec![StandIn::new("mongodump").stdout(archive.to_vec())])?;
        let outcome = runner.run_cron_job(cron_job(rendered, database)?)?;
        ensure!(outcome.succeeded(), "the backup failed:\n{outcome}");
        let new: Vec<S3Object> = timestamped(&self.backups(database)?)
            .into_iter()
            .filter(|o| !before.iter().any(|b| b.key == o.key))
            .collect();
        let [object] = new.as_slice() else {
            bail!("one backup adds one timestamped object, this one added {new:?}");
        };
        Ok(object.key.clone())
    }
}

fn engine() -> Result<(BTreeMap<String, Plugin>, ImageMap)> {
    let runtime = PluginRuntime::new(RuntimeConfig::default())?;
    let plugin = runtime.load("builtin:mongodb", dbo_plugin_artifacts::MONGODB)?;
    let info = plugin.describe()?;
    let images = ImageMap::for_engine(&info, &dbo_e2e::image_dir(&info.name))?;
    Ok((BTreeMap::from([(info.name.clone(), plugin)]), images))
}

/// A Database of the test manifest: its name and its `spec.options` (YAML flow mapping).
#[derive(Clone, Copy)]
struct Db<'a> {
    name: &'a str,
    options: &'a str,
}

const CATALOG: Db<'static> = Db {
    name: "catalog",
    options: "{roles: [readWrite, dbAdmin]}",
};

/// A `DbRestore`: its name, target Database and `snapshot` YAML.
struct Restore<'a> {
    name: &'a str,
    database: &'a str,
    snapshot: String,
}

fn manifest_yaml(
    s3: &S3Server,
    instance_options: &str,
    databases: &[Db<'_>],
    restores: &[Restore<'_>],
) -> String {
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: mongo-admin
  namespace: {ADMIN_NAMESPACE}
stringData:
  user: root
  password: "{ADMIN_PASSWORD}"
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
  name: {INSTANCE}
spec:
  engine: mongodb
  adminSecretRef:
    namespace: {ADMIN_NAMESPACE}
    name: mongo-admin
  generic:
    host: {PRIMARY}
    port: 27017
    backupHost: {SECONDARY}
  options: {instance_options}
  backup:
    s3:
      bucket: {BUCKET}
      prefix: /{PREFIX}/
      endpoint: {endpoint}
      auth:
        accessKeySecret:
          name: {S3_SECRET}
"#,
        access_key = s3.access_key(),
        secret_key = s3.secret_key(),
        endpoint = s3.endpoint(),
    );
    for db in databases {
        yaml.push_str(&format!(
            r#"---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  instance: {INSTANCE}
  secretName: {name}-db
  options: {options}
  backup:
    enable: true
    cron: "0 3 * * *"
"#,
            name = db.name,
            options = db.options,
        ));
    }
    for restore in restores {
        yaml.push_str(&format!(
            r#"---
apiVersion: kci.rocks/v1alpha1
kind: DbRestore
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  database: {database}
  snapshot:
    {snapshot}
"#,
            name = restore.name,
            database = restore.database,
            snapshot = restore.snapshot,
        ));
    }
    yaml
}

/// The database's name on the server and its backup folder: `<namespace>-<name>`.
fn server_name(database: &str) -> String {
    format!("{NAMESPACE}-{database}")
}

fn folder(database: &str) -> String {
    format!("{PREFIX}/{}", server_name(database))
}

fn latest_key(database: &str) -> String {
    format!(
        "{}/{}-latest.archive.gz",
        folder(database),
        server_name(database)
    )
}

fn timestamped(objects: &[S3Object]) -> Vec<S3Object> {
    objects
        .iter()
        .filter(|o| !o.key.ends_with("-latest.archive.gz"))
        .cloned()
        .collect()
}

fn job<'a>(rendered: &'a Rendered, component: &str, database: &str) -> Result<&'a Job> {
    rendered
        .jobs
        .iter()
        .find(|j| {
            let labels = j.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(LABEL_COMPONENT))
                .map(String::as_str)
                == Some(component)
                && labels
                    .and_then(|l| l.get(LABEL_DATABASE))
                    .map(String::as_str)
                    == Some(database)
        })
        .with_context(|| format!("no {component} Job for Database {database} was rendered"))
}

fn restore_job<'a>(rendered: &'a Rendered, restore: &str) -> Result<&'a Job> {
    let name = format!("{restore}-restore");
    rendered
        .jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
        .with_context(|| format!("no restore Job {name} in the rendered objects"))
}

fn cron_job<'a>(rendered: &'a Rendered, database: &str) -> Result<&'a CronJob> {
    rendered
        .cron_jobs
        .iter()
        .find(|c| {
            c.metadata.namespace.as_deref() == Some(NAMESPACE)
                && c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_DATABASE))
                    .map(String::as_str)
                    == Some(database)
        })
        .with_context(|| format!("no backup CronJob for Database {database} was rendered"))
}

fn container_of_job(job: &Job) -> Result<&Container> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .context("the Job has a container")
}

fn env_of(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn lines(calls: &[Call]) -> String {
    calls.iter().map(Call::line).collect::<Vec<_>>().join("\n")
}

/// The folder a stand-in's call was recorded in, where its snippet may leave files.
fn call_dir(tools: &StandIns, tool: &str, nth: usize) -> Result<PathBuf> {
    tools
        .calls_of(tool)?
        .into_iter()
        .nth(nth)
        .map(|c| c.dir)
        .with_context(|| format!("{tool} was not called {} time(s)", nth + 1))
}

/// Fails naming the first argv or log line that holds `secret`.
fn ensure_not_leaked(secret: &str, calls: &[Call], outcome: &PodOutcome) -> Result<()> {
    for call in calls {
        ensure!(
            !call.mentions(secret),
            "a password is in the argv of: {}",
            call.line()
        );
    }
    let c = &outcome.containers[0];
    ensure!(
        !c.stderr.contains(secret) && !c.stdout.contains(secret),
        "a password is in the container's output:\n{outcome}"
    );
    ensure!(
        !c.termination_message.contains(secret),
        "a password is in the termination message"
    );
    Ok(())
}

/// The argv of one tools call with its `--config=<scratch file>` (a random path) checked and
/// replaced by `--config=<file>`, so the rest can be compared exactly.
fn with_config_placeholder(call: &Call) -> Result<Vec<String>> {
    call.args
        .first()
        .filter(|a| a.starts_with("--config=/tmp/") && a.ends_with("/mongo-tools.yaml"))
        .with_context(|| {
            format!(
                "the tools' first argument is --config=<scratch>/mongo-tools.yaml: {}",
                call.line()
            )
        })?;
    Ok(std::iter::once("--config=<file>".to_string())
        .chain(call.args[1..].iter().cloned())
        .collect())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Snippet for a tools stand-in: keeps a copy of the `--config` file in its call folder.
const KEEP_CONFIG: &str = r#"cp "${1#--config=}" "$call/config""#;

/// Snippet for the `mongorestore` stand-in: fails unless `mongosh` (the emptiness check) was
/// called before it.
const AFTER_THE_CHECK: &str = r#"cat "${call%/*}"/*/tool | grep -q mongosh || { echo 'mongorestore ran before the emptiness check' >&2; exit 99; }"#;

#[test]
fn a_backup_streams_mongodump_into_its_key_and_copies_latest_only_after_the_upload() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&manifest_yaml(
        &world.s3,
        "{replicaSet: rs0}",
        &[CATALOG],
        &[],
    ))?;
    let archive = b"\x1f\x8bMONGO-ARCHIVE-one".to_vec();
    let (tools, runner) = world.runner(vec![
        StandIn::new("mongodump")
            .stdout(archive.clone())
            .script(KEEP_CONFIG),
    ])?;
    let started = Timestamp::now();
    let outcome = runner.run_cron_job(cron_job(&rendered, "catalog")?)?;
    ensure!(outcome.succeeded(), "the backup failed:\n{outcome}");
    let calls = tools.calls()?;

    // The dump, with the connection in argv and nothing secret there.
    let dumps: Vec<&Call> = calls.iter().filter(|c| c.tool == "mongodump").collect();
    let [dump] = dumps.as_slice() else {
        bail!("one mongodump call expected:\n{}", lines(&calls));
    };
    let db = server_name("catalog");
    assert_eq!(
        with_config_placeholder(dump)?,
        strings(&[
            "--config=<file>",
            &format!(
                "--uri=mongodb://{SECONDARY}:27017/?authSource={db}&replicaSet=rs0&readPreference=secondaryPreferred"
            ),
            &format!("--username={db}"),
            &format!("--db={db}"),
            "--archive",
            "--gzip",
        ]),
        "mongodump reads the backup host as the Database's user"
    );
    let password = world.password("catalog")?;
    let config = std::fs::read_to_string(call_dir(&tools, "mongodump", 0)?.join("config"))?;
    assert_eq!(
        config,
        format!("password: '{}'\n", password.replace('\'', "''")),
        "the password reaches mongodump only through its --config file"
    );
    ensure_not_leaked(&password, &calls, &outcome)?;

    // The object layout, and the order: upload, check, then the `-latest` copy.
    let objects = world.backups("catalog")?;
    let stamped = timestamped(&objects);
    let [object] = stamped.as_slice() else {
        bail!("one timestamped object expected: {objects:?}");
    };
    let stem = format!("{}/{db}-", folder("catalog"));
    let stamp = object
        .key
        .strip_prefix(&stem)
        .and_then(|k| k.strip_suffix(".archive.gz"))
        .with_context(|| {
            format!(
                "{} is not <prefix>/<db>/<db>-<stamp>.archive.gz",
                object.key
            )
        })?;
    let taken: Timestamp = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    )
    .parse()
    .with_context(|| format!("{stamp} is not a UTC time stamp"))?;
    ensure!(
        taken.as_second() >= started.as_second() - 1,
        "the stamp {stamp} is the backup's time"
    );
    assert_eq!(world.s3.get(BUCKET, &object.key)?, archive);
    assert_eq!(world.s3.get(BUCKET, &latest_key("catalog"))?, archive);

    let remote = |key: &str| format!("s3:{BUCKET}/{key}");
    let rclone: Vec<Vec<String>> = calls
        .iter()
        .filter(|c| c.tool == "rclone")
        .map(|c| c.args.clone())
        .collect();
    assert_eq!(
        rclone,
        [
            strings(&["rcat", &remote(&object.key)]),
            strings(&["lsf", "--format", "s", &remote(&object.key)]),
            strings(&[
                "copyto",
                &remote(&object.key),
                &remote(&latest_key("catalog"))
            ]),
        ],
        "rclone calls:\n{}",
        lines(&calls)
    );
    let message = &outcome.containers[0].termination_message;
    ensure!(
        message.contains(&format!("\"key\":\"{}\"", object.key))
            && message.contains(&format!("\"latestKey\":\"{}\"", latest_key("catalog")))
            && message.contains(&format!("\"size\":{}", archive.len())),
        "the termination message reports the stored backup: {message:?}"
    );
    Ok(())
}

#[test]
fn a_failed_dump_exits_1_naming_mongodump_and_leaves_latest_and_the_bucket_as_they_were()
-> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", &[CATALOG], &[]))?;
    let good = world.backup(&rendered, "catalog", b"GOOD-ARCHIVE")?;
    let stored = world.backups("catalog")?;
    // Backups are named to the second; the failing one must not reuse the good one's name.
    thread::sleep(Duration::from_millis(1100));

    let (tools, runner) = world.runner(vec![
        StandIn::new("mongodump")
            .stdout(b"HALF-AN-ARCH".to_vec())
            .script("echo 'Failed: connection() error: server selection timeout' >&2")
            .exit(2),
    ])?;
    let outcome = runner.run_cron_job(cron_job(&rendered, "catalog")?)?;
    let c = &outcome.containers[0];
    ensure!(c.exit_code == 1, "the script exits 1:\n{outcome}");
    ensure!(
        c.stderr
            .contains(&format!("mongodump of '{}'", server_name("catalog")))
            && c.stderr.contains("failed (exit 2)"),
        "the failure names mongodump and its exit code:\n{outcome}"
    );
    ensure!(
        c.stderr.contains("server selection timeout"),
        "mongodump's own error is in the log:\n{outcome}"
    );
    assert_eq!(
        world.backups("catalog")?,
        stored,
        "the partial upload is removed and nothing else changes"
    );
    assert_eq!(world.s3.get(BUCKET, &good)?, b"GOOD-ARCHIVE");
    assert_eq!(
        world.s3.get(BUCKET, &latest_key("catalog"))?,
        b"GOOD-ARCHIVE"
    );
    let calls = tools.calls()?;
    ensure!(
        !calls
            .iter()
            .any(|c| c.tool == "rclone" && c.args.first().is_some_and(|a| a == "copyto")),
        "latest is not touched after a failed dump:\n{}",
        lines(&calls)
    );
    ensure!(
        calls
            .iter()
            .any(|c| c.tool == "rclone" && c.args.first().is_some_and(|a| a == "deletefile")),
        "the incomplete object is deleted:\n{}",
        lines(&calls)
    );
    Ok(())
}

#[test]
fn commissioning_runs_the_image_script_as_admin_with_passwords_only_in_files() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&manifest_yaml(
        &world.s3,
        "{replicaSet: rs0, authSource: admin}",
        &[CATALOG],
        &[],
    ))?;
    let job = job(&rendered, "commission", "catalog")?;
    ensure!(
        job.metadata.namespace.as_deref() == Some(ADMIN_NAMESPACE),
        "the commissioning Job runs beside the admin Secret"
    );
    // The stand-in keeps what mongosh would see: its environment and the two password files.
    let snippet = r#"env | grep -E '^(DBO_|DB_)' | sort > "$call/env"
cat "$DBO_ADMIN_PASSWORD_FILE" > "$call/admin-password"
cat "$DB_PASSWORD_FILE" > "$call/password"
echo "created user""#;
    let (tools, runner) = world.runner(vec![StandIn::new("mongosh").script(snippet)])?;
    let outcome = runner.run_job(job)?;
    ensure!(outcome.succeeded(), "commissioning failed:\n{outcome}");

    let calls = tools.calls()?;
    let [call] = calls.as_slice() else {
        bail!("one mongosh call expected:\n{}", lines(&calls));
    };
    assert_eq!(call.tool, "mongosh");
    assert_eq!(
        call.args,
        strings(&["--nodb", "--norc", "--quiet", "--file", SCRIPT])
    );
    let dir = call_dir(&tools, "mongosh", 0)?;
    let db = server_name("catalog");
    let env = std::fs::read_to_string(dir.join("env"))?;
    let password = world.password("catalog")?;
    let expected = [
        "DBO_ADMIN_AUTH_SOURCE=admin".to_string(),
        "DBO_ADMIN_PASSWORD_FILE=/var/run/secrets/db-operator/admin/password".to_string(),
        format!("DBO_ADMIN_URI=mongodb://{PRIMARY}:27017/?authSource=admin&replicaSet=rs0"),
        "DBO_ADMIN_USER=root".to_string(),
        "DBO_TASK=commission".to_string(),
        format!("DBO_USER_DATABASE={db}"),
        format!("DB_HOST={PRIMARY}"),
        format!("DB_NAME={db}"),
        "DB_PASSWORD_FILE=/var/run/secrets/db-operator/database/password".to_string(),
        "DB_PORT=27017".to_string(),
        "DB_ROLES=readWrite,dbAdmin".to_string(),
        format!("DB_USER={db}"),
    ];
    assert_eq!(
        env.lines().collect::<Vec<_>>(),
        expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "mongosh gets names and file paths, the user lives in its own database"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("admin-password"))?,
        ADMIN_PASSWORD
    );
    assert_eq!(std::fs::read_to_string(dir.join("password"))?, password);
    ensure!(
        !env.contains(&password) && !env.contains(ADMIN_PASSWORD),
        "no password is in mongosh's environment"
    );
    ensure_not_leaked(&password, &calls, &outcome)?;
    ensure_not_leaked(ADMIN_PASSWORD, &calls, &outcome)?;
    ensure!(
        outcome.containers[0].stderr.contains("created user"),
        "mongosh's report reaches the log:\n{outcome}"
    );

    // The server refuses: the Job fails with the script's error and mongosh's own.
    let (_tools, runner) = world.runner(vec![
        StandIn::new("mongosh")
            .script("echo 'error: creating user \"app-catalog\" failed: not authorized on admin'")
            .exit(1),
    ])?;
    let outcome = runner.run_job(job)?;
    let c = &outcome.containers[0];
    ensure!(
        c.exit_code == 1,
        "a refused commissioning exits 1:\n{outcome}"
    );
    ensure!(
        c.stderr.contains("not authorized on admin")
            && c.stderr.contains(&format!(
                "creating or updating user '{db}' for database '{db}' failed"
            )),
        "the failure says what failed and why:\n{outcome}"
    );
    Ok(())
}

/// Backs `catalog` up once and renders `restores` beside it; returns the rendered objects, the
/// stored key and the archive.
fn catalog_with_a_backup(
    world: &mut World,
    databases: &[Db<'_>],
    restores: &[Restore<'_>],
) -> Result<(Rendered, String, Vec<u8>)> {
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", databases, &[]))?;
    let archive = b"\x1f\x8bCATALOG-ARCHIVE".to_vec();
    let key = world.backup(&rendered, "catalog", &archive)?;
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", databases, restores))?;
    Ok((rendered, key, archive))
}

#[test]
fn a_restore_into_a_database_with_documents_is_refused_naming_them_and_the_option() -> Result<()> {
    let mut world = World::start()?;
    let restore = Restore {
        name: "catalog-latest",
        database: "catalog",
        snapshot: "latest: true".into(),
    };
    let (rendered, _, _) = catalog_with_a_backup(&mut world, &[CATALOG], &[restore])?;
    let (tools, runner) = world.runner(vec![
        StandIn::new("mongosh").script(
            r#"env | grep -E '^DBO_' | sort > "$call/env"
printf 'non-empty\t"products"\nnon-empty\t"odd name\\twith tab"\n'"#,
        ),
        StandIn::new("mongorestore").reads_stdin(),
    ])?;
    let outcome = runner.run_job(restore_job(&rendered, "catalog-latest")?)?;
    let c = &outcome.containers[0];
    ensure!(c.exit_code == 1, "the restore is refused:\n{outcome}");
    ensure!(
        c.stderr.contains(r#""products" "odd name\twith tab""#)
            && c.stderr.contains("dropBeforeRestore")
            && c.stderr.contains("nothing was restored"),
        "the refusal names the collections and the option:\n{outcome}"
    );
    let calls = tools.calls()?;
    ensure!(
        !calls.iter().any(|c| c.tool == "mongorestore"),
        "mongorestore never runs:\n{}",
        lines(&calls)
    );
    let mongosh = tools.calls_of("mongosh")?;
    assert_eq!(
        mongosh.iter().map(|c| c.args.clone()).collect::<Vec<_>>(),
        [strings(&["--nodb", "--norc", "--quiet", "--file", SCRIPT])]
    );
    let db = server_name("catalog");
    let env = std::fs::read_to_string(call_dir(&tools, "mongosh", 0)?.join("env"))?;
    assert_eq!(
        env,
        format!("DBO_TASK=check-empty\nDBO_URI=mongodb://{PRIMARY}:27017/?authSource={db}\n"),
        "the check logs in as the Database's user, on the primary"
    );
    Ok(())
}

#[test]
fn a_restore_streams_the_archive_into_mongorestore_as_the_databases_user() -> Result<()> {
    let mut world = World::start()?;
    let restore = Restore {
        name: "catalog-latest",
        database: "catalog",
        snapshot: "latest: true".into(),
    };
    let (rendered, _, archive) = catalog_with_a_backup(&mut world, &[CATALOG], &[restore])?;
    let (tools, runner) = world.runner(vec![
        StandIn::new("mongosh"),
        StandIn::new("mongorestore")
            .reads_stdin()
            .script(format!("{KEEP_CONFIG}\n{AFTER_THE_CHECK}")),
    ])?;
    let outcome = runner.run_job(restore_job(&rendered, "catalog-latest")?)?;
    ensure!(outcome.succeeded(), "the restore failed:\n{outcome}");
    let calls = tools.calls()?;
    let restores: Vec<&Call> = calls.iter().filter(|c| c.tool == "mongorestore").collect();
    let [restore] = restores.as_slice() else {
        bail!("one mongorestore call expected:\n{}", lines(&calls));
    };
    let db = server_name("catalog");
    assert_eq!(
        with_config_placeholder(restore)?,
        strings(&[
            "--config=<file>",
            &format!("--uri=mongodb://{PRIMARY}:27017/?authSource={db}"),
            &format!("--username={db}"),
            "--archive",
            "--gzip",
            &format!("--nsInclude={db}.*"),
            "--stopOnError",
        ]),
        "without dropBeforeRestore nothing is dropped"
    );
    assert_eq!(
        restore.stdin.as_deref(),
        Some(&archive[..]),
        "mongorestore reads the latest backup"
    );
    let password = world.password("catalog")?;
    let config = std::fs::read_to_string(call_dir(&tools, "mongorestore", 0)?.join("config"))?;
    assert_eq!(
        config,
        format!("password: '{}'\n", password.replace('\'', "''"))
    );
    ensure_not_leaked(&password, &calls, &outcome)?;
    let message = &outcome.containers[0].termination_message;
    ensure!(
        message.contains(&format!("\"key\":\"{}\"", latest_key("catalog")))
            && message.contains(&format!("\"size\":{}", archive.len())),
        "the termination message names the restored backup: {message:?}"
    );
    Ok(())
}

#[test]
fn drop_before_restore_skips_the_check_and_another_databases_backup_is_renamed() -> Result<()> {
    let mut world = World::start()?;
    let copy = Db {
        name: "catalog-copy",
        options: "{dropBeforeRestore: true}",
    };
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", &[CATALOG, copy], &[]))?;
    let key = world.backup(&rendered, "catalog", b"CATALOG-ARCHIVE")?;
    let restore = Restore {
        name: "copy-from-catalog",
        database: "catalog-copy",
        snapshot: format!("key: {key}"),
    };
    let rendered = world.render(&manifest_yaml(
        &world.s3,
        "{}",
        &[CATALOG, copy],
        &[restore],
    ))?;
    let (tools, runner) = world.runner(vec![
        StandIn::new("mongosh").exit(1),
        StandIn::new("mongorestore").reads_stdin(),
    ])?;
    let outcome = runner.run_job(restore_job(&rendered, "copy-from-catalog")?)?;
    ensure!(outcome.succeeded(), "the restore failed:\n{outcome}");
    let calls = tools.calls()?;
    ensure!(
        !calls.iter().any(|c| c.tool == "mongosh"),
        "dropBeforeRestore needs no emptiness check:\n{}",
        lines(&calls)
    );
    let [restore] = &tools.calls_of("mongorestore")?[..] else {
        bail!("one mongorestore call expected:\n{}", lines(&calls));
    };
    let (from, to) = (server_name("catalog"), server_name("catalog-copy"));
    assert_eq!(
        with_config_placeholder(restore)?,
        strings(&[
            "--config=<file>",
            &format!("--uri=mongodb://{PRIMARY}:27017/?authSource={to}"),
            &format!("--username={to}"),
            "--archive",
            "--gzip",
            &format!("--nsInclude={from}.*"),
            &format!("--nsFrom={from}.*"),
            &format!("--nsTo={to}.*"),
            "--stopOnError",
            "--drop",
        ]),
        "the other Database's collections land in this one, replacing those in the backup"
    );
    assert_eq!(restore.stdin.as_deref(), Some(&b"CATALOG-ARCHIVE"[..]));
    Ok(())
}

#[test]
fn a_failed_mongorestore_exits_1_with_its_exit_code_and_a_point_in_time_picks_its_backup()
-> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", &[CATALOG], &[]))?;
    let first = world.backup(&rendered, "catalog", b"FIRST")?;
    thread::sleep(Duration::from_millis(1100));
    world.backup(&rendered, "catalog", b"SECOND")?;
    let stamp = first
        .rsplit_once('-')
        .and_then(|(_, s)| s.strip_suffix(".archive.gz"))
        .context("stamp")?;
    let at_first = format!(
        "{}-{}-{}T{}:{}:{}.900Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    let restore = Restore {
        name: "catalog-at-first",
        database: "catalog",
        snapshot: format!("pointInTime: \"{at_first}\""),
    };
    let rendered = world.render(&manifest_yaml(&world.s3, "{}", &[CATALOG], &[restore]))?;
    let (tools, runner) = world.runner(vec![
        StandIn::new("mongosh"),
        StandIn::new("mongorestore")
            .reads_stdin()
            .script(
                "echo 'Failed: app-catalog.products: error restoring: E11000 duplicate key' >&2",
            )
            .exit(5),
    ])?;
    let outcome = runner.run_job(restore_job(&rendered, "catalog-at-first")?)?;
    let c = &outcome.containers[0];
    ensure!(c.exit_code == 1, "the script exits 1:\n{outcome}");
    ensure!(
        c.stderr.contains(&format!(
            "mongorestore into '{}' failed (exit 5)",
            server_name("catalog")
        )) && c.stderr.contains("E11000 duplicate key"),
        "the failure names mongorestore, its exit code and its error:\n{outcome}"
    );
    let [restore] = &tools.calls_of("mongorestore")?[..] else {
        bail!("one mongorestore call expected");
    };
    assert_eq!(
        restore.stdin.as_deref(),
        Some(&b"FIRST"[..]),
        "a time within the first backup's second restores the first backup"
    );
    ensure!(
        !outcome.containers[0]
            .termination_message
            .contains("\"size\":"),
        "a failed restore reports no success: {:?}",
        outcome.containers[0].termination_message
    );
    Ok(())
}

#[test]
fn the_examples_render_with_the_documented_connection_strings() -> Result<()> {
    let (engines, _) = engine()?;
    let render = |file: &str| -> Result<Rendered> {
        let path = dbo_e2e::repo_root().join("examples").join(file);
        let yaml = std::fs::read_to_string(&path)?;
        let manifests = manifest::parse(&yaml).with_context(|| format!("parsing {file}"))?;
        dbo_render::render(&manifests, &engines, &mut TestPasswords(0))
            .map_err(|e| anyhow::anyhow!("rendering {file}: {e}"))
    };
    let uri_of = |rendered: &Rendered, namespace: &str, name: &str| -> Result<String> {
        let secret = rendered
            .secrets
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .with_context(|| format!("no Secret {namespace}/{name}"))?;
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get("MONGODB_URI").cloned())
            .context("MONGODB_URI")
    };

    let generic = render("mongodb.yaml")?;
    let again = render("mongodb.yaml")?;
    ensure!(
        generic.secrets == again.secrets
            && generic.jobs == again.jobs
            && generic.cron_jobs == again.cron_jobs,
        "rendering is deterministic, so the output can be kept as a golden file"
    );
    let uri = uri_of(&generic, "shop", "catalog-db")?;
    ensure!(
        uri.starts_with("mongodb://shop-catalog:pw%27")
            && uri.ends_with(
                "@mongo-0.mongo.databases.svc.cluster.local:27017/shop-catalog?authSource=shop-catalog&replicaSet=rs0"
            ),
        "{uri}"
    );
    let refresh = container_of_job(restore_job(&generic, "catalog-staging-refresh")?)?;
    assert_eq!(
        env_of(refresh, "SNAPSHOT_KEY").as_deref(),
        Some("clusters/prod/shop-catalog/shop-catalog-latest.archive.gz")
    );
    assert_eq!(
        env_of(refresh, "DB_DROP_BEFORE_RESTORE").as_deref(),
        Some("true")
    );
    let commission = container_of_job(job(&generic, "commission", "catalog")?)?;
    assert_eq!(
        env_of(commission, "DB_ROLES").as_deref(),
        Some("readWrite,dbAdmin")
    );

    let docdb = render("mongodb-amazon-documentdb.yaml")?;
    let uri = uri_of(&docdb, "web", "sessions-db")?;
    ensure!(
        uri.ends_with(
            "@main.cluster-abcdefghijkl.eu-west-1.docdb.amazonaws.com:27017/web-sessions\
             ?authSource=admin&replicaSet=rs0&tls=true&tlsCAFile=/etc/ssl/aws/global-bundle.pem&retryWrites=false"
        ),
        "the example's comment documents this connection string: {uri}"
    );
    let backup = docdb
        .cron_jobs
        .iter()
        .find(|c| c.metadata.namespace.as_deref() == Some("web"))
        .context("the sessions backup CronJob")?;
    let c = backup
        .spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .context("backup container")?;
    assert_eq!(
        env_of(c, "DB_HOST").as_deref(),
        Some("main.cluster-ro-abcdefghijkl.eu-west-1.docdb.amazonaws.com")
    );
    assert_eq!(
        env_of(c, "MONGO_URI_OPTIONS").as_deref(),
        Some(
            "replicaSet=rs0&tls=true&tlsCAFile=/etc/ssl/aws/global-bundle.pem&retryWrites=false&readPreference=secondaryPreferred"
        )
    );
    assert_eq!(env_of(c, "DB_AUTH_SOURCE").as_deref(), Some("admin"));
    Ok(())
}

#[test]
fn bad_options_stop_rendering_with_the_field_and_the_fix() -> Result<()> {
    let (engines, _) = engine()?;
    let s3 = S3Server::start()?;
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "{replicaset: rs0}",
            CATALOG.options,
            &[
                "spec.options.replicaset",
                "unknown option; the known ones are authSource, replicaSet, tlsCAFile, directConnection",
            ],
        ),
        (
            "{tlsCAFile: /etc/ssl/ca.pem}",
            CATALOG.options,
            &[
                "spec.options.tlsCAFile",
                "spec.sslConnection.enabled is not true",
            ],
        ),
        (
            "{}",
            "{roles: [root]}",
            &[
                "spec.options.roles[0]",
                "\"root\" is not a role db-operator grants; use one of read, readWrite, dbAdmin, dbOwner, userAdmin",
            ],
        ),
        (
            "{}",
            "{dropBeforeRestore: sometimes}",
            &["spec.options.dropBeforeRestore: must be true or false, got a string"],
        ),
    ];
    for (instance_options, database_options, expected) in cases {
        let yaml = manifest_yaml(
            &s3,
            instance_options,
            &[Db {
                name: "catalog",
                options: database_options,
            }],
            &[],
        );
        let manifests = manifest::parse(&yaml)?;
        match dbo_render::render(&manifests, &engines, &mut TestPasswords(0)) {
            Ok(_) => bail!("{instance_options} / {database_options} must not render"),
            Err(e) => {
                let message = e.to_string();
                for needle in expected {
                    ensure!(
                        message.contains(needle),
                        "expected {needle:?} in:\n{message}"
                    );
                }
            }
        }
    }
    Ok(())
}
