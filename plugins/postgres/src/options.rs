//! The engine-specific `spec.options` of a DbInstance and of a Database, and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{Database, Diagnostic, Instance};
use serde_json::json;

use crate::names;

/// libpq's `sslmode`, see the PostgreSQL manual "SSL Support".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the connection fails rather than run without TLS.
    pub fn enforces_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether libpq checks the server certificate against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// `DbInstance.spec.options` for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOptions {
    /// Overrides the mode derived from `spec.sslConnection`.
    pub ssl_mode: Option<SslMode>,
    /// Database the admin connects to for commissioning.
    pub admin_database: String,
}

/// Database the admin connects to when the instance does not name one.
pub const DEFAULT_ADMIN_DATABASE: &str = "postgres";

const INSTANCE_KEYS: [&str; 2] = ["sslMode", "adminDatabase"];
const DATABASE_KEYS: [&str; 3] = ["dropPublicSchema", "schemas", "template"];

impl InstanceOptions {
    /// The options with a diagnostic per problem; the value is usable (defaults filled in for
    /// bad fields) so every problem is reported at once.
    pub fn read(instance: &Instance) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&instance.options, &INSTANCE_KEYS, &mut d);
        let ssl_mode = o.string("sslMode", &mut d).and_then(|s| {
            let mode = SslMode::parse(&s);
            if mode.is_none() {
                d.push(Diagnostic::error(
                    options::field("sslMode"),
                    format!(
                        "{s:?} is not a libpq sslmode; use one of {}",
                        SslMode::ALL.map(SslMode::as_str).join(", ")
                    ),
                ));
            }
            mode
        });
        let admin_database = match o.string("adminDatabase", &mut d) {
            Some(db) => {
                if let Some(p) = names::database_problem(&db) {
                    d.push(Diagnostic::error(options::field("adminDatabase"), p));
                }
                db
            }
            None => DEFAULT_ADMIN_DATABASE.to_string(),
        };
        if let Some(mode) = ssl_mode {
            if instance.tls && !mode.enforces_tls() {
                d.push(Diagnostic::error(
                    options::field("sslMode"),
                    format!(
                        "{} lets connections fall back to plain text, but spec.sslConnection.enabled \
                         is true; use require, verify-ca or verify-full, or remove sslMode",
                        mode.as_str()
                    ),
                ));
            }
            if instance.tls_skip_verify && mode.verifies() {
                d.push(Diagnostic::error(
                    options::field("sslMode"),
                    format!(
                        "{} verifies the server certificate, but spec.sslConnection.skip-verify is \
                         true; use require, or set skip-verify to false",
                        mode.as_str()
                    ),
                ));
            }
        }
        (
            Self {
                ssl_mode,
                admin_database,
            },
            d,
        )
    }

    /// The sslmode the operator's Jobs use: the `sslMode` option, else what
    /// `spec.sslConnection` asks for (`verify-full`, or `require` when skipping verification),
    /// else libpq's default `prefer`.
    pub fn effective_ssl_mode(&self, instance: &Instance) -> SslMode {
        match (self.ssl_mode, instance.tls, instance.tls_skip_verify) {
            (Some(mode), _, _) => mode,
            (None, true, true) => SslMode::Require,
            (None, true, false) => SslMode::VerifyFull,
            (None, false, _) => SslMode::Prefer,
        }
    }
}

/// `Database.spec.options` for PostgreSQL, plus the extensions the database gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseOptions {
    pub drop_public_schema: bool,
    pub schemas: Vec<String>,
    pub template: Option<String>,
    /// `spec.extensions` in order without duplicates, plus `pg_stat_statements` when the
    /// instance has monitoring enabled.
    pub extensions: Vec<String>,
}

/// Extension the original operator installs on every database of a monitored instance.
pub const MONITORING_EXTENSION: &str = "pg_stat_statements";

