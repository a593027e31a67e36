//! The MongoDB engine's Jobs by contract: manifests are rendered through the real WebAssembly
//! plugin and each Job's container runs in the pod runner with exactly its env and files, but
//! `mongodump`, `mongorestore` and `mongosh` are stand-ins that record how the scripts call
//! them (no MongoDB server can be installed here). `rclone` is the real one, recorded on its
//! way, against a real S3 server, so object keys and the `-latest` copy are checked in the
//! bucket itself.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use dbo_e2e::backups::BackupKeys;
use dbo_e2e::checks::{assert_no_secret_in, called_with, lines, only_call};
use dbo_e2e::pod_runner::PodRunner;
use dbo_e2e::render::{
    Cluster, LoadedEngine, Restore, cron_job, cron_job_container, env_value, find_secret, job,
    job_container, load_engine, restore_job,
};
use dbo_e2e::services::{S3Object, S3Server};
use dbo_e2e::standin::{Call, StandIn, StandIns};
use dbo_render::{PasswordSource, Rendered};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

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
    engine: LoadedEngine,
    passwords: TestPasswords,
    /// Every Secret the cluster would hold: the manifests' and the rendered ones.
    cluster: Cluster,
}

impl World {
    fn start() -> Result<World> {
        let s3 = S3Server::start_with_bucket(BUCKET).context("starting the S3 server")?;
        Ok(World {
            s3,
            engine: engine()?,
            passwords: TestPasswords(0),
            cluster: Cluster::default(),
        })
    }

    /// Parses and renders `yaml` as the operator would, with the Secrets rendered before as
    /// existing objects.
    fn render(&mut self, yaml: &str) -> Result<Rendered> {
        self.cluster.apply(&self.engine, yaml, &mut self.passwords)
    }

    /// A pod runner whose `mongodump`, `mongorestore` and `mongosh` are `tools`, and whose
    /// `rclone` is the real one, recorded.
    fn runner(&self, tools: Vec<StandIn>) -> Result<(StandIns, PodRunner)> {
        let mut stand_ins = StandIns::new()?;
        for tool in tools {
            stand_ins.add(tool);
        }
        stand_ins.add(StandIn::wrap("rclone", dbo_e2e::tools::rclone()?));
        let runner = self.cluster.runner_with(&self.engine, &stand_ins)?;
        Ok((stand_ins, runner))
    }

    /// The app password of `database` (from its rendered credentials Secret).
    fn password(&self, database: &str) -> Result<String> {
        self.cluster
            .secret_value(NAMESPACE, &format!("{database}-db"), "MONGO_PASSWORD")
    }

    /// The objects in `database`'s backup folder.
    fn backups(&self, database: &str) -> Result<Vec<S3Object>> {
        Ok(self.s3.list(BUCKET, keys(database).folder())?)
    }

    /// Runs `database`'s backup with a `mongodump` that prints `archive`.
    fn backup(&self, rendered: &Rendered, database: &str, archive: &[u8]) -> Result<String> {
        let before = self.backups(database)?;
        let (_tools, runner) =
            self.runner(vec![StandIn::new("mongodump").stdout(archive.to_vec())])?;
        let outcome = runner.run_cron_job(cron_job(rendered, NAMESPACE, database)?)?;
        ensure!(outcome.succeeded(), "the backup failed:\n{outcome}");
        let after = self.backups(database)?;
        Ok(keys(database).added(&before, &after)?.key.clone())
    }
}

fn engine() -> Result<LoadedEngine> {
    load_engine("mongodb", dbo_plugin_artifacts::MONGODB)
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
        yaml.push_str(&restore.yaml(NAMESPACE));
    }
    yaml
}

/// The database's name on the server and its backup folder: `<namespace>-<name>`.
fn server_name(database: &str) -> String {
    format!("{NAMESPACE}-{database}")
}

/// Where `database`'s backups are stored.
fn keys(database: &str) -> BackupKeys {
    BackupKeys::new(PREFIX, &server_name(database), ".archive.gz")
}

fn latest_key(database: &str) -> String {
    keys(database).latest()
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
    let outcome = runner.run_cron_job(cron_job(&rendered, NAMESPACE, "catalog")?)?;
    ensure!(outcome.succeeded(), "the backup failed:\n{outcome}");
    let calls = tools.calls()?;

    // The dump, with the connection in argv and nothing secret there.
    let dump = only_call(&calls, "mongodump")?;
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
    assert_no_secret_in(&calls, &outcome, &password)?;

    // The object layout, and the order: upload, check, then the `-latest` copy.
    let objects = world.backups("catalog")?;
    let object = keys("catalog").added(&[], &objects)?;
    let taken = keys("catalog").time_of(&object.key)?;
    ensure!(
        taken.as_second() >= started.as_second() - 1,
        "the stamp of {} is the backup's time",
        object.key
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
    let outcome = runner.run_cron_job(cron_job(&rendered, NAMESPACE, "catalog")?)?;
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
        !called_with(&calls, "rclone", "copyto"),
        "latest is not touched after a failed dump:\n{}",
        lines(&calls)
    );
    ensure!(
        called_with(&calls, "rclone", "deletefile"),
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
    assert_no_secret_in(&calls, &outcome, &password)?;
    assert_no_secret_in(&calls, &outcome, ADMIN_PASSWORD)?;
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
    let restore = only_call(&calls, "mongorestore")?;
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
    assert_no_secret_in(&calls, &outcome, &password)?;
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
    let restore = only_call(&calls, "mongorestore")?;
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
    let at_first = (keys("catalog").time_of(&first)? + SignedDuration::from_millis(900))
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
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
    let restore = only_call(&tools.calls()?, "mongorestore")?.clone();
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
    let engine = engine()?;
    let render = |file: &str| engine.render_example(file, &mut TestPasswords(0));
    let uri_of = |rendered: &Rendered, namespace: &str, name: &str| -> Result<String> {
        find_secret(&rendered.secrets, namespace, name)?
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
    let refresh = job_container(restore_job(&generic, "catalog-staging-refresh")?)?;
    assert_eq!(
        env_value(refresh, "SNAPSHOT_KEY").as_deref(),
        Some("clusters/prod/shop-catalog/shop-catalog-latest.archive.gz")
    );
    assert_eq!(
        env_value(refresh, "DB_DROP_BEFORE_RESTORE").as_deref(),
        Some("true")
    );
    let commission = job_container(job(&generic, "commission", "catalog")?)?;
    assert_eq!(
        env_value(commission, "DB_ROLES").as_deref(),
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
    let c = cron_job_container(cron_job(&docdb, "web", "sessions")?)?;
    assert_eq!(
        env_value(c, "DB_HOST").as_deref(),
        Some("main.cluster-ro-abcdefghijkl.eu-west-1.docdb.amazonaws.com")
    );
    assert_eq!(
        env_value(c, "MONGO_URI_OPTIONS").as_deref(),
        Some(
            "replicaSet=rs0&tls=true&tlsCAFile=/etc/ssl/aws/global-bundle.pem&retryWrites=false&readPreference=secondaryPreferred"
        )
    );
    assert_eq!(env_value(c, "DB_AUTH_SOURCE").as_deref(), Some("admin"));
    Ok(())
}

#[test]
fn bad_options_stop_rendering_with_the_field_and_the_fix() -> Result<()> {
    let engine = engine()?;
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
        match engine.render_yaml(&yaml, &mut TestPasswords(0)) {
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
