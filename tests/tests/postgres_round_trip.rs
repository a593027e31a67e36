//! PostgreSQL backup → S3 → restore, end to end: manifests are parsed and rendered through the
//! real WebAssembly plugin, and the rendered Jobs' containers run with the pod runner against a
//! real PostgreSQL 15 server and an S3 server that checks signatures.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use dbo_api::manifest::{self, Manifests};
use dbo_e2e::pod_runner::{ImageMap, PodOutcome, PodRunner, RunError};
use dbo_e2e::services::{HOST, PgLogin, Postgres, S3Object, S3Server};
use dbo_engine::Engine;
use dbo_plugin_runtime::{Plugin, PluginRuntime, RuntimeConfig};
use dbo_render::{LABEL_COMPONENT, LABEL_DATABASE, PasswordSource, Rendered};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

const NAMESPACE: &str = "app";
const ADMIN_NAMESPACE: &str = "db-operator";
const BUCKET: &str = "db-backups";
const PREFIX: &str = "e2e/cluster-1";
const S3_SECRET: &str = "s3-backup";
const INSTANCE: &str = "local-pg";

/// Deterministic passwords from the alphabet the operator draws from (ASCII letters and digits),
/// so a failing run can be repeated exactly.
struct TestPasswords(u32);

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

/// A `DbRestore` to add to the manifests: its name, target Database and `snapshot` YAML.
struct Restore<'a> {
    name: &'a str,
    database: &'a str,
    snapshot: String,
}

/// One test's world: servers, the plugin, the runner, and what has been "applied" so far.
struct World {
    postgres: Postgres,
    s3: S3Server,
    engines: BTreeMap<String, Plugin>,
    runner: PodRunner,
    passwords: TestPasswords,
    /// Secrets rendered earlier, fed back into later renders as the cluster would hold them.
    applied: Vec<Secret>,
    /// The S3 secret key the access-key Secret holds (a test may break it).
    s3_secret_key: String,
}

impl World {
    fn start() -> Result<World> {
        let postgres = Postgres::start().context("starting PostgreSQL")?;
        let s3 = S3Server::start().context("starting the S3 server")?;
        s3.create_bucket(BUCKET)?;
        let (engines, runner) = engine_and_runner()?;
        let s3_secret_key = s3.secret_key().to_owned();
        Ok(World {
            postgres,
            s3,
            engines,
            runner,
            passwords: TestPasswords(0),
            applied: Vec::new(),
            s3_secret_key,
        })
    }

    fn manifest(&self, databases: &[&str], restores: &[Restore<'_>]) -> String {
        manifest_yaml(
            self.postgres.port(),
            &self.s3.endpoint(),
            (self.s3.access_key(), &self.s3_secret_key),
            &self.postgres.superuser().password,
            databases,
            restores,
        )
    }

    /// Parses and renders `yaml` as the operator would, with the Secrets rendered before as
    /// existing objects, and hands every Secret to the runner.
    fn render(&mut self, yaml: &str) -> Result<Rendered> {
        let mut manifests: Manifests = manifest::parse(yaml).context("parsing the manifests")?;
        manifests.secrets.extend(self.applied.iter().cloned());
        let rendered = dbo_render::render(&manifests, &self.engines, &mut self.passwords)
            .map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
        self.runner.add_secrets(&manifests.secrets);
        self.runner.add_secrets(&rendered.secrets);
        for secret in &rendered.secrets {
            self.applied.retain(|s| s.metadata != secret.metadata);
            self.applied.push(secret.clone());
        }
        Ok(rendered)
    }

    fn commission(&self, rendered: &Rendered, database: &str) -> Result<()> {
        let job = job(rendered, "commission", database)?;
        ensure!(
            job.metadata.namespace.as_deref() == Some(ADMIN_NAMESPACE),
            "the commissioning Job runs beside the admin Secret, not in {:?}",
            job.metadata.namespace
        );
        expect_success(self.runner.run_job(job)?)
    }

    fn backup(&self, rendered: &Rendered, database: &str) -> Result<PodOutcome> {
        Ok(self.runner.run_cron_job(cron_job(rendered, database)?)?)
    }

    fn restore(&self, rendered: &Rendered, restore: &str) -> Result<PodOutcome> {
        let name = format!("{restore}-restore");
        let job = rendered
            .jobs
            .iter()
            .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
            .with_context(|| format!("no restore Job {name} in the rendered objects"))?;
        Ok(self.runner.run_job(job)?)
    }

    /// The login of `database`'s app user, from its rendered credentials Secret.
    fn login(&self, database: &str) -> Result<PgLogin> {
        let secret_name = format!("{database}-db");
        let secret = self
            .applied
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(NAMESPACE)
                    && s.metadata.name.as_deref() == Some(secret_name.as_str())
            })
            .with_context(|| format!("no Secret {NAMESPACE}/{secret_name} was rendered"))?;
        let value = |key: &str| -> Result<String> {
            secret_value(secret, key).with_context(|| format!("Secret {secret_name} has no {key}"))
        };
        Ok(PgLogin {
            user: value("POSTGRES_USER")?,
            password: value("POSTGRES_PASSWORD")?,
            database: value("POSTGRES_DB")?,
        })
    }

    /// The objects in `database`'s backup folder.
    fn backups(&self, database: &str) -> Result<Vec<S3Object>> {
        Ok(self
            .s3
            .list(BUCKET, &format!("{PREFIX}/{}", server_name(database)))?)
    }
}

