//! The sandbox against real components: the PostgreSQL plugin and one hostile fixture per way a
//! plugin can misbehave (`plugins/fixtures/*`), all built by `dbo-plugin-artifacts`.

mod common;

use std::time::Duration;

use dbo_engine::{CallError, Capability, Engine};
use dbo_plugin_artifacts::{POSTGRES, fixtures};
use dbo_plugin_runtime::{
    CodeSource, InstanceAllocation, Plugin, PluginRuntime, RuntimeConfig, RuntimeError,
};

/// Short enough that the endless loop ends quickly, long enough for a debug-built host.
const TEST_TIMEOUT: Duration = Duration::from_millis(200);

fn runtime() -> PluginRuntime {
    runtime_with(RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        ..Default::default()
    })
}

/// Runtimes of this test binary share a disk cache, so each component is compiled once per
/// engine configuration rather than once per test (compiling PostgreSQL takes over a second in
/// a debug build). The cache tests bring their own directory.
fn runtime_with(config: RuntimeConfig) -> PluginRuntime {
    let shared_cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    PluginRuntime::new(RuntimeConfig {
        cache_dir: config.cache_dir.or(Some(shared_cache)),
        ..config
    })
    .expect("the runtime starts")
}

fn load(runtime: &PluginRuntime, name: &str, wasm: &[u8]) -> Plugin {
    runtime
        .load(name, wasm)
        .unwrap_or_else(|error| panic!("{name} loads: {error}"))
}

/// The runtime's own error behind a failed call.
fn runtime_error(error: CallError) -> RuntimeError {
    match error {
        CallError::Runtime(error) => *error
            .downcast::<RuntimeError>()
            .expect("the runtime reports its own error type"),
        CallError::Plugin { engine, error } => {
            panic!("expected a sandbox failure, but engine {engine} answered: {error}")
        }
    }
}

/// What every test checks after a failure: the message names the plugin and its digest, and
/// both the failed plugin and another one keep working in the same runtime.
fn assert_still_serving(runtime: &PluginRuntime, plugin: &Plugin, error: &RuntimeError) {
    let message = error.to_string();
    assert!(
        message.contains(&plugin.info().name),
        "names the plugin: {message}"
    );
    assert!(
        message.contains(&plugin.digest()[..19]),
        "names the digest: {message}"
    );

    let (instance, database) = common::instance_and_database();
    let job = plugin
        .restore(&common::restore_request())
        .expect("the same plugin still serves restore");
    assert!(job.pod_spec.contains(&database.name));
    plugin
        .validate(&instance, Some(&database))
        .expect("the same plugin still serves validate");

    let postgres = load(runtime, "builtin:postgres", POSTGRES);
    postgres
        .backup(&common::backup_request())
        .expect("another plugin in the same runtime still serves backup");
}

#[test]
fn postgres_describes_itself() {
    let runtime = runtime();
    let postgres = load(&runtime, "builtin:postgres", POSTGRES);
    let info = postgres.info();
    assert_eq!(info.name, "postgres");
    assert_eq!(info.api_version, "0.1.0");
    for capability in [
        Capability::Backup,
        Capability::Commission,
        Capability::Restore,
    ] {
        assert!(info.capabilities.contains(&capability), "{capability:?}");
    }
    assert!(postgres.digest().starts_with("sha256:"));
    assert_eq!(postgres.digest().len(), "sha256:".len() + 64);
    assert_eq!(postgres.exports(), ["kci:engine/engine@0.1.0"]);
    assert!(
        postgres
            .imports()
            .iter()
            .all(|import| !import.starts_with("wasi:sockets")
                && !import.starts_with("wasi:filesystem")),
        "{:?}",
        postgres.imports()
    );
    assert_eq!(postgres.describe().expect("describe").name, "postgres");
}

#[test]
fn sandboxed_postgres_answers_exactly_like_its_native_code() {
    let runtime = runtime();
    let postgres = load(&runtime, "builtin:postgres", POSTGRES);
    let native = <dbo_engine_postgres::Postgres as dbo_plugin_sdk::Engine>::backup(
        &dbo_plugin_sdk::testing::backup_request(),
    )
    .expect("native backup");
    let sandboxed = postgres
        .backup(&common::backup_request())
        .expect("sandboxed backup");
    assert_eq!(sandboxed.pod_spec, native.pod_spec);
    assert_eq!(sandboxed.backoff_limit, native.backoff_limit);
    assert_eq!(
        sandboxed.active_deadline_seconds,
        native.active_deadline_seconds
    );
}

