//! Real servers for the end-to-end tests: PostgreSQL and an S3 server that checks request
//! signatures, each on 127.0.0.1 at a free port, in a temp directory, stopped on drop.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::tools::{self, MissingTool};

/// The address every test server listens on, and the host the rendered Jobs connect to.
pub const HOST: &str = "127.0.0.1";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}): {output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
    #[error("{what} did not accept connections on {addr} within {waited:?}; its log:\n{log}")]
    NotReady {
        what: String,
        addr: SocketAddr,
        waited: Duration,
        log: String,
    },
    #[error("{what}: unexpected output: {detail}")]
    Output { what: String, detail: String },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
    let what = what.into();
    move |source| ServiceError::Io { what, source }
}

/// Runs `command` and insists on exit 0.
pub(crate) fn checked(what: &str, command: &mut Command) -> Result<Output, ServiceError> {
    let out = command.output().map_err(io(what))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(ServiceError::Command {
        what: what.to_owned(),
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// A port nobody listens on right now. Another process could take it before the server binds
/// it; the servers below retry with a new port when that happens.
pub(crate) fn free_port() -> Result<u16, ServiceError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

pub(crate) fn wait_for_port(
    what: &str,
    port: u16,
    within: Duration,
    alive: &mut dyn FnMut() -> bool,
    log: &dyn Fn() -> String,
) -> Result<(), ServiceError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(ServiceError::NotReady {
        what: what.to_owned(),
        addr,
        waited: start.elapsed(),
        log: log(),
    })
}

pub(crate) fn is_root() -> bool {
    // The owner of our own /proc entry is our effective uid.
    std::os::unix::fs::MetadataExt::uid(&match std::fs::metadata("/proc/self") {
        Ok(m) => m,
        Err(_) => return false,
    }) == 0
}

/// Connection parameters of one PostgreSQL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgLogin {
    pub user: String,
    pub password: String,
    pub database: String,
}

/// A PostgreSQL server of its own, with password (`scram-sha-256`) authentication over TCP.
#[derive(Debug)]
pub struct Postgres {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    superuser: PgLogin,
    /// `runuser -u postgres --` when running as root (`initdb` refuses root).
    as_postgres: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Initialises a cluster in a temp directory and starts it.
    pub fn start() -> Result<Self, ServiceError> {
        let bindir = tools::postgres_bindir()?;
        let as_postgres = if is_root() {
            Some(tools::program("runuser")?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("dbo-postgres-")
            .tempdir()
            .map_err(io("creating the PostgreSQL directory"))?;
        let data = dir.path().join("data");
        let password = "admin-Secret-1";
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).map_err(io("writing the pwfile"))?;
        if as_postgres.is_some() {
            checked(
                "chown of the PostgreSQL directory to user postgres",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
            )?;
        }
        let mut server = Postgres {
            bindir,
            data,
            port: 0,
            superuser: PgLogin {
                user: "postgres".into(),
                password: password.into(),
                database: "postgres".into(),
            },
            as_postgres,
            _dir: dir,
        };
        checked(
            "initdb",
            server
                .server_command("initdb")
                .arg("-D")
                .arg(&server.data)
                .args(["-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8"])
                .args(["--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
        )?;
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ServiceError::Output {
            what: "PostgreSQL".into(),
            detail: "did not start".into(),
        }))
    }

    fn server_command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut command = match &self.as_postgres {
            Some(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The server must not see this process's environment (PG* variables, say).
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    fn pg_ctl_start(&self) -> Result<(), ServiceError> {
        let options = format!(
            "-c listen_addresses={HOST} -p {} -c unix_socket_directories= -c fsync=off \
             -c full_page_writes=off -c max_connections=50",
            self.port
        );
        let log = self.data.join("server.log");
        checked(
            "pg_ctl start",
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )
        .map_err(|e| match e {
            ServiceError::Command {
                what,
                status,
                output,
            } => ServiceError::Command {
                what,
                status,
                output: format!(
                    "{output}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            },
            other => other,
        })?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser (`postgres`) and its password.
    pub fn superuser(&self) -> &PgLogin {
        &self.superuser
    }

    /// Runs `sql` through `psql` as `login` over TCP and returns the unaligned, tuples-only
    /// output. Any SQL error fails the call.
    pub fn psql(&self, login: &PgLogin, sql: &str) -> Result<String, ServiceError> {
        let mut child = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .env_clear()
            .env("PGHOST", HOST)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &login.user)
            .env("PGPASSWORD", &login.password)
            .env("PGDATABASE", &login.database)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("psql"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(io("writing SQL to psql"))?;
        }
        let out = child.wait_with_output().map_err(io("psql"))?;
        if !out.status.success() {
            return Err(ServiceError::Command {
                what: format!("psql as {} on {}", login.user, login.database),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// An `s3s-fs` S3 server with one access key pair; buckets are directories under its root.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    access_key: String,
    secret_key: String,
    rclone: PathBuf,
    dir: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> Result<Self, ServiceError> {
        let program = tools::s3s_fs()?;
        let rclone = tools::rclone()?;
        let dir = tempfile::Builder::new()
            .prefix("dbo-s3-")
            .tempdir()
            .map_err(io("creating the S3 directory"))?;
        let root = dir.path().join("data");
        std::fs::create_dir(&root).map_err(io("creating the S3 root"))?;
        let access_key = "AKIAE2ETESTACCESS01".to_owned();
        let secret_key = "e2e-secret-key-for-signatures-0001".to_owned();
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.path().join(format!("s3s-fs-{port}.log"));
            let log = std::fs::File::create(&log_path).map_err(io("creating the S3 log"))?;
            let err_log = log.try_clone().map_err(io("creating the S3 log"))?;
            let mut child = Command::new(&program)
                .args(["--host", HOST, "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(&root)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .map_err(io("starting s3s-fs"))?;
            let ready = wait_for_port(
                "s3s-fs",
                port,
                Duration::from_secs(20),
                &mut || matches!(child.try_wait(), Ok(None)),
                &|| std::fs::read_to_string(&log_path).unwrap_or_default(),
            );
            match ready {
                Ok(()) => {
                    return Ok(S3Server {
                        child,
                        port,
                        access_key,
                        secret_key,
                        rclone,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ServiceError::Output {
            what: "s3s-fs".into(),
            detail: "did not start".into(),
        }))
    }

    /// Starts a server holding one empty `bucket`.
    pub fn start_with_bucket(bucket: &str) -> Result<Self, ServiceError> {
        let s3 = S3Server::start()?;
        s3.create_bucket(bucket)?;
        Ok(s3)
    }

    /// `http://127.0.0.1:<port>`, as `DbInstance.spec.backup.s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Creates `bucket` through the S3 API.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), ServiceError> {
        self.rclone("creating a bucket", &["mkdir", &format!("s3:{bucket}")])
            .map(drop)
    }

    /// Every object under `prefix` (a key prefix ending at a `/`, or empty), sorted by key.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<S3Object>, ServiceError> {
        let remote = format!("s3:{bucket}/{}", prefix.trim_matches('/'));
        let out = self.rclone(
            "listing objects",
            &["lsjson", "--recursive", "--files-only", "--hash", &remote],
        )?;
        let entries: Vec<LsEntry> =
            serde_json::from_slice(&out.stdout).map_err(|e| ServiceError::Output {
                what: "rclone lsjson".into(),
                detail: e.to_string(),
            })?;
        let base = prefix.trim_matches('/');
        let mut objects: Vec<S3Object> = entries
            .into_iter()
            .map(|e| S3Object {
                key: if base.is_empty() {
                    e.path
                } else {
                    format!("{base}/{}", e.path)
                },
                size: e.size,
                md5: e.hashes.md5,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The content of object `key`.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ServiceError> {
        let out = self.rclone("reading an object", &["cat", &format!("s3:{bucket}/{key}")])?;
        Ok(out.stdout)
    }

    /// Stores `content` as object `key`, as someone copying a backup by hand would.
    pub fn put(&self, bucket: &str, key: &str, content: &[u8]) -> Result<(), ServiceError> {
        let file = tempfile::NamedTempFile::new_in(self.dir.path())
            .map_err(io("creating the file to upload"))?;
        std::fs::write(file.path(), content).map_err(io("writing the file to upload"))?;
        self.rclone(
            "storing an object",
            &[
                "copyto",
                &file.path().display().to_string(),
                &format!("s3:{bucket}/{key}"),
            ],
        )
        .map(drop)
    }

    /// Runs rclone against this server with a remote `s3` defined only by env vars, in an
    /// otherwise empty environment (this machine's `AWS_*` settings would break it).
    fn rclone(&self, what: &str, args: &[&str]) -> Result<Output, ServiceError> {
        let config = self.dir.path().join("rclone.conf");
        if !config.exists() {
            std::fs::write(&config, "").map_err(io("writing rclone.conf"))?;
        }
        checked(
            &format!("rclone ({what})"),
            Command::new(&self.rclone)
                .args(args)
                .args(["--retries", "1", "--low-level-retries", "2"])
                .env_clear()
                .env("RCLONE_CONFIG", &config)
                .env("RCLONE_CONFIG_S3_TYPE", "s3")
                .env("RCLONE_CONFIG_S3_PROVIDER", "Other")
                .env("RCLONE_CONFIG_S3_ENDPOINT", self.endpoint())
                .env("RCLONE_CONFIG_S3_FORCE_PATH_STYLE", "true")
                .env("RCLONE_CONFIG_S3_ACCESS_KEY_ID", &self.access_key)
                .env("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", &self.secret_key)
                .stdin(Stdio::null()),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// Key relative to the bucket.
    pub key: String,
    pub size: u64,
    pub md5: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LsEntry {
    path: String,
    size: u64,
    #[serde(default)]
    hashes: Hashes,
}

#[derive(Deserialize, Default)]
struct Hashes {
    #[serde(default)]
    md5: Option<String>,
}
