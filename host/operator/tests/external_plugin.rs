//! A third-party engine, built the way its author would build it, served by the unmodified
//! operator binary through a plugin directory: `render`, digest pinning, `plugin inspect` and
//! `dev`. The engine is `plugins/examples/redis`, a crate outside this workspace that depends
//! only on the plugin SDK.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Dev, repo};
const MANIFEST: &str = "plugins/examples/redis/examples/redis.yaml";
/// The Secret value in that manifest, which no rendered object may carry outside a Secret.
const ADMIN_PASSWORD: &str = "change-me";

/// Variables cargo sets for *this* build; inherited, they would build the example for the
/// host target, with this build's flags, into this build's locked target directory (the same
/// list `plugins/artifacts/build.rs` removes for its nested build).
const OUTER_BUILD_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
];

/// The example's component, built once per test binary exactly as its README tells an author.
fn example_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redis-example");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(repo())
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(repo().join("plugins/examples/redis/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        for name in OUTER_BUILD_VARS {
            build.env_remove(name);
        }
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(|n| n.starts_with("CARGO_PROFILE_"))
            {
                build.env_remove(name);
            }
        }
        let out = build.output().expect("cargo starts");
        assert!(
            out.status.success(),
            "building the example engine failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join("wasm32-wasip2/release/dbo_example_redis.wasm")
    })
}

/// A plugin directory holding only the example, as an operator's deployment would mount it.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(example_wasm(), dir.path().join("redis.wasm")).expect("copy plugin");
    dir
}

/// `sha256:<hex>` of `file`, computed independently of the operator.
fn sha256_of(file: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", file.display());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let hex = text.split_whitespace().next().expect("a digest");
    assert_eq!(hex.len(), 64, "{text}");
    format!("sha256:{hex}")
}

fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_db-operator"))
        .current_dir(repo())
        .args(args)
        .env_remove("DBO_PLUGIN_DIR")
        .env_remove("DBO_PLUGIN_DIGESTS")
        .output()
        .expect("db-operator runs")
}

fn stdout_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn render_serves_the_redis_engine_from_the_plugin_directory() {
    let dir = plugin_dir();
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let out = operator(&[
        "render",
        "--plugin-dir",
        dir_arg,
        "-f",
        MANIFEST,
        "-o",
        "json",
        "--insecure-password-seed",
        "7",
    ]);
    let text = stdout_of(&out, "render --plugin-dir");
    let list: serde_json::Value = serde_json::from_str(&text).expect("a JSON List");
    let items = list["items"].as_array().expect("items");

    let of_kind = |kind: &str| -> Vec<&serde_json::Value> {
        items.iter().filter(|o| o["kind"] == kind).collect()
    };
    let jobs = of_kind("Job");
    assert_eq!(jobs.len(), 1, "one commissioning Job: {text}");
    let container = &jobs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/local/bin/db-commission");
    assert_eq!(
        container["image"],
        "ghcr.io/db-operator-rs/redis-tools:0.1.0"
    );
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    assert_eq!(
        var("DB_KEY_PREFIX").expect("DB_KEY_PREFIX")["valueFrom"]["secretKeyRef"]["key"],
        "REDIS_KEY_PREFIX"
    );
    assert_eq!(
        var("DB_RDB_BACKUP").expect("DB_RDB_BACKUP")["value"],
        "true"
    );
    // The script the Job runs is the ACL one shipped in the example's image.
    let script = std::fs::read_to_string(
        repo().join("plugins/examples/redis/image/rootfs/usr/local/bin/db-commission"),
    )
    .expect("commission script");
    assert!(
        script.contains("ACL SETUSER"),
        "the commission script sets the ACL user"
    );

    let cron_jobs = of_kind("CronJob");
    assert_eq!(cron_jobs.len(), 1, "one backup CronJob: {text}");
    assert_eq!(cron_jobs[0]["spec"]["schedule"], "30 2 * * *");
    let backup = &cron_jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(backup["command"][0], "/usr/local/bin/db-backup");

    let secret = of_kind("Secret")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "cart-redis")
        .expect("the credentials Secret");
    let data = secret["stringData"]
        .as_object()
        .or_else(|| secret["data"].as_object())
        .expect("credentials");
    for key in [
        "REDIS_USER",
        "REDIS_PASSWORD",
        "REDIS_KEY_PREFIX",
        "REDIS_URL",
    ] {
        assert!(data.contains_key(key), "{key} in {secret}");
    }

    // No secret value leaves a Secret: neither the admin password nor the generated one.
    for object in items.iter().filter(|o| o["kind"] != "Secret") {
        let shown = object.to_string();
        assert!(!shown.contains(ADMIN_PASSWORD), "{shown}");
        if let Some(password) = data.get("REDIS_PASSWORD").and_then(|p| p.as_str()) {
            assert!(!shown.contains(password), "{shown}");
        }
    }
}

