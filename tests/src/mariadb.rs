//! A MariaDB server for the MySQL engine's end-to-end tests: its own data directory in a temp
//! directory, listening on 127.0.0.1 at a free port, with an admin account that logs in over
//! TCP with a password, stopped on drop.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::services::{HOST, ServiceError, checked, free_port, io, is_root, wait_for_port};
use crate::tools::{self, MissingTool};

/// Connection parameters of one MariaDB account (`'user'@'%'`) and its default database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbLogin {
    pub user: String,
    pub password: String,
    /// The database `query` runs in; empty for none.
    pub database: String,
}

/// A running `mariadbd`.
#[derive(Debug)]
pub struct MariaDb {
    child: Child,
    port: u16,
    client: PathBuf,
    admin: MariaDbLogin,
    dir: tempfile::TempDir,
    /// Names the per-query option files apart.
    queries: AtomicU64,
}

/// Every InnoDB instance with native AIO takes its share of the machine-wide `aio-max-nr`;
/// tests start several servers at once (and other suites their own), and a server that cannot
/// get its share fails to start. Synchronous I/O is plenty for test data.
const NO_NATIVE_AIO: &str = "--innodb-use-native-aio=0";

/// Account the server is set up with: every privilege on every database, with `GRANT OPTION`,
/// from any host, as a DBA's or a managed service's admin user is.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-Secret-1";

impl MariaDb {
    /// Initialises a data directory in a temp directory, starts the server and creates the
    /// admin account.
    pub fn start() -> Result<Self, ServiceError> {
        let server = mariadb_program("mariadbd")?;
        let install_db = mariadb_program("mariadb-install-db")?;
        let client = mariadb_program("mariadb")?;
        let dir = tempfile::Builder::new()
            .prefix("dbo-mariadb-")
            .tempdir()
            .map_err(io("creating the MariaDB directory"))?;
        let data = dir.path().join("data");
        // A server removes the temporary tables it finds in its tmpdir when it starts, so
        // servers sharing /tmp delete each other's: a bootstrap then fails with "Error on
        // delete of '/tmp/#sql-temptable-...'". Each server gets a tmpdir of its own.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).map_err(io("creating the MariaDB tmpdir"))?;
        let tmpdir = format!("--tmpdir={}", tmp.display());
        // The server drops to this user; as root it stays root, which mariadbd only accepts
        // when told so explicitly.
        let user = if is_root() {
            "root".to_owned()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".to_owned())
        };
        checked(
            "mariadb-install-db",
            Command::new(&install_db)
                .arg("--no-defaults")
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .arg(NO_NATIVE_AIO)
                .arg(&tmpdir)
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--user={user}"))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null()),
        )?;

        let socket = dir.path().join("mariadb.sock");
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.path().join(format!("mariadbd-{port}.log"));
            let mut child = Command::new(&server)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(&tmpdir)
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mariadbd.pid").display()
                ))
                .arg(format!("--log-error={}", log_path.display()))
                .arg(format!("--port={port}"))
                .arg(format!("--bind-address={HOST}"))
                .arg("--skip-grant-tables=0")
                .arg(format!("--user={user}"))
                // Accounts are matched by address, not by a reverse lookup of 127.0.0.1.
                .arg("--skip-name-resolve")
                .arg("--skip-log-bin")
                .arg(NO_NATIVE_AIO)
                .arg("--innodb-buffer-pool-size=64M")
                .arg("--innodb-log-file-size=32M")
                .arg("--innodb-flush-log-at-trx-commit=0")
                .arg("--max-connections=50")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io("starting mariadbd"))?;
            let ready = wait_for_port(
                "mariadbd",
                port,
                Duration::from_secs(60),
                &mut || matches!(child.try_wait(), Ok(None)),
                &|| std::fs::read_to_string(&log_path).unwrap_or_default(),
            );
            match ready {
                Ok(()) => {
                    let server = MariaDb {
                        child,
                        port,
                        client,
                        admin: MariaDbLogin {
                            user: ADMIN_USER.into(),
                            password: ADMIN_PASSWORD.into(),
                            database: String::new(),
                        },
                        dir,
                        queries: AtomicU64::new(0),
                    };
                    server.create_admin(&socket)?;
                    return Ok(server);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ServiceError::Output {
            what: "mariadbd".into(),
            detail: "did not start".into(),
        }))
    }

    /// As `root` over the socket (password-less, as `mariadb-install-db` left it): the admin
    /// account, and no anonymous accounts, which would shadow `'app'@'%'` for local clients.
    fn create_admin(&self, socket: &Path) -> Result<(), ServiceError> {
        let sql = format!(
            "DELETE FROM mysql.global_priv WHERE User = '';\n\
             FLUSH PRIVILEGES;\n\
             CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"
        );
        let mut child = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["--protocol=socket", "--user=root", "--batch"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("mariadb (creating the admin)"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(io("writing SQL to mariadb"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io("mariadb (creating the admin)"))?;
        if !out.status.success() {
            return Err(ServiceError::Command {
                what: "creating the MariaDB admin account".into(),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin account (`admin`, all privileges on `*.*` with `GRANT OPTION`).
    pub fn admin(&self) -> &MariaDbLogin {
        &self.admin
    }

    /// Runs `sql` through the `mariadb` client as `login` over TCP and returns its batch output
    /// (tab-separated columns, no header, one line per row), trimmed at the end. Any SQL error
    /// fails the call. The password reaches the client in an option file, not in argv.
    pub fn query(&self, login: &MariaDbLogin, sql: &str) -> Result<String, ServiceError> {
        let n = self.queries.fetch_add(1, Ordering::Relaxed);
        let options = self.dir.path().join(format!("client-{n}.cnf"));
        write_private(
            &options,
            &format!(
                "[client]\nuser={}\npassword={}\nhost={HOST}\nport={}\nprotocol=TCP\n",
                option_value(&login.user),
                option_value(&login.password),
                self.port
            ),
        )?;
        let mut command = Command::new(&self.client);
        command
            .arg(format!("--defaults-extra-file={}", options.display()))
            .args(["--batch", "--skip-column-names", "--connect-timeout=10"])
            .args(["--default-character-set=utf8mb4", "--skip-ssl"]);
        if !login.database.is_empty() {
            command.arg(format!("--database={}", login.database));
        }
        let mut child = command
            .env_clear()
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("mariadb"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(io("writing SQL to mariadb"))?;
        }
        let out = child.wait_with_output().map_err(io("mariadb"));
        let _ = std::fs::remove_file(&options);
        let out = out?;
        if !out.status.success() {
            return Err(ServiceError::Command {
                what: format!("mariadb as {} on {:?}", login.user, login.database),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// The server's error log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("mariadbd-{}.log", self.port)))
            .unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away, so a clean shutdown buys nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A value for a MySQL option file: double-quoted, so `#`, `;`, spaces and quotes survive,
/// with `\` and `"` escaped as the option-file parser expects.
pub fn option_value(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write_private(path: &Path, content: &str) -> Result<(), ServiceError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(content.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// A MariaDB program from `PATH` or the system directories (`mariadbd` is in `/usr/sbin`).
fn mariadb_program(name: &str) -> Result<PathBuf, MissingTool> {
    tools::program(name).map_err(|mut e| {
        e.what = format!("MariaDB's `{name}`");
        e.install = "the Debian packages `mariadb-server` and `mariadb-client`".into();
        e
    })
}
