//! What a component must look like before anything of it runs: which contract version it
//! exports and which imports it may have.

use crate::bindings::ApiVersion;
use crate::{PluginId, RuntimeError};

/// The export every engine plugin has, by package version.
const ENGINE_EXPORT: &str = "kci:engine/engine";

/// WASI 0.2 interfaces a Rust `wasm32-wasip2` guest imports through `std`, found by listing the
/// imports of built guests: every guest (the in-tree plugins included) imports `wasi:cli/*` and
/// `wasi:io/*`; a `HashMap` adds `wasi:random/insecure-seed`, `Instant`/`SystemTime` add
/// `wasi:clocks/*`, and the `getrandom` crate `wasi:random/random`. The sandbox gives each of
/// them nothing to leak (see `sandbox.rs`). Files and sockets are not here: a plugin never needs
/// them, and `std` only imports them when the plugin uses them.
const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
];

/// Host interfaces of the contract, imported at the plugin's own contract version.
const ALLOWED_HOST: &[&str] = &["kci:engine/host", "kci:engine/types"];

/// The contract version the component exports, or why it cannot be called.
pub(crate) fn api_version(
    plugin: &PluginId,
    exports: &[String],
) -> Result<ApiVersion, RuntimeError> {
    let found = exports.iter().find_map(|export| {
        let (interface, version) = split_version(export);
        (interface == ENGINE_EXPORT).then_some(version)
    });
    match found {
        Some(Some(version)) => ApiVersion::from_package_version(version).ok_or_else(|| {
            RuntimeError::UnsupportedApiVersion {
                plugin: plugin.clone(),
                found: version.to_owned(),
                supported: ApiVersion::supported(),
            }
        }),
        Some(None) => Err(RuntimeError::UnsupportedApiVersion {
            plugin: plugin.clone(),
            found: "an unversioned kci:engine package".to_owned(),
            supported: ApiVersion::supported(),
        }),
        None => Err(RuntimeError::MissingExport {
            plugin: plugin.clone(),
            export: format!("{ENGINE_EXPORT}@{}", ApiVersion::NEWEST.as_str()),
            exports: list_or_nothing(exports),
        }),
    }
}

/// Fails on the first import outside the allow-list.
pub(crate) fn check_imports(
    plugin: &PluginId,
    version: ApiVersion,
    imports: &[String],
) -> Result<(), RuntimeError> {
    let forbidden = imports.iter().find(|import| !is_allowed(version, import));
    match forbidden {
        None => Ok(()),
        Some(import) => Err(RuntimeError::ForbiddenImport {
            plugin: plugin.clone(),
            import: import.clone(),
            allowed: allowed_summary(version),
        }),
    }
}

fn is_allowed(version: ApiVersion, import: &str) -> bool {
    match split_version(import) {
        (interface, Some(found)) if ALLOWED_HOST.contains(&interface) => found == version.as_str(),
        // Any 0.2.x: wasmtime-wasi serves every WASI 0.2 minor release.
        (interface, Some(found)) if ALLOWED_WASI.contains(&interface) => found.starts_with("0.2."),
        _ => false,
    }
}

fn allowed_summary(version: ApiVersion) -> String {
    let host = ALLOWED_HOST
        .iter()
        .map(|interface| format!("{interface}@{}", version.as_str()));
    let wasi = ALLOWED_WASI
        .iter()
        .map(|interface| format!("{interface}@0.2"));
    host.chain(wasi).collect::<Vec<_>>().join(", ")
}

/// `wasi:io/streams@0.2.6` -> (`wasi:io/streams`, Some(`0.2.6`)).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    }
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> PluginId {
        PluginId::new("test", "sha256:00")
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn any_wasi_0_2_minor_is_allowed() {
        let imports = names(&["wasi:io/streams@0.2.0", "wasi:cli/stderr@0.2.6"]);
        assert!(check_imports(&id(), ApiVersion::V0_1, &imports).is_ok());
    }

    #[test]
    fn other_wasi_majors_and_unknown_interfaces_are_forbidden() {
        for import in [
            "wasi:io/streams@0.3.0",
            "wasi:http/outgoing-handler@0.2.0",
            "env",
        ] {
            let error = check_imports(&id(), ApiVersion::V0_1, &names(&[import])).unwrap_err();
            assert!(
                matches!(&error, RuntimeError::ForbiddenImport { import: found, .. } if found == import),
                "{import}: {error}"
            );
        }
    }

    #[test]
    fn host_imports_must_match_the_exported_contract_version() {
        let imports = names(&["kci:engine/host@0.9.0"]);
        assert!(check_imports(&id(), ApiVersion::V0_1, &imports).is_err());
        let imports = names(&["kci:engine/host@0.1.0", "kci:engine/types@0.1.0"]);
        assert!(check_imports(&id(), ApiVersion::V0_1, &imports).is_ok());
    }

    #[test]
    fn unversioned_engine_export_is_reported_as_unsupported() {
        let error = api_version(&id(), &names(&["kci:engine/engine"])).unwrap_err();
        assert!(
            matches!(error, RuntimeError::UnsupportedApiVersion { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_component_without_the_engine_export_says_what_it_exports() {
        let error = api_version(&id(), &names(&["wasi:cli/run@0.2.0"])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("kci:engine/engine@0.1.0"), "{message}");
        assert!(message.contains("wasi:cli/run@0.2.0"), "{message}");
    }
}
