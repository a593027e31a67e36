//! The Neo4j engine's Jobs against stand-in tools: manifests are rendered through the real
//! WebAssembly plugin, each Job's container runs in the pod runner with exactly its env and
//! files, `cypher-shell` and `neo4j-admin` are stand-ins that record their argv and stdin, and
//! rclone is the real one against a real S3 server. No Neo4j server can run here; what is checked
//! is the contract: the exact invocations and Cypher, the object keys, that `latest` moves only
//! after a complete upload, and what the scripts do when a tool fails.

use anyhow::{Context, Result, ensure};
use dbo_e2e::backups::BackupKeys;
use dbo_e2e::checks::{assert_no_secret_in_argv, called_with};
use dbo_e2e::pod_runner::{PodOutcome, PodRunner};
use dbo_e2e::render::{Cluster, LoadedEngine, Restore, cron_job, job, load_engine, restore_job};
use dbo_e2e::services::S3Server;
use dbo_e2e::standin::{Call, StandIn, StandIns};
use dbo_render::{PasswordSource, Rendered};

const NAMESPACE: &str = "app";
const BUCKET: &str = "graph-backups";
const PREFIX: &str = "neo4j";
const ADMIN_PASSWORD: &str = "Adm1n-neo4j-pw-never-in-argv";
/// Generated app passwords repeat this; the quote and backslash test the Cypher escaping.
const APP_PASSWORD_STEM: &str = "It's\\Pw0rd-";
const SECRET_ACCESS_KEY: &str = "e2e-secret-key-for-signatures-0001";
/// Database `app/orders` on the Enterprise instance, and its user.
const DATABASE: &str = "app-orders";
const USER: &str = "app_orders";
const ARTIFACT: &[u8] = b"NEO4J-FULL-BACKUP-ARTIFACT\x00\x01\x02";

struct TestPasswords;

impl PasswordSource for TestPasswords {
    fn generate(&mut self, length: usize) -> String {
        APP_PASSWORD_STEM.chars().cycle().take(length).collect()
    }
}

fn app_password() -> String {
    APP_PASSWORD_STEM.chars().cycle().take(32).collect()
}

/// `app_password()` as the scripts write it into Cypher: single-quoted, `\` and `'` escaped.
fn app_password_literal() -> String {
    format!(
        "'{}'",
        app_password().replace('\\', "\\\\").replace('\'', "\\'")
    )
}

struct World {
    s3: S3Server,
    engine: LoadedEngine,
}

impl World {
    fn start() -> Result<World> {
        let s3 = S3Server::start_with_bucket(BUCKET).context("starting the S3 server")?;
        Ok(World {
            s3,
            engine: engine()?,
        })
    }

    fn manifests(&self, extra: &str) -> String {
        format!(
            r#"
apiVersion: v1
kind: Secret
metadata:
  name: graph-ee-admin
  namespace: db-operator
stringData:
  NEO4J_AUTH: "neo4j/{ADMIN_PASSWORD}"
---
apiVersion: v1
kind: Secret
metadata:
  name: graph-ce-admin
  namespace: db-operator
stringData:
  user: dba
  password: "{ADMIN_PASSWORD}"
---
apiVersion: v1
kind: Secret
metadata:
  name: s3-keys
  namespace: {NAMESPACE}
stringData:
  AWS_ACCESS_KEY_ID: "{access_key}"
  AWS_SECRET_ACCESS_KEY: "{SECRET_ACCESS_KEY}"
---
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: graph-ee
spec:
  engine: neo4j
  adminSecretRef:
    namespace: db-operator
    name: graph-ee-admin
  generic:
    host: graph-ee.databases.svc
    port: 7687
    backupHost: graph-ee-backup.databases.svc
  options:
    edition: enterprise
    backupPort: 16362
  backup:
    s3:
      bucket: {BUCKET}
      prefix: /{PREFIX}/
      endpoint: {endpoint}
      auth:
        accessKeySecret:
          name: s3-keys
---
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: graph-ce
spec:
  engine: neo4j
  adminSecretRef:
    namespace: db-operator
    name: graph-ce-admin
  generic:
    host: graph-ce.databases.svc
    port: 7687
  options:
    edition: community
  backup:
    s3:
      bucket: {BUCKET}
      endpoint: {endpoint}
      auth:
        accessKeySecret:
          name: s3-keys
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: orders
  namespace: {NAMESPACE}
spec:
  instance: graph-ee
  secretName: orders-neo4j
  options:
    allowRestore: true
  backup:
    enable: true
    cron: "0 3 * * *"
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: catalog
  namespace: {NAMESPACE}
spec:
  instance: graph-ce
  secretName: catalog-neo4j
{extra}"#,
            access_key = self.s3.access_key(),
            endpoint = self.s3.endpoint(),
        )
    }

