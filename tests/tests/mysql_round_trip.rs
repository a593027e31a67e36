//! MySQL backup → S3 → restore, end to end: manifests are parsed and rendered through the
//! real WebAssembly plugin, and the rendered Jobs' containers run with the pod runner against a
//! real MariaDB server and an S3 server that checks signatures.

use std::ops::{Deref, DerefMut};

use anyhow::{Context, Result, bail, ensure};
use dbo_e2e::backups::{BackupKeys, wait_for_the_next_second};
use dbo_e2e::checks::expect_success;
use dbo_e2e::mariadb::{MariaDb, MariaDbLogin};
use dbo_e2e::pod_runner::PodOutcome;
use dbo_e2e::render::{
    LoadedEngine, TestPasswords, cron_job, cron_job_container, env_value, find_secret, job,
    job_container, load_engine, restore_job, secret_value, set_secret_value,
};
use dbo_e2e::round_trip::{
    ADMIN_NAMESPACE, BUCKET, Instance, NAMESPACE, PREFIX, Restore, RoundTrip, manifest_yaml,
};
use dbo_e2e::services::S3Object;
use dbo_render::Rendered;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::SignedDuration;

const INSTANCE: Instance = Instance {
    name: "local-mysql",
    engine: "mysql",
    admin_secret: "mysql-admin",
    admin_user: "admin",
};

/// One test's world: the MariaDB server and the round trip through the plugin and S3.
struct World {
    mariadb: MariaDb,
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
        let mariadb = MariaDb::start().context("starting MariaDB")?;
        let round_trip = RoundTrip::start(INSTANCE, engine()?)?;
        Ok(World {
            mariadb,
            round_trip,
        })
    }

    fn manifest(&self, databases: &[&str], restores: &[Restore<'_>]) -> String {
        self.round_trip.manifest(
            self.mariadb.port(),
            &self.mariadb.admin().password,
            databases,
            restores,
        )
    }

    /// Renders `yaml` (see [`RoundTrip::render`]); here so that `world.render(&world.manifest(..))`
    /// borrows as a method of `World` does.
    fn render(&mut self, yaml: &str) -> Result<Rendered> {
        self.round_trip.render(yaml)
    }

    /// Commissions `database` (see [`RoundTrip::commission`]) and checks that no password
    /// reached the log.
    fn commission(&self, rendered: &Rendered, database: &str) -> Result<PodOutcome> {
        let outcome = self.round_trip.commission(rendered, database)?;
        let login = self.login(database)?;
        let logs = outcome.logs();
        ensure!(
            !logs.contains(&login.password) && !logs.contains(&self.mariadb.admin().password),
            "no password reaches the log:\n{logs}"
        );
        Ok(outcome)
    }

    /// The login of `database`'s app user, from its rendered credentials Secret.
    fn login(&self, database: &str) -> Result<MariaDbLogin> {
        let secret_name = format!("{database}-db");
        let value = |key: &str| self.cluster().secret_value(NAMESPACE, &secret_name, key);
        Ok(MariaDbLogin {
            user: value("USER")?,
            password: value("PASSWORD")?,
            database: value("DB")?,
        })
    }

    /// Changes the password in `database`'s credentials Secret, as a user rotating it would.
    fn set_password(&mut self, database: &str, password: &str) -> Result<()> {
        self.set_credential(database, "PASSWORD", password)
    }

    /// Sets `key` of `database`'s credentials Secret to `value`.
    fn set_credential(&mut self, database: &str, key: &str, value: &str) -> Result<()> {
        let secret = self
            .cluster_mut()
            .secret_mut(NAMESPACE, &format!("{database}-db"))?;
        set_secret_value(secret, key, value);
        Ok(())
    }

    /// The objects in `database`'s backup folder.
    fn backups(&self, database: &str) -> Result<Vec<S3Object>> {
        self.stored(&keys(database))
    }
}

fn engine() -> Result<LoadedEngine> {
    load_engine("mysql", dbo_plugin_artifacts::MYSQL)
}

/// The database's name on the server and its backup folder: `<namespace>_<name>`, `-` as `_`.
fn server_name(database: &str) -> String {
    format!("{NAMESPACE}_{database}").replace('-', "_")
}

