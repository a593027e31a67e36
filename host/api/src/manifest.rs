//! Reading the multi-document YAML a user would `kubectl apply`, for the CLI.
//!
//! Parsing is as strict as `kubectl apply` with server-side field validation: unknown fields are
//! errors, not silently dropped, because a misspelt `deletionProtected` must not go unnoticed.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::{API_VERSION, DEFAULT_NAMESPACE, Database, DbInstance, DbRestore};

/// The objects of a manifest stream, grouped by kind, each in stream order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifests {
    pub instances: Vec<DbInstance>,
    pub databases: Vec<Database>,
    pub restores: Vec<DbRestore>,
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
}

impl Manifests {
    /// The DbInstance named `name`.
    pub fn instance(&self, name: &str) -> Option<&DbInstance> {
        self.instances
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(name))
    }

    /// The Secret `namespace/name`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
        })
    }

    /// The ConfigMap `namespace/name`.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(name)
        })
    }
}

/// Where in the stream an object came from, as a user would point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentRef {
    /// 1-based number of the YAML document in the stream.
    pub index: usize,
    /// 1-based position in the `items` of a `kind: List` document.
    pub item: Option<usize>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for DocumentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.index)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name:?})"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, _) => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {document}: invalid YAML: {source}")]
    Syntax {
        document: usize,
        /// 1-based line in the whole stream, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        #[source]
        source: serde_yaml::Error,
    },

    #[error("{document}: expected a mapping with apiVersion, kind and metadata, found {found}")]
    NotAnObject {
        document: DocumentRef,
        found: &'static str,
    },

    #[error(
        "{document}: `{field}` is missing or not a string; every document needs apiVersion and kind, e.g. `apiVersion: kci.rocks/v1alpha1` and `kind: Database`"
    )]
    MissingTypeField {
        document: DocumentRef,
        field: &'static str,
    },

    #[error(
        "{document}: unknown kind {kind:?} with apiVersion {api_version:?}; expected DbInstance, Database or DbRestore (apiVersion kci.rocks/v1alpha1), or Secret, ConfigMap or List (apiVersion v1)"
    )]
    UnknownKind {
        document: DocumentRef,
        api_version: String,
        kind: String,
    },

    #[error(
        "{document}: apiVersion {api_version:?} is not served; db-operator serves {kind} as kci.rocks/v1alpha1: change apiVersion to that"
    )]
    UnsupportedVersion {
        document: DocumentRef,
        api_version: String,
        kind: String,
    },

    #[error("{document}: {field}: {message}")]
    Invalid {
        document: DocumentRef,
        /// Dotted path of the offending field, e.g. `spec.generic.port`.
        field: String,
        message: String,
    },

    #[error("{document}: {}", unknown_fields(.fields))]
    UnknownFields {
        document: DocumentRef,
        /// Dotted paths, e.g. `spec.deletionProtect`.
        fields: Vec<String>,
    },

    #[error("{document}: the same object is already defined by {first}; remove one of them")]
    Duplicate {
        document: DocumentRef,
        /// Where the object was defined first.
        first: Box<DocumentRef>,
    },
}

fn unknown_fields(fields: &[String]) -> String {
    match fields {
        [one] => format!("unknown field {one}; remove it or correct its name"),
        many => format!(
            "unknown fields {}; remove them or correct their names",
            many.join(", ")
        ),
    }
}

/// Parses a multi-document YAML stream of DbInstances, Databases, DbRestores, Secrets and
/// ConfigMaps (also inside `kind: List` documents). Empty documents are skipped; namespaced
/// objects without a namespace get `default`. Stops at the first problem.
pub fn parse(yaml: &str) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    let mut seen = BTreeMap::new();
    for (i, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let index = i + 1;
        // The stream cannot be resumed after a syntax error, so this ends the loop.
        let mut value = Value::deserialize(document).map_err(|e| syntax(index, e))?;
        value.apply_merge().map_err(|e| syntax(index, e))?;
        if value.is_null() {
            continue;
        }
        let at = DocumentRef {
            index,
            item: None,
            kind: None,
            name: None,
        };
        add(&mut manifests, &mut seen, value, at)?;
    }
    Ok(manifests)
}

fn syntax(document: usize, source: serde_yaml::Error) -> ManifestError {
    let location = source.location();
    ManifestError::Syntax {
        document,
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        source,
    }
}

/// (kind, namespace, name) of every object added so far, with where it was defined.
type Seen = BTreeMap<(String, String, String), DocumentRef>;

