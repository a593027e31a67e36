//! MySQL naming rules: the server-side names of a Database and its user.
//!
//! The Job scripts quote every identifier and literal themselves (backticks, doubled quotes), so
//! these rules are not what keeps SQL safe; they keep names predictable, inside the server's
//! length limits, and free of characters that surprise tools, `GRANT` patterns and URLs.
//!
//! The rules are the original kloeckner-i/db-operator's, so that databases and users it created
//! are adopted: `<namespace>-<name>`, lower-cased, every character outside `[0-9a-z$_]` replaced
//! by `_`, the database name cut to 63 bytes and the user name to 32, each shortened name ending
//! in `_` and the first 8 hex digits of the SHA-256 of the unshortened name. Where this engine
//! differs: the hash is taken by the SDK's [`names::shorten`] (of the sanitised name), so a name
//! the original had to shorten may come out differently here; such a Database should name its
//! existing database and user in its credentials Secret (the host keeps existing credentials).

use dbo_plugin_sdk::{Database, names};

/// MySQL allows 64 bytes for database names; the original operator used 63, and so does this
/// engine so that the names it derives stay the same.
pub const MAX_DATABASE_BYTES: usize = 63;
/// MySQL 5.7+ allows 32 bytes for user names (MariaDB 80); 32 works on both.
pub const MAX_USER_BYTES: usize = 32;

/// `<namespace>-<name>` with every character outside `[0-9a-z$_]` (after lower-casing) as `_`.
fn sanitised(database: &Database) -> String {
    format!("{}-{}", database.namespace, database.name)
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '$' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The database's name on the server, and the folder and file stem of its backups.
pub fn database_name(database: &Database) -> String {
    names::shorten(&sanitised(database), MAX_DATABASE_BYTES, '_')
}

/// The name of the database's user on the server (`'<user>'@'%'`).
pub fn user_name(database: &Database) -> String {
    names::shorten(&sanitised(database), MAX_USER_BYTES, '_')
}

/// Whether `name` is one of the server's own schemas, which no Database may take over.
pub fn is_system_database(name: &str) -> bool {
    matches!(
        name,
        "mysql" | "information_schema" | "performance_schema" | "sys"
    )
}

/// Why `name` is not a usable character set or collation name, if it is not: lower-case
/// letters, digits and `_`, as every MySQL and MariaDB character set and collation is named.
pub fn charset_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("the {what} name is empty"));
    }
    if name.len() > 64 {
        return Some(format!("{name:?} is longer than any {what} name"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Some(format!(
            "{name:?} is not a {what} name: {bad:?} is not allowed; use lower-case letters, \
             digits and _ as in utf8mb4 or utf8mb4_unicode_ci"
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
    fn names_follow_the_original_sanitising() {
        assert_eq!(database_name(&db("shop", "orders")), "shop_orders");
        assert_eq!(user_name(&db("shop", "orders")), "shop_orders");
        assert_eq!(database_name(&db("Shop", "orders.v2")), "shop_orders_v2");
        assert_eq!(database_name(&db("a$b", "c")), "a$b_c");
    }

    #[test]
    fn long_names_fit_each_limit_and_stay_distinct() {
        let a = db("payments-settlement", "ledger-entries-archive-2024");
        let b = db("payments-settlement", "ledger-entries-archive-2025");
        assert_eq!(
            database_name(&a),
            "payments_settlement_ledger_entries_archive_2024"
        );
        let user = user_name(&a);
        assert_eq!(user.len(), MAX_USER_BYTES, "{user}");
        assert!(user.starts_with("payments_settlement_led_"), "{user}");
        assert_ne!(user, user_name(&b), "a shared prefix must not collide");
        assert_eq!(user, user_name(&a), "stable");

        let long = db(&"n".repeat(40), &"m".repeat(40));
        let name = database_name(&long);
        assert_eq!(name.len(), MAX_DATABASE_BYTES, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }

    #[test]
    fn charset_names_are_plain_words() {
        assert_eq!(charset_problem("character set", "utf8mb4"), None);
        assert_eq!(charset_problem("collation", "utf8mb4_unicode_ci"), None);
        for bad in ["", "utf8mb4; DROP DATABASE x", "UTF8", "latin1`"] {
            assert!(
                charset_problem("collation", bad).is_some(),
                "{bad:?} must be refused"
            );
        }
    }
}