fn engine_and_runner() -> Result<(BTreeMap<String, Plugin>, PodRunner)> {
    let runtime = PluginRuntime::new(RuntimeConfig::default())?;
    let plugin = runtime.load("builtin:postgres", dbo_plugin_artifacts::POSTGRES)?;
    let info = plugin.describe()?;
    let images = ImageMap::for_engine(&info, &dbo_e2e::image_dir(&info.name))?;
    let runner = PodRunner::new(images)?;
    Ok((BTreeMap::from([(info.name.clone(), plugin)]), runner))
}

fn manifest_yaml(
    pg_port: u16,
    s3_endpoint: &str,
    (access_key, secret_key): (&str, &str),
    admin_password: &str,
    databases: &[&str],
    restores: &[Restore<'_>],
) -> String {
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: pg-admin
  namespace: {ADMIN_NAMESPACE}
stringData:
  user: postgres
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
  name: {INSTANCE}
spec:
  engine: postgres
  adminSecretRef:
    namespace: {ADMIN_NAMESPACE}
    name: pg-admin
  generic:
    host: {HOST}
    port: {pg_port}
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
  instance: {INSTANCE}
  secretName: {database}-db
  backup:
    enable: true
    cron: "0 3 * * *"
"#
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

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
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

fn expect_success(outcome: PodOutcome) -> Result<()> {
    ensure!(outcome.succeeded(), "the pod failed:\n{outcome}");
    Ok(())
}

/// Tables, a sequence and values that a broken dump or restore would mangle: bytea with every
/// byte value, jsonb with unicode, text with quotes, backslashes and line breaks, NULLs,
/// numerics, timestamps, a foreign key, and over 10,000 rows.
const SCHEMA_AND_DATA: &str = r#"
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    profile jsonb,
    avatar bytea
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total numeric(12, 2) NOT NULL,
    items jsonb NOT NULL,
    note text,
    placed_at timestamptz NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE SEQUENCE invoice_numbers START 1000;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 1000;

INSERT INTO customers (name, email, profile, avatar)
SELECT 'customer ' || g,
       'c' || g || '@example.com',
       jsonb_build_object('tier', g % 3, 'tags', jsonb_build_array('a', g), 'city', 'Zürich ☃'),
       decode(md5(g::text), 'hex')
FROM generate_series(1, 2000) AS g;

INSERT INTO customers (name, email, avatar)
SELECT 'every byte', NULL, decode(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b), 'hex')
FROM generate_series(0, 255) AS b;

INSERT INTO orders (customer_id, total, items, note, placed_at)
SELECT 1 + g % 2000,
       (g * 1.37)::numeric(12, 2),
       jsonb_build_array(jsonb_build_object('sku', 'S-' || g, 'qty', g % 7, 'price', g / 3.0)),
       CASE WHEN g % 10 = 0 THEN NULL ELSE E'line\nbreak\ttab ''quoted'' \\ back\\slash ' || g END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute 7 seconds'
FROM generate_series(1, 12000) AS g;

SELECT setval('invoice_numbers', 4242);
"#;

/// A fingerprint of everything the app can see: per table the row count and an md5 over all
/// rows in key order, the columns and their types, and the sequences' positions.
fn fingerprint(postgres: &Postgres, login: &PgLogin) -> Result<String> {
    Ok(postgres.psql(
        login,
        r"
SELECT 'customers', count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM customers t
UNION ALL
SELECT 'orders', count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM orders t
UNION ALL
SELECT 'big_orders', count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM big_orders t
UNION ALL
SELECT 'columns', count(*), md5(string_agg(table_name || '.' || column_name || ':' || data_type, ','
       ORDER BY table_name, ordinal_position))
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'invoice_numbers', last_value, is_called::text FROM invoice_numbers
UNION ALL
SELECT 'orders_id_seq', last_value, is_called::text FROM orders_id_seq;
",
    )?)
}

/// `e2e/cluster-1/app-orders/app-orders-20240501T080000Z.dump` → its time.
fn backup_time(key: &str) -> Result<Timestamp> {
    let stamp = key
        .rsplit_once('-')
        .and_then(|(_, s)| s.strip_suffix(".dump"))
        .filter(|s| s.len() == 16)
        .with_context(|| format!("{key} does not end in -<YYYYmmddTHHMMSSZ>.dump"))?;
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    rfc3339
        .parse()
        .with_context(|| format!("{key}: {rfc3339} is not a time"))
}

/// Backups are named to the second: a second backup must start in a later second than the
/// first, or it would replace it.
fn wait_for_the_next_second(after: Timestamp) {
    while Timestamp::now().as_second() <= after.as_second() {
        thread::sleep(Duration::from_millis(50));
    }
}

/// The timestamped objects of a folder listing (everything but `-latest.dump`), oldest first.
fn timestamped(objects: &[S3Object]) -> Vec<&S3Object> {
    objects
        .iter()
        .filter(|o| !o.key.ends_with("-latest.dump"))
        .collect()
}

/// Runs the backup of `database` and returns the key it stored, checking the object layout.
fn backup_ok(world: &World, rendered: &Rendered, database: &str) -> Result<String> {
    let before = world.backups(database)?;
    let outcome = world.backup(rendered, database)?;
    expect_success(outcome.clone())?;
    let after = world.backups(database)?;
    let new: Vec<&S3Object> = timestamped(&after)
        .into_iter()
        .filter(|o| !before.iter().any(|b| b.key == o.key))
        .collect();
    let [object] = new.as_slice() else {
        bail!("one backup must add exactly one timestamped object, it added {new:?}\n{outcome}");
    };
    let folder = format!("{PREFIX}/{}", server_name(database));
    let stem = format!("{folder}/{}-", server_name(database));
    ensure!(
        object.key.starts_with(&stem) && backup_time(&object.key).is_ok(),
        "{} is not named <prefix>/<db>/<db>-<timestamp>.dump",
        object.key
    );
    let dump = world.s3.get(BUCKET, &object.key)?;
    ensure!(
        dump.starts_with(b"PGDMP"),
        "{} is not a pg_dump custom-format archive",
        object.key
    );
    let latest = world.s3.get(BUCKET, &format!("{stem}latest.dump"))?;
    ensure!(
        latest == dump,
        "-latest.dump must be a copy of the newest backup {}",
        object.key
    );
    let message = &outcome.containers[0].termination_message;
    ensure!(
        message.contains(&object.key),
        "the termination message names the stored key, got {message:?}"
    );
    Ok(object.key.clone())
}

#[test]
fn a_backup_restored_by_key_into_a_fresh_database_reproduces_every_table() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders", "orders-restored"], &[]))?;

    world.commission(&rendered, "orders")?;
    world.commission(&rendered, "orders-restored")?;
    let orders = world.login("orders")?;
    world.postgres.psql(&orders, SCHEMA_AND_DATA)?;
    let original = fingerprint(&world.postgres, &orders)?;
    ensure!(
        original.contains("orders|12000|"),
        "the data is in place: {original}"
    );

    // Commissioning again (a re-applied Job, a retried pod) changes nothing.
    world.commission(&rendered, "orders")?;
    ensure!(
        fingerprint(&world.postgres, &orders)? == original,
        "commissioning twice kept the data"
    );
    let admin = world.postgres.superuser().clone();
    let roles = world.postgres.psql(
        &admin,
        &format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{0}'; \
             SELECT count(*) FROM pg_database WHERE datname = '{0}';",
            orders.user
        ),
    )?;
    ensure!(
        roles == "1\n1",
        "one role and one database after two runs, got {roles:?}"
    );

    let key = backup_ok(&world, &rendered, "orders")?;

    let restore = Restore {
        name: "orders-from-key",
        database: "orders-restored",
        snapshot: format!("key: {key}"),
    };
    let rendered = world.render(&world.manifest(&["orders", "orders-restored"], &[restore]))?;
    expect_success(world.restore(&rendered, "orders-from-key")?)?;

    let restored = world.login("orders-restored")?;
    ensure!(
        restored.database != orders.database,
        "the restore went to another database"
    );
    let copy = fingerprint(&world.postgres, &restored)?;
    ensure!(
        copy == original,
        "the restored database differs from the original:\noriginal:\n{original}\nrestored:\n{copy}"
    );
    // The restored tables belong to the target's user, who can keep writing to them.
    world.postgres.psql(
        &restored,
        "INSERT INTO customers (name) VALUES ('after restore'); SELECT nextval('invoice_numbers');",
    )?;
    Ok(())
}