/// Where `database`'s backups are stored.
fn keys(database: &str) -> BackupKeys {
    BackupKeys::new(PREFIX, &server_name(database), ".sql.gz")
}

/// Tables, a view, a trigger, a procedure and values that a broken dump or restore would
/// mangle: binary strings with every byte value, JSON with unicode, text with quotes,
/// backslashes, tabs and line breaks, NULLs, decimals, microsecond times, a foreign key, an
/// auto-increment position and over 10,000 rows.
const SCHEMA_AND_DATA: &str = r#"
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE customers (
    id bigint AUTO_INCREMENT PRIMARY KEY,
    name varchar(200) NOT NULL,
    email varchar(200) UNIQUE,
    profile json,
    avatar varbinary(256)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE orders (
    id bigint AUTO_INCREMENT PRIMARY KEY,
    customer_id bigint NOT NULL,
    total decimal(12, 2) NOT NULL,
    items json NOT NULL,
    note text,
    placed_at datetime(6) NOT NULL,
    KEY orders_customer (customer_id),
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE audit (
    id bigint AUTO_INCREMENT PRIMARY KEY,
    order_id bigint NOT NULL,
    who varchar(200) NOT NULL
) ENGINE = InnoDB;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 1000;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
    INSERT INTO audit (order_id, who) VALUES (NEW.id, 'trigger');
DELIMITER //
CREATE PROCEDURE order_count(IN customer bigint, OUT n bigint)
BEGIN
    SELECT COUNT(*) INTO n FROM orders WHERE customer_id = customer;
END //
DELIMITER ;

INSERT INTO customers (name, email, profile, avatar)
WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000)
SELECT CONCAT('customer ', n), CONCAT('c', n, '@example.com'),
       JSON_OBJECT('tier', n % 3, 'tags', JSON_ARRAY('a', n), 'city', 'Zürich ☃'),
       UNHEX(MD5(n))
FROM g;

INSERT INTO customers (name, email, avatar)
WITH RECURSIVE b (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM b WHERE n < 255)
SELECT 'every byte', NULL, UNHEX(GROUP_CONCAT(LPAD(HEX(n), 2, '0') ORDER BY n SEPARATOR ''))
FROM b;

INSERT INTO orders (customer_id, total, items, note, placed_at)
WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 12000)
SELECT 1 + n % 2000,
       n * 1.37,
       JSON_ARRAY(JSON_OBJECT('sku', CONCAT('S-', n), 'qty', n % 7, 'price', n / 3.0)),
       CASE WHEN n % 10 = 0 THEN NULL
            ELSE CONCAT('line\nbreak\ttab ''quoted'' \\ back\\slash DEFINER=`x`@`%` ', n) END,
       TIMESTAMP '2024-01-01 00:00:00.123456' + INTERVAL n * 67 SECOND
FROM g;

ALTER TABLE customers AUTO_INCREMENT = 4242;
"#;

/// A fingerprint of everything the app can see: per table the row count and an MD5 over all
/// rows in key order (every value `QUOTE`d, so NULL and '' differ), the columns and their
/// types, the auto-increment positions, and the routines and triggers by name.
fn fingerprint(mariadb: &MariaDb, login: &MariaDbLogin) -> Result<String> {
    let row = |table: &str, columns: &str| {
        let quoted: Vec<String> = columns
            .split(',')
            .map(|c| format!("QUOTE({})", c.trim()))
            .collect();
        format!(
            "SELECT '{table}', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', {}) ORDER BY id SEPARATOR '\\n')) FROM {table}",
            quoted.join(", ")
        )
    };
    let sql = format!(
        "SET SESSION group_concat_max_len = 1073741824;\n\
         {};\n{};\n{};\n{};\n\
         SELECT 'columns', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS(':', table_name, column_name, column_type, is_nullable) ORDER BY table_name, ordinal_position)) \
           FROM information_schema.columns WHERE table_schema = DATABASE();\n\
         SELECT 'auto_increment', table_name, auto_increment FROM information_schema.tables \
           WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL ORDER BY table_name;\n\
         SELECT 'routines', GROUP_CONCAT(routine_name ORDER BY routine_name) FROM information_schema.routines WHERE routine_schema = DATABASE();\n\
         SELECT 'triggers', GROUP_CONCAT(trigger_name ORDER BY trigger_name) FROM information_schema.triggers WHERE trigger_schema = DATABASE();\n",
        row("customers", "id, name, email, profile, avatar"),
        row("orders", "id, customer_id, total, items, note, placed_at"),
        row("audit", "id, order_id, who"),
        row("big_orders", "id, total"),
    );
    Ok(mariadb.query(login, &sql)?)
}

