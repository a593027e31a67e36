//! The MariaDB test server the MySQL round trip runs against: it starts, lets the admin in over
//! TCP with its password (and nobody without one), runs SQL, and is gone after drop.

use std::net::TcpStream;

use anyhow::{Result, ensure};
use dbo_e2e::mariadb::{ADMIN_PASSWORD, MariaDb, MariaDbLogin};
use dbo_e2e::services::HOST;

#[test]
fn the_server_starts_accepts_the_admin_and_stops_on_drop() -> Result<()> {
    let server = MariaDb::start()?;
    let port = server.port();
    let admin = server.admin().clone();
    ensure!(admin.password == ADMIN_PASSWORD);

    let who = server.query(&admin, "SELECT CURRENT_USER(), VERSION() LIKE '%MariaDB%';")?;
    ensure!(
        who == "admin@%\t1",
        "logged in as the admin account: {who:?}"
    );
    let grants = server.query(&admin, "SHOW GRANTS;")?;
    ensure!(
        grants.contains("GRANT ALL PRIVILEGES ON *.* TO `admin`@`%`")
            && grants.contains("WITH GRANT OPTION"),
        "the admin may create databases, users and grants: {grants}"
    );

    // A password with every character an option file treats specially still works.
    let tricky = MariaDbLogin {
        user: "tricky".into(),
        password: r#"a"b'c\d #e;f g"#.into(),
        database: "scratch".into(),
    };
    server.query(
        &admin,
        r#"CREATE DATABASE scratch;
           CREATE USER 'tricky'@'%' IDENTIFIED BY 'a"b\'c\\d #e;f g';
           GRANT ALL ON scratch.* TO 'tricky'@'%';"#,
    )?;
    server.query(
        &tricky,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x\ty'), (NULL);",
    )?;
    ensure!(
        server.query(&tricky, "SELECT v FROM t ORDER BY v IS NULL;")? == "x\\ty\nNULL",
        "batch output escapes tabs and shows NULL"
    );

    let wrong = MariaDbLogin {
        password: "not-the-password".into(),
        ..admin.clone()
    };
    let refused = server
        .query(&wrong, "SELECT 1;")
        .expect_err("a wrong password is refused");
    ensure!(
        refused.to_string().contains("Access denied"),
        "the refusal is the server's: {refused}"
    );
    let failed = server
        .query(&admin, "SELECT * FROM no_such_db.t;")
        .expect_err("an SQL error fails the call");
    ensure!(failed.to_string().contains("no_such_db"), "{failed}");

    drop(server);
    ensure!(
        TcpStream::connect((HOST, port)).is_err(),
        "nothing listens on {port} after drop"
    );
    Ok(())
}
