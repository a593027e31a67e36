//! The sandbox that runs db-operator engine plugins: WebAssembly components implementing the
//! `kci:engine` WIT contract, executed with wasmtime.
//!
//! This crate knows wasmtime, not Kubernetes. It hands out [`Plugin`]s that implement
//! [`dbo_engine::Engine`], so the renderer and the controllers call a sandboxed plugin exactly
//! like native code.
//!
//! What a plugin gets, and what it does not:
//! - **Load time**: the component is identified by the sha256 of its bytes, must export a
//!   supported contract version and may import only the contract's host interface and the WASI
//!   interfaces a plain Rust guest needs ([`RuntimeError::ForbiddenImport`] otherwise). Its
//!   `describe()` is called once.
//! - **Every call**: a fresh store and instance with a deadline
//!   ([`RuntimeConfig::call_timeout`]), a memory cap and an output cap; deny-all WASI (no files,
//!   environment, arguments, network; stdin closed; stdout/stderr captured and logged).
//!   Whatever goes wrong becomes a [`RuntimeError`] naming the plugin and its digest, never a
//!   host crash.
//! - **Compiled code** is kept per runtime and, with [`RuntimeConfig::cache_dir`], on disk.
//!
//! ```no_run
//! use dbo_engine::Engine;
//! use dbo_plugin_runtime::{PluginRuntime, RuntimeConfig};
//!
//! let runtime = PluginRuntime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load_file("postgres.wasm".as_ref())?;
//! println!("{} {} ({})", plugin.info().name, plugin.info().version, plugin.digest());
//! # Ok::<(), dbo_plugin_runtime::RuntimeError>(())
//! ```

mod bindings;
mod cache;
mod config;
mod error;
mod plugin;
mod policy;
mod runtime;
mod sandbox;

pub use config::{InstanceAllocation, RuntimeConfig};
pub use error::{PluginId, RuntimeError};
pub use plugin::{CodeSource, Plugin, WarmInstance};
pub use runtime::PluginRuntime;

/// The contract versions (`kci:engine@<version>`) this runtime can call, oldest first.
pub fn supported_api_versions() -> Vec<String> {
    bindings::ApiVersion::supported()
}

// The renderer and controllers share plugins across threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PluginRuntime>();
    shareable::<Plugin>();
    shareable::<WarmInstance>();
};
