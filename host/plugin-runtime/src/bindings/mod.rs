//! One module per supported WIT version of the plugin contract, each converting into the single
//! internal model in [`dbo_engine`], so nothing outside this directory sees a versioned type.
//!
//! Wasmtime matches records and variants exactly, so a released `wit/vX.Y/` is frozen and a
//! changed contract is a new version that lives beside the old ones. To support `wit/v0.2/`:
//!
//! 1. Copy `v0_1.rs` to `v0_2.rs` and point its `bindgen!` at `../../wit/v0.2`.
//! 2. Adjust the conversions in `v0_2.rs` to the new types. Where v0.2 adds a field, fill the
//!    internal model's field there; where the internal model gains a field older plugins cannot
//!    provide, give it its default in `v0_1.rs`. Never make `dbo_engine` versioned.
//! 3. Add `V0_2` to [`ApiVersion`] (and to `ApiVersion::ALL`, making it `NEWEST`),
//!    [`EnginePre`] and [`EngineInstance`], one arm to each `match` below (the compiler lists
//!    them), and call `v0_2::add_to_linker` in [`add_to_linker`]. The linker then serves
//!    `kci:engine/host@0.2.0` beside `@0.1.0`.
//! 4. Add a fixture plugin built against v0.2 and extend `tests/sandbox.rs`.
//!
//! Older versions stay until the operator drops them in a release note.

pub(crate) mod v0_1;

use dbo_engine::{
    BackupRequest, CommissionRequest, CredentialLayout, Database, Diagnostic, EngineInfo, Instance,
    JobSpec, PluginError, RestoreRequest,
};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::sandbox::State;

/// A contract version this host can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V0_1,
}

impl ApiVersion {
    pub(crate) const ALL: &[ApiVersion] = &[ApiVersion::V0_1];
    /// What a plugin should be built against; named in "missing export" errors.
    pub(crate) const NEWEST: ApiVersion = ApiVersion::V0_1;

    /// The package version as it appears in the component's export names.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::V0_1 => v0_1::VERSION,
        }
    }

    pub(crate) fn from_package_version(version: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == version)
    }

    pub(crate) fn supported() -> Vec<String> {
        Self::ALL.iter().map(|v| v.as_str().to_owned()).collect()
    }
}

/// Adds the host imports of every supported version.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)
}

/// A component linked and type-checked for its version, ready to instantiate per call.
#[derive(Clone)]
pub(crate) enum EnginePre {
    V0_1(v0_1::EnginePluginPre<State>),
}

impl EnginePre {
    pub(crate) fn new(version: ApiVersion, pre: InstancePre<State>) -> wasmtime::Result<Self> {
        Ok(match version {
            ApiVersion::V0_1 => Self::V0_1(v0_1::EnginePluginPre::new(pre)?),
        })
    }

    pub(crate) fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<EngineInstance> {
        Ok(match self {
            Self::V0_1(pre) => EngineInstance::V0_1(pre.instantiate(store)?),
        })
    }
}

/// An instantiated plugin. Every method converts the request into the plugin's version and the
/// answer back into the internal model.
pub(crate) enum EngineInstance {
    V0_1(v0_1::EnginePlugin),
}

impl EngineInstance {
    pub(crate) fn describe(&self, store: &mut Store<State>) -> wasmtime::Result<EngineInfo> {
        match self {
            Self::V0_1(plugin) => v0_1::describe(plugin, store),
        }
    }

    pub(crate) fn validate(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
        database: Option<&Database>,
    ) -> wasmtime::Result<Vec<Diagnostic>> {
        match self {
            Self::V0_1(plugin) => v0_1::validate(plugin, store, instance, database),
        }
    }

    pub(crate) fn credentials(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
        database: &Database,
    ) -> wasmtime::Result<Result<CredentialLayout, PluginError>> {
        match self {
            Self::V0_1(plugin) => v0_1::credentials(plugin, store, instance, database),
        }
    }

    pub(crate) fn backup(
        &self,
        store: &mut Store<State>,
        request: &BackupRequest,
    ) -> wasmtime::Result<Result<JobSpec, PluginError>> {
        match self {
            Self::V0_1(plugin) => v0_1::backup(plugin, store, request),
        }
    }

    pub(crate) fn commission(
        &self,
        store: &mut Store<State>,
        request: &CommissionRequest,
    ) -> wasmtime::Result<Result<Option<JobSpec>, PluginError>> {
        match self {
            Self::V0_1(plugin) => v0_1::commission(plugin, store, request),
        }
    }

    pub(crate) fn restore(
        &self,
        store: &mut Store<State>,
        request: &RestoreRequest,
    ) -> wasmtime::Result<Result<JobSpec, PluginError>> {
        match self {
            Self::V0_1(plugin) => v0_1::restore(plugin, store, request),
        }
    }
}