#[test]
fn latest_and_point_in_time_restore_the_backup_they_name() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let orders = world.login("orders")?;
    let pg = &world.postgres;

    pg.psql(&orders, SCHEMA_AND_DATA)?;
    let first_state = fingerprint(pg, &orders)?;
    let first = backup_ok(&world, &rendered, "orders")?;
    let first_time = backup_time(&first)?;

    wait_for_the_next_second(first_time);
    let pg = &world.postgres;
    pg.psql(
        &orders,
        "UPDATE orders SET total = total + 1 WHERE id % 3 = 0; \
         INSERT INTO customers (name, email) SELECT 'late ' || g, 'late' || g || '@example.com' \
           FROM generate_series(1, 500) g; \
         SELECT nextval('invoice_numbers');",
    )?;
    let second_state = fingerprint(pg, &orders)?;
    ensure!(
        second_state != first_state,
        "the second state differs from the first"
    );
    let second = backup_ok(&world, &rendered, "orders")?;
    let second_time = backup_time(&second)?;
    ensure!(second_time > first_time, "{second} is newer than {first}");

    // Damage after the last backup, which every restore below must undo.
    world.postgres.psql(
        &orders,
        "DELETE FROM orders WHERE id % 2 = 0; UPDATE customers SET profile = NULL;",
    )?;

    let restores = [
        Restore {
            name: "orders-at-first",
            database: "orders",
            // Any instant within the second of the first backup, written with an offset.
            snapshot: format!(
                "pointInTime: \"{}\"",
                (first_time + SignedDuration::from_millis(500))
                    .to_zoned(k8s_openapi::jiff::tz::TimeZone::fixed(
                        k8s_openapi::jiff::tz::offset(2)
                    ))
                    .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            ),
        },
        Restore {
            name: "orders-latest",
            database: "orders",
            snapshot: "latest: true".into(),
        },
        Restore {
            name: "orders-before-any",
            database: "orders",
            snapshot: format!(
                "pointInTime: \"{}\"",
                first_time - SignedDuration::from_hours(24)
            ),
        },
    ];
    let rendered = world.render(&world.manifest(&["orders"], &restores))?;

    expect_success(world.restore(&rendered, "orders-at-first")?)?;
    let now = fingerprint(&world.postgres, &orders)?;
    ensure!(
        now == first_state,
        "a point in time within the first backup's second restores the first backup:\n\
         expected:\n{first_state}\ngot:\n{now}"
    );

    expect_success(world.restore(&rendered, "orders-latest")?)?;
    let now = fingerprint(&world.postgres, &orders)?;
    ensure!(
        now == second_state,
        "latest restores the second backup:\nexpected:\n{second_state}\ngot:\n{now}"
    );

    let outcome = world.restore(&rendered, "orders-before-any")?;
    ensure!(
        !outcome.succeeded(),
        "no backup is that old, so the restore must fail:\n{outcome}"
    );
    ensure!(
        outcome.containers[0].stderr.contains("no backup"),
        "the failure says why:\n{outcome}"
    );
    ensure!(
        fingerprint(&world.postgres, &orders)? == second_state,
        "a failed restore leaves the database as it was"
    );
    Ok(())
}