/// Runs the backup of `database` and returns the key it stored, checking the object layout.
fn backup_ok(world: &World, rendered: &Rendered, database: &str) -> Result<String> {
    let (key, dump) = world.backup_ok(rendered, database, &keys(database))?;
    ensure!(
        dump.starts_with(&[0x1f, 0x8b]),
        "{key} is not gzip-compressed"
    );
    Ok(key)
}

#[test]
fn a_backup_restored_by_key_into_another_database_reproduces_everything() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders", "orders-restored"], &[]))?;

    world.commission(&rendered, "orders")?;
    world.commission(&rendered, "orders-restored")?;
    let orders = world.login("orders")?;
    ensure!(
        (orders.user.as_str(), orders.database.as_str()) == ("app_orders", "app_orders"),
        "the original's names: {orders:?}"
    );
    world.mariadb.query(&orders, SCHEMA_AND_DATA)?;
    let original = fingerprint(&world.mariadb, &orders)?;
    ensure!(
        original.contains("orders\t12000\t") && original.contains("triggers\torders_audit"),
        "the data is in place: {original}"
    );

    // Commissioning again (a re-applied Job, a retried pod) changes nothing.
    world.commission(&rendered, "orders")?;
    ensure!(
        fingerprint(&world.mariadb, &orders)? == original,
        "commissioning twice kept the data"
    );
    let admin = world.mariadb.admin().clone();
    let counts = world.mariadb.query(
        &admin,
        &format!(
            "SELECT COUNT(*) FROM mysql.user WHERE User = '{0}'; \
             SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{0}';",
            orders.user
        ),
    )?;
    ensure!(
        counts == "1\n1",
        "one user and one database after two runs, got {counts:?}"
    );

    // The app user reaches its own database and no other.
    let restored = world.login("orders-restored")?;
    let visible = world.mariadb.query(&orders, "SHOW DATABASES;")?;
    ensure!(
        visible == "app_orders\ninformation_schema",
        "the app user sees only its database: {visible:?}"
    );
    let denied = world
        .mariadb
        .query(
            &MariaDbLogin {
                database: restored.database.clone(),
                ..orders.clone()
            },
            "SELECT 1;",
        )
        .expect_err("another Database's database is out of reach");
    ensure!(denied.to_string().contains("Access denied"), "{denied}");

    let key = backup_ok(&world, &rendered, "orders")?;

    let restore = Restore {
        name: "orders-from-key",
        database: "orders-restored",
        snapshot: format!("key: {key}"),
    };
    let rendered = world.render(&world.manifest(&["orders", "orders-restored"], &[restore]))?;
    let outcome = world.restore(&rendered, "orders-from-key")?;
    expect_success(&outcome)?;
    ensure!(
        outcome.containers[0].termination_message.contains(&key),
        "the termination message names the restored key: {outcome}"
    );

    ensure!(
        restored.database != orders.database,
        "the restore went to another database"
    );
    let copy = fingerprint(&world.mariadb, &restored)?;
    ensure!(
        copy == original,
        "the restored database differs from the original:\noriginal:\n{original}\nrestored:\n{copy}"
    );
    // The restored objects belong to the target's user: it writes (through the trigger) and
    // calls the procedure.
    let after = world.mariadb.query(
        &restored,
        "INSERT INTO orders (customer_id, total, items, placed_at) VALUES (1, 1, '[]', NOW()); \
         SELECT who FROM audit ORDER BY id DESC LIMIT 1; \
         CALL order_count(1, @n); SELECT @n;",
    )?;
    ensure!(
        after == "trigger\n7",
        "trigger and procedure work: {after:?}"
    );
    Ok(())
}

