//! Which engine plugins serve which engine names: the built-ins compiled into the binary, every
//! `*.wasm` of a plugin directory, and `--plugin NAME=FILE` overrides — optionally pinned to a
//! sha256 digest. `render`, `dev` and `run` take the same flags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbo_api::PluginStatus;
use dbo_controller::{ServedEngine, StaticCatalog};
use dbo_plugin_runtime::{Plugin, PluginRuntime};

use crate::cli::CliError;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct EngineArgs {
    /// Serve an engine from a plugin file instead of (or besides) the built-in ones: `NAME=FILE.wasm`.
    #[arg(long = "plugin", value_name = "NAME=FILE")]
    pub plugins: Vec<String>,
    /// Load every `*.wasm` in DIR as an engine plugin, named by the plugin itself; a plugin
    /// overrides the built-in engine of the same name.
    #[arg(long, env = "DBO_PLUGIN_DIR", value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Refuse to serve engine NAME unless its plugin has this digest: `NAME=sha256:HEX`
    /// (repeatable, or comma-separated in the environment variable).
    #[arg(
        long = "plugin-digest",
        env = "DBO_PLUGIN_DIGESTS",
        value_name = "NAME=sha256:HEX",
        value_delimiter = ','
    )]
    pub digests: Vec<String>,
}

/// Where a served plugin came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Builtin,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built into db-operator"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn plugin_err(e: dbo_plugin_runtime::RuntimeError) -> CliError {
    CliError::Plugin(Box::new(e))
}

/// What `run` and `dev` serve: the engines by name, and the engines whose plugin was found but
/// refused (a pinned digest that does not match), with the reason.
pub struct Loaded {
    pub engines: BTreeMap<String, Plugin>,
    pub refused: BTreeMap<String, String>,
}

/// Loads every engine the flags ask for, for serving. A plugin whose digest does not match its
/// pin is not served, but the operator keeps serving the others and every DbInstance of that
/// engine says why (condition `PluginRefused`): one bad rollout of one plugin must not stop
/// every database. Malformed flags still fail at start.
pub fn load(runtime: &PluginRuntime, args: &EngineArgs) -> Result<Loaded, CliError> {
    let (engines, mismatches) = load_checked(runtime, args, None)?;
    let mut loaded = Loaded {
        engines,
        refused: BTreeMap::new(),
    };
    for mismatch in mismatches {
        if let CliError::DigestMismatch { name, .. } = &mismatch {
            tracing::error!(engine = %name, "{mismatch}");
            loaded.engines.remove(name);
            loaded.refused.insert(name.clone(), mismatch.to_string());
        }
    }
    Ok(loaded)
}

/// Like [`load`], but compiles a built-in engine only when `wanted` names it (or a digest pins
/// it): `render` serves the engines of its manifests and need not compile the others.
/// Plugin-directory and `--plugin` files are always loaded, since only loading tells which
/// engine a file serves.
/// A pinned digest that does not match is an error here: `render` is a one-shot command.
pub fn load_only(
    runtime: &PluginRuntime,
    args: &EngineArgs,
    wanted: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, Plugin>, CliError> {
    let (engines, mut mismatches) = load_checked(runtime, args, wanted)?;
    match mismatches.pop() {
        Some(mismatch) => Err(mismatch),
        None => Ok(engines),
    }
}

/// The engines, and a [`CliError::DigestMismatch`] per engine whose digest is not its pin.
fn load_checked(
    runtime: &PluginRuntime,
    args: &EngineArgs,
    wanted: Option<&BTreeSet<String>>,
) -> Result<(BTreeMap<String, Plugin>, Vec<CliError>), CliError> {
    let pinned: BTreeSet<&str> = args
        .digests
        .iter()
        .filter_map(|p| p.trim().split_once('=').map(|(n, _)| n))
        .collect();
    let mut engines: BTreeMap<String, (Plugin, Origin)> = BTreeMap::new();
    for (name, wasm) in dbo_plugin_artifacts::builtin_engines() {
        if wanted.is_some_and(|w| !w.contains(*name)) && !pinned.contains(name) {
            continue;
        }
        let plugin = runtime
            .load(&format!("builtin:{name}"), wasm)
            .map_err(plugin_err)?;
        engines.insert(plugin.info().name.clone(), (plugin, Origin::Builtin));
    }
    if let Some(dir) = &args.plugin_dir {
        for file in wasm_files(dir)? {
            let plugin = runtime.load_file(&file).map_err(plugin_err)?;
            engines.insert(plugin.info().name.clone(), (plugin, Origin::File(file)));
        }
    }
    for flag in &args.plugins {
        let (name, file) = flag
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
            .ok_or_else(|| CliError::PluginFlag(flag.clone()))?;
        let plugin = runtime.load_file(Path::new(file)).map_err(plugin_err)?;
        engines.insert(
            name.to_string(),
            (plugin, Origin::File(PathBuf::from(file))),
        );
    }
    let mut mismatches = Vec::new();
    for pin in args.digests.iter().filter(|p| !p.trim().is_empty()) {
        let (name, expected) = pin
            .trim()
            .split_once('=')
            .filter(|(n, d)| !n.is_empty() && !d.is_empty())
            .ok_or_else(|| CliError::DigestFlag(pin.clone()))?;
        let expected = normalise_digest(expected);
        let Some((plugin, origin)) = engines.get(name) else {
            return Err(CliError::DigestUnknownEngine {
                name: name.into(),
                available: engines.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if plugin.digest() != expected {
            mismatches.push(CliError::DigestMismatch {
                name: name.into(),
                origin: origin.to_string(),
                expected,
                found: plugin.digest().to_string(),
            });
        }
    }
    let engines = engines.into_iter().map(|(k, (p, _))| (k, p)).collect();
    Ok((engines, mismatches))
}

fn normalise_digest(d: &str) -> String {
    let d = d.trim().to_ascii_lowercase();
    if d.starts_with("sha256:") {
        d
    } else {
        format!("sha256:{d}")
    }
}

fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let read = std::fs::read_dir(dir).map_err(|source| CliError::Read {
        path: format!("--plugin-dir {}", dir.display()),
        source,
    })?;
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    Ok(files)
}

/// The controllers' view of the loaded engines.
pub fn catalog(loaded: Loaded) -> StaticCatalog {
    let mut catalog = StaticCatalog::new();
    for (name, why) in loaded.refused {
        catalog.refuse(name, why);
    }
    for (name, plugin) in loaded.engines {
        let status = PluginStatus {
            name: plugin.info().name.clone(),
            version: plugin.info().version.clone(),
            digest: plugin.digest().to_string(),
        };
        catalog.insert(
            name,
            ServedEngine {
                engine: Arc::new(plugin),
                plugin: status,
            },
        );
    }
    catalog
}

/// Engines by name for the renderer, plus the built-ins that were not compiled, so "no plugin
/// serves engine X" still lists everything that could serve.
pub struct Served {
    pub loaded: BTreeMap<String, Plugin>,
}

impl dbo_render::Engines for Served {
    fn engine(&self, name: &str) -> Option<&dyn dbo_engine::Engine> {
        self.loaded.get(name).map(|p| p as &dyn dbo_engine::Engine)
    }

    fn names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.loaded.keys().cloned().collect();
        names.extend(
            dbo_plugin_artifacts::builtin_engines()
                .iter()
                .map(|(name, _)| (*name).to_string()),
        );
        names.into_iter().collect()
    }
}
