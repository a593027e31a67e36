//! PostgreSQL backup → S3 → restore, end to end: manifests are parsed and rendered through the
//! real WebAssembly plugin, and the rendered Jobs' containers run with the pod runner against a
//! real PostgreSQL 15 server and an S3 server that checks signatures.

use std::ops::{Deref, DerefMut};

use anyhow::{Context, Result, bail, ensure};
use dbo_e2e::backups::{BackupKeys, wait_for_the_next_second};
use dbo_e2e::checks::expect_success;
use dbo_e2e::pod_runner::RunError;
use dbo_e2e::render::{LoadedEngine, TestPasswords, cron_job, load_engine};
use dbo_e2e::round_trip::{BUCKET, Instance, NAMESPACE, PREFIX, Restore, RoundTrip, manifest_yaml};
use dbo_e2e::services::{PgLogin, Postgres, S3Object};
use dbo_render::Rendered;
use k8s_openapi::jiff::SignedDuration;

const INSTANCE: Instance = Instance {
    name: "local-pg",
    engine: "postgres",
    admin_secret: "pg-admin",
    admin_user: "postgres",
};

/// One test's world: the PostgreSQL server and the round trip through the plugin and S3.
struct World {
    postgres: Postgres,
    round_trip: RoundTrip,
}

impl Deref for World {
    type Target = RoundTrip;

    fn deref(&self) -> &RoundTrip {
        &self.round_trip
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut RoundTrip {
        &mut self.round_trip
    }
}

impl World {
    fn start() -> Result<World> {
        let postgres = Postgres::start().context("starting PostgreSQL")?;
        let round_trip = RoundTrip::start(INSTANCE, engine()?)?;
        Ok(World {
            postgres,
            round_trip,
        })
    }

    fn manifest(&self, databases: &[&str], restores: &[Restore<'_>]) -> String {
        self.round_trip.manifest(
            self.postgres.port(),
            &self.postgres.superuser().password,
            databases,
            restores,
        )
    }

    /// Renders `yaml` (see [`RoundTrip::render`]); here so that `world.render(&world.manifest(..))`
    /// borrows as a method of `World` does.
    fn render(&mut self, yaml: &str) -> Result<Rendered> {
        self.round_trip.render(yaml)
    }

    /// The login of `database`'s app user, from its rendered credentials Secret.
    fn login(&self, database: &str) -> Result<PgLogin> {
        let secret_name = format!("{database}-db");
        let value = |key: &str| self.cluster().secret_value(NAMESPACE, &secret_name, key);
        Ok(PgLogin {
            user: value("POSTGRES_USER")?,
            password: value("POSTGRES_PASSWORD")?,
            database: value("POSTGRES_DB")?,
        })
    }

    /// The objects in `database`'s backup folder.
    fn backups(&self, database: &str) -> Result<Vec<S3Object>> {
        self.stored(&keys(database))
    }
}

fn engine() -> Result<LoadedEngine> {
    load_engine("postgres", dbo_plugin_artifacts::POSTGRES)
}

/// The database's name on the server and its backup folder: `<namespace>-<name>`.
fn server_name(database: &str) -> String {
    format!("{NAMESPACE}-{database}")
}

/// Where `database`'s backups are stored.
fn keys(database: &str) -> BackupKeys {
    BackupKeys::new(PREFIX, &server_name(database), ".dump")
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

/// Runs the backup of `database` and returns the key it stored, checking the object layout.
fn backup_ok(world: &World, rendered: &Rendered, database: &str) -> Result<String> {
    let (key, dump) = world.backup_ok(rendered, database, &keys(database))?;
    ensure!(
        dump.starts_with(b"PGDMP"),
        "{key} is not a pg_dump custom-format archive"
    );
    Ok(key)
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
    expect_success(&world.restore(&rendered, "orders-from-key")?)?;

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
    let first_time = keys("orders").time_of(&first)?;

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
    let second_time = keys("orders").time_of(&second)?;
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

    expect_success(&world.restore(&rendered, "orders-at-first")?)?;
    let now = fingerprint(&world.postgres, &orders)?;
    ensure!(
        now == first_state,
        "a point in time within the first backup's second restores the first backup:\n\
         expected:\n{first_state}\ngot:\n{now}"
    );

    expect_success(&world.restore(&rendered, "orders-latest")?)?;
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
    let latest_key = keys("orders").latest();
    let latest = world.s3.get(BUCKET, &latest_key)?;
    world.postgres.psql(
        &orders,
        "INSERT INTO customers (name) VALUES ('not backed up');",
    )?;

    // 1. The upload is refused: the access-key Secret holds a wrong secret key, so the S3
    //    server rejects every request's signature.
    wait_for_the_next_second(keys("orders").time_of(&good)?);
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
    let engine = engine()?;
    let mut runner = engine.runner()?;
    let yaml = manifest_yaml(
        &INSTANCE,
        5432,
        "http://127.0.0.1:9",
        ("AK", "SK"),
        "pw",
        &["orders"],
        &[],
    );
    let (manifests, rendered) = engine.render_yaml(&yaml, &mut TestPasswords(0))?;
    // Everything the cluster would hold, except the Database's credentials Secret.
    runner.add_secrets(&manifests.secrets);
    runner.add_secrets(rendered.secrets.iter().filter(|s| {
        s.metadata.namespace.as_deref() != Some(NAMESPACE)
            || s.metadata.name.as_deref() != Some("orders-db")
    }));

    match runner.run_cron_job(cron_job(&rendered, NAMESPACE, "orders")?) {
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
