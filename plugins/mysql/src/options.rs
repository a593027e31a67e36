//! The engine-specific `spec.options` of a DbInstance and of a Database, and their schema.

use dbo_plugin_sdk::options::{self, Options};
use dbo_plugin_sdk::{Database, Diagnostic, Instance};
use serde_json::json;

use crate::names;

/// TLS of the Jobs' connections, in the vocabulary of MySQL's `--ssl-mode`. The image's
/// MariaDB client has no such option; its scripts translate the mode (see the image README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyIdentity,
}

/// `VERIFY_CA` is MySQL's fifth mode; see [`VERIFY_CA_REFUSAL`].
const VERIFY_CA: &str = "VERIFY_CA";
/// Why `VERIFY_CA` is refused rather than quietly treated as another mode.
const VERIFY_CA_REFUSAL: &str = "VERIFY_CA (check the CA but not the host name) cannot be \
    delivered: the image's MariaDB client verifies a certificate's CA and host name together, \
    against the image's system CA store. Use VERIFY_IDENTITY (both), or REQUIRED (TLS without \
    verification)";

impl SslMode {
    pub const ALL: [SslMode; 4] = [
        SslMode::Disabled,
        SslMode::Preferred,
        SslMode::Required,
        SslMode::VerifyIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the connection fails rather than run without TLS.
    pub fn enforces_tls(self) -> bool {
        matches!(self, SslMode::Required | SslMode::VerifyIdentity)
    }

    pub fn verifies(self) -> bool {
        self == SslMode::VerifyIdentity
    }
}

/// `DbInstance.spec.options` for MySQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceOptions {
    /// Overrides the mode derived from `spec.sslConnection`.
    pub ssl_mode: Option<SslMode>,
}

pub(crate) const INSTANCE_KEYS: [&str; 1] = ["sslMode"];
pub(crate) const DATABASE_KEYS: [&str; 2] = ["characterSet", "collation"];

impl InstanceOptions {
    /// The options with a diagnostic per problem; the value is usable (defaults for bad
    /// fields) so every problem is reported at once.
    pub fn read(instance: &Instance) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&instance.options, &INSTANCE_KEYS, &mut d);
        let ssl_mode = o.string("sslMode", &mut d).and_then(|s| {
            let mode = SslMode::parse(&s);
            if mode.is_none() {
                let message = if s.eq_ignore_ascii_case(VERIFY_CA) {
                    VERIFY_CA_REFUSAL.to_string()
                } else {
                    format!(
                        "{s:?} is not a MySQL ssl-mode; use one of {} (upper-case)",
                        SslMode::ALL.map(SslMode::as_str).join(", ")
                    )
                };
                d.push(Diagnostic::error(options::field("sslMode"), message));
            }
            mode
        });
        if let Some(mode) = ssl_mode {
            if instance.tls && !mode.enforces_tls() {
                d.push(Diagnostic::error(
                    options::field("sslMode"),
                    format!(
                        "{} lets connections run without TLS, but spec.sslConnection.enabled is \
                         true; use REQUIRED or VERIFY_IDENTITY, or remove sslMode",
                        mode.as_str()
                    ),
                ));
            }
            if instance.tls_skip_verify && mode.verifies() {
                d.push(Diagnostic::error(
                    options::field("sslMode"),
                    "VERIFY_IDENTITY verifies the server certificate, but \
                     spec.sslConnection.skip-verify is true; use REQUIRED, or set skip-verify \
                     to false",
                ));
            }
        }
        (Self { ssl_mode }, d)
    }

    /// The mode the operator's Jobs use: the `sslMode` option, else what `spec.sslConnection`
    /// asks for (`VERIFY_IDENTITY`, or `REQUIRED` when skipping verification), else
    /// `PREFERRED` (TLS when the server offers it, as MySQL clients do by default).
    pub fn effective_ssl_mode(&self, instance: &Instance) -> SslMode {
        match (self.ssl_mode, instance.tls, instance.tls_skip_verify) {
            (Some(mode), _, _) => mode,
            (None, true, true) => SslMode::Required,
            (None, true, false) => SslMode::VerifyIdentity,
            (None, false, _) => SslMode::Preferred,
        }
    }
}

/// `Database.spec.options` for MySQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseOptions {
    /// Default character set of the database; the server's default when `None`.
    pub character_set: Option<String>,
    /// Default collation of the database; the character set's default when `None`.
    pub collation: Option<String>,
}

impl DatabaseOptions {
    pub fn read(database: &Database) -> (Self, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let o = Options::read(&database.options, &DATABASE_KEYS, &mut d);
        let mut named = |key: &str, what: &str| {
            let value = o.string(key, &mut d)?;
            match names::charset_problem(what, &value) {
                Some(p) => {
                    d.push(Diagnostic::error(options::field(key), p));
                    None
                }
                None => Some(value),
            }
        };
        let character_set = named("characterSet", "character set");
        let collation = named("collation", "collation");
        if let (Some(set), Some(collation)) = (&character_set, &collation)
            && !collation.starts_with(&format!("{set}_"))
        {
            d.push(Diagnostic::error(
                options::field("collation"),
                format!(
                    "{collation:?} is not a collation of character set {set:?}: its collations \
                     are named {set}_…, e.g. {set}_bin; fix either option"
                ),
            ));
        }
        (
            Self {
                character_set,
                collation,
            },
            d,
        )
    }
}

