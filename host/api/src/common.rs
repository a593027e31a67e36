//! Small reference types shared by the three resources.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A reference to a namespaced object.
///
/// The original Go operator used `types.NamespacedName` without JSON tags, so its manifests spell
/// the keys `Namespace` and `Name`. Both spellings are accepted on input (by serde and by the CRD
/// schema) so existing manifests apply unchanged; output always uses the lower-case keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamespacedName {
    #[serde(alias = "Namespace")]
    pub namespace: String,
    #[serde(alias = "Name")]
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

// Hand-written because the derived schema would only know the lower-case keys, and the API
// server prunes unknown keys before validation: a manifest written for the original operator
// would then fail with "namespace: Required value". `oneOf` keeps the two spellings from mixing.
impl JsonSchema for NamespacedName {
    fn schema_name() -> Cow<'static, str> {
        "NamespacedName".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::NamespacedName").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "properties": {
                "namespace": {
                    "type": "string",
                    "description": "Namespace of the object, e.g. `db-operator`.",
                },
                "name": {
                    "type": "string",
                    "description": "Name of the object, e.g. `postgres-admin`.",
                },
                "Namespace": {
                    "type": "string",
                    "description": "Spelling of `namespace` used by the original Go operator; accepted for migration. Use `namespace` in new manifests.",
                },
                "Name": {
                    "type": "string",
                    "description": "Spelling of `name` used by the original Go operator; accepted for migration. Use `name` in new manifests.",
                },
            },
            "oneOf": [
                { "required": ["namespace", "name"] },
                { "required": ["Namespace", "Name"] },
            ],
        })
    }
}

/// A reference to an object in the same namespace as the referring resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalRef {
    /// Name of the object, e.g. `app-schema`.
    pub name: String,
}

/// One key of a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ConfigMapKey {
    /// Name of the ConfigMap, e.g. `rds-ca-bundle`.
    pub name: String,
    /// Key inside the ConfigMap whose value is used, e.g. `global-bundle.pem`.
    pub key: String,
}

/// The engine plugin that last handled the resource, as the operator identified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PluginStatus {
    /// Engine name the plugin declares, e.g. `postgres`.
    pub name: String,
    /// The plugin's own version (semver), e.g. `0.1.0`.
    pub version: String,
    /// sha256 digest of the plugin's `.wasm` file, e.g. `sha256:3b1f…`; pin it in the operator configuration to refuse any other build.
    pub digest: String,
}