#[test]
fn a_failed_backup_leaves_latest_and_the_bucket_as_they_were() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let orders = world.login("orders")?;
    world.postgres.psql(&orders, SCHEMA_AND_DATA)?;
    let good = backup_ok(&world, &rendered, "orders")?;
    let stored = world.backups("orders")?;
    let latest_key = format!("{PREFIX}/{0}/{0}-latest.dump", server_name("orders"));
    let latest = world.s3.get(BUCKET, &latest_key)?;
    world.postgres.psql(
        &orders,
        "INSERT INTO customers (name) VALUES ('not backed up');",
    )?;

    // 1. The upload is refused: the access-key Secret holds a wrong secret key, so the S3
    //    server rejects every request's signature.
    wait_for_the_next_second(backup_time(&good)?);
    world.s3_secret_key = "not-the-right-secret-key".into();
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    let outcome = world.backup(&rendered, "orders")?;
    ensure!(
        !outcome.succeeded(),
        "a backup whose upload is refused must fail:\n{outcome}"
    );
    ensure!(
        outcome.containers[0].stderr.contains("upload"),
        "the failure names the upload:\n{outcome}"
    );
    ensure!(
        world.backups("orders")? == stored,
        "nothing was added or changed in the bucket"
    );
    ensure!(
        world.s3.get(BUCKET, &latest_key)? == latest,
        "-latest.dump is unchanged"
    );

    // 2. The dump fails half-way: pg_dump cannot read a table the app user has no access to,
    //    after the upload of its output has started.
    world.s3_secret_key = world.s3.secret_key().to_owned();
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    let admin_in_db = PgLogin {
        database: orders.database.clone(),
        ..world.postgres.superuser().clone()
    };
    world.postgres.psql(
        &admin_in_db,
        "CREATE TABLE zz_admin_only AS SELECT g FROM generate_series(1, 10) g; \
         REVOKE ALL ON zz_admin_only FROM PUBLIC;",
    )?;
    let outcome = world.backup(&rendered, "orders")?;
    ensure!(
        !outcome.succeeded(),
        "a backup whose dump fails must fail:\n{outcome}"
    );
    ensure!(
        outcome.containers[0].stderr.contains("pg_dump"),
        "the failure names pg_dump:\n{outcome}"
    );
    ensure!(
        world.backups("orders")? == stored,
        "no partial object is left behind: {:?}",
        world.backups("orders")?
    );
    ensure!(
        world.s3.get(BUCKET, &latest_key)? == latest,
        "-latest.dump is unchanged"
    );
    Ok(())
}

