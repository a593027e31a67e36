//! The engine-specific `spec.options` of a DbInstance and of a Database, and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{Database, Diagnostic, Instance};
use serde_json::{Value, json};

/// Which Neo4j product the server is. It decides what commissioning can do (Community has one
/// user database and no roles) and whether backups are possible at all (online backup is an
/// Enterprise feature), so it is required rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Community,
    Enterprise,
}

impl Edition {
    pub const ALL: [Edition; 2] = [Edition::Community, Edition::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Community => "community",
            Edition::Enterprise => "enterprise",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The port `server.backup.listen_address` uses unless configured otherwise.
pub const DEFAULT_BACKUP_PORT: u16 = 6362;

const INSTANCE_KEYS: [&str; 2] = ["edition", "backupPort"];
const DATABASE_KEYS: [&str; 1] = ["allowRestore"];

/// `DbInstance.spec.options` for Neo4j.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOptions {
    /// `None` only when the options are invalid (a diagnostic says so).
    pub edition: Option<Edition>,
    pub backup_port: u16,
}

impl InstanceOptions {
    /// The options with a diagnostic per problem; the value is usable (defaults filled in for
    /// bad fields) so every problem is reported at once.
    pub fn read(instance: &Instance) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&instance.options, &INSTANCE_KEYS, &mut d);
        let allowed = Edition::ALL.map(Edition::as_str).join(" or ");
        let edition = match o.string("edition", &mut d) {
            Some(s) => {
                let edition = Edition::parse(&s);
                if edition.is_none() {
                    d.push(Diagnostic::error(
                        options::field("edition"),
                        format!("{s:?} is not a Neo4j edition; use {allowed}"),
                    ));
                }
                edition
            }
            None => {
                if !has_key(&instance.options, "edition") {
                    d.push(Diagnostic::error(
                        options::field("edition"),
                        format!(
                            "is required: set it to {allowed} (what `CALL dbms.components()` \
                             reports); Community has one database and no roles, so commissioning \
                             and backups differ"
                        ),
                    ));
                }
                None
            }
        };
        let backup_port = port(&instance.options, "backupPort", &mut d);
        if backup_port.is_some() && edition == Some(Edition::Community) {
            d.push(Diagnostic::warning(
                options::field("backupPort"),
                "is ignored: Neo4j Community Edition has no online backup; remove it",
            ));
        }
        (
            Self {
                edition,
                backup_port: backup_port.unwrap_or(DEFAULT_BACKUP_PORT),
            },
            d,
        )
    }
}

/// `Database.spec.options` for Neo4j.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseOptions {
    /// Grant the Database's role what a restore needs (`CREATE DATABASE` and `DROP DATABASE`
    /// on the DBMS); without it, restores are refused.
    pub allow_restore: bool,
}

impl DatabaseOptions {
    pub fn read(edition: Option<Edition>, database: &Database) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&database.options, &DATABASE_KEYS, &mut d);
        let allow_restore = o.bool("allowRestore", &mut d).unwrap_or(false);
        match edition {
            Some(Edition::Community) if allow_restore => d.push(Diagnostic::error(
                options::field("allowRestore"),
                "Neo4j Community Edition has no online backup, so db-operator cannot restore \
                 into it; remove allowRestore",
            )),
            Some(Edition::Enterprise) if allow_restore => d.push(Diagnostic::warning(
                options::field("allowRestore"),
                "the Database's user gets CREATE DATABASE and DROP DATABASE on the whole DBMS \
                 (Neo4j cannot grant them for one database): it can then drop every database \
                 of the instance; enable this only where that user is trusted",
            )),
            _ => {}
        }
        (Self { allow_restore }, d)
    }
}

fn raw(json: &str, key: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(mut map)) => map.remove(key),
        _ => None,
    }
}

fn has_key(json: &str, key: &str) -> bool {
    raw(json, key).is_some_and(|v| !v.is_null())
}

/// The TCP port at `key`; `None` when absent, null or invalid (then with a diagnostic).
fn port(json: &str, key: &str, d: &mut Vec<Diagnostic>) -> Option<u16> {
    let value = raw(json, key)?;
    if value.is_null() {
        return None;
    }
    let port = value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n > 0);
    if port.is_none() {
        d.push(Diagnostic::error(
            options::field(key),
            format!("must be a port number from 1 to 65535, got {value}"),
        ));
    }
    port
}

