//! The engine-specific `spec.options` of a DbInstance and of a Database, and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{BackendKind, Database, Diagnostic, Instance};
use serde_json::json;

use crate::names;

/// Where the image keeps the Amazon RDS / DocumentDB CA bundle (`global-bundle.pem`); the
/// default CA of TLS connections on the amazon backend.
pub const AWS_CA_BUNDLE: &str = "/etc/ssl/aws/global-bundle.pem";

/// Database the admin authenticates against when the instance does not name one.
pub const DEFAULT_AUTH_SOURCE: &str = "admin";

const INSTANCE_KEYS: [&str; 4] = ["authSource", "replicaSet", "tlsCAFile", "directConnection"];
const DATABASE_KEYS: [&str; 2] = ["roles", "dropBeforeRestore"];

/// `DbInstance.spec.options` for MongoDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOptions {
    /// Database the admin user is defined in (`authSource` of the admin login).
    pub auth_source: String,
    pub replica_set: Option<String>,
    /// CA bundle path in the image, overriding the backend's default.
    pub tls_ca_file: Option<String>,
    pub direct_connection: Option<bool>,
}

/// How the Jobs and the app's connection string use TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// TLS without checking the server's certificate or host name.
    Insecure,
    /// TLS verified against `ca_file`, or the system CAs when `None`.
    Verified {
        ca_file: Option<String>,
    },
}

impl InstanceOptions {
    /// The options with a diagnostic per problem; the value is usable (defaults filled in for
    /// bad fields) so every problem is reported at once.
    pub fn read(instance: &Instance) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&instance.options, &INSTANCE_KEYS, &mut d);

        let auth_source = match o.string("authSource", &mut d) {
            Some(s) => {
                if let Some(p) = names::database_problem(&s) {
                    d.push(Diagnostic::error(options::field("authSource"), p));
                }
                s
            }
            None => DEFAULT_AUTH_SOURCE.to_string(),
        };
        let replica_set = o.string("replicaSet", &mut d);
        if let Some(p) = replica_set.as_deref().and_then(names::replica_set_problem) {
            d.push(Diagnostic::error(options::field("replicaSet"), p));
        }
        let tls_ca_file = o.string("tlsCAFile", &mut d);
        if let Some(path) = &tls_ca_file {
            if let Some(p) = names::file_path_problem(path) {
                d.push(Diagnostic::error(options::field("tlsCAFile"), p));
            } else if !instance.tls {
                d.push(Diagnostic::error(
                    options::field("tlsCAFile"),
                    "is set, but spec.sslConnection.enabled is not true, so no TLS connection \
                     would use it; enable TLS or remove tlsCAFile",
                ));
            } else if instance.tls_skip_verify {
                d.push(Diagnostic::error(
                    options::field("tlsCAFile"),
                    "verifies the server certificate, but spec.sslConnection.skip-verify is \
                     true; remove tlsCAFile, or set skip-verify to false",
                ));
            }
        }
        let direct_connection = o.bool("directConnection", &mut d);

        for (field, host) in [
            ("host", &instance.host),
            ("backupHost", &instance.backup_host),
        ] {
            if let Some(p) = names::host_problem(host) {
                d.push(Diagnostic::error(
                    format!("spec.{}.{field}", backend_field(instance.backend)),
                    p,
                ));
            }
        }
        if instance.backend == BackendKind::Amazon && !instance.tls {
            d.push(Diagnostic::warning(
                "spec.sslConnection.enabled",
                "Amazon DocumentDB clusters accept only TLS connections unless their parameter \
                 group disables tls; set spec.sslConnection.enabled: true (the image verifies \
                 the server against the Amazon CA bundle)",
            ));
        }

        (
            Self {
                auth_source,
                replica_set,
                tls_ca_file,
                direct_connection,
            },
            d,
        )
    }

    /// The TLS the operator's Jobs and the app's connection string use: none without
    /// `spec.sslConnection.enabled`; unverified with `skip-verify`; else verified against the
    /// `tlsCAFile` option, the image's Amazon bundle on the amazon backend, or the system CAs.
    pub fn tls(&self, instance: &Instance) -> Tls {
        match (instance.tls, instance.tls_skip_verify) {
            (false, _) => Tls::Off,
            (true, true) => Tls::Insecure,
            (true, false) => Tls::Verified {
                ca_file: self.tls_ca_file.clone().or_else(|| {
                    (instance.backend == BackendKind::Amazon).then(|| AWS_CA_BUNDLE.to_string())
                }),
            },
        }
    }
}

fn backend_field(backend: BackendKind) -> &'static str {
    match backend {
        BackendKind::Generic => "generic",
        BackendKind::Amazon => "amazon",
        BackendKind::Google => "google",
    }
}

