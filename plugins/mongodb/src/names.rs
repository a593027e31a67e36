//! MongoDB naming rules: server-side names of a Database and the names options may give.
//!
//! The Job scripts never splice a name into JavaScript or a connection string (names travel as
//! environment variables and tool arguments), so these rules are not what keeps the scripts
//! safe. They keep names predictable, inside MongoDB's limits, and equal on servers that
//! compare database names case-insensitively.

use dbo_plugin_sdk::{Database, names};

/// MongoDB refuses database names of 64 bytes or more.
pub const MAX_DATABASE_BYTES: usize = 63;

/// Characters MongoDB forbids in database names (on any platform), besides NUL.
const FORBIDDEN: &[char] = &['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?'];

/// Database and user name of `database` on the server: `<namespace>-<name>`, lower-cased (two
/// databases differing only in case cannot coexist on one server), every character outside
/// `[a-z0-9_-]` (which covers the forbidden `/\. "$*<>:|?`) replaced by `_`, and shortened with
/// a hash suffix beyond 63 bytes.
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
    names::shorten(&sanitised, MAX_DATABASE_BYTES, '-')
}

/// Why `name` cannot be a MongoDB database name (e.g. the `authSource` option), if it cannot.
pub fn database_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty; give a database name such as admin".to_string());
    }
    if name.len() > MAX_DATABASE_BYTES {
        return Some(format!(
            "{name:?} is {} bytes long; MongoDB database names are shorter than 64 bytes",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| FORBIDDEN.contains(c) || c.is_control())
    {
        return Some(format!(
            "{name:?} contains {bad:?}; MongoDB database names cannot contain any of / \\ . space \" $ * < > : | ?"
        ));
    }
    None
}

/// Why `name` cannot be a replica set name in a connection string, if it cannot. MongoDB
/// itself is lenient; this keeps the name from needing URL encoding or splitting a host list.
pub fn replica_set_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty; give the replica set name, e.g. rs0".to_string());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "{name:?} contains {bad:?}; use letters, digits, '-', '_' and '.' (as in rs0)"
        ));
    }
    None
}

/// Why `path` cannot be a CA bundle path in the image, if it cannot: an absolute path of
/// letters, digits, `.`, `_`, `-` and `/`, so it can be written into a connection string as is.
pub fn file_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!(
            "{path:?} is not an absolute path; give the file's path inside the Job's container, e.g. /etc/ssl/certs/ca-certificates.crt"
        ));
    }
    if path.ends_with('/') {
        return Some(format!(
            "{path:?} names a folder; give the path of a PEM file"
        ));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return Some(format!(
            "{path:?} contains {bad:?}; use letters, digits and . _ - / only"
        ));
    }
    if path.split('/').any(|part| part == "..") {
        return Some(format!("{path:?} contains '..'; give the path without it"));
    }
    None
}

/// Why `host` cannot be put into a connection string as one server address, if it cannot.
/// A `,` would silently turn it into a seed list, and `/`, `?` or `@` would change the URI.
pub fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("the host is empty".to_string());
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if let Some(bad) = host.chars().find(|&c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '.' | '-' | '_')
            || (bracketed && matches!(c, ':' | '[' | ']')))
    }) {
        return Some(format!(
            "{host:?} contains {bad:?}; give one host name or IP address without port, scheme or credentials (an IPv6 address in [brackets])"
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
    fn server_names_are_namespace_dash_name_without_forbidden_characters() {
        assert_eq!(server_name(&db("shop", "orders")), "shop-orders");
        assert_eq!(server_name(&db("shop", "orders.v2")), "shop-orders_v2");
        assert_eq!(server_name(&db("Shop", "Orders")), "shop-orders");
        let odd = server_name(&db("a", "b/c\\d e\"f$g*h<i>j:k|l?m"));
        assert!(!odd.contains(FORBIDDEN), "{odd}");
        assert_eq!(database_problem(&odd), None);
    }

    #[test]
    fn long_names_fit_63_bytes_and_stay_distinct() {
        let a = server_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2024",
        ));
        let b = server_name(&db(
            "a-very-long-namespace-for-the-payments-team",
            "ledger-entries-archive-2025",
        ));
        assert_eq!(a.len(), MAX_DATABASE_BYTES, "{a}");
        assert_ne!(a, b);
        assert_eq!(database_problem(&a), None);
    }

    #[test]
    fn option_values_are_checked_for_what_a_uri_or_mongodb_cannot_take() {
        assert_eq!(database_problem("admin"), None);
        for bad in ["", "my.db", "a b", "$external", &"x".repeat(64)] {
            assert!(database_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(replica_set_problem("rs0"), None);
        for bad in ["", "rs0&ssl=false", "a,b", "rs/0"] {
            assert!(replica_set_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(file_path_problem("/etc/ssl/aws/global-bundle.pem"), None);
        for bad in [
            "global-bundle.pem",
            "/etc/ssl/",
            "/etc/../root/ca.pem",
            "/a b.pem",
            "/a&b",
        ] {
            assert!(file_path_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(host_problem("mongo-0.mongo.databases.svc"), None);
        assert_eq!(host_problem("[::1]"), None);
        for bad in ["", "a,b", "user@host", "host:27017", "host/db"] {
            assert!(host_problem(bad).is_some(), "{bad:?}");
        }
    }
}