#[test]
fn a_changed_password_reaches_the_server_at_the_next_commissioning() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let old = world.login("orders")?;
    world.mariadb.query(
        &old,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7);",
    )?;

    // Every character that SQL literals, option files or the shell treat specially.
    let new_password = r#"n3w "pass" 'word' \ #not-a-comment; $HOME `x` %_"#;
    world.set_password("orders", new_password)?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    let new = world.login("orders")?;
    ensure!(
        new.password == new_password,
        "the Secret keeps the user's password"
    );
    world.commission(&rendered, "orders")?;

    ensure!(
        world.mariadb.query(&new, "SELECT v FROM kept;")? == "7",
        "the new password works and the data is kept"
    );
    let refused = world
        .mariadb
        .query(&old, "SELECT 1;")
        .expect_err("the old password no longer works");
    ensure!(refused.to_string().contains("Access denied"), "{refused}");
    // The backup and restore Jobs read the same Secret.
    backup_ok(&world, &rendered, "orders")?;
    Ok(())
}

#[test]
fn commissioning_refuses_to_take_over_the_admin_or_a_privileged_account() -> Result<()> {
    let mut world = World::start()?;
    let admin = world.mariadb.admin().clone();
    world.mariadb.query(
        &admin,
        "CREATE USER 'ops'@'%' IDENTIFIED BY 'ops-password'; GRANT PROCESS ON *.* TO 'ops'@'%';",
    )?;

    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    let commission = job(&rendered, "commission", "orders")?;
    // The host names the user itself; a hand-edited copy of the credentials beside the admin
    // Secret is what the script must still refuse.
    let copy = rendered
        .secrets
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ADMIN_NAMESPACE)
                && secret_value(s, "USER").is_some()
        })
        .context("the copy of the credentials the commissioning Job reads")?;
    for (user, why) in [
        ("admin", "is the admin this Job connects as"),
        ("ops", "has server-wide privileges"),
    ] {
        let mut edited = copy.clone();
        set_secret_value(&mut edited, "USER", user);
        world.runner.add_secrets([&edited]);
        let outcome = world.runner.run_job(commission)?;
        ensure!(
            !outcome.succeeded(),
            "commissioning as {user} must fail:\n{outcome}"
        );
        ensure!(
            outcome.containers[0].stderr.contains(why),
            "the failure says why:\n{outcome}"
        );
    }
    let ops = MariaDbLogin {
        user: "ops".into(),
        password: "ops-password".into(),
        database: String::new(),
    };
    ensure!(
        world.mariadb.query(&ops, "SELECT CURRENT_USER();")? == "ops@%",
        "the privileged account's password is untouched"
    );
    ensure!(
        world
            .mariadb
            .query(&admin, "SHOW DATABASES LIKE 'app\\_orders';")?
            .is_empty(),
        "nothing was created"
    );
    Ok(())
}

#[test]
fn required_tls_is_enforced_against_a_server_without_it() -> Result<()> {
    let mut world = World::start()?;
    let yaml = world.manifest(&["orders"], &[]).replace(
        "  generic:\n",
        "  options:\n    sslMode: REQUIRED\n  generic:\n",
    );
    let rendered = world.render(&yaml)?;
    let outcome = world
        .runner
        .run_job(job(&rendered, "commission", "orders")?)?;
    ensure!(
        !outcome.succeeded(),
        "the test server offers no TLS, so REQUIRED must fail:\n{outcome}"
    );
    ensure!(
        outcome.containers[0]
            .stderr
            .contains("did not negotiate TLS"),
        "the failure says why:\n{outcome}"
    );
    // Commissioned without the option, the backup still refuses to run in plain text.
    let plain = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&plain, "orders")?;
    let rendered = world.render(&yaml)?;
    let outcome = world.backup(&rendered, "orders")?;
    ensure!(
        !outcome.succeeded()
            && outcome.containers[0]
                .stderr
                .contains("did not negotiate TLS"),
        "backups enforce it too:\n{outcome}"
    );
    ensure!(world.backups("orders")?.is_empty(), "nothing was uploaded");
    Ok(())
}

