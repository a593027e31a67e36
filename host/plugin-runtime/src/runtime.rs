use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use crate::bindings::{self, EnginePre};
use crate::cache::DiskCache;
use crate::config::{InstanceAllocation, RuntimeConfig};
use crate::plugin::{CodeSource, Plugin, PluginInner, Sandbox};
use crate::sandbox::State;
use crate::{PluginId, RuntimeError, policy};

/// Loads plugins and runs them in sandboxes. Cheap to clone; every clone shares one engine,
/// one compiled-code cache and one deadline ticker.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    pub(crate) config: RuntimeConfig,
    /// `Some(limit)` when instances come from a pool of that many slots.
    pub(crate) pool_slots: Option<u32>,
    disk_cache: Option<DiskCache>,
    /// Loaded plugins by digest. Weak, so dropping every handle to a plugin frees its code.
    loaded: Mutex<HashMap<String, Weak<PluginInner>>>,
}

/// Upper bounds on the parts of one plugin component, for sizing the pool. A Rust
/// `wasm32-wasip2` component has a handful of core instances (the program, the WASI adapter,
/// shims), one or two memories and a few tables; these leave room for other toolchains.
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const POOL_MEMORIES_PER_COMPONENT: u32 = 4;
const POOL_TABLES_PER_COMPONENT: u32 = 8;
/// Memory a pool slot keeps mapped between calls. A fresh instance otherwise takes a page fault
/// for every page it touches (the shadow stack, the heap), which dominated the cost of a call.
/// With `PAGEMAP_SCAN` (Linux 6.7+) only the pages a call dirtied are reset.
const POOL_KEEP_RESIDENT_BYTES: usize = 4 << 20;
const POOL_KEEP_RESIDENT_TABLE_BYTES: usize = 256 << 10;

impl PluginRuntime {
    /// Starts an engine with `config`'s limits and the thread that advances deadlines.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config.validate()?;
        let (engine, pool_slots) = match config.instance_allocation {
            InstanceAllocation::OnDemand => (engine(&config, None).map_err(setup_error)?, None),
            InstanceAllocation::Pooling {
                max_concurrent_calls,
            } => {
                let engine = engine(&config, Some(max_concurrent_calls)).map_err(|error| {
                    RuntimeError::Setup {
                        message: format!(
                            "{error:#}; the instance pool reserves virtual memory up front: \
                             raise the process's virtual memory limit or use on-demand \
                             instance allocation"
                        ),
                    }
                })?;
                (engine, Some(max_concurrent_calls))
            }
            InstanceAllocation::Auto {
                max_concurrent_calls,
            } => match engine(&config, Some(max_concurrent_calls)) {
                Ok(engine) => (engine, Some(max_concurrent_calls)),
                Err(error) => {
                    tracing::info!(
                        "instance pool unavailable, allocating plugin memory per call: {error:#}"
                    );
                    (engine(&config, None).map_err(setup_error)?, None)
                }
            },
        };

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup_error)?;
        bindings::add_to_linker(&mut linker).map_err(setup_error)?;

        spawn_ticker(engine.weak(), config.epoch_tick)?;

        let disk_cache = config
            .cache_dir
            .clone()
            .map(|dir| DiskCache::new(dir, &engine));
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config,
                pool_slots,
                disk_cache,
                loaded: Mutex::default(),
            }),
        })
    }

    /// The configuration the runtime was started with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Whether per-call instances come from a preallocated pool (see
    /// [`InstanceAllocation`]).
    pub fn uses_instance_pool(&self) -> bool {
        self.inner.pool_slots.is_some()
    }

    /// Compiles (or finds cached) `wasm`, checks its contract version and imports, and calls
    /// `describe()` once. `name_hint` (a file name, `builtin:postgres` ...) names the plugin in
    /// errors until `describe()` has answered with the engine's own name.
    pub fn load(&self, name_hint: &str, wasm: &[u8]) -> Result<Plugin, RuntimeError> {
        let digest = digest_of(wasm);
        if let Some(plugin) = self.inner.find_loaded(&digest) {
            return Ok(plugin);
        }
        let hinted = Arc::new(PluginId::new(name_hint, digest.clone()));
        let (component, compiled_now) = self.inner.compile(&hinted, wasm)?;

        let component_type = component.component_type();
        let engine = &self.inner.engine;
        let imports: Vec<String> = component_type
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports: Vec<String> = component_type
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        // Version first: a plugin built for another contract also imports that contract's host
        // interface, and "wrong version" is the message that helps.
        let version = policy::api_version(&hinted, &exports)?;
        policy::check_imports(&hinted, version, &imports)?;

        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|error| RuntimeError::Instantiate {
                plugin: (*hinted).clone(),
                message: format!("{error:#}"),
            })?;
        let pre =
            EnginePre::new(version, instance_pre).map_err(|error| RuntimeError::Instantiate {
                plugin: (*hinted).clone(),
                message: format!(
                    "its exports do not match kci:engine@{}: {error:#}",
                    version.as_str()
                ),
            })?;

        let mut sandbox = Sandbox {
            runtime: self.inner.clone(),
            id: hinted.clone(),
            pre,
        };
        let info = sandbox.call("describe", |instance, store| instance.describe(store))?;
        if info.name.trim().is_empty() || info.name.trim() != info.name {
            return Err(RuntimeError::InvalidInfo {
                plugin: (*hinted).clone(),
                problem: format!("engine name {:?} is empty or padded", info.name),
            });
        }
        if info.api_version != version.as_str() {
            tracing::warn!(
                plugin = %info.name, digest = %digest,
                "describe() reports api-version {} but the component exports kci:engine@{}",
                info.api_version,
                version.as_str()
            );
        }
        sandbox.id = Arc::new(PluginId::new(info.name.clone(), digest.clone()));

        if compiled_now && let Some(cache) = &self.inner.disk_cache {
            cache.store(&sandbox.id, &component);
        }
        tracing::info!(
            plugin = %info.name, digest = %digest, version = %info.version,
            api_version = version.as_str(), "loaded plugin"
        );
        let plugin = Plugin::new(PluginInner {
            sandbox,
            info,
            imports,
            exports,
            code_source: if compiled_now {
                CodeSource::Compiled
            } else {
                CodeSource::DiskCache
            },
        });
        self.inner.remember(&digest, &plugin);
        Ok(plugin)
    }

    /// [`load`](Self::load), refusing bytes whose digest is not `expected_digest`
    /// (`sha256:<hex>`, as [`Plugin::digest`] prints it) before compiling anything.
    pub fn load_pinned(
        &self,
        name_hint: &str,
        wasm: &[u8],
        expected_digest: &str,
    ) -> Result<Plugin, RuntimeError> {
        let found = digest_of(wasm);
        let plugin = || PluginId::new(name_hint, found.clone());
        let expected = expected_digest.trim().to_ascii_lowercase();
        let well_formed = expected
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()));
        if !well_formed {
            return Err(RuntimeError::InvalidDigest {
                plugin: plugin(),
                pinned: expected_digest.to_owned(),
            });
        }
        if expected != found {
            return Err(RuntimeError::DigestMismatch {
                plugin: plugin(),
                expected,
                found: found.clone(),
            });
        }
        self.load(name_hint, wasm)
    }

    /// Reads and [`load`](Self::load)s a `.wasm` file, named by its file name until
    /// `describe()` answers.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, RuntimeError> {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let wasm = std::fs::read(path).map_err(|source| RuntimeError::Io {
            name: name.clone(),
            path: path.to_path_buf(),
            source,
        })?;
        self.load(&name, &wasm)
    }
}

