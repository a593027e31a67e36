//! The engines a running operator serves, as the controllers see them: an [`Engine`] plus the
//! identity of the plugin behind it (recorded in status so users can tell which build ran).
//! The controllers never see wasmtime; `db-operator` fills the catalog from the plugin runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use dbo_api::PluginStatus;
use dbo_engine::Engine;

/// One engine as served: the callable engine and the plugin that implements it.
#[derive(Clone)]
pub struct ServedEngine {
    pub engine: Arc<dyn Engine>,
    pub plugin: PluginStatus,
}

impl std::fmt::Debug for ServedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedEngine")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// Engines by the name users write in `DbInstance.spec.engine`.
pub trait EngineCatalog: Send + Sync + 'static {
    fn engine(&self, name: &str) -> Option<ServedEngine>;
    /// Every served engine name, for "available engines" messages.
    fn names(&self) -> Vec<String>;
    /// Why the engine `name` is not served although a plugin for it was found (its digest does
    /// not match the pinned one, say), for the conditions of the objects that need it.
    fn refused(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// A catalog fixed at start-up.
#[derive(Clone, Debug, Default)]
pub struct StaticCatalog {
    engines: BTreeMap<String, ServedEngine>,
    refused: BTreeMap<String, String>,
}

impl StaticCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `engine` under `name`, replacing an engine of that name.
    pub fn insert(&mut self, name: impl Into<String>, engine: ServedEngine) {
        let name = name.into();
        self.refused.remove(&name);
        self.engines.insert(name, engine);
    }

    /// Serves no engine `name`, and says `why` wherever it is needed.
    pub fn refuse(&mut self, name: impl Into<String>, why: impl Into<String>) {
        let name = name.into();
        self.engines.remove(&name);
        self.refused.insert(name, why.into());
    }
}

impl EngineCatalog for StaticCatalog {
    fn engine(&self, name: &str) -> Option<ServedEngine> {
        self.engines.get(name).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.engines.keys().cloned().collect()
    }

    fn refused(&self, name: &str) -> Option<String> {
        self.refused.get(name).cloned()
    }
}

/// Adapts one served engine to the renderer's [`dbo_render::Engines`].
pub(crate) struct Single<'a> {
    pub name: &'a str,
    pub engine: &'a dyn Engine,
    pub all_names: Vec<String>,
}

impl dbo_render::Engines for Single<'_> {
    fn engine(&self, name: &str) -> Option<&dyn Engine> {
        (name == self.name).then_some(self.engine)
    }

    fn names(&self) -> Vec<String> {
        self.all_names.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_engine_is_not_served_and_says_why() {
        let mut catalog = StaticCatalog::new();
        catalog.refuse("redis", "digest sha256:aa is not the pinned sha256:bb");
        assert!(catalog.engine("redis").is_none());
        assert!(
            catalog.names().is_empty(),
            "a refused engine is not available"
        );
        assert_eq!(
            catalog.refused("redis").as_deref(),
            Some("digest sha256:aa is not the pinned sha256:bb")
        );
        assert_eq!(catalog.refused("postgres"), None);
    }
}
