//! The engine images' build directories: every entrypoint and shared library passes
//! `shellcheck`, and every Dockerfile is one the pod runner (and so `docker build` with the
//! `deploy/images` context) can lay out. The scripts run where nobody watches (CronJob pods at
//! night), so the classes of bugs shellcheck finds (unquoted expansions, ignored errors) are
//! worth failing the build for.

use std::path::PathBuf;
use std::process::Command;

use dbo_e2e::pod_runner::Image;

fn images_dir() -> PathBuf {
    dbo_e2e::repo_root().join("deploy/images")
}

/// Sourced shell libraries: `*.sh` under `deploy/images/*/rootfs/usr/local/lib/db-operator/`.
fn libraries() -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("library entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "sh") {
                out.push(path);
            }
        }
    }
    let mut libs = Vec::new();
    for image in image_dirs() {
        walk(&image.join("rootfs/usr/local/lib/db-operator"), &mut libs);
    }
    libs.sort();
    libs
}

fn image_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(images_dir())
        .unwrap_or_else(|e| panic!("reading {}: {e}", images_dir().display()))
        .map(|e| e.expect("image folder entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// `deploy/images/*/rootfs/usr/local/bin/*`, sorted.
/// The example third-party engines' images (`plugins/examples/*/image`), held to the same bar.
fn example_image_dirs() -> Vec<PathBuf> {
    let examples = dbo_e2e::repo_root().join("plugins/examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("image"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn entrypoints() -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    for image in image_dirs().into_iter().chain(example_image_dirs()) {
        let bin = image.join("rootfs/usr/local/bin");
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
        libraries()
            .iter()
            .any(|s| s.ends_with("common/rootfs/usr/local/lib/db-operator/lib.sh")),
        "the shared library was not found under {}",
        images_dir().display()
    );
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

    // `source=` directives are relative to the script, as they are written for a reader, and
    // shellcheck follows them, so each library is checked in the context of the entrypoints
    // that source it (an engine's library uses what the shared one defines). The shared one
    // stands on its own and is checked alone too.
    let output = Command::new("shellcheck")
        .args([
            "--shell=bash",
            "--severity=style",
            "--external-sources",
            "--source-path=SCRIPTDIR",
        ])
        .args(&scripts)
        .args(
            libraries()
                .iter()
                .filter(|l| l.ends_with("common/rootfs/usr/local/lib/db-operator/lib.sh")),
        )
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

/// An entrypoint that sources the shared library only works in an image that copies it: the
/// Dockerfile must lay `common/rootfs/` under its own `rootfs/`.
#[test]
fn every_engine_image_copies_the_shared_library_before_its_own_files() {
    let common = images_dir().join("common/rootfs");
    let mut checked = 0;
    for dir in image_dirs() {
        if !dir.join("Dockerfile").is_file() || dir.ends_with("operator") {
            continue;
        }
        let image = Image::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let sources_lib = entrypoints()
            .iter()
            .filter(|s| s.starts_with(&dir))
            .any(|s| {
                std::fs::read_to_string(s)
                    .expect("readable")
                    .contains(". /usr/local/lib/db-operator/lib.sh")
            });
        if sources_lib {
            assert_eq!(
                image.rootfs,
                [common.clone(), dir.join("rootfs")],
                "{}: the Dockerfile must `COPY common/rootfs/ /` and then its own rootfs",
                dir.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 1, "no engine image sources the shared library");
}
