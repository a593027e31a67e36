//! Compiled components on disk, so a restarted operator deserializes in well under a
//! millisecond instead of compiling for tens of milliseconds.
//!
//! A file is named by the sha256 of the component and a hash of everything in the engine that
//! affects compiled code (wasmtime version, target, settings), so a file is only ever read by
//! an engine that could have written it. Every failure here is logged and answered by
//! compiling: the cache can make loading faster, never make it fail.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::PluginId;

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_hash: String,
}

impl DiskCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        // `DefaultHasher::new()` is deterministic for a given Rust release. Another release may
        // pick other file names; that costs one compile, never a wrong load, because wasmtime
        // checks compatibility again when deserializing.
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{hex}-{}.cwasm", self.engine_hash))
    }

    /// The cached compilation of `plugin`, if there is a usable one.
    pub(crate) fn load(&self, engine: &Engine, plugin: &PluginId) -> Option<Component> {
        let path = self.path(&plugin.digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(
                    plugin = %plugin.name, digest = %plugin.digest, path = %path.display(),
                    "cannot read cached compiled plugin, compiling instead: {error}"
                );
                return None;
            }
        };
        // SAFETY: `Component::deserialize` trusts its input to be wasmtime output. The file was
        // written by `store` below for an engine with the same compatibility hash, and
        // `RuntimeConfig::cache_dir` documents that the directory must be writable by the
        // operator alone. Reading into memory (rather than `deserialize_file`, which maps the
        // file) means a later change to the file cannot change code that is already loaded.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => {
                tracing::debug!(
                    plugin = %plugin.name, digest = %plugin.digest, path = %path.display(),
                    "loaded compiled plugin from cache"
                );
                Some(component)
            }
            Err(error) => {
                tracing::warn!(
                    plugin = %plugin.name, digest = %plugin.digest, path = %path.display(),
                    "cached compiled plugin is unusable, compiling again: {error:#}"
                );
                None
            }
        }
    }

    /// Writes `component` for the next start; a failure only costs that start a compile.
    pub(crate) fn store(&self, plugin: &PluginId, component: &Component) {
        let path = self.path(&plugin.digest);
        let result = component
            .serialize()
            .map_err(|error| format!("{error:#}"))
            .and_then(|bytes| write_atomically(&path, &bytes).map_err(|error| error.to_string()));
        match result {
            Ok(()) => tracing::debug!(
                plugin = %plugin.name, digest = %plugin.digest, path = %path.display(),
                "cached compiled plugin"
            ),
            Err(error) => tracing::warn!(
                plugin = %plugin.name, digest = %plugin.digest, path = %path.display(),
                "cannot cache compiled plugin: {error}"
            ),
        }
    }
}

/// Writes to a temporary file in the same directory and renames it into place, so a reader (or
/// another operator replica sharing the directory) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            // Best effort: a stray temporary file is harmless but untidy.
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}
