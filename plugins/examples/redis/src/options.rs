//! The engine-specific `spec.options` of a DbInstance and of a Database, and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{Database, Diagnostic, Instance};
use serde_json::json;

/// Grants the Database's user the replication commands that `redis-cli --rdb` needs.
pub const RDB_BACKUP: &str = "rdbBackup";

const INSTANCE_KEYS: [&str; 0] = [];
const DATABASE_KEYS: [&str; 1] = [RDB_BACKUP];

/// The field path of Database option `key`.
pub fn field_of(key: &str) -> String {
    options::field(key)
}

/// `Database.spec.options` for Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseOptions {
    pub rdb_backup: bool,
}

impl DatabaseOptions {
    /// The options with a diagnostic per problem; bad fields fall back to their defaults so
    /// every problem is reported at once.
    pub fn read(database: &Database) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&database.options, &DATABASE_KEYS, &mut d);
        let rdb_backup = o.bool(RDB_BACKUP, &mut d).unwrap_or(false);
        (Self { rdb_backup }, d)
    }
}

/// The instance takes no options: everything the Jobs need is in the DbInstance's own fields.
pub fn read_instance(instance: &Instance) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    Options::read(&instance.options, &INSTANCE_KEYS, &mut d);
    d
}

/// JSON Schema of both options objects: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` for `Database.spec.options`.
pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Redis engine options",
        "description": "DbInstance.spec.options follows $defs.instance, Database.spec.options follows $defs.database.",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "properties": {},
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    RDB_BACKUP: {
                        "description": "Allow spec.backup: grants the Database's user SYNC and PSYNC, which `redis-cli --rdb` needs. The backup is the whole server's RDB, so the user can read every key on the server. Default: false.",
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

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let db = Database {
            options: r#"{"rdbbackup": true}"#.into(),
            ..testing::database()
        };
        let (o, d) = DatabaseOptions::read(&db);
        assert!(!o.rdb_backup);
        assert_eq!(d[0].field, "spec.options.rdbbackup");
        assert!(d[0].message.contains("rdbBackup"), "{}", d[0].message);

        let db = Database {
            options: r#"{"rdbBackup": "yes"}"#.into(),
            ..testing::database()
        };
        let (_, d) = DatabaseOptions::read(&db);
        assert_eq!(
            (d[0].field.as_str(), d[0].severity),
            ("spec.options.rdbBackup", Severity::Error)
        );

        let instance = Instance {
            options: r#"{"tls": true}"#.into(),
            ..testing::instance()
        };
        assert_eq!(read_instance(&instance)[0].field, "spec.options.tls");
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &DATABASE_KEYS);
    }
}