#[test]
fn an_engine_refusal_is_a_plugin_error_not_a_sandbox_failure() {
    let runtime = runtime();
    let postgres = load(&runtime, "builtin:postgres", POSTGRES);
    let request = dbo_engine::BackupRequest {
        storage: dbo_engine::Storage::Gcs("legacy".to_owned()),
        ..common::backup_request()
    };
    match postgres.backup(&request) {
        Err(CallError::Plugin {
            engine,
            error: dbo_engine::PluginError::Unsupported(_),
        }) => assert_eq!(engine, "postgres"),
        other => panic!("expected the engine to refuse legacy GCS storage, got {other:?}"),
    }
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    let runtime = runtime();
    let plugin = load(&runtime, "endless-loop.wasm", fixtures::ENDLESS_LOOP);
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(
            &error,
            RuntimeError::DeadlineExceeded { function: "backup", limit, .. } if *limit == TEST_TIMEOUT
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("200ms deadline"), "{error}");
    assert_still_serving(&runtime, &plugin, &error);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let limit = 16 << 20;
    let runtime = runtime_with(RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        memory_limit_bytes: limit,
        ..Default::default()
    });
    let plugin = load(&runtime, "memory-bomb.wasm", fixtures::MEMORY_BOMB);
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(
            &error,
            RuntimeError::MemoryLimit { function: "backup", limit_bytes, .. } if *limit_bytes == limit
        ),
        "{error:?}"
    );
    assert_still_serving(&runtime, &plugin, &error);
}

#[test]
fn memory_limit_holds_without_the_instance_pool_too() {
    let runtime = runtime_with(RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        instance_allocation: InstanceAllocation::OnDemand,
        ..Default::default()
    });
    assert!(!runtime.uses_instance_pool());
    let plugin = load(&runtime, "memory-bomb.wasm", fixtures::MEMORY_BOMB);
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(error, RuntimeError::MemoryLimit { .. }),
        "{error:?}"
    );
}

#[test]
fn panic_is_a_trap_carrying_the_panic_message() {
    let runtime = runtime();
    let plugin = load(&runtime, "panic.wasm", fixtures::PANIC);
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    match &error {
        RuntimeError::Trap {
            function: "backup",
            message,
            ..
        } => assert!(
            message.contains("fixture panics on purpose while backing up orders"),
            "{message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_still_serving(&runtime, &plugin, &error);
}

#[test]
fn oversized_output_is_rejected_by_size() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "oversized-output.wasm",
        fixtures::OVERSIZED_OUTPUT,
    );
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(
            &error,
            RuntimeError::OutputTooLarge { function: "backup", bytes, limit, .. }
                if *bytes > 8 << 20 && *limit == 1 << 20
        ),
        "{error:?}"
    );
    assert_still_serving(&runtime, &plugin, &error);
}

#[test]
fn forbidden_import_is_refused_at_load_naming_the_import() {
    let runtime = runtime();
    let error = runtime
        .load("forbidden-import.wasm", fixtures::FORBIDDEN_IMPORT)
        .unwrap_err();
    match &error {
        RuntimeError::ForbiddenImport { plugin, import, .. } => {
            assert!(import.starts_with("wasi:sockets/"), "{import}");
            assert_eq!(plugin.name, "forbidden-import.wasm");
            let message = error.to_string();
            assert!(message.contains(import.as_str()), "{message}");
            assert!(message.contains(plugin.short_digest()), "{message}");
        }
        other => panic!("expected ForbiddenImport, got {other:?}"),
    }
    load(&runtime, "builtin:postgres", POSTGRES);
}

#[test]
fn unknown_api_version_is_refused_naming_found_and_supported() {
    let runtime = runtime();
    let error = runtime
        .load("wrong-api-version.wasm", fixtures::WRONG_API_VERSION)
        .unwrap_err();
    match &error {
        RuntimeError::UnsupportedApiVersion {
            found, supported, ..
        } => {
            assert_eq!(found, "0.9.0");
            assert_eq!(supported, &["0.1.0"]);
            let message = error.to_string();
            assert!(
                message.contains("0.9.0") && message.contains("0.1.0"),
                "{message}"
            );
        }
        other => panic!("expected UnsupportedApiVersion, got {other:?}"),
    }
    assert_eq!(dbo_plugin_runtime::supported_api_versions(), ["0.1.0"]);
}