#[test]
fn a_pinned_digest_must_match_the_plugin_file() {
    let dir = plugin_dir();
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let right = sha256_of(&dir.path().join("redis.wasm"));
    let wrong = format!("sha256:{}", "0".repeat(64));

    let out = operator(&[
        "render",
        "--plugin-dir",
        dir_arg,
        "--plugin-digest",
        &format!("redis={wrong}"),
        "-f",
        MANIFEST,
    ]);
    assert!(!out.status.success(), "a wrong pin must refuse to serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&right), "names the file's digest: {stderr}");
    assert!(stderr.contains(&wrong), "names the pinned digest: {stderr}");
    assert!(stderr.contains("redis.wasm"), "names the file: {stderr}");
    assert!(out.stdout.is_empty(), "renders nothing");

    let out = operator(&[
        "render",
        "--plugin-dir",
        dir_arg,
        "--plugin-digest",
        &format!("redis={right}"),
        "-f",
        MANIFEST,
    ]);
    assert!(stdout_of(&out, "render with the right pin").contains("kind: CronJob"));
}

#[test]
fn plugin_inspect_shows_what_the_example_is() {
    let wasm = example_wasm();
    let out = operator(&["plugin", "inspect", wasm.to_str().expect("utf-8 path")]);
    let text = stdout_of(&out, "plugin inspect");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name:?} line in {text}"))
            .to_string()
    };
    assert_eq!(field("name"), "redis");
    assert_eq!(field("api version"), "0.1.0");
    assert_eq!(field("digest"), sha256_of(wasm));
    assert_eq!(field("capabilities"), "backup, commission");
}

/// The example passes the conformance harness as its author would run it, golden case included
/// (the case also supplies the Database option `rdbBackup` its backups need).
#[test]
fn the_example_passes_the_plugin_test_harness() {
    let wasm = example_wasm().to_str().expect("UTF-8 path");
    let out = operator(&[
        "plugin",
        "test",
        wasm,
        "--cases",
        "plugins/examples/redis/cases",
        "--format",
        "json",
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout_of(&out, "plugin test")).expect("a JSON report");
    assert_eq!(report["passed"], true, "{report:#}");
    let checks: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        checks.iter().all(|(_, status)| *status == "pass"),
        "every check passes, the golden case too: {checks:?}"
    );
    assert!(checks.contains(&("cases", "pass")), "{checks:?}");
}

/// `db-operator dev` on the example manifest with the plugin directory, plus `extra` flags.
fn dev(plugin_dir: &Path, extra: &[&str]) -> Dev {
    let plugin_dir = plugin_dir.to_str().expect("UTF-8 path");
    let mut args = vec!["--plugin-dir", plugin_dir, "-f", MANIFEST];
    args.extend_from_slice(extra);
    Dev::start(&args)
}

#[test]
fn dev_serves_a_redis_instance_from_the_plugin_directory() {
    let dir = plugin_dir();
    let digest = sha256_of(&dir.path().join("redis.wasm"));
    let dev = dev(dir.path(), &[]);
    dev.eventually(
        &[
            "get",
            "dbinstance",
            "cache",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "True",
    );
    dev.eventually(
        &[
            "get",
            "dbinstance",
            "cache",
            "-o",
            "jsonpath={.status.engine.name} {.status.engine.digest}",
        ],
        &format!("redis {digest}"),
    );
    // The Database is served too: its commissioning Job waits beside the admin Secret.
    dev.eventually(
        &[
            "get",
            "cronjob",
            "cart-backup",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.schedule}",
        ],
        "30 2 * * *",
    );
}

/// A served operator does not stop for one plugin whose digest is not its pin: that engine is
/// refused and its DbInstances say why, naming both digests (the controllers run, so every
/// other engine is served as before).
#[test]
fn a_digest_mismatch_in_dev_refuses_the_engine_with_a_condition() {
    let dir = plugin_dir();
    let found = sha256_of(&dir.path().join("redis.wasm"));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let pin = format!("redis={wrong}");
    let dev = dev(dir.path(), &["--plugin-digest", &pin]);
    dev.eventually(
        &[
            "get",
            "dbinstance",
            "cache",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
        ],
        "PluginRefused",
    );
    let message = dev.ok(&[
        "get",
        "dbinstance",
        "cache",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    assert!(
        message.contains(&found) && message.contains(&wrong),
        "names both digests: {message}"
    );
    assert!(
        message.contains("update the pin"),
        "says what to do: {message}"
    );
}
