//! The engine-specific `spec.options` of a DbInstance (a Database takes none), and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{BackendKind, Database, Diagnostic, Instance};
use serde_json::json;

/// Which REST API the server speaks for users and roles. Snapshots, index templates and
/// mappings are the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch's native realm: `_security/role`, `_security/user`.
    Elasticsearch,
    /// The OpenSearch security plugin: `_plugins/_security/api/{roles,internalusers}`.
    OpenSearch,
}

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::Elasticsearch, Flavor::OpenSearch];

    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Elasticsearch => "elasticsearch",
            Flavor::OpenSearch => "opensearch",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// `DbInstance.spec.options` for Elasticsearch and OpenSearch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOptions {
    pub flavor: Flavor,
    /// The S3 client of the cluster's nodes (`s3.client.<name>.*` in their keystore and
    /// `elasticsearch.yml`) that snapshot repositories use.
    pub s3_client: String,
    /// Whether each Database's role also gets the cluster privileges its backup and restore
    /// Jobs need, since those run as the Database's user.
    pub snapshot_privileges: bool,
}

/// The nodes' S3 client when the instance names none; Elasticsearch's own default.
pub const DEFAULT_S3_CLIENT: &str = "default";

const INSTANCE_KEYS: [&str; 3] = ["flavor", "s3Client", "snapshotPrivileges"];

impl InstanceOptions {
    /// The options with a diagnostic per problem; the value is usable (defaults for bad fields)
    /// so every problem is reported at once.
    pub fn read(instance: &Instance) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&instance.options, &INSTANCE_KEYS, &mut d);
        let default_flavor = match instance.backend {
            // Amazon's managed service is OpenSearch (or Elasticsearch 7.10 with the same
            // security plugin API).
            BackendKind::Amazon => Flavor::OpenSearch,
            BackendKind::Generic | BackendKind::Google => Flavor::Elasticsearch,
        };
        let flavor = o
            .string("flavor", &mut d)
            .and_then(|s| {
                let flavor = Flavor::parse(&s);
                if flavor.is_none() {
                    d.push(Diagnostic::error(
                        options::field("flavor"),
                        format!(
                            "{s:?} is not a flavor; use elasticsearch (users and roles through \
                             _security) or opensearch (through _plugins/_security)"
                        ),
                    ));
                }
                flavor
            })
            .unwrap_or(default_flavor);
        let s3_client = match o.string("s3Client", &mut d) {
            Some(client) => {
                if let Some(p) = s3_client_problem(&client) {
                    d.push(Diagnostic::error(options::field("s3Client"), p));
                }
                client
            }
            None => DEFAULT_S3_CLIENT.to_string(),
        };
        if instance.backend == BackendKind::Amazon
            && o.string("s3Client", &mut Vec::new()).is_some()
        {
            d.push(Diagnostic::error(
                options::field("s3Client"),
                "Amazon OpenSearch Service has no node S3 clients; it reaches the bucket with \
                 the IAM role of spec.backup.s3.auth.irsa; remove s3Client",
            ));
        }
        let snapshot_privileges = o.bool("snapshotPrivileges", &mut d).unwrap_or(true);
        (
            Self {
                flavor,
                s3_client,
                snapshot_privileges,
            },
            d,
        )
    }
}

/// The Database takes no options; each one given is reported.
pub fn database_diagnostics(database: &Database) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    Options::read(&database.options, &[], &mut d);
    d
}

/// Why `name` is not a usable S3 client name, if it is not. Elasticsearch reads it from setting
/// keys (`s3.client.<name>.endpoint`), so it is a plain lower-case word.
fn s3_client_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    (!valid).then(|| {
        format!(
            "{name:?} is not an S3 client name; use the <name> of the nodes' \
             s3.client.<name>.* settings: lower-case letters, digits, _ and -, starting with a letter"
        )
    })
}

/// JSON Schema of the options: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` (empty) for `Database.spec.options`.
pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Elasticsearch / OpenSearch engine options",
        "description": "DbInstance.spec.options follows $defs.instance; Database.spec.options takes nothing ($defs.database).",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "flavor": {
                        "description": "Security API of the server: elasticsearch (_security/...) or opensearch (_plugins/_security/...). Default: opensearch on the amazon backend, else elasticsearch.",
                        "enum": Flavor::ALL.map(Flavor::as_str),
                    },
                    "s3Client": {
                        "description": "Name of the nodes' S3 client (s3.client.<name>.* in elasticsearch.yml and the keystore, which hold the bucket credentials and endpoint) that snapshot repositories use. Not on the amazon backend. Default: default.",
                        "type": "string",
                        "pattern": "^[a-z][a-z0-9_-]{0,62}$",
                    },
                    "snapshotPrivileges": {
                        "description": "Give each Database's role the cluster privileges its backup and restore Jobs need (they run as the Database's user): register repositories, create, list and restore snapshots. These reach beyond the Database's indices (Elasticsearch authorizes them cluster-wide); set false on clusters shared by parties that must not read each other's snapshots, and backups and restores then need an administrator. Default: true.",
                        "type": "boolean",
                    },
                },
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbo_plugin_sdk::{Severity, testing};

    fn instance(options: &str) -> Instance {
        Instance {
            options: options.into(),
            ..testing::instance()
        }
    }

    fn fields(d: &[Diagnostic]) -> Vec<(&str, Severity)> {
        d.iter().map(|d| (d.field.as_str(), d.severity)).collect()
    }

    #[test]
    fn defaults_follow_the_backend() {
        let (o, d) = InstanceOptions::read(&instance("{}"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.flavor, Flavor::Elasticsearch);
        assert_eq!(o.s3_client, "default");
        assert!(o.snapshot_privileges);
        let amazon = Instance {
            backend: BackendKind::Amazon,
            ..instance("{}")
        };
        assert_eq!(InstanceOptions::read(&amazon).0.flavor, Flavor::OpenSearch);
    }

    #[test]
    fn options_are_read_and_bad_values_named() {
        let (o, d) = InstanceOptions::read(&instance(
            r#"{"flavor": "opensearch", "s3Client": "backups", "snapshotPrivileges": false}"#,
        ));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            o,
            InstanceOptions {
                flavor: Flavor::OpenSearch,
                s3_client: "backups".into(),
                snapshot_privileges: false,
            }
        );
        let (_, d) = InstanceOptions::read(&instance(
            r#"{"flavor": "solr", "s3Client": "My Client", "snapshotPrivileges": "yes", "url": 1}"#,
        ));
        assert_eq!(
            fields(&d),
            [
                ("spec.options.url", Severity::Error),
                ("spec.options.flavor", Severity::Error),
                ("spec.options.s3Client", Severity::Error),
                ("spec.options.snapshotPrivileges", Severity::Error),
            ]
        );
        assert!(d[1].message.contains("opensearch"), "{}", d[1].message);
    }

    #[test]
    fn amazon_has_no_node_s3_clients() {
        let amazon = Instance {
            backend: BackendKind::Amazon,
            ..instance(r#"{"s3Client": "default"}"#)
        };
        let (_, d) = InstanceOptions::read(&amazon);
        assert_eq!(fields(&d), [("spec.options.s3Client", Severity::Error)]);
        assert!(d[0].message.contains("irsa"), "{}", d[0].message);
    }

    #[test]
    fn databases_take_no_options() {
        let database = Database {
            options: r#"{"shards": 3}"#.into(),
            ..testing::database()
        };
        let d = database_diagnostics(&database);
        assert_eq!(fields(&d), [("spec.options.shards", Severity::Error)]);
        assert!(database_diagnostics(&testing::database()).is_empty());
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &[]);
    }
}
