use std::sync::{Arc, Mutex, Weak};

use dbo_engine::{
    BackupRequest, CallError, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
    EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use crate::bindings::{EngineInstance, EnginePre};
use crate::runtime::RuntimeInner;
use crate::sandbox::{State, truncate};
use crate::{PluginId, RuntimeError};

/// A loaded, checked plugin. Cheap to clone; every call runs in a fresh sandbox, so one
/// misbehaving call cannot affect the next.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub(crate) sandbox: Sandbox,
    pub(crate) info: EngineInfo,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
    pub(crate) code_source: CodeSource,
}

/// Where a plugin's machine code came from when it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// Compiled from the `.wasm` bytes (and written to the disk cache, if one is configured).
    Compiled,
    /// Deserialized from `RuntimeConfig::cache_dir`.
    DiskCache,
}

impl Plugin {
    pub(crate) fn new(inner: PluginInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn from_inner(inner: Arc<PluginInner>) -> Self {
        Self { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<PluginInner> {
        Arc::downgrade(&self.inner)
    }

    /// What the plugin's `describe()` answered when it was loaded.
    pub fn info(&self) -> &EngineInfo {
        &self.inner.info
    }

    /// `sha256:<hex>` of the component bytes.
    pub fn digest(&self) -> &str {
        &self.inner.sandbox.id.digest
    }

    /// The engine name and digest, as errors print them.
    pub fn id(&self) -> &PluginId {
        &self.inner.sandbox.id
    }

    /// The component's import names, e.g. `wasi:cli/stderr@0.2.6`.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// The component's export names, e.g. `kci:engine/engine@0.1.0`.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// Whether loading compiled the component or found it in the disk cache.
    pub fn code_source(&self) -> CodeSource {
        self.inner.code_source
    }

    /// One instance whose store is reused across calls: for benchmarks and hot loops over
    /// trusted input. Each call still gets the full deadline and output cap; memory is capped
    /// for the instance's whole life. After any failure of the sandbox (not an error the plugin
    /// returns) it refuses further calls.
    pub fn warm(&self) -> Result<WarmInstance, RuntimeError> {
        let sandbox = &self.inner.sandbox;
        let mut store = sandbox.runtime.new_store(&sandbox.id);
        store.data_mut().begin_call("instantiate");
        let instance = sandbox.pre.instantiate(&mut store);
        let instance = sandbox.finish("instantiate", &mut store, instance)?;
        Ok(WarmInstance {
            plugin: self.clone(),
            state: Mutex::new(Warm {
                store,
                instance,
                poisoned: false,
            }),
        })
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.info.name)
            .field("digest", &self.digest())
            .finish_non_exhaustive()
    }
}

/// What it takes to run one call: the runtime (engine, limits), who the plugin is, and the
/// pre-linked component.
pub(crate) struct Sandbox {
    pub(crate) runtime: Arc<RuntimeInner>,
    pub(crate) id: Arc<PluginId>,
    pub(crate) pre: EnginePre,
}

impl Sandbox {
    /// Runs `call` in a fresh store and instance.
    pub(crate) fn call<T: OutputSize>(
        &self,
        function: &'static str,
        call: impl FnOnce(&EngineInstance, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        let mut store = self.runtime.new_store(&self.id);
        store.data_mut().begin_call(function);
        let answer = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| call(&instance, &mut store));
        let answer = self.finish(function, &mut store, answer)?;
        self.check_output(function, answer)
    }

    /// Logs what the call printed and turns a wasmtime failure into the error a user can act on.
    fn finish<T>(
        &self,
        function: &'static str,
        store: &mut Store<State>,
        answer: wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        let stderr = store.data_mut().end_call();
        answer.map_err(|error| self.classify(function, store, &error, &stderr))
    }

    fn classify(
        &self,
        function: &'static str,
        store: &Store<State>,
        error: &wasmtime::Error,
        stderr: &str,
    ) -> RuntimeError {
        let plugin = (*self.id).clone();
        let config = &self.runtime.config;
        tracing::debug!(
            plugin = %plugin.name, digest = %plugin.digest, function,
            "plugin call failed: {error:?}"
        );
        if store.data().limits.memory_exceeded {
            return RuntimeError::MemoryLimit {
                plugin,
                function,
                limit_bytes: config.memory_limit_bytes,
            };
        }
        if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
            return RuntimeError::DeadlineExceeded {
                plugin,
                function,
                limit: config.call_timeout,
            };
        }
        if error.is::<PoolConcurrencyLimitError>() {
            return RuntimeError::Busy {
                plugin,
                limit: self.runtime.pool_slots.unwrap_or_default(),
            };
        }
        let mut message = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => error.root_cause().to_string(),
        };
        let said = panic_report(stderr);
        if !said.is_empty() {
            message.push_str("; it wrote to stderr: ");
            message.push_str(&said);
        }
        RuntimeError::Trap {
            plugin,
            function,
            message,
        }
    }