    fn render(&self, yaml: &str) -> Result<Rendered> {
        Ok(self.engine.render_yaml(yaml, &mut TestPasswords)?.1)
    }

    /// The rendered objects and a runner that knows their Secrets and uses `tools` (with the
    /// real rclone wrapped, so its calls are recorded too).
    fn setup(&self, extra: &str, tools: &mut StandIns) -> Result<(Rendered, PodRunner)> {
        let mut cluster = Cluster::default();
        let rendered = cluster.apply(&self.engine, &self.manifests(extra), &mut TestPasswords)?;
        tools.add(StandIn::wrap("rclone", dbo_e2e::tools::rclone()?));
        let runner = cluster.runner_with(&self.engine, tools)?;
        Ok((rendered, runner))
    }

    fn keys(&self) -> Result<Vec<String>> {
        Ok(self
            .s3
            .list(BUCKET, "")?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }
}

fn engine() -> Result<LoadedEngine> {
    load_engine("neo4j", dbo_plugin_artifacts::NEO4J)
}

/// Where Database `app/orders`' backups are stored.
fn backup_keys() -> BackupKeys {
    BackupKeys::new(PREFIX, DATABASE, ".backup")
}

fn cypher_shell(user: &str, database: &str) -> Vec<String> {
    [
        "--address",
        "neo4j://graph-ee.databases.svc:7687",
        "--username",
        user,
        "--database",
        database,
        "--format",
        "plain",
        "--non-interactive",
    ]
    .map(String::from)
    .to_vec()
}

fn stdin(call: &Call) -> String {
    String::from_utf8_lossy(call.stdin.as_deref().unwrap_or_default()).into_owned()
}

/// No call got a secret in its argv.
fn assert_no_secret_in_calls(calls: &[Call]) -> Result<()> {
    assert_no_secret_in_argv(
        calls,
        &[ADMIN_PASSWORD, &app_password(), SECRET_ACCESS_KEY, "Pw0rd"],
    )
}

fn expect_failure(outcome: &PodOutcome) -> Result<&dbo_e2e::pod_runner::ContainerOutcome> {
    let c = outcome.containers.first().context("no container ran")?;
    ensure!(c.exit_code == 1, "expected exit 1:\n{outcome}");
    Ok(c)
}

#[test]
fn commissioning_enterprise_creates_database_role_grants_and_user_in_one_admin_session()
-> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(StandIn::new("cypher-shell").reads_stdin());
    let (rendered, runner) = world.setup("", &mut tools)?;
    let outcome = runner.run_job(job(&rendered, "commission", "orders")?)?;
    ensure!(outcome.succeeded(), "commissioning failed:\n{outcome}");