/// JSON Schema of both options objects: `$defs.instance` for `DbInstance.spec.options`,
/// `$defs.database` for `Database.spec.options`.
pub fn schema() -> serde_json::Value {
    let charset_name = "^[a-z0-9_]{1,64}$";
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MySQL engine options",
        "description": "DbInstance.spec.options follows $defs.instance, Database.spec.options follows $defs.database.",
        "$defs": {
            "instance": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "sslMode": {
                        "description": "TLS of the operator's Jobs, as MySQL's --ssl-mode. Default: VERIFY_IDENTITY when spec.sslConnection.enabled (REQUIRED with skip-verify), else PREFERRED. VERIFY_CA is not supported.",
                        "enum": SslMode::ALL.map(SslMode::as_str),
                    },
                },
            },
            "database": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "characterSet": {
                        "description": "Default character set of the database, e.g. utf8mb4; applied at every commissioning (it affects tables created afterwards). Default: the server's.",
                        "type": "string",
                        "pattern": charset_name,
                    },
                    "collation": {
                        "description": "Default collation of the database, e.g. utf8mb4_unicode_ci; must belong to characterSet when both are set. Default: the character set's.",
                        "type": "string",
                        "pattern": charset_name,
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
    fn unknown_option_keys_are_named_with_the_known_ones() {
        let (_, d) = InstanceOptions::read(&instance(r#"{"ssl-mode": "REQUIRED"}"#));
        assert_eq!(fields(&d), [("spec.options.ssl-mode", Severity::Error)]);
        assert!(d[0].message.contains("sslMode"), "{}", d[0].message);
        let (_, d) = DatabaseOptions::read(&database(r#"{"charset": "utf8mb4"}"#));
        assert_eq!(fields(&d), [("spec.options.charset", Severity::Error)]);
        assert!(
            d[0].message.contains("characterSet, collation"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn ssl_mode_follows_the_instance_unless_overridden() {
        let plain = instance("{}");
        let (o, d) = InstanceOptions::read(&plain);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.effective_ssl_mode(&plain), SslMode::Preferred);
        let tls = Instance {
            tls: true,
            ..plain.clone()
        };
        assert_eq!(o.effective_ssl_mode(&tls), SslMode::VerifyIdentity);
        let skip = Instance {
            tls_skip_verify: true,
            ..tls.clone()
        };
        assert_eq!(o.effective_ssl_mode(&skip), SslMode::Required);
        let disabled = instance(r#"{"sslMode": "DISABLED"}"#);
        let (o, d) = InstanceOptions::read(&disabled);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.effective_ssl_mode(&disabled), SslMode::Disabled);
    }

    #[test]
    fn verify_ca_is_refused_saying_what_to_use_instead() {
        for value in ["VERIFY_CA", "verify_ca"] {
            let (o, d) = InstanceOptions::read(&instance(&format!(r#"{{"sslMode": "{value}"}}"#)));
            assert_eq!(o.ssl_mode, None);
            assert_eq!(fields(&d), [("spec.options.sslMode", Severity::Error)]);
            assert!(d[0].message.contains("VERIFY_IDENTITY"), "{}", d[0].message);
        }
        let (_, d) = InstanceOptions::read(&instance(r#"{"sslMode": "required"}"#));
        assert!(d[0].message.contains("upper-case"), "{}", d[0].message);
        let (_, d) = InstanceOptions::read(&instance(r#"{"sslMode": true}"#));
        assert!(d[0].message.contains("a string"), "{}", d[0].message);
    }

    #[test]
    fn ssl_mode_may_not_weaken_the_instance_tls_settings() {
        let weak = Instance {
            tls: true,
            ..instance(r#"{"sslMode": "PREFERRED"}"#)
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
            ..instance(r#"{"sslMode": "VERIFY_IDENTITY"}"#)
        };
        let (_, d) = InstanceOptions::read(&contradictory);
        assert!(d[0].message.contains("skip-verify"), "{}", d[0].message);
    }

    #[test]
    fn character_set_and_collation_are_checked_together() {
        let (o, d) = DatabaseOptions::read(&database(
            r#"{"characterSet": "utf8mb4", "collation": "utf8mb4_unicode_ci"}"#,
        ));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(o.character_set.as_deref(), Some("utf8mb4"));
        assert_eq!(o.collation.as_deref(), Some("utf8mb4_unicode_ci"));

        let (_, d) = DatabaseOptions::read(&database(
            r#"{"characterSet": "latin1", "collation": "utf8mb4_bin"}"#,
        ));
        assert_eq!(fields(&d), [("spec.options.collation", Severity::Error)]);
        assert!(d[0].message.contains("latin1_"), "{}", d[0].message);

        let (o, d) = DatabaseOptions::read(&database(r#"{"characterSet": "utf8mb4`; --"}"#));
        assert_eq!(fields(&d), [("spec.options.characterSet", Severity::Error)]);
        assert_eq!(o.character_set, None);
    }

    #[test]
    fn a_non_object_is_reported_at_the_options_root() {
        let (_, d) = DatabaseOptions::read(&database(r#"["utf8mb4"]"#));
        assert_eq!(fields(&d), [("spec.options", Severity::Error)]);
    }

    #[test]
    fn the_schema_documents_exactly_the_keys_that_are_read() {
        let s = schema();
        testing::assert_schema_documents(&s, "instance", &INSTANCE_KEYS);
        testing::assert_schema_documents(&s, "database", &DATABASE_KEYS);
        assert_eq!(
            s["$defs"]["instance"]["properties"]["sslMode"]["enum"],
            json!(["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_IDENTITY"])
        );
    }
}