    fn check_output<T: OutputSize>(
        &self,
        function: &'static str,
        answer: T,
    ) -> Result<T, RuntimeError> {
        let bytes = answer.output_bytes();
        let limit = self.runtime.config.max_output_bytes;
        if bytes > limit {
            return Err(RuntimeError::OutputTooLarge {
                plugin: (*self.id).clone(),
                function,
                bytes,
                limit,
            });
        }
        Ok(answer)
    }
}

/// Stderr of a crashed call as one line for an error message: a Rust panic prints
/// `thread '…' panicked at src/lib.rs:3:5:` and the message on the next line.
fn panic_report(stderr: &str) -> String {
    const MAX_REPORT_BYTES: usize = 2 << 10;
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    truncate(&lines.join(" "), MAX_REPORT_BYTES).into_owned()
}

/// A plugin instance whose store is reused across calls (see [`Plugin::warm`]).
pub struct WarmInstance {
    plugin: Plugin,
    state: Mutex<Warm>,
}

struct Warm {
    store: Store<State>,
    instance: EngineInstance,
    poisoned: bool,
}

impl WarmInstance {
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn call<T: OutputSize>(
        &self,
        function: &'static str,
        call: impl FnOnce(&EngineInstance, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        let sandbox = &self.plugin.inner.sandbox;
        let poisoned = || RuntimeError::Poisoned {
            plugin: (*sandbox.id).clone(),
        };
        // A panic while the lock was held may have left the store mid-call.
        let mut warm = self.state.lock().map_err(|_| poisoned())?;
        if warm.poisoned {
            return Err(poisoned());
        }
        let Warm {
            store, instance, ..
        } = &mut *warm;
        sandbox.runtime.arm_deadline(store);
        store.data_mut().begin_call(function);
        let answer = call(instance, store);
        let answer = sandbox.finish(function, store, answer);
        // Wasmtime does not allow re-entering an instance after a trap.
        warm.poisoned = answer.is_err();
        sandbox.check_output(function, answer?)
    }
}

/// Bytes of text in an answer, checked against `RuntimeConfig::max_output_bytes`.
pub(crate) trait OutputSize {
    fn output_bytes(&self) -> usize;
}

impl OutputSize for String {
    fn output_bytes(&self) -> usize {
        self.len()
    }
}

impl<T: OutputSize> OutputSize for Option<T> {
    fn output_bytes(&self) -> usize {
        self.as_ref().map_or(0, OutputSize::output_bytes)
    }
}

impl<T: OutputSize> OutputSize for Vec<T> {
    fn output_bytes(&self) -> usize {
        self.iter().map(OutputSize::output_bytes).sum()
    }
}

impl<T: OutputSize, E: OutputSize> OutputSize for Result<T, E> {
    fn output_bytes(&self) -> usize {
        match self {
            Ok(value) => value.output_bytes(),
            Err(error) => error.output_bytes(),
        }
    }
}

impl OutputSize for EngineInfo {
    fn output_bytes(&self) -> usize {
        let images: usize = self
            .images
            .iter()
            .map(|image| image.role.len() + image.reference.len())
            .sum();
        self.name.len()
            + self.version.len()
            + self.api_version.len()
            + self.options_schema.len()
            + images
    }
}

impl OutputSize for Diagnostic {
    fn output_bytes(&self) -> usize {
        self.field.len() + self.message.len()
    }
}

impl OutputSize for CredentialLayout {
    fn output_bytes(&self) -> usize {
        let templates: usize = self
            .templates
            .iter()
            .map(|(key, template)| key.len() + template.len())
            .sum();
        self.database_name.len()
            + self.user_name.len()
            + self.database_key.len()
            + self.user_key.len()
            + self.password_key.len()
            + templates
    }
}

impl OutputSize for JobSpec {
    fn output_bytes(&self) -> usize {
        self.pod_spec.len()
    }
}

impl OutputSize for PluginError {
    fn output_bytes(&self) -> usize {
        match self {
            Self::Invalid(diagnostics) => diagnostics.output_bytes(),
            Self::Unsupported(message) | Self::Internal(message) => message.len(),
        }
    }
}

/// Something that runs one plugin call: a fresh sandbox per call for [`Plugin`], the kept store
/// for [`WarmInstance`].
trait Caller {
    fn plugin(&self) -> &Plugin;