/// JSON Schema of both options objects: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` for `Database.spec.options`.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Neo4j engine options",
        "description": "DbInstance.spec.options follows $defs.instance, Database.spec.options follows $defs.database.",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "required": ["edition"],
                "properties": {
                    "edition": {
                        "description": "The server's edition. community: one user database (neo4j), users without roles, no backups. enterprise: a database, a role and a user per Database, online backups.",
                        "enum": Edition::ALL.map(Edition::as_str),
                    },
                    "backupPort": {
                        "description": "Port of the server's backup listener (server.backup.listen_address, which must listen beyond localhost). Enterprise only. Default: 6362.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 65535,
                    },
                },
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "allowRestore": {
                        "description": "Enterprise only: grant the Database's role CREATE DATABASE and DROP DATABASE on the DBMS, which a restore (drop, then create from the backup in S3) needs. These privileges cover every database of the instance. Default: false (restores are refused).",
                        "type": "boolean",
                    },
                },
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
    fn edition_is_required_and_lists_the_allowed_values() {
        for options in ["{}", r#"{"edition": null}"#] {
            let (o, d) = InstanceOptions::read(&instance(options));
            assert_eq!(o.edition, None);
            assert_eq!(fields(&d), [("spec.options.edition", Severity::Error)]);
            assert!(
                d[0].message.contains("community or enterprise"),
                "{}",
                d[0].message
            );
        }
        let (_, d) = InstanceOptions::read(&instance(r#"{"edition": "Enterprise"}"#));
        assert_eq!(fields(&d), [("spec.options.edition", Severity::Error)]);
        assert!(d[0].message.contains("\"Enterprise\""), "{}", d[0].message);
        let (_, d) = InstanceOptions::read(&instance(r#"{"edition": 5}"#));
        assert_eq!(fields(&d), [("spec.options.edition", Severity::Error)]);
    }

    #[test]
    fn backup_port_defaults_and_is_checked() {
        let (o, d) = InstanceOptions::read(&instance(r#"{"edition": "enterprise"}"#));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.edition, Some(Edition::Enterprise));
        assert_eq!(o.backup_port, 6362);
        let (o, d) = InstanceOptions::read(&instance(
            r#"{"edition": "enterprise", "backupPort": 16362}"#,
        ));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.backup_port, 16362);
        for bad in ["0", "70000", "\"6362\"", "6362.5", "-1"] {
            let (_, d) = InstanceOptions::read(&instance(&format!(
                r#"{{"edition": "enterprise", "backupPort": {bad}}}"#
            )));
            assert_eq!(
                fields(&d),
                [("spec.options.backupPort", Severity::Error)],
                "{bad}"
            );
        }
        let (_, d) =
            InstanceOptions::read(&instance(r#"{"edition": "community", "backupPort": 6362}"#));
        assert_eq!(fields(&d), [("spec.options.backupPort", Severity::Warning)]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let (_, d) = InstanceOptions::read(&instance(r#"{"edition": "community", "tls": 1}"#));
        assert_eq!(fields(&d), [("spec.options.tls", Severity::Error)]);
        assert!(
            d[0].message.contains("edition, backupPort"),
            "{}",
            d[0].message
        );
        let db = Database {
            options: r#"{"restore": true}"#.into(),
            ..testing::database()
        };
        let (_, d) = DatabaseOptions::read(Some(Edition::Enterprise), &db);
        assert_eq!(fields(&d), [("spec.options.restore", Severity::Error)]);
    }

    #[test]
    fn allow_restore_warns_on_enterprise_and_is_refused_on_community() {
        let db = Database {
            options: r#"{"allowRestore": true}"#.into(),
            ..testing::database()
        };
        let (o, d) = DatabaseOptions::read(Some(Edition::Enterprise), &db);
        assert!(o.allow_restore);
        assert_eq!(
            fields(&d),
            [("spec.options.allowRestore", Severity::Warning)]
        );
        assert!(d[0].message.contains("whole DBMS"), "{}", d[0].message);
        let (_, d) = DatabaseOptions::read(Some(Edition::Community), &db);
        assert_eq!(fields(&d), [("spec.options.allowRestore", Severity::Error)]);
        let (o, d) = DatabaseOptions::read(Some(Edition::Enterprise), &testing::database());
        assert!(!o.allow_restore);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &DATABASE_KEYS);
    }
}