impl DatabaseOptions {
    pub fn read(instance: &Instance, database: &Database) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&database.options, &DATABASE_KEYS, &mut d);
        let drop_public_schema = o.bool("dropPublicSchema", &mut d).unwrap_or(false);

        let mut schemas: Vec<String> = Vec::new();
        for (i, schema) in o.strings("schemas", &mut d).into_iter().enumerate() {
            let field = format!("{}[{i}]", options::field("schemas"));
            if let Some(p) = names::schema_problem(&schema) {
                d.push(Diagnostic::error(field, p));
            } else if schemas.contains(&schema) {
                d.push(Diagnostic::warning(
                    field,
                    format!("{schema:?} is listed twice"),
                ));
            } else {
                schemas.push(schema);
            }
        }

        let template = o.string("template", &mut d);
        if let Some(p) = template.as_deref().and_then(names::database_problem) {
            d.push(Diagnostic::error(options::field("template"), p));
        }

        let mut extensions: Vec<String> = Vec::new();
        for (i, ext) in database.extensions.iter().enumerate() {
            let field = format!("spec.extensions[{i}]");
            if let Some(p) = names::extension_problem(ext) {
                d.push(Diagnostic::error(field, p));
            } else if extensions.contains(ext) {
                d.push(Diagnostic::warning(
                    field,
                    format!("{ext:?} is listed twice"),
                ));
            } else {
                extensions.push(ext.clone());
            }
        }
        if instance.monitoring && !extensions.iter().any(|e| e == MONITORING_EXTENSION) {
            extensions.push(MONITORING_EXTENSION.to_string());
        }

        if drop_public_schema && !extensions.is_empty() {
            let why = if instance.monitoring {
                format!(
                    "the instance has monitoring enabled, which installs {MONITORING_EXTENSION}"
                )
            } else {
                "spec.extensions are installed".to_string()
            };
            d.push(Diagnostic::error(
                options::field("dropPublicSchema"),
                format!(
                    "extensions live in the public schema and {why}; keep the public schema \
                     or install no extensions"
                ),
            ));
        }

        (
            Self {
                drop_public_schema,
                schemas,
                template,
                extensions,
            },
            d,
        )
    }
}