    fn call<T: OutputSize>(
        &self,
        function: &'static str,
        call: impl FnOnce(&EngineInstance, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError>;

    /// Splits "the sandbox failed" from "the engine answered with an error".
    fn answer<T>(
        &self,
        result: Result<Result<T, PluginError>, RuntimeError>,
    ) -> Result<T, CallError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Plugin {
                engine: self.plugin().info().name.clone(),
                error,
            }),
            Err(error) => Err(runtime_error(error)),
        }
    }
}

impl Caller for Plugin {
    fn plugin(&self) -> &Plugin {
        self
    }

    fn call<T: OutputSize>(
        &self,
        function: &'static str,
        call: impl FnOnce(&EngineInstance, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        self.inner.sandbox.call(function, call)
    }
}

impl Caller for WarmInstance {
    fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn call<T: OutputSize>(
        &self,
        function: &'static str,
        call: impl FnOnce(&EngineInstance, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        WarmInstance::call(self, function, call)
    }
}

fn runtime_error(error: RuntimeError) -> CallError {
    CallError::Runtime(Box::new(error))
}

// `Engine` is foreign, so it cannot be implemented for every `Caller` at once.
macro_rules! impl_engine {
    ($type:ty) => {
        impl Engine for $type {
            /// The answer `describe()` gave at load time: plugins are pure, so asking again
            /// could only cost time.
            fn describe(&self) -> Result<EngineInfo, CallError> {
                Ok(self.plugin().info().clone())
            }

            fn validate(
                &self,
                instance: &Instance,
                database: Option<&Database>,
            ) -> Result<Vec<Diagnostic>, CallError> {
                Caller::call(self, "validate", |guest, store| {
                    guest.validate(store, instance, database)
                })
                .map_err(runtime_error)
            }

            fn credentials(
                &self,
                instance: &Instance,
                database: &Database,
            ) -> Result<CredentialLayout, CallError> {
                self.answer(Caller::call(self, "credentials", |guest, store| {
                    guest.credentials(store, instance, database)
                }))
            }

            fn backup(&self, request: &BackupRequest) -> Result<JobSpec, CallError> {
                self.answer(Caller::call(self, "backup", |guest, store| {
                    guest.backup(store, request)
                }))
            }

            fn commission(
                &self,
                request: &CommissionRequest,
            ) -> Result<Option<JobSpec>, CallError> {
                self.answer(Caller::call(self, "commission", |guest, store| {
                    guest.commission(store, request)
                }))
            }

            fn restore(&self, request: &RestoreRequest) -> Result<JobSpec, CallError> {
                self.answer(Caller::call(self, "restore", |guest, store| {
                    guest.restore(store, request)
                }))
            }
        }
    };
}

impl_engine!(Plugin);
impl_engine!(WarmInstance);