    let calls = tools.calls_of("cypher-shell")?;
    ensure!(calls.len() == 2, "admin session and login check: {calls:?}");
    ensure!(
        calls[0].args == cypher_shell("neo4j", "system"),
        "the admin from NEO4J_AUTH, against system: {}",
        calls[0].line()
    );
    let expected = [
        "CREATE DATABASE `app-orders` IF NOT EXISTS WAIT;",
        "CREATE ROLE `app_orders` IF NOT EXISTS;",
        "GRANT ACCESS ON DATABASE `app-orders` TO `app_orders`;",
        "GRANT MATCH {*} ON GRAPH `app-orders` TO `app_orders`;",
        "GRANT WRITE ON GRAPH `app-orders` TO `app_orders`;",
        "GRANT NAME MANAGEMENT ON DATABASE `app-orders` TO `app_orders`;",
        "GRANT INDEX MANAGEMENT ON DATABASE `app-orders` TO `app_orders`;",
        "GRANT CONSTRAINT MANAGEMENT ON DATABASE `app-orders` TO `app_orders`;",
        "GRANT ACCESS ON DATABASE `system` TO `app_orders`;",
        "GRANT CREATE DATABASE ON DBMS TO `app_orders`;",
        "GRANT DROP DATABASE ON DBMS TO `app_orders`;",
        &format!(
            "CREATE USER `app_orders` IF NOT EXISTS SET PASSWORD {} CHANGE NOT REQUIRED;",
            app_password_literal()
        ),
        "ALTER USER `app_orders` SET HOME DATABASE `app-orders`;",
        "GRANT ROLE `app_orders` TO `app_orders`;",
    ];
    ensure!(
        stdin(&calls[0]) == expected.map(|s| format!("{s}\n")).concat(),
        "admin statements:\n{}",
        stdin(&calls[0])
    );
    let mut login = cypher_shell(USER, DATABASE);
    login.push("RETURN 1;".into());
    ensure!(calls[1].args == login, "login check: {}", calls[1].line());
    assert_no_secret_in_calls(&tools.calls()?)?;
    let message = &outcome.containers[0].termination_message;
    ensure!(
        message.contains(r#""database":"app-orders","user":"app_orders","edition":"enterprise""#),
        "termination message: {message}"
    );
    Ok(())
}

#[test]
fn commissioning_sets_the_password_again_only_when_the_user_cannot_log_in() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    // The server refuses the app user's login: its password in the Secret changed.
    tools.add(StandIn::new("cypher-shell").reads_stdin().script(
        r#"case " $* " in *" --username app_catalog "*)
  echo "The client is unauthorized due to authentication failure." >&2; exit 1 ;;
esac"#,
    ));
    let (rendered, runner) = world.setup("", &mut tools)?;
    let outcome = runner.run_job(job(&rendered, "commission", "catalog")?)?;
    ensure!(outcome.succeeded(), "commissioning failed:\n{outcome}");

    let calls = tools.calls_of("cypher-shell")?;
    ensure!(calls.len() == 3, "setup, login check, password: {calls:?}");
    let admin = |c: &Call| {
        c.args
            == [
                "--address",
                "neo4j://graph-ce.databases.svc:7687",
                "--username",
                "dba",
                "--database",
                "system",
                "--format",
                "plain",
                "--non-interactive",
            ]
    };
    ensure!(
        admin(&calls[0]),
        "admin from user/password keys: {}",
        calls[0].line()
    );
    ensure!(
        stdin(&calls[0])
            == format!(
                "CREATE USER `app_catalog` IF NOT EXISTS SET PASSWORD {} CHANGE NOT REQUIRED;\n",
                app_password_literal()
            ),
        "Community gets the user only, no database, role or home database:\n{}",
        stdin(&calls[0])
    );
    ensure!(
        calls[1].args[3] == "app_catalog" && calls[1].args[5] == "neo4j",
        "the login check uses the one Community database: {}",
        calls[1].line()
    );
    ensure!(admin(&calls[2]), "{}", calls[2].line());
    ensure!(
        stdin(&calls[2])
            == format!(
                "ALTER USER `app_catalog` SET PASSWORD {} CHANGE NOT REQUIRED;\n",
                app_password_literal()
            ),
        "{}",
        stdin(&calls[2])
    );
    assert_no_secret_in_calls(&tools.calls()?)?;
    Ok(())
}