#[test]
fn latest_and_point_in_time_restore_the_backup_they_name() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let orders = world.login("orders")?;
    let db = &world.mariadb;

    db.query(&orders, SCHEMA_AND_DATA)?;
    let first_state = fingerprint(db, &orders)?;
    let first = backup_ok(&world, &rendered, "orders")?;
    let first_time = keys("orders").time_of(&first)?;

    wait_for_the_next_second(first_time);
    let db = &world.mariadb;
    db.query(
        &orders,
        "UPDATE orders SET total = total + 1 WHERE id % 3 = 0; \
         INSERT INTO customers (name, email) VALUES ('late 1', 'late1@example.com'), ('late 2', NULL);",
    )?;
    let second_state = fingerprint(db, &orders)?;
    ensure!(
        second_state != first_state,
        "the second state differs from the first"
    );
    let second = backup_ok(&world, &rendered, "orders")?;
    let second_time = keys("orders").time_of(&second)?;
    ensure!(second_time > first_time, "{second} is newer than {first}");

    // Damage after the last backup, which every restore below must undo.
    world.mariadb.query(
        &orders,
        "DELETE FROM orders WHERE id % 2 = 0; UPDATE customers SET profile = NULL; DROP VIEW big_orders;",
    )?;

    let restores = [
        Restore {
            name: "orders-at-first",
            database: "orders",
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
    let now = fingerprint(&world.mariadb, &orders)?;
    ensure!(
        now == first_state,
        "a point in time within the first backup's second restores the first backup:\n\
         expected:\n{first_state}\ngot:\n{now}"
    );

    expect_success(&world.restore(&rendered, "orders-latest")?)?;
    let now = fingerprint(&world.mariadb, &orders)?;
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
        fingerprint(&world.mariadb, &orders)? == second_state,
        "a failed restore leaves the database as it was"
    );
    Ok(())
}

#[test]
fn a_damaged_backup_is_refused_before_the_database_is_touched() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let orders = world.login("orders")?;
    world.mariadb.query(&orders, SCHEMA_AND_DATA)?;
    let key = backup_ok(&world, &rendered, "orders")?;
    let state = fingerprint(&world.mariadb, &orders)?;

    // The same backup cut short, as an interrupted copy would leave it.
    let dump = world.s3.get(BUCKET, &key)?;
    let cut = format!("{PREFIX}/damaged/cut-short.sql.gz");
    world.s3.put(BUCKET, &cut, &dump[..dump.len() / 2])?;

    let restore = Restore {
        name: "orders-from-damaged",
        database: "orders",
        snapshot: format!("key: {cut}"),
    };
    let rendered = world.render(&world.manifest(&["orders"], &[restore]))?;
    let outcome = world.restore(&rendered, "orders-from-damaged")?;
    ensure!(
        !outcome.succeeded(),
        "a damaged backup must not restore:\n{outcome}"
    );
    ensure!(
        outcome.containers[0]
            .stderr
            .contains("not a complete gzip file"),
        "the failure says what is wrong:\n{outcome}"
    );
    ensure!(
        fingerprint(&world.mariadb, &orders)? == state,
        "the database was not touched"
    );
    Ok(())
}

#[test]
fn a_failed_backup_leaves_latest_and_the_bucket_as_they_were() -> Result<()> {
    let mut world = World::start()?;
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.commission(&rendered, "orders")?;
    let orders = world.login("orders")?;
    world.mariadb.query(&orders, SCHEMA_AND_DATA)?;
    let good = backup_ok(&world, &rendered, "orders")?;
    let stored = world.backups("orders")?;
    let latest_key = keys("orders").latest();
    let latest = world.s3.get(BUCKET, &latest_key)?;
    world.mariadb.query(
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
        "-latest.sql.gz is unchanged"
    );

    // 2. The dump fails half-way: a view whose table is gone cannot be dumped, after the
    //    tables before it were already streamed.
    world.s3_secret_key = world.s3.secret_key().to_owned();
    let rendered = world.render(&world.manifest(&["orders"], &[]))?;
    world.mariadb.query(
        &orders,
        "CREATE TABLE zz_gone (v int); CREATE VIEW zz_broken AS SELECT v FROM zz_gone; DROP TABLE zz_gone;",
    )?;
    let outcome = world.backup(&rendered, "orders")?;
    ensure!(
        !outcome.succeeded(),
        "a backup whose dump fails must fail:\n{outcome}"
    );
    ensure!(
        outcome.containers[0].stderr.contains("mariadb-dump"),
        "the failure names mariadb-dump:\n{outcome}"
    );
    ensure!(
        world.backups("orders")? == stored,
        "no partial object is left behind: {:?}",
        world.backups("orders")?
    );
    ensure!(
        world.s3.get(BUCKET, &latest_key)? == latest,
        "-latest.sql.gz is unchanged"
    );
    Ok(())
}