#[test]
fn a_backup_without_its_credentials_secret_is_refused_naming_the_secret() -> Result<()> {
    // No servers: the runner must refuse the pod before anything connects anywhere.
    let (engines, mut runner) = engine_and_runner()?;
    let yaml = manifest_yaml(
        5432,
        "http://127.0.0.1:9",
        ("AK", "SK"),
        "pw",
        &["orders"],
        &[],
    );
    let manifests = manifest::parse(&yaml)?;
    let rendered = dbo_render::render(&manifests, &engines, &mut TestPasswords(0))
        .map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
    // Everything the cluster would hold, except the Database's credentials Secret.
    runner.add_secrets(&manifests.secrets);
    runner.add_secrets(rendered.secrets.iter().filter(|s| {
        s.metadata.namespace.as_deref() != Some(NAMESPACE)
            || s.metadata.name.as_deref() != Some("orders-db")
    }));

    match runner.run_cron_job(cron_job(&rendered, "orders")?) {
        Err(err @ RunError::SecretNotFound { .. }) => {
            let message = err.to_string();
            ensure!(
                message.contains("app/orders-db"),
                "names the Secret: {message}"
            );
            Ok(())
        }
        Err(other) => bail!("expected a missing-Secret error, got: {other}"),
        Ok(outcome) => bail!("the pod must not start without its Secret:\n{outcome}"),
    }
}