#[test]
fn a_failing_admin_session_stops_commissioning_with_the_reason() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(
        StandIn::new("cypher-shell")
            .reads_stdin()
            .script("echo 'Permission denied for CREATE DATABASE' >&2")
            .exit(1),
    );
    let (rendered, runner) = world.setup("", &mut tools)?;
    let outcome = runner.run_job(job(&rendered, "commission", "orders")?)?;
    let c = expect_failure(&outcome)?;
    ensure!(
        c.stderr.contains("Permission denied for CREATE DATABASE")
            && c.stderr.contains(
                "creating or updating user 'app_orders' and database 'app-orders' failed"
            ),
        "{outcome}"
    );
    ensure!(
        tools.calls_of("cypher-shell")?.len() == 1,
        "nothing runs after the failure"
    );
    Ok(())
}

/// A `neo4j-admin` that writes a backup artifact into its `--to-path`, as the real one does.
fn neo4j_admin() -> StandIn {
    let artifact: String = ARTIFACT.iter().map(|b| format!("\\{b:03o}")).collect();
    StandIn::new("neo4j-admin").script(format!(
        r#"for a in "$@"; do
  case $a in --to-path=*) printf '{artifact}' > "${{a#--to-path=}}/app-orders-2026-01-01T03-00-00.backup" ;; esac
done"#
    ))
}

#[test]
fn backup_uploads_the_artifact_then_moves_latest() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(neo4j_admin());
    let (rendered, runner) = world.setup("", &mut tools)?;
    let outcome = runner.run_cron_job(cron_job(&rendered, NAMESPACE, "orders")?)?;
    ensure!(outcome.succeeded(), "backup failed:\n{outcome}");

    let calls = tools.calls()?;
    let admin = &calls[0];
    ensure!(admin.tool == "neo4j-admin", "{calls:?}");
    let to_path = admin.args.get(3).cloned().unwrap_or_default();
    ensure!(
        admin.args.len() == 6
            && admin.args[..3]
                == [
                    "database",
                    "backup",
                    "--from=graph-ee-backup.databases.svc:16362"
                ]
            && to_path.starts_with("--to-path=/tmp/")
            && to_path.ends_with("/backup")
            && admin.args[4..] == ["--type=FULL", DATABASE],
        "an online full backup from the backup host and port: {}",
        admin.line()
    );

    let keys = world.keys()?;
    let latest = backup_keys().latest();
    ensure!(keys.len() == 2 && keys.contains(&latest), "{keys:?}");
    let stamped = keys
        .iter()
        .find(|k| **k != latest)
        .context("the timestamped backup")?;
    backup_keys().time_of(stamped)?;
    ensure!(
        world.s3.get(BUCKET, stamped)? == ARTIFACT,
        "uploaded byte for byte"
    );
    ensure!(world.s3.get(BUCKET, &latest)? == ARTIFACT);

    // latest is copied only after the upload and its check.
    let rclone: Vec<String> = calls
        .iter()
        .filter(|c| c.tool == "rclone")
        .map(|c| c.args[..c.args.len().min(4)].join(" "))
        .collect();
    let remote = |k: &str| format!("s3:{BUCKET}/{k}");
    ensure!(
        rclone.len() == 3
            && rclone[0].starts_with("copyto /tmp/")
            && rclone[0].ends_with(&format!(".backup {}", remote(stamped)))
            && rclone[1] == format!("lsf --format s {}", remote(stamped))
            && rclone[2] == format!("copyto {} {}", remote(stamped), remote(&latest)),
        "{rclone:#?}"
    );
    assert_no_secret_in_calls(&calls)?;
    let message = &outcome.containers[0].termination_message;
    ensure!(
        message.contains(&format!(
            r#""key":"{stamped}","latestKey":"{latest}","size":{}"#,
            ARTIFACT.len()
        )),
        "{message}"
    );
    Ok(())
}

