//! Server-side names of a Database: its ACL user and its key prefix.

use dbo_plugin_sdk::Database;

/// ACL user of `database`: `<namespace>-<name>`, unique per cluster because both parts are
/// Kubernetes names (which contain no `:` and no space, so it is one ACL user name).
pub fn user_name(database: &Database) -> String {
    format!("{}-{}", database.namespace, database.name)
}

/// Key prefix of `database`: `<namespace>:<name>:`, the Redis convention for namespaced keys.
/// The trailing `:` keeps `shop:orders:` from matching the keys of `shop:orders-archive:`.
pub fn key_prefix(database: &Database) -> String {
    format!("{}:{}:", database.namespace, database.name)
}

/// Why the key prefix cannot be used as an ACL pattern, if it cannot: the ACL rules
/// `~<prefix>*` and `&<prefix>*` are glob patterns, so a prefix must hold no glob characters
/// (`*?[]\`) and nothing that splits an ACL rule (space).
pub fn prefix_problem(database: &Database) -> Option<String> {
    let prefix = key_prefix(database);
    prefix
        .chars()
        .find(|c| matches!(c, '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control())
        .map(|c| {
            format!(
                "the key prefix {prefix:?} contains {c:?}, which Redis ACL patterns treat as \
                 special; use a Kubernetes name (a-z, 0-9, - and .)"
            )
        })
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
    fn names_follow_namespace_and_name() {
        assert_eq!(user_name(&db("shop", "orders")), "shop-orders");
        assert_eq!(key_prefix(&db("shop", "orders")), "shop:orders:");
    }

    #[test]
    fn kubernetes_names_make_usable_prefixes_and_glob_characters_do_not() {
        assert_eq!(prefix_problem(&db("shop", "orders.v2")), None);
        for bad in ["a*", "a?", "a[b]", "a b", "a\\b"] {
            let problem = prefix_problem(&db("shop", bad)).expect("refused");
            assert!(problem.contains("ACL patterns"), "{problem}");
        }
    }
}