/// A built-in MongoDB role the Database's user may get on its own database. Cluster-wide and
/// `AnyDatabase` roles are deliberately not offered: they would reach other tenants' data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Read,
    ReadWrite,
    DbAdmin,
    DbOwner,
    UserAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Read,
        Role::ReadWrite,
        Role::DbAdmin,
        Role::DbOwner,
        Role::UserAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::ReadWrite => "readWrite",
            Role::DbAdmin => "dbAdmin",
            Role::DbOwner => "dbOwner",
            Role::UserAdmin => "userAdmin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles the Database's user gets when the Database does not list any.
pub const DEFAULT_ROLES: [Role; 1] = [Role::ReadWrite];

/// `Database.spec.options` for MongoDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// In the order given, without duplicates; never empty.
    pub roles: Vec<Role>,
    /// Restores drop each collection of the backup before restoring it, instead of refusing
    /// to restore into a database with data.
    pub drop_before_restore: bool,
}

impl DatabaseOptions {
    pub fn read(database: &Database) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&database.options, &DATABASE_KEYS, &mut d);
        let allowed = Role::ALL.map(Role::as_str).join(", ");
        let given = o.strings("roles", &mut d);
        let mut roles: Vec<Role> = Vec::new();
        for (i, name) in given.iter().enumerate() {
            let field = format!("{}[{i}]", options::field("roles"));
            match Role::parse(name) {
                None => d.push(Diagnostic::error(
                    field,
                    format!(
                        "{name:?} is not a role db-operator grants; use one of {allowed} (roles \
                         on other databases or the cluster are not granted to a Database's user)"
                    ),
                )),
                Some(role) if roles.contains(&role) => {
                    d.push(Diagnostic::warning(
                        field,
                        format!("{name:?} is listed twice"),
                    ));
                }
                Some(role) => roles.push(role),
            }
        }
        if given.is_empty() && is_empty_list(&database.options, "roles") {
            d.push(Diagnostic::error(
                options::field("roles"),
                format!(
                    "is empty, which would leave the user unable to use its database; list at \
                     least one of {allowed}, or remove roles for the default [readWrite]"
                ),
            ));
        }
        if roles.is_empty() {
            roles = DEFAULT_ROLES.to_vec();
        }
        let drop_before_restore = o.bool("dropBeforeRestore", &mut d).unwrap_or(false);
        (
            Self {
                roles,
                drop_before_restore,
            },
            d,
        )
    }
}

/// Whether `key` of the options object `json` is `[]` (the SDK's getter reads an absent key and
/// an empty list alike, but only the empty list is a mistake).
fn is_empty_list(json: &str, key: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get(key)?.as_array().map(Vec::is_empty))
        .unwrap_or(false)
}

