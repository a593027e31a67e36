//! Every image entrypoint passes `shellcheck`. The scripts run where nobody watches (CronJob
//! pods at night), so the classes of bugs shellcheck finds (unquoted expansions, ignored
//! errors) are worth failing the build for.

use std::path::{Path, PathBuf};
use std::process::Command;

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/images")
}

/// `deploy/images/*/rootfs/usr/local/bin/*`, sorted.
fn entrypoints() -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    let images = std::fs::read_dir(images_dir())
        .unwrap_or_else(|e| panic!("reading {}: {e}", images_dir().display()));
    for image in images {
        let bin = image
            .expect("image folder entry")
            .path()
            .join("rootfs/usr/local/bin");
        let Ok(entries) = std::fs::read_dir(&bin) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entrypoint entry").path();
            if path.is_file() {
                scripts.push(path);
            }
        }
    }
    scripts.sort();
    scripts
}

#[test]
fn every_image_entrypoint_passes_shellcheck() {
    let scripts = entrypoints();
    assert!(
        scripts
            .iter()
            .any(|s| s.ends_with("postgres/rootfs/usr/local/bin/db-backup")),
        "the postgres entrypoints were not found under {}: {scripts:?}",
        images_dir().display()
    );

    let version = Command::new("shellcheck").arg("--version").output();
    if version.as_ref().map_or(true, |o| !o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "shellcheck is not installed, and CI is set: install it (Debian package `shellcheck`)"
        );
        eprintln!(
            "\n*** SKIPPED: shellcheck is not installed; {} entrypoint scripts were NOT checked. \
             Install shellcheck (Debian package `shellcheck`); with CI set this test fails. ***\n",
            scripts.len()
        );
        return;
    }

    let output = Command::new("shellcheck")
        .args(["--shell=bash", "--severity=style", "--external-sources"])
        .args(&scripts)
        .output()
        .expect("running shellcheck");
    assert!(
        output.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(unix)]
#[test]
fn entrypoints_are_executable_bash_scripts_that_stop_on_errors() {
    use std::os::unix::fs::PermissionsExt;
    for script in entrypoints() {
        let mode = std::fs::metadata(&script)
            .expect("metadata")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", script.display());
        let source = std::fs::read_to_string(&script).expect("readable");
        assert!(
            source.starts_with("#!/usr/bin/env bash\n"),
            "{} must start with a bash shebang",
            script.display()
        );
        assert!(
            source.contains("\nset -euo pipefail\n"),
            "{} must `set -euo pipefail`",
            script.display()
        );
    }
}