/// JSON Schema of both options objects: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` for `Database.spec.options`.
pub fn schema() -> serde_json::Value {
    let identifier = "^[a-z_][a-z0-9_-]{0,62}$";
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "PostgreSQL engine options",
        "description": "DbInstance.spec.options follows $defs.instance, Database.spec.options follows $defs.database.",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "sslMode": {
                        "description": "libpq sslmode of the operator's Jobs. Default: verify-full when spec.sslConnection.enabled (require with skip-verify), else prefer.",
                        "enum": SslMode::ALL.map(SslMode::as_str),
                    },
                    "adminDatabase": {
                        "description": "Database the admin user connects to for commissioning, e.g. defaultdb on some managed services. Default: postgres.",
                        "type": "string",
                        "pattern": identifier,
                    },
                },
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "dropPublicSchema": {
                        "description": "Drop the public schema at commissioning (it must be empty; not with extensions or instance monitoring). Default: false.",
                        "type": "boolean",
                    },
                    "schemas": {
                        "description": "Schemas to create, owned by the database's user.",
                        "type": "array",
                        "items": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$"},
                    },
                    "template": {
                        "description": "Template database the database is created from (only when it does not exist yet). Default: the server's (template1).",
                        "type": "string",
                        "pattern": identifier,
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

    fn database(options: &str, extensions: &[&str]) -> Database {
        Database {
            options: options.into(),
            extensions: extensions.iter().map(|e| e.to_string()).collect(),
            ..testing::database()
        }
    }

    fn fields(d: &[Diagnostic]) -> Vec<(&str, Severity)> {
        d.iter().map(|d| (d.field.as_str(), d.severity)).collect()
    }

    #[test]
    fn unknown_option_keys_are_named() {
        let (_, d) = InstanceOptions::read(&instance(r#"{"sslmode": "require"}"#));
        assert_eq!(fields(&d), [("spec.options.sslmode", Severity::Error)]);
        assert!(
            d[0].message.contains("sslMode, adminDatabase"),
            "{}",
            d[0].message
        );
        let (_, d) =
            DatabaseOptions::read(&testing::instance(), &database(r#"{"owner": "x"}"#, &[]));
        assert_eq!(fields(&d), [("spec.options.owner", Severity::Error)]);
    }

    #[test]
    fn ssl_mode_follows_the_instance_unless_overridden() {
        let plain = instance("{}");
        let (o, d) = InstanceOptions::read(&plain);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.effective_ssl_mode(&plain), SslMode::Prefer);
        assert_eq!(o.admin_database, "postgres");

        let tls = Instance {
            tls: true,
            ..plain.clone()
        };
        assert_eq!(o.effective_ssl_mode(&tls), SslMode::VerifyFull);
        let skip = Instance {
            tls: true,
            tls_skip_verify: true,
            ..plain.clone()
        };
        assert_eq!(o.effective_ssl_mode(&skip), SslMode::Require);

        let custom = Instance {
            tls: true,
            ..instance(r#"{"sslMode": "verify-ca", "adminDatabase": "defaultdb"}"#)
        };
        let (o, d) = InstanceOptions::read(&custom);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.effective_ssl_mode(&custom), SslMode::VerifyCa);
        assert_eq!(o.admin_database, "defaultdb");
    }

    #[test]
    fn ssl_mode_may_not_weaken_the_instance_tls_settings() {
        let weak = Instance {
            tls: true,
            ..instance(r#"{"sslMode": "prefer"}"#)
        };
        let (_, d) = InstanceOptions::read(&weak);
        assert_eq!(fields(&d), [("spec.options.sslMode", Severity::Error)]);
        assert!(
            d[0].message.contains("spec.sslConnection.enabled"),
            "{}",
            d[0].message
        );

        let contradictory = Instance {
            tls: true,
            tls_skip_verify: true,
            ..instance(r#"{"sslMode": "verify-full"}"#)
        };
        let (_, d) = InstanceOptions::read(&contradictory);
        assert!(d[0].message.contains("skip-verify"), "{}", d[0].message);

        let (_, d) = InstanceOptions::read(&instance(r#"{"sslMode": "on"}"#));
        assert!(d[0].message.contains("verify-full"), "{}", d[0].message);
    }

    #[test]
    fn database_options_are_read_with_per_element_fields() {
        let (o, d) = DatabaseOptions::read(
            &testing::instance(),
            &database(
                r#"{"schemas": ["app", "App", "app"], "template": "template_postgis", "dropPublicSchema": false}"#,
                &["uuid-ossp", "bad name", "uuid-ossp"],
            ),
        );
        assert_eq!(
            fields(&d),
            [
                ("spec.options.schemas[1]", Severity::Error),
                ("spec.options.schemas[2]", Severity::Warning),
                ("spec.extensions[1]", Severity::Error),
                ("spec.extensions[2]", Severity::Warning),
            ]
        );
        assert_eq!(o.schemas, ["app"]);
        assert_eq!(o.template.as_deref(), Some("template_postgis"));
        assert_eq!(o.extensions, ["uuid-ossp"]);
    }

    #[test]
    fn monitoring_adds_pg_stat_statements_once() {
        let monitored = Instance {
            monitoring: true,
            ..testing::instance()
        };
        let (o, _) = DatabaseOptions::read(&monitored, &database("{}", &["pgcrypto"]));
        assert_eq!(o.extensions, ["pgcrypto", "pg_stat_statements"]);
        let (o, _) = DatabaseOptions::read(&monitored, &database("{}", &["pg_stat_statements"]));
        assert_eq!(o.extensions, ["pg_stat_statements"]);
    }

    #[test]
    fn dropping_the_public_schema_conflicts_with_extensions_and_monitoring() {
        let opts = r#"{"dropPublicSchema": true, "schemas": ["app"]}"#;
        let (o, d) = DatabaseOptions::read(&testing::instance(), &database(opts, &[]));
        assert!(d.is_empty(), "{d:?}");
        assert!(o.drop_public_schema);

        let monitored = Instance {
            monitoring: true,
            ..testing::instance()
        };
        let (_, d) = DatabaseOptions::read(&monitored, &database(opts, &[]));
        assert_eq!(
            fields(&d),
            [("spec.options.dropPublicSchema", Severity::Error)]
        );
        assert!(d[0].message.contains("monitoring"), "{}", d[0].message);

        let (_, d) = DatabaseOptions::read(&testing::instance(), &database(opts, &["pgcrypto"]));
        assert!(d[0].message.contains("spec.extensions"), "{}", d[0].message);
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &DATABASE_KEYS);
    }
}