#[test]
fn bytes_that_are_no_component_fail_to_compile_under_their_hint() {
    let runtime = runtime();
    let error = runtime.load("notes.txt", b"not wasm at all").unwrap_err();
    assert!(matches!(error, RuntimeError::Compile { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("plugin notes.txt (sha256:"),
        "{error}"
    );
}

#[test]
fn warm_instance_serves_repeatedly_and_is_poisoned_by_a_trap() {
    let runtime = runtime();
    let plugin = load(&runtime, "panic.wasm", fixtures::PANIC);
    let warm = plugin.warm().expect("instantiates");
    let (instance, database) = common::instance_and_database();
    for _ in 0..3 {
        warm.validate(&instance, Some(&database)).expect("validate");
    }
    let trap = runtime_error(warm.backup(&common::backup_request()).unwrap_err());
    assert!(matches!(trap, RuntimeError::Trap { .. }), "{trap:?}");
    let after = runtime_error(warm.validate(&instance, Some(&database)).unwrap_err());
    assert!(matches!(after, RuntimeError::Poisoned { .. }), "{after:?}");
    plugin
        .validate(&instance, Some(&database))
        .expect("fresh-store calls are unaffected");
}

#[test]
fn warm_instance_stops_an_endless_loop_on_every_call_deadline() {
    let runtime = runtime();
    let plugin = load(&runtime, "endless-loop.wasm", fixtures::ENDLESS_LOOP);
    let warm = plugin.warm().expect("instantiates");
    let (instance, database) = common::instance_and_database();
    // Calls before the loop must not use up the deadline of the looping call.
    for _ in 0..3 {
        warm.validate(&instance, Some(&database)).expect("validate");
    }
    let error = runtime_error(warm.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(error, RuntimeError::DeadlineExceeded { .. }),
        "{error:?}"
    );
}

#[test]
fn a_full_instance_pool_is_reported_as_busy() {
    let runtime = runtime_with(RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        instance_allocation: InstanceAllocation::Pooling {
            max_concurrent_calls: 1,
        },
        ..Default::default()
    });
    let plugin = load(&runtime, "builtin:postgres", POSTGRES);
    let warm = plugin.warm().expect("takes the only slot");
    let error = runtime_error(plugin.backup(&common::backup_request()).unwrap_err());
    assert!(
        matches!(error, RuntimeError::Busy { limit: 1, .. }),
        "{error:?}"
    );
    drop(warm);
    plugin
        .backup(&common::backup_request())
        .expect("the slot is free again");
}

#[test]
fn disk_cache_is_reused_by_the_next_runtime() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let first = load(&runtime_with(config.clone()), "builtin:postgres", POSTGRES);
    assert_eq!(first.code_source(), CodeSource::Compiled);
    let cached = cwasm_files(dir.path());
    assert_eq!(cached.len(), 1, "{cached:?}");
    let name = cached[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let hex = first.digest().trim_start_matches("sha256:");
    assert!(name.starts_with(&format!("{hex}-")), "{name}");

    let second = load(&runtime_with(config), "builtin:postgres", POSTGRES);
    assert_eq!(second.code_source(), CodeSource::DiskCache);
    assert_eq!(second.digest(), first.digest());
    second
        .backup(&common::backup_request())
        .expect("cached code runs");
}

#[test]
fn corrupt_cache_file_is_recompiled_and_replaced() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    load(&runtime_with(config.clone()), "builtin:postgres", POSTGRES);
    let cached = cwasm_files(dir.path());
    std::fs::write(&cached[0], b"\x7fELF but not really").expect("corrupt the cache file");

    let recompiled = load(&runtime_with(config.clone()), "builtin:postgres", POSTGRES);
    assert_eq!(recompiled.code_source(), CodeSource::Compiled);
    recompiled
        .backup(&common::backup_request())
        .expect("recompiled code runs");

    let repaired = load(&runtime_with(config), "builtin:postgres", POSTGRES);
    assert_eq!(repaired.code_source(), CodeSource::DiskCache);
    assert_eq!(cwasm_files(dir.path()).len(), 1, "no temporary files left");
}

fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("cache directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn pinned_digest_must_match() {
    let runtime = runtime();
    let digest = load(&runtime, "builtin:postgres", POSTGRES)
        .digest()
        .to_owned();
    let pinned = runtime
        .load_pinned(
            "builtin:postgres",
            POSTGRES,
            &digest.to_uppercase().replace("SHA256", "sha256"),
        )
        .expect("the right digest loads, whatever the hex case");
    assert_eq!(pinned.digest(), digest);

    let other = format!("sha256:{}", "0".repeat(64));
    match runtime.load_pinned("builtin:postgres", POSTGRES, &other) {
        Err(RuntimeError::DigestMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, other);
            assert_eq!(found, digest);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }

    let error = runtime
        .load_pinned("builtin:postgres", POSTGRES, "ab12cd")
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::InvalidDigest { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("`ab12cd`"), "{error}");
}

#[test]
fn load_file_names_the_plugin_by_file_until_it_describes_itself() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("postgres-0.1.0.wasm");
    std::fs::write(&path, POSTGRES).expect("write the plugin file");
    let runtime = runtime();
    assert_eq!(
        runtime.load_file(&path).expect("loads").info().name,
        "postgres"
    );

    let missing = dir.path().join("mysql.wasm");
    let error = runtime.load_file(&missing).unwrap_err();
    match &error {
        RuntimeError::Io { name, path, .. } => {
            assert_eq!(name, "mysql.wasm");
            assert_eq!(path, &missing);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(error.to_string().contains("mysql.wasm"), "{error}");
}

#[test]
fn plugins_run_with_a_small_native_stack() {
    // The default `max_wasm_stack_bytes` is 512 KiB; the in-tree plugin works with an eighth of
    // that, so the default leaves ample room while staying far below a 2 MiB thread stack.
    let runtime = runtime_with(RuntimeConfig {
        call_timeout: TEST_TIMEOUT,
        max_wasm_stack_bytes: 64 << 10,
        ..Default::default()
    });
    let postgres = load(&runtime, "builtin:postgres", POSTGRES);
    postgres
        .backup(&common::backup_request())
        .expect("backup fits in 64 KiB of native stack");
}

/// Everything `tracing` writes while `run` runs on this thread.
fn captured_logs(run: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = buffer.0.lock().expect("log buffer").clone();
    String::from_utf8(bytes).expect("logs are UTF-8")
}

#[test]
fn plugin_log_calls_and_stdout_are_logged_under_the_plugin_name() {
    let logs = captured_logs(|| {
        let runtime = runtime();
        let plugin = load(&runtime, "endless-loop.wasm", fixtures::ENDLESS_LOOP);
        let (instance, database) = common::instance_and_database();
        plugin
            .validate(&instance, Some(&database))
            .expect("validate");
    });
    let lines: Vec<&str> = logs.lines().collect();
    let logged = |text: &str| {
        lines
            .iter()
            .any(|line| line.contains(text) && line.contains("plugin=endless-loop"))
    };
    assert!(
        logged("validating instance pg-main"),
        "the log import:\n{logs}"
    );
    assert!(logged("validate called for pg-main"), "stdout:\n{logs}");
}

#[test]
fn a_panic_message_is_logged_from_stderr() {
    let logs = captured_logs(|| {
        let runtime = runtime();
        let plugin = load(&runtime, "panic.wasm", fixtures::PANIC);
        let _ = plugin.backup(&common::backup_request());
    });
    assert!(
        logs.lines().any(|line| line.contains("WARN")
            && line.contains("fixture panics on purpose while backing up orders")
            && line.contains("stream=\"stderr\"")
            && line.contains("plugin=panic")),
        "{logs}"
    );
}

#[test]
fn invalid_settings_are_refused_naming_the_field() {
    let error = PluginRuntime::new(RuntimeConfig {
        memory_limit_bytes: 4096,
        ..Default::default()
    })
    .err()
    .expect("a 4 KiB memory limit is refused");
    assert!(error.to_string().contains("memory_limit_bytes"), "{error}");
}
