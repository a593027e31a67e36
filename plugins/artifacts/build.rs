//! Compiles every in-tree guest (the engines and the hostile fixtures) to a `wasm32-wasip2`
//! component with one nested `cargo build`, so `cargo test` and `cargo run` always embed fresh
//! `.wasm` files and nobody has to remember a manual build step.
//!
//! The nested build gets its own target directory beside the outer one: it must not wait on the
//! lock the outer build holds, and its artifacts survive across outer profiles (debug, test,
//! bench) instead of being rebuilt once per profile.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm";

/// `(package, artifact stem written to OUT_DIR)`. `src/lib.rs` embeds each `<stem>.wasm`.
const GUESTS: &[(&str, &str)] = &[
    ("dbo-engine-postgres", "postgres"),
    ("dbo-engine-mysql", "mysql"),
    ("dbo-engine-mongodb", "mongodb"),
    ("dbo-engine-elasticsearch", "elasticsearch"),
    ("dbo-engine-neo4j", "neo4j"),
    ("dbo-fixture-endless-loop", "endless-loop"),
    ("dbo-fixture-memory-bomb", "memory-bomb"),
    ("dbo-fixture-panic", "panic"),
    ("dbo-fixture-forbidden-import", "forbidden-import"),
    ("dbo-fixture-oversized-output", "oversized-output"),
    ("dbo-fixture-wrong-api-version", "wrong-api-version"),
    ("dbo-fixture-nondeterministic", "nondeterministic"),
    ("dbo-fixture-secret-leak", "secret-leak"),
    ("dbo-fixture-trap-on-empty", "trap-on-empty"),
    ("dbo-fixture-not-a-job", "not-a-job"),
    ("dbo-fixture-privileged", "privileged"),
];

/// Inherited variables that describe the *outer* build. Passed on, they would compile the guests
/// for the host's target, with the host's flags, into the outer (locked) target directory, or
/// run clippy over them whenever the outer build is `cargo clippy`.
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

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by exiting non-zero; cargo prints our stderr.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("plugins/artifacts is expected two levels below the workspace root")?
        .to_path_buf();

    for watched in [
        "plugins/sdk",
        "plugins/postgres",
        "plugins/mysql",
        "plugins/mongodb",
        "plugins/elasticsearch",
        "plugins/neo4j",
        "plugins/fixtures",
        "wit",
        // `[profile.wasm]` and the guests' dependency versions live here.
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_target_installed()?;

    let guest_target_dir = outer_target_dir(&out_dir)
        .unwrap_or_else(|| out_dir.clone())
        .join("guests");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&guest_target_dir);
    for (package, _) in GUESTS {
        build.args(["-p", package]);
    }
    for name in OUTER_BUILD_VARS {
        build.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        if name
            .to_str()
            .is_some_and(|name| name.starts_with("CARGO_PROFILE_"))
        {
            build.env_remove(name);
        }
    }
    // Cargo parses a build script's stdout for directives; keep the nested build's output on
    // stderr, which cargo shows when this script fails.
    build.stdout(Stdio::null()).stderr(Stdio::inherit());

    let status = build
        .status()
        .map_err(|error| format!("could not start the nested guest build: {error}"))?;
    if !status.success() {
        return Err(format!(
            "building the plugins for {TARGET} failed ({status}); the compiler output is above"
        ));
    }

    let built = guest_target_dir.join(TARGET).join(PROFILE);
    for (package, stem) in GUESTS {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        let to = out_dir.join(format!("{stem}.wasm"));
        fs::copy(&from, &to).map_err(|error| {
            format!(
                "the nested build succeeded but {} is missing ({error}); is `{package}` a \
                 `cdylib`?",
                from.display()
            )
        })?;
    }
    Ok(())
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}

/// Fails with the fix when the standard library for the guest target is not installed, instead
/// of letting the nested build end in a confusing "can't find crate for `core`".
fn ensure_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|error| format!("could not run rustc to look for the {TARGET} target: {error}"))?;
    let libdir = String::from_utf8_lossy(&output.stdout);
    let libdir = Path::new(libdir.trim());
    if output.status.success() && libdir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the {TARGET} target is not installed, so the engine plugins cannot be built; run \
         `rustup target add {TARGET}` (rust-toolchain.toml lists it, and `rustup toolchain \
         install` in the workspace installs it)"
    ))
}

/// The outer target directory, found by walking up from OUT_DIR
/// (`<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`) to the directory cargo marks with
/// `CACHEDIR.TAG`. That works for the default location, `CARGO_TARGET_DIR`, and `--target`.
fn outer_target_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}