#[test]
fn a_failed_backup_leaves_the_bucket_and_latest_as_they_were() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(neo4j_admin());
    let (rendered, runner) = world.setup("", &mut tools)?;
    let cron = cron_job(&rendered, NAMESPACE, "orders")?;
    ensure!(runner.run_cron_job(cron)?.succeeded(), "first backup");
    let before = world.keys()?;
    let latest = backup_keys().latest();

    let mut failing = StandIns::new()?;
    failing.add(
        StandIn::new("neo4j-admin")
            .script("echo 'Unable to connect to graph-ee-backup.databases.svc:16362' >&2")
            .exit(3),
    );
    let (_, runner) = world.setup("", &mut failing)?;
    let outcome = runner.run_cron_job(cron)?;
    let c = expect_failure(&outcome)?;
    ensure!(
        c.stderr
            .contains("neo4j-admin database backup of 'app-orders' from graph-ee-backup.databases.svc:16362 failed (exit 3)")
            && c.stderr.contains("server.backup.listen_address"),
        "{outcome}"
    );
    ensure!(world.keys()? == before, "no object was added or removed");
    ensure!(
        world.s3.get(BUCKET, &latest)? == ARTIFACT,
        "latest is untouched"
    );
    ensure!(
        !called_with(&failing.calls()?, "rclone", "copyto"),
        "nothing was uploaded"
    );

    // A backup that reports success without an artifact is no backup either.
    let mut silent = StandIns::new()?;
    silent.add(StandIn::new("neo4j-admin"));
    let (_, runner) = world.setup("", &mut silent)?;
    let outcome = runner.run_cron_job(cron)?;
    let c = expect_failure(&outcome)?;
    ensure!(c.stderr.contains("wrote 0 backup artifacts"), "{outcome}");
    ensure!(world.keys()? == before);
    Ok(())
}

fn restores() -> String {
    [
        ("latest", "latest: true".to_string()),
        (
            "before-noon",
            "pointInTime: \"2999-01-01T12:00:00+02:00\"".to_string(),
        ),
        (
            "gone",
            "key: neo4j/app-orders/app-orders-20000101T000000Z.backup".to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, snapshot)| {
        Restore {
            name,
            database: "orders",
            snapshot,
        }
        .yaml(NAMESPACE)
    })
    .collect()
}

/// A `cypher-shell` that answers `SHOW DATABASE` with `status`.
fn cypher_shell_with_status(status: &str) -> StandIn {
    StandIn::new("cypher-shell").reads_stdin().script(format!(
        r#"case "$*" in *"SHOW DATABASE"*) printf 'currentStatus, statusMessage\n{status}\n' ;; esac"#
    ))
}

