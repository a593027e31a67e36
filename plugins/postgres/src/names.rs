//! PostgreSQL naming rules: server-side names of a Database and the identifiers users may pass.
//!
//! The Job scripts quote every identifier themselves (psql `:"name"` and `format('%I')`), so
//! these rules are not what keeps SQL safe; they keep names predictable, within PostgreSQL's
//! 63-byte limit, and free of characters that surprise tools and connection strings.

use dbo_plugin_sdk::{Database, names};

/// PostgreSQL truncates identifiers beyond this many bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Database and role name of `database` on the server: `<namespace>-<name>` as the original
/// operator named them (so databases it created are adopted), lower-cased, with every character
/// outside `[a-z0-9_-]` replaced by `_`, and shortened with a hash suffix beyond 63 bytes.
pub fn server_name(database: &Database) -> String {
    let raw = format!("{}-{}", database.namespace, database.name);
    let sanitised: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    names::shorten(&sanitised, MAX_IDENTIFIER_BYTES, '-')
}

/// Why `name` is not a usable extension name, if it is not: lower-case letters, digits, `_` and
/// `-` (as in `uuid-ossp`), starting with a letter.
pub fn extension_problem(name: &str) -> Option<String> {
    identifier_problem(name, true).map(|p| format!("{name:?} is not an extension name: {p}"))
}

/// Why `name` is not a usable schema name, if it is not: lower-case letters, digits and `_`,
/// not starting with a digit, and none of the schemas PostgreSQL or this engine manage.
pub fn schema_problem(name: &str) -> Option<String> {
    if let Some(p) = identifier_problem(name, false) {
        return Some(format!("{name:?} is not a schema name: {p}"));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Some(format!(
            "{name:?} is reserved by PostgreSQL; choose another schema name"
        ));
    }
    if name == "public" {
        return Some(
            "\"public\" exists in every database; list only additional schemas here (the public \
             schema is controlled by dropPublicSchema)"
                .to_string(),
        );
    }
    None
}

/// Why `name` is not a usable database name (templates, the admin database), if it is not:
/// lower-case letters, digits, `_` and `-`, not starting with a digit or `-`.
pub fn database_problem(name: &str) -> Option<String> {
    identifier_problem(name, true).map(|p| format!("{name:?} is not a database name: {p}"))
}

fn identifier_problem(name: &str, allow_dash: bool) -> Option<String> {
    let allowed = if allow_dash {
        "a-z, 0-9, _ and -"
    } else {
        "a-z, 0-9 and _"
    };
    let Some(first) = name.chars().next() else {
        return Some("it is empty".to_string());
    };
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Some(format!(
            "it is {} bytes long, PostgreSQL keeps only {MAX_IDENTIFIER_BYTES}",
            name.len()
        ));
    }
    if !(first.is_ascii_lowercase() || first == '_') {
        return Some("it must start with a lower-case letter or _".to_string());
    }
    if let Some(bad) = name.chars().find(|&c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_dash && c == '-'))
    }) {
        return Some(format!("{bad:?} is not allowed; use only {allowed}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbo_plugin_sdk::testing;

    fn db(namespace: &str, name: &str) -> Database {
        Database {
            namespace: namespace.into(),
            name: name.into(),
            ..testing::database()
        }
    }

    #[test]
    fn server_names_follow_the_original_namespace_dash_name() {
        assert_eq!(server_name(&db("shop", "orders")), "shop-orders");
        assert_eq!(server_name(&db("shop", "orders.v2")), "shop-orders_v2");
        assert_eq!(server_name(&db("Shop", "Orders")), "shop-orders");
    }

    #[test]
    fn long_server_names_fit_63_bytes_and_stay_distinct() {
        let a = server_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2024",
        ));
        let b = server_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2025",
        ));
        assert_eq!(a.len(), MAX_IDENTIFIER_BYTES, "{a}");
        assert_ne!(a, b);
        assert!(
            a.starts_with("a-very-long-namespace-for-the-payments-team-ledger"),
            "{a}"
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        );
    }

    #[test]
    fn extension_names_allow_dashes_but_no_quoting_tricks() {
        assert_eq!(extension_problem("uuid-ossp"), None);
        assert_eq!(extension_problem("pg_stat_statements"), None);
        for bad in [
            "",
            "PostGIS",
            "x\"; DROP DATABASE y; --",
            "1abc",
            "hstore,citext",
            &"e".repeat(64),
        ] {
            assert!(extension_problem(bad).is_some(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn schema_names_refuse_reserved_and_managed_schemas() {
        assert_eq!(schema_problem("app"), None);
        assert_eq!(schema_problem("_audit"), None);
        for bad in [
            "public",
            "pg_temp",
            "information_schema",
            "my-schema",
            "App",
        ] {
            assert!(schema_problem(bad).is_some(), "{bad:?} must be refused");
        }
    }
}