fn add(
    manifests: &mut Manifests,
    seen: &mut Seen,
    value: Value,
    mut at: DocumentRef,
) -> Result<(), ManifestError> {
    let Value::Mapping(map) = &value else {
        return Err(ManifestError::NotAnObject {
            found: value_kind(&value),
            document: at,
        });
    };
    let kind = map.get("kind").and_then(Value::as_str).map(str::to_owned);
    at.kind.clone_from(&kind);
    at.name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let field = if map.get("apiVersion").and_then(Value::as_str).is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(ManifestError::MissingTypeField {
            document: at,
            field,
        });
    };

    let ours = matches!(kind.as_str(), "DbInstance" | "Database" | "DbRestore");
    match (api_version.as_str(), kind.as_str()) {
        (API_VERSION, "DbInstance") => {
            let instance: DbInstance = decode(value, &at)?;
            remember(seen, &kind, "", &at)?;
            manifests.instances.push(instance);
        }
        (API_VERSION, "Database") => {
            let mut database: Database = decode(value, &at)?;
            let namespace = default_namespace(&mut database.metadata.namespace);
            remember(seen, &kind, &namespace, &at)?;
            manifests.databases.push(database);
        }
        (API_VERSION, "DbRestore") => {
            let mut restore: DbRestore = decode(value, &at)?;
            let namespace = default_namespace(&mut restore.metadata.namespace);
            remember(seen, &kind, &namespace, &at)?;
            manifests.restores.push(restore);
        }
        (version, _) if ours && version.starts_with("kci.rocks/") => {
            return Err(ManifestError::UnsupportedVersion {
                document: at,
                api_version,
                kind,
            });
        }
        ("v1", "Secret") => {
            let mut secret: Secret = decode(value, &at)?;
            let namespace = default_namespace(&mut secret.metadata.namespace);
            remember(seen, &kind, &namespace, &at)?;
            manifests.secrets.push(secret);
        }
        ("v1", "ConfigMap") => {
            let mut config_map: ConfigMap = decode(value, &at)?;
            let namespace = default_namespace(&mut config_map.metadata.namespace);
            remember(seen, &kind, &namespace, &at)?;
            manifests.config_maps.push(config_map);
        }
        ("v1", "List") if at.item.is_none() => {
            let items = match value {
                Value::Mapping(mut map) => map.remove("items"),
                _ => None,
            };
            let items = match items {
                Some(Value::Sequence(items)) => items,
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(ManifestError::Invalid {
                        document: at,
                        field: "items".to_owned(),
                        message: format!(
                            "expected a list of objects, found {}",
                            value_kind(&other)
                        ),
                    });
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                let item_at = DocumentRef {
                    index: at.index,
                    item: Some(i + 1),
                    kind: None,
                    name: None,
                };
                add(manifests, seen, item, item_at)?;
            }
        }
        ("v1", "List") => {
            return Err(ManifestError::Invalid {
                document: at,
                field: "kind".to_owned(),
                message:
                    "a List inside a List is not supported; move its items into the outer list"
                        .to_owned(),
            });
        }
        _ => {
            return Err(ManifestError::UnknownKind {
                document: at,
                api_version,
                kind,
            });
        }
    }
    Ok(())
}

/// Deserializes one object, naming the failing field and every unknown one.
fn decode<T: DeserializeOwned>(value: Value, at: &DocumentRef) -> Result<T, ManifestError> {
    let mut unknown = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| {
        let path = dotted(&path);
        // kube's root types skip the type fields when deserializing; `add` dispatched on them.
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    };
    let result: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut on_unknown));
    match result {
        Err(e) => {
            let field = e.path().to_string();
            Err(ManifestError::Invalid {
                document: at.clone(),
                field: if field == "." {
                    "(top level)".to_owned()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            })
        }
        Ok(_) if !unknown.is_empty() => Err(ManifestError::UnknownFields {
            document: at.clone(),
            fields: unknown,
        }),
        Ok(object) => Ok(object),
    }
}

/// `spec.volumes[0].name`, the style of `serde_path_to_error` and of Kubernetes field paths.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => {
            let parent = dotted(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

fn default_namespace(namespace: &mut Option<String>) -> String {
    namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.to_owned())
        .clone()
}

fn remember(
    seen: &mut Seen,
    kind: &str,
    namespace: &str,
    at: &DocumentRef,
) -> Result<(), ManifestError> {
    // Nameless objects cannot collide; validation reports the missing name.
    let Some(name) = at.name.clone() else {
        return Ok(());
    };
    let key = (kind.to_owned(), namespace.to_owned(), name);
    if let Some(first) = seen.get(&key) {
        return Err(ManifestError::Duplicate {
            document: at.clone(),
            first: Box::new(first.clone()),
        });
    }
    seen.insert(key, at.clone());
    Ok(())
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