/// JSON Schema of both options objects: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` for `Database.spec.options`.
pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MongoDB engine options",
        "description": "DbInstance.spec.options follows $defs.instance, Database.spec.options follows $defs.database.",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "authSource": {
                        "description": "Database the admin user (adminSecretRef) is defined in. Default: admin.",
                        "type": "string",
                        "pattern": "^[^/\\\\. \"$*<>:|?]{1,63}$",
                    },
                    "replicaSet": {
                        "description": "Replica set name; the Jobs and MONGODB_URI then discover the set's members from the host (use rs0 for Amazon DocumentDB). Default: a direct connection to the host.",
                        "type": "string",
                        "pattern": "^[A-Za-z0-9._-]+$",
                    },
                    "tlsCAFile": {
                        "description": "PEM CA bundle (a path inside the Job's container) that verifies the server certificate; requires spec.sslConnection.enabled without skip-verify. Also written into MONGODB_URI, so apps need the file at the same path. Default: /etc/ssl/aws/global-bundle.pem on the amazon backend, else the system CAs.",
                        "type": "string",
                        "pattern": "^/[A-Za-z0-9._/-]+$",
                    },
                    "directConnection": {
                        "description": "directConnection of the connection strings: true talks to the host alone even when it is a replica set member. Default: the driver's (direct without replicaSet).",
                        "type": "boolean",
                    },
                },
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "roles": {
                        "description": "Built-in roles the Database's user gets on its own database. Default: [readWrite].",
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": true,
                        "items": {"enum": Role::ALL.map(Role::as_str)},
                    },
                    "dropBeforeRestore": {
                        "description": "DbRestores drop each collection in the backup before restoring it (mongorestore --drop). Without it a restore refuses to run when a collection of the database holds documents. Default: false.",
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

    fn database(options: &str) -> Database {
        Database {
            options: options.into(),
            ..testing::database()
        }
    }

    fn fields(d: &[Diagnostic]) -> Vec<(&str, Severity)> {
        d.iter().map(|d| (d.field.as_str(), d.severity)).collect()
    }

    #[test]
    fn defaults_are_admin_and_read_write() {
        let (o, d) = InstanceOptions::read(&instance("{}"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.auth_source, "admin");
        assert_eq!(
            (o.replica_set, o.tls_ca_file, o.direct_connection),
            (None, None, None)
        );
        let (o, d) = DatabaseOptions::read(&database("{}"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.roles, [Role::ReadWrite]);
        assert!(!o.drop_before_restore);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let (_, d) = InstanceOptions::read(&instance(
            r#"{"authsource": "admin", "replicaSet": 1, "directConnection": "yes"}"#,
        ));
        assert_eq!(
            fields(&d),
            [
                ("spec.options.authsource", Severity::Error),
                ("spec.options.replicaSet", Severity::Error),
                ("spec.options.directConnection", Severity::Error),
            ]
        );
        assert!(
            d[0].message
                .contains("authSource, replicaSet, tlsCAFile, directConnection"),
            "{}",
            d[0].message
        );
        let (_, d) = DatabaseOptions::read(&database(r#"{"drop": true}"#));
        assert_eq!(fields(&d), [("spec.options.drop", Severity::Error)]);
    }

    #[test]
    fn roles_are_limited_to_the_database_scoped_built_ins() {
        let (o, d) = DatabaseOptions::read(&database(
            r#"{"roles": ["read", "root", "dbAdmin", "read", 7], "dropBeforeRestore": true}"#,
        ));
        assert_eq!(
            fields(&d),
            [
                ("spec.options.roles[4]", Severity::Error),
                ("spec.options.roles[1]", Severity::Error),
                ("spec.options.roles[3]", Severity::Warning),
            ]
        );
        assert!(
            d[1].message
                .contains("read, readWrite, dbAdmin, dbOwner, userAdmin")
        );
        assert_eq!(o.roles, [Role::Read, Role::DbAdmin]);
        assert!(o.drop_before_restore);

        let (_, d) = DatabaseOptions::read(&database(r#"{"roles": []}"#));
        assert_eq!(fields(&d), [("spec.options.roles", Severity::Error)]);
        assert!(d[0].message.contains("at least one"), "{}", d[0].message);
    }

    #[test]
    fn tls_follows_the_instance_and_the_backend() {
        let (o, _) = InstanceOptions::read(&instance("{}"));
        let plain = testing::instance();
        assert_eq!(o.tls(&plain), Tls::Off);
        let tls = Instance {
            tls: true,
            ..plain.clone()
        };
        assert_eq!(o.tls(&tls), Tls::Verified { ca_file: None });
        let amazon = Instance {
            backend: BackendKind::Amazon,
            ..tls.clone()
        };
        assert_eq!(
            o.tls(&amazon),
            Tls::Verified {
                ca_file: Some(AWS_CA_BUNDLE.to_string())
            }
        );
        let skip = Instance {
            tls_skip_verify: true,
            ..amazon
        };
        assert_eq!(o.tls(&skip), Tls::Insecure);

        let custom = Instance {
            tls: true,
            ..instance(r#"{"tlsCAFile": "/etc/ssl/corp/ca.pem"}"#)
        };
        let (o, d) = InstanceOptions::read(&custom);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            o.tls(&custom),
            Tls::Verified {
                ca_file: Some("/etc/ssl/corp/ca.pem".into())
            }
        );
    }

    #[test]
    fn a_ca_file_needs_verified_tls_and_a_plain_path() {
        let (_, d) = InstanceOptions::read(&instance(r#"{"tlsCAFile": "/etc/ssl/ca.pem"}"#));
        assert_eq!(fields(&d), [("spec.options.tlsCAFile", Severity::Error)]);
        assert!(
            d[0].message.contains("spec.sslConnection.enabled"),
            "{}",
            d[0].message
        );
        let skip = Instance {
            tls: true,
            tls_skip_verify: true,
            ..instance(r#"{"tlsCAFile": "/etc/ssl/ca.pem"}"#)
        };
        let (_, d) = InstanceOptions::read(&skip);
        assert!(d[0].message.contains("skip-verify"), "{}", d[0].message);
        let relative = Instance {
            tls: true,
            ..instance(r#"{"tlsCAFile": "ca.pem"}"#)
        };
        let (_, d) = InstanceOptions::read(&relative);
        assert!(d[0].message.contains("absolute"), "{}", d[0].message);
    }

    #[test]
    fn hosts_that_would_change_the_connection_string_are_refused() {
        let seed_list = Instance {
            host: "a.example,b.example".into(),
            ..testing::instance()
        };
        let (_, d) = InstanceOptions::read(&seed_list);
        assert_eq!(fields(&d), [("spec.generic.host", Severity::Error)]);
        let amazon = Instance {
            backend: BackendKind::Amazon,
            tls: true,
            backup_host: "reader@x".into(),
            ..testing::instance()
        };
        let (_, d) = InstanceOptions::read(&amazon);
        assert_eq!(fields(&d), [("spec.amazon.backupHost", Severity::Error)]);
    }

    #[test]
    fn amazon_without_tls_is_warned_about() {
        let amazon = Instance {
            backend: BackendKind::Amazon,
            ..testing::instance()
        };
        let (_, d) = InstanceOptions::read(&amazon);
        assert_eq!(
            fields(&d),
            [("spec.sslConnection.enabled", Severity::Warning)]
        );
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &DATABASE_KEYS);
    }
}