impl RuntimeInner {
    /// A store for one call (or one warm instance): fresh WASI context, memory cap, deadline.
    pub(crate) fn new_store(&self, plugin: &Arc<PluginId>) -> Store<State> {
        let mut store = Store::new(&self.engine, State::new(plugin, &self.config));
        store.limiter(|state| &mut state.limits);
        self.arm_deadline(&mut store);
        store
    }

    pub(crate) fn arm_deadline(&self, store: &mut Store<State>) {
        store.set_epoch_deadline(self.config.deadline_ticks());
        store.epoch_deadline_trap();
    }

    /// The component from the disk cache, or freshly compiled (`true`).
    fn compile(&self, plugin: &PluginId, wasm: &[u8]) -> Result<(Component, bool), RuntimeError> {
        if let Some(component) = self
            .disk_cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, plugin))
        {
            return Ok((component, false));
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|error| RuntimeError::Compile {
                plugin: plugin.clone(),
                message: format!("{error:#}"),
            })?;
        Ok((component, true))
    }

    fn find_loaded(&self, digest: &str) -> Option<Plugin> {
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded
            .get(digest)
            .and_then(Weak::upgrade)
            .map(Plugin::from_inner)
    }

    fn remember(&self, digest: &str, plugin: &Plugin) {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.retain(|_, plugin| plugin.strong_count() > 0);
        loaded.insert(digest.to_owned(), plugin.downgrade());
    }
}

/// `sha256:<hex>` of the component bytes: the plugin's identity in logs, status and pins.
pub(crate) fn digest_of(wasm: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(wasm)))
}

fn engine(config: &RuntimeConfig, pool_slots: Option<u32>) -> wasmtime::Result<Engine> {
    let mut wasm = wasmtime::Config::new();
    wasm.epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack_bytes)
        .parallel_compilation(true);
    if let Some(slots) = pool_slots {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(POOL_CORE_INSTANCES_PER_COMPONENT))
            .total_memories(slots.saturating_mul(POOL_MEMORIES_PER_COMPONENT))
            .total_tables(slots.saturating_mul(POOL_TABLES_PER_COMPONENT))
            .max_memories_per_component(POOL_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(POOL_TABLES_PER_COMPONENT)
            // The store limit is what plugins hit; the pool only has to be at least as large.
            .max_memory_size(config.memory_limit_bytes)
            .linear_memory_keep_resident(POOL_KEEP_RESIDENT_BYTES.min(config.memory_limit_bytes))
            .table_keep_resident(POOL_KEEP_RESIDENT_TABLE_BYTES)
            .pagemap_scan(Enabled::Auto);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm)
}

fn setup_error(error: wasmtime::Error) -> RuntimeError {
    RuntimeError::Setup {
        message: format!("{error:#}"),
    }
}

/// Advances the engine's epoch every `tick` until the engine is gone. It holds only a weak
/// reference, so it never keeps a dropped runtime alive.
fn spawn_ticker(engine: EngineWeak, tick: Duration) -> Result<(), RuntimeError> {
    std::thread::Builder::new()
        .name("dbo-plugin-deadlines".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(|error| RuntimeError::Setup {
            message: format!("cannot start the plugin deadline thread: {error}"),
        })
}
