//! Running one container: a private mount and PID namespace whose root is assembled from this
//! machine's OS directories (copy-on-write), the image's `rootfs/`, the emulated image tools and
//! the pod's volumes at their `mountPath`s.
//!
//! Nothing the container does reaches this machine's files outside the runner's temp directory:
//! the OS directories are overlays whose upper layer is in the temp directory, and every mount
//! target is created inside the new root, resolved from the container's point of view (the
//! mounting happens after `chroot`, so absolute symlinks cannot point it outside).

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{ContainerOutcome, RunError, io_error};

/// Top-level directories of this machine that make up the emulated image's OS. Symlinks among
/// them (merged `/usr`) are recreated as symlinks.
const OS_DIRS: &[&str] = &[
    "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "var",
];
/// Empty directories an image has.
const EMPTY_DIRS: &[(&str, u32)] = &[
    ("tmp", 0o1777),
    ("root", 0o700),
    ("run", 0o755),
    ("home", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
    ("srv", 0o755),
];
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// `PATH` of the setup steps, independent of the pod's.
const SETUP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
use super::TOOLS_DIR;
/// Variables a POSIX shell sets by itself (dash: `PWD`; bash also `SHLVL`, `_`).
const SHELL_VARS: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];
/// Staging mount points, removed again before the container command starts.
const STAGED_VOLUMES: &str = "/.dbo-volumes";
const STAGED_ROOTFS: &str = "/.dbo-rootfs";
const STAGED_TERMINATION_LOG: &str = "/.dbo-termination-log";
/// The kubelet reads at most this much of a termination message file.
const TERMINATION_MESSAGE_MAX: usize = 4096;
/// `FallbackToLogsOnError` uses the end of the log: at most this many bytes and lines.
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;

/// Host programs the sandbox is built with.
#[derive(Debug, Clone)]
pub(super) struct Programs {
    pub unshare: PathBuf,
    pub chroot: PathBuf,
    pub env: PathBuf,
    pub sh: PathBuf,
}

/// A bind mount of a volume into the container.
#[derive(Debug, Clone)]
pub(super) struct Mount {
    pub volume: String,
    /// `subPath` inside the volume, empty for the whole volume.
    pub sub_path: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// The source is a file (a Secret key mounted with `subPath`, say).
    pub file: bool,
}

/// Everything needed to run one container.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    /// `(uid, gid, supplementary groups)`; `None` runs as root.
    pub user: Option<(u32, u32, Vec<u32>)>,
    /// Folders copied over `/` in order (the image's `COPY <folder>/ /` layers).
    pub rootfs: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    /// Claim directories to bind onto the staged volume of that name.
    pub claims: Vec<(String, PathBuf)>,
    /// Host files to appear in [`TOOLS_DIR`], by name.
    pub tools: Vec<(String, PathBuf)>,
    /// Host directories that must be visible at the same path (tool directories outside the
    /// OS directories).
    pub visible_dirs: Vec<PathBuf>,
    /// Host directories visible and writable at the same path (a stand-in tool's call log).
    pub writable_dirs: Vec<PathBuf>,
    pub read_only_root: bool,
    /// `terminationMessagePath`: where the kubelet mounts the file whose content becomes the
    /// container's termination message.
    pub termination_message_path: String,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub fallback_to_logs: bool,
    pub timeout: Duration,
    pub output_limit: usize,
}

