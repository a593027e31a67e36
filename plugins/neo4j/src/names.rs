//! Neo4j naming rules: the server-side names of a Database, its user and its role.
//!
//! The Job scripts quote every identifier in backticks themselves, so these rules are not what
//! keeps Cypher safe; they keep names inside what Neo4j accepts (see the Operations Manual,
//! "Database names" and "User and role management"), predictable, and short enough.

use dbo_plugin_sdk::{Database, names};

/// The one user database of Community Edition (and the default database of every server).
pub const COMMUNITY_DATABASE: &str = "neo4j";

/// Neo4j database names are at most 63 characters long.
pub const MAX_DATABASE_NAME: usize = 63;
/// Neo4j database names are at least 3 characters long.
pub const MIN_DATABASE_NAME: usize = 3;
/// Neo4j sets no documented limit on user and role names; this one keeps them readable and
/// equal in length to database names.
pub const MAX_USER_NAME: usize = 63;

/// Prefix for a database name that would otherwise start with something other than a letter,
/// or with `system`, which Neo4j reserves.
const DATABASE_PREFIX: &str = "db-";
/// Prefix for a user name that would otherwise start with a digit or `_`.
const USER_PREFIX: &str = "u_";

/// The database name of `database` on an Enterprise server: `<namespace>-<name>` lower-cased,
/// every character outside `[a-z0-9.-]` replaced by `-`, prefixed with `db-` when it would not
/// start with a letter or would start with the reserved `system`, and shortened with a hash
/// suffix beyond 63 characters.
pub fn enterprise_database_name(database: &Database) -> String {
    let raw = format!("{}-{}", database.namespace, database.name);
    let mut name: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.starts_with("system") {
        name = format!("{DATABASE_PREFIX}{name}");
    }
    names::shorten(&name, MAX_DATABASE_NAME, '-')
}

/// The user (and role) name of `database`: `<namespace>_<name>` with every character outside
/// `[A-Za-z0-9_]` replaced by `_`, prefixed with `u_` when it would not start with a letter,
/// and shortened with a hash suffix beyond 63 characters.
pub fn user_name(database: &Database) -> String {
    let raw = format!("{}_{}", database.namespace, database.name);
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name = format!("{USER_PREFIX}{name}");
    }
    names::shorten(&name, MAX_USER_NAME, '_')
}

/// Why `name` is not a Neo4j database name, if it is not.
pub fn database_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if !(MIN_DATABASE_NAME..=MAX_DATABASE_NAME).contains(&len) {
        return Some(format!(
            "{name:?} is {len} characters long; Neo4j database names have \
             {MIN_DATABASE_NAME} to {MAX_DATABASE_NAME}"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!("{name:?} must start with a lower-case letter"));
    }
    if name.starts_with("system") {
        return Some(format!("{name:?} starts with system, which Neo4j reserves"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
    {
        return Some(format!(
            "{name:?} contains {bad:?}; Neo4j database names use only a-z, 0-9, . and -"
        ));
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
    fn database_names_are_namespace_dash_name_within_neo4j_rules() {
        assert_eq!(
            enterprise_database_name(&db("shop", "orders")),
            "shop-orders"
        );
        assert_eq!(
            enterprise_database_name(&db("shop", "orders.v2")),
            "shop-orders.v2"
        );
        assert_eq!(
            enterprise_database_name(&db("Shop", "Orders")),
            "shop-orders"
        );
        assert_eq!(enterprise_database_name(&db("42", "graph")), "db-42-graph");
        assert_eq!(
            enterprise_database_name(&db("system", "graph")),
            "db-system-graph",
            "names starting with system are reserved"
        );
        for name in [
            enterprise_database_name(&db("shop", "orders")),
            enterprise_database_name(&db("42", "graph")),
        ] {
            assert_eq!(database_problem(&name), None, "{name}");
        }
    }

    #[test]
    fn long_database_names_fit_63_characters_and_stay_distinct() {
        let a = enterprise_database_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2024",
        ));
        let b = enterprise_database_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2025",
        ));
        assert_eq!(a.len(), MAX_DATABASE_NAME, "{a}");
        assert_ne!(a, b);
        assert_eq!(database_problem(&a), None, "{a}");
    }

    #[test]
    fn user_names_use_letters_digits_and_underscores() {
        assert_eq!(user_name(&db("shop", "orders")), "shop_orders");
        assert_eq!(user_name(&db("shop", "orders.v2-x")), "shop_orders_v2_x");
        assert_eq!(user_name(&db("7eleven", "stock")), "u_7eleven_stock");
        let long = user_name(&db(&"n".repeat(60), "database-with-a-long-name"));
        assert_eq!(long.len(), MAX_USER_NAME, "{long}");
        assert!(
            long.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{long}"
        );
    }

    #[test]
    fn database_problems_name_the_rule() {
        assert_eq!(database_problem("neo4j"), None);
        assert!(database_problem("ab").is_some_and(|p| p.contains("3 to 63")));
        assert!(database_problem("1abc").is_some_and(|p| p.contains("letter")));
        assert!(database_problem("systemx").is_some_and(|p| p.contains("reserves")));
        assert!(database_problem("a_b_c").is_some_and(|p| p.contains("'_'")));
        assert!(database_problem("a`b`c").is_some());
    }
}