#[test]
fn bad_options_are_refused_at_render_naming_each_field() -> Result<()> {
    let engine = engine()?;
    let yaml = manifest_yaml(
        &INSTANCE,
        3306,
        "http://127.0.0.1:9",
        ("AK", "SK"),
        "pw",
        &["orders"],
        &[],
    )
    .replace(
        "  generic:\n",
        "  options:\n    sslMode: VERIFY_CA\n    tls: true\n  generic:\n",
    );
    let err = match engine.render_yaml(&yaml, &mut TestPasswords(0)) {
        Ok(_) => bail!("options the engine does not know must not render"),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains("spec.options.tls") && err.contains("known ones are sslMode"),
        "the unknown key is named with the known ones: {err}"
    );
    ensure!(
        err.contains("spec.options.sslMode") && err.contains("VERIFY_IDENTITY"),
        "VERIFY_CA is refused saying what to use: {err}"
    );
    Ok(())
}

#[test]
fn the_examples_render_with_the_settings_they_describe() -> Result<()> {
    let engine = engine()?;
    let render = |file: &str| engine.render_example(file, &mut TestPasswords(0));
    let env_of =
        |job: &Job, name: &str| -> Option<String> { env_value(job_container(job).ok()?, name) };

    let generic = render("mysql.yaml")?;
    let secret = find_secret(&generic.secrets, "shop", "carts-db-credentials")?;
    for key in ["DB", "USER", "PASSWORD", "DATABASE_URL"] {
        ensure!(
            secret_value(secret, key).is_some(),
            "{key} is in the Secret"
        );
    }
    ensure!(secret_value(secret, "DB").as_deref() == Some("shop_carts"));
    let url = secret_value(secret, "DATABASE_URL").unwrap_or_default();
    ensure!(
        url.starts_with("mysql://shop_carts:")
            && url.ends_with("@mysql.databases.svc.cluster.local:3306/shop_carts"),
        "{url}"
    );
    let commission = job(&generic, "commission", "carts")?;
    ensure!(env_of(commission, "DB_CHARACTER_SET").as_deref() == Some("utf8mb4"));
    ensure!(env_of(commission, "DB_COLLATION").as_deref() == Some("utf8mb4_unicode_ci"));
    let restore = restore_job(&generic, "carts-latest")?;
    ensure!(env_of(restore, "SNAPSHOT_LATEST").as_deref() == Some("true"));
    let backup = cron_job_container(cron_job(&generic, "shop", "carts")?)?;
    let backup_host = env_value(backup, "DB_HOST");
    ensure!(
        backup_host.as_deref() == Some("mysql-replica.databases.svc.cluster.local"),
        "backups read from the replica: {backup_host:?}"
    );

    let rds = render("mysql-amazon-irsa.yaml")?;
    let secret = find_secret(&rds.secrets, "finance", "invoices-db")?;
    let url = secret_value(secret, "DATABASE_URL").unwrap_or_default();
    ensure!(
        url.ends_with("/finance_invoices?ssl-mode=VERIFY_IDENTITY"),
        "{url}"
    );
    let restore = restore_job(&rds, "invoices-before-migration")?;
    ensure!(env_of(restore, "DB_SSL_MODE").as_deref() == Some("VERIFY_IDENTITY"));
    ensure!(
        env_of(restore, "SNAPSHOT_POINT_IN_TIME").as_deref() == Some("2026-11-30T11:00:00Z"),
        "the point in time in UTC"
    );
    Ok(())
}