/// Checks once that private namespaces can be created here.
pub(super) fn preflight(programs: &Programs) -> Result<(), RunError> {
    let out = Command::new(&programs.unshare)
        .args(namespace_args())
        .arg("--")
        .arg("true")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_error(&programs.unshare, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RunError::Sandbox {
        container: None,
        message: format!(
            "cannot create a private mount and PID namespace ({}); the pod runner needs \
             root (CI runs the tests as root) and the util-linux `unshare`",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn namespace_args() -> [&'static str; 6] {
    [
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        // When the runner kills `unshare` (timeout), the namespace's init dies and takes every
        // process of the pod with it.
        "--kill-child",
    ]
}

/// Runs `plan` with `dir` as scratch space (its root, overlay layers, setup log) and
/// `volumes` as the pod's prepared volume directory.
pub(super) fn run(
    programs: &Programs,
    plan: &Plan,
    dir: &Path,
    volumes: &Path,
) -> Result<ContainerOutcome, RunError> {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
    set_mode(&root, 0o755)?;
    let log = dir.join("setup.log");
    let ok_marker = dir.join("setup-ok");
    let termination_log = dir.join("termination-log");
    std::fs::write(&termination_log, "").map_err(|e| io_error(&termination_log, e))?;
    // Any container user may write it, as with the kubelet's file.
    set_mode(&termination_log, 0o666)?;

    let host_setup = host_setup(plan, &root, dir, volumes, &termination_log);
    let pod_setup = pod_setup(plan);
    let mut outer = String::from("set -eu\n");
    let _ = writeln!(
        outer,
        "{env} -i PATH={path} LC_ALL=C {sh} -c {host} > {log} 2>&1",
        env = q(&programs.env),
        path = q(SETUP_PATH),
        sh = q(&programs.sh),
        host = q(&host_setup),
        log = q(&log),
    );
    let _ = writeln!(
        outer,
        "{env} -i PATH={path} LC_ALL=C {chroot} {root} {sh} -c {pod} >> {log} 2>&1",
        env = q(&programs.env),
        path = q(SETUP_PATH),
        chroot = q(&programs.chroot),
        root = q(&root),
        sh = q(&programs.sh),
        pod = q(&pod_setup),
        log = q(&log),
    );
    let _ = writeln!(outer, ": > {}", q(&ok_marker));
    let mut chroot = q(&programs.chroot);
    if let Some((uid, gid, groups)) = &plan.user {
        let groups = if groups.is_empty() {
            gid.to_string()
        } else {
            groups
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = write!(chroot, " --userspec={uid}:{gid} --groups={groups}");
    }
    // The command runs with exactly the pod's environment: it is the environment of this
    // process tree, which the setup steps above do not pass on (`env -i`). Only what the shell
    // running this script adds by itself is dropped again.
    let mut unset = String::new();
    for var in SHELL_VARS {
        if !plan.env.iter().any(|(k, _)| k == var) {
            let _ = write!(unset, " -u {var}");
        }
    }
    let _ = writeln!(
        outer,
        "exec {chroot} {root} {env}{unset} --chdir={wd} -- \"$@\"",
        root = q(&root),
        env = q(&programs.env),
        wd = q(&plan.workdir),
    );

    let mut child = Command::new(&programs.unshare)
        .args(namespace_args())
        .arg("--")
        .arg(&programs.sh)
        .arg("-c")
        .arg(&outer)
        .arg("pod")
        .args(&plan.argv)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io_error(&programs.unshare, e))?;

    let stdout = capture(child.stdout.take(), plan.output_limit);
    let stderr = capture(child.stderr.take(), plan.output_limit);
    let (status, timed_out) =
        wait(&mut child, plan.timeout).map_err(|e| io_error(&programs.unshare, e))?;
    let (stdout, stdout_truncated) = stdout.join().unwrap_or_default();
    let (stderr, stderr_truncated) = stderr.join().unwrap_or_default();

    if !timed_out && !ok_marker.exists() {
        let setup = std::fs::read_to_string(&log).unwrap_or_default();
        let details: Vec<String> = [String::from_utf8_lossy(&stderr).trim(), setup.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        return Err(RunError::Sandbox {
            container: Some(plan.name.clone()),
            message: format!(
                "setting up the container's filesystem failed (a bug in the pod runner or a \
                 mount path this machine cannot provide): {}",
                details.join("\n")
            ),
        });
    }
    let exit_code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    let mut message = std::fs::read(&termination_log).unwrap_or_default();
    message.truncate(TERMINATION_MESSAGE_MAX);
    let mut termination_message = String::from_utf8_lossy(&message).into_owned();
    if termination_message.is_empty() && plan.fallback_to_logs && (exit_code != 0 || timed_out) {
        termination_message = log_tail(&[&stdout, &stderr]);
    }
    Ok(ContainerOutcome {
        name: plan.name.clone(),
        exit_code,
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        truncated: stdout_truncated || stderr_truncated,
        termination_message,
    })
}

/// Steps seen from this machine: the new root's skeleton, OS overlays, /proc, /dev, tools, and
/// the staging mounts the container-side steps copy and bind from.
fn host_setup(
    plan: &Plan,
    root: &Path,
    dir: &Path,
    volumes: &Path,
    termination_log: &Path,
) -> String {
    let r = root.display().to_string();
    let mut s = String::from("set -eu\n");
    // A mount point of its own, so `readOnlyRootFilesystem` can make it read-only.
    let _ = writeln!(s, "mount --bind {} {}", q(&r), q(&r));
    for name in OS_DIRS {
        let host = Path::new("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let target = format!("{r}/{name}");
        if meta.file_type().is_symlink() {
            if let Ok(link) = std::fs::read_link(&host) {
                let _ = writeln!(s, "ln -s {} {}", q(&link), q(&target));
            }
        } else if meta.is_dir() {
            let upper = dir.join("layers/upper").join(name);
            let work = dir.join("layers/work").join(name);
            let _ = writeln!(s, "mkdir -p {} {} {}", q(&upper), q(&work), q(&target));
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                host.display(),
                upper.display(),
                work.display()
            );
            let _ = writeln!(
                s,
                "mount -t overlay overlay -o {} {}",
                q(&options),
                q(&target)
            );
        }
    }
    for (name, mode) in EMPTY_DIRS {
        let _ = writeln!(s, "mkdir -p -m {mode:o} {}", q(format!("{r}/{name}")));
    }
    let _ = writeln!(s, "mkdir -p {}", q(format!("{r}/proc")));
    let _ = writeln!(s, "mount -t proc proc {}", q(format!("{r}/proc")));
    let dev = format!("{r}/dev");
    let _ = writeln!(s, "mkdir -p {}", q(&dev));
    let _ = writeln!(s, "mount -t tmpfs -o mode=755,nosuid tmpfs {}", q(&dev));
    for device in DEVICES {
        let target = format!("{dev}/{device}");
        let _ = writeln!(s, ": > {}", q(&target));
        let _ = writeln!(
            s,
            "mount --bind {} {}",
            q(format!("/dev/{device}")),
            q(&target)
        );
    }
    let _ = writeln!(s, "mkdir -m 1777 {}", q(format!("{dev}/shm")));
    let _ = writeln!(
        s,
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {}",
        q(format!("{dev}/shm"))
    );
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = writeln!(s, "ln -s {} {}", q(target), q(format!("{dev}/{link}")));
    }
    if !plan.tools.is_empty() {
        let tools = format!("{r}{TOOLS_DIR}");
        let _ = writeln!(s, "mkdir -p {}", q(&tools));
        for (name, host) in &plan.tools {
            let target = format!("{tools}/{name}");
            let _ = writeln!(s, ": > {}", q(&target));
            let _ = writeln!(s, "mount --bind {} {}", q(host), q(&target));
        }
    }
    for host in &plan.visible_dirs {
        let target = format!("{r}{}", host.display());
        let _ = writeln!(s, "mkdir -p {}", q(&target));
        let _ = writeln!(s, "mount --bind {} {}", q(host), q(&target));
        let _ = writeln!(s, "mount -o remount,bind,ro {}", q(&target));
    }
    for host in &plan.writable_dirs {
        let target = format!("{r}{}", host.display());
        let _ = writeln!(s, "mkdir -p {}", q(&target));
        let _ = writeln!(s, "mount --bind {} {}", q(host), q(&target));
    }
    for (volume, claim) in &plan.claims {
        let _ = writeln!(s, "mount --bind {} {}", q(claim), q(volumes.join(volume)));
    }
    let staged = format!("{r}{STAGED_VOLUMES}");
    let _ = writeln!(s, "mkdir {}", q(&staged));
    let _ = writeln!(s, "mount --rbind {} {}", q(volumes), q(&staged));
    for (index, rootfs) in plan.rootfs.iter().enumerate() {
        let staged = format!("{r}{STAGED_ROOTFS}-{index}");
        let _ = writeln!(s, "mkdir {}", q(&staged));
        let _ = writeln!(s, "mount --bind {} {}", q(rootfs), q(&staged));
    }
    let staged = format!("{r}{STAGED_TERMINATION_LOG}");
    let _ = writeln!(s, ": > {}", q(&staged));
    let _ = writeln!(s, "mount --bind {} {}", q(termination_log), q(&staged));
    s
}

/// Steps seen from inside the new root: `COPY rootfs/ /`, the volume mounts at their paths,
/// the working directory, and finally a read-only root when asked for.
fn pod_setup(plan: &Plan) -> String {
    let mut s = String::from("set -eu\n");
    for index in 0..plan.rootfs.len() {
        // Docker's COPY: modes kept, owned by root; later layers win.
        let _ = writeln!(
            s,
            "cp -R -P --preserve=mode,timestamps {}/. /",
            q(format!("{STAGED_ROOTFS}-{index}"))
        );
    }
    // Parents before children, as the kubelet sorts them.
    let mut mounts: Vec<&Mount> = plan.mounts.iter().collect();
    mounts.sort_by_key(|m| Path::new(&m.target).components().count());
    for mount in mounts {
        let mut source = PathBuf::from(STAGED_VOLUMES).join(&mount.volume);
        if !mount.sub_path.as_os_str().is_empty() {
            source.push(&mount.sub_path);
        }
        let target = q(&mount.target);
        if mount.file {
            let _ = writeln!(s, "mkdir -p \"$(dirname -- {target})\"");
            let _ = writeln!(s, "[ -e {target} ] || : > {target}");
        } else {
            let _ = writeln!(s, "mkdir -p -- {target}");
        }
        let _ = writeln!(s, "mount --bind -- {} {target}", q(&source));
        if mount.read_only {
            let _ = writeln!(s, "mount -o remount,bind,ro -- {target}");
        }
    }
    let message = q(&plan.termination_message_path);
    let _ = writeln!(s, "mkdir -p \"$(dirname -- {message})\"");
    let _ = writeln!(s, "[ -e {message} ] || : > {message}");
    let _ = writeln!(s, "mount --bind -- {} {message}", q(STAGED_TERMINATION_LOG));
    let _ = writeln!(s, "umount {}", q(STAGED_TERMINATION_LOG));
    let _ = writeln!(s, "rm {}", q(STAGED_TERMINATION_LOG));
    // The container runtime creates a missing working directory.
    let _ = writeln!(s, "mkdir -p -- {}", q(&plan.workdir));
    let _ = writeln!(s, "umount -R {}", q(STAGED_VOLUMES));
    let _ = writeln!(s, "rmdir {}", q(STAGED_VOLUMES));
    for index in 0..plan.rootfs.len() {
        let staged = format!("{STAGED_ROOTFS}-{index}");
        let _ = writeln!(s, "umount {}", q(&staged));
        let _ = writeln!(s, "rmdir {}", q(&staged));
    }
    if plan.read_only_root {
        let _ = writeln!(s, "mount -o remount,bind,ro /");
        for name in OS_DIRS {
            let _ = writeln!(
                s,
                "if [ -d /{name} ] && [ ! -L /{name} ]; then mount -o remount,bind,ro /{name}; fi"
            );
        }
    }
    s
}

/// The end of the log, as `FallbackToLogsOnError` takes it.
fn log_tail(streams: &[&[u8]]) -> String {
    let all: Vec<u8> = streams.concat();
    let text = String::from_utf8_lossy(&all);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(FALLBACK_LOG_LINES)..].join("\n");
    let mut start = tail.len().saturating_sub(FALLBACK_LOG_BYTES);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    tail[start..].to_owned()
}

/// Reads a pipe to its end, keeping the last `limit` bytes.
fn capture(
    pipe: Option<impl Read + Send + 'static>,
    limit: usize,
) -> thread::JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            return (Vec::new(), false);
        };
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&chunk[..n]);
            if kept.len() > limit {
                let excess = kept.len() - limit;
                kept.drain(..excess);
                truncated = true;
            }
        }
        (kept, truncated)
    })
}

fn wait(child: &mut Child, timeout: Duration) -> std::io::Result<(std::process::ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(path, e))
}

/// Single-quotes `value` for `sh`.
fn q(value: impl AsRef<std::ffi::OsStr>) -> String {
    let text = value.as_ref().to_string_lossy();
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_round_trip_through_sh() {
        let tricky = "it's a \"path\" with $HOME and `ticks`";
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", q(tricky)))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    }
}