#[test]
fn restore_seeds_the_database_from_the_chosen_backup_as_the_databases_user() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(neo4j_admin());
    let (rendered, runner) = world.setup(&restores(), &mut tools)?;
    ensure!(
        runner
            .run_cron_job(cron_job(&rendered, NAMESPACE, "orders")?)?
            .succeeded()
    );
    let latest = backup_keys().latest();
    let stamped = world
        .keys()?
        .into_iter()
        .find(|k| *k != latest)
        .context("the timestamped backup")?;

    for (restore, key) in [
        ("latest", latest.as_str()),
        ("before-noon", stamped.as_str()),
    ] {
        let mut tools = StandIns::new()?;
        tools.add(cypher_shell_with_status(r#""online", """#));
        let (rendered, runner) = world.setup(&restores(), &mut tools)?;
        let outcome = runner.run_job(restore_job(&rendered, restore)?)?;
        ensure!(outcome.succeeded(), "restore {restore} failed:\n{outcome}");
        let calls = tools.calls_of("cypher-shell")?;
        ensure!(calls.len() == 2, "{calls:?}");
        ensure!(
            calls[0].args == cypher_shell(USER, "system"),
            "{}",
            calls[0].line()
        );
        ensure!(
            stdin(&calls[0])
                == format!(
                    "DROP DATABASE `app-orders` IF EXISTS WAIT;\nCREATE DATABASE `app-orders` \
                     OPTIONS {{existingData: 'use', seedURI: 's3://{BUCKET}/{key}'}} WAIT;\n"
                ),
            "restore {restore}:\n{}",
            stdin(&calls[0])
        );
        let mut status = cypher_shell(USER, "system");
        status.push(
            "SHOW DATABASE `app-orders` YIELD currentStatus, statusMessage RETURN currentStatus, statusMessage;"
                .into(),
        );
        ensure!(calls[1].args == status, "{}", calls[1].line());
        assert_no_secret_in_calls(&tools.calls()?)?;
        let message = &outcome.containers[0].termination_message;
        ensure!(
            message.contains(&format!(r#""key":"{key}","size":{}"#, ARTIFACT.len())),
            "{message}"
        );
    }
    Ok(())
}

#[test]
fn a_restore_fails_when_the_seed_is_missing_or_the_database_does_not_come_online() -> Result<()> {
    let world = World::start()?;
    let mut tools = StandIns::new()?;
    tools.add(neo4j_admin());
    let (rendered, runner) = world.setup(&restores(), &mut tools)?;
    ensure!(
        runner
            .run_cron_job(cron_job(&rendered, NAMESPACE, "orders")?)?
            .succeeded()
    );

    let mut tools = StandIns::new()?;
    tools.add(cypher_shell_with_status(r#""online", """#));
    let (rendered, runner) = world.setup(&restores(), &mut tools)?;
    let outcome = runner.run_job(restore_job(&rendered, "gone")?)?;
    let c = expect_failure(&outcome)?;
    ensure!(
        c.stderr.contains(&format!(
            "there is no backup s3://{BUCKET}/neo4j/app-orders/app-orders-20000101T000000Z.backup"
        )),
        "{outcome}"
    );
    ensure!(
        tools.calls_of("cypher-shell")?.is_empty(),
        "the database is not dropped for a backup that does not exist"
    );

    let mut tools = StandIns::new()?;
    tools.add(cypher_shell_with_status(
        r#""offline", "Unable to start database `DatabaseId{3fe1a59b[app-orders]}`""#,
    ));
    let (rendered, runner) = world.setup(&restores(), &mut tools)?;
    let outcome = runner.run_job(restore_job(&rendered, "latest")?)?;
    let c = expect_failure(&outcome)?;
    ensure!(
        c.stderr.contains("database 'app-orders' is not online")
            && c.stderr.contains("Unable to start database")
            && c.stderr.contains("dbms.databases.seed_from_uri_providers"),
        "{outcome}"
    );
    Ok(())
}

#[test]
fn community_backups_and_restores_without_permission_are_refused_when_rendering() -> Result<()> {
    let world = World::start()?;
    let backup = world.manifests("").replace(
        "  secretName: catalog-neo4j\n",
        "  secretName: catalog-neo4j\n  backup:\n    enable: true\n    cron: \"0 3 * * *\"\n",
    );
    let err = world
        .render(&backup)
        .err()
        .context("a Community backup renders")?;
    ensure!(
        format!("{err:#}").contains("neo4j-admin database dump"),
        "{err:#}"
    );

    let forbidden = world
        .manifests(&restores())
        .replace("  options:\n    allowRestore: true\n", "");
    let err = world
        .render(&forbidden)
        .err()
        .context("a restore without allowRestore renders")?;
    ensure!(
        format!("{err:#}").contains("spec.options.allowRestore"),
        "{err:#}"
    );
    Ok(())
}

#[test]
fn the_examples_render_with_the_jobs_and_warnings_they_describe() -> Result<()> {
    let engine = engine()?;
    let render = |file: &str| engine.render_example(file, &mut TestPasswords);

    let community = render("neo4j.yaml")?;
    ensure!(community.cron_jobs.is_empty() && community.jobs.len() == 1);
    job(&community, "commission", "recommendations")?;
    ensure!(
        community
            .warnings
            .iter()
            .any(|w| w.contains("Community Edition") && w.contains("no roles")),
        "{:?}",
        community.warnings
    );

    let enterprise = render("neo4j-enterprise-amazon.yaml")?;
    job(&enterprise, "commission", "fraud-graph")?;
    cron_job(&enterprise, "risk", "fraud-graph")?;
    restore_job(&enterprise, "fraud-graph-latest")?;
    ensure!(
        enterprise
            .warnings
            .iter()
            .any(|w| w.contains("spec.options.allowRestore")),
        "{:?}",
        enterprise.warnings
    );
    Ok(())
}
