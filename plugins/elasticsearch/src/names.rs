//! Elasticsearch naming: the index prefix that fences a Database's indices, and the names
//! derived from it.
//!
//! A Database `<namespace>/<name>` owns the indices (and data streams, aliases, templates)
//! named `<prefix>` or `<prefix>_<anything>`, with `<prefix>` = `<namespace>_<name>`.
//! The separator is `_` on purpose: Kubernetes namespaces and object names never contain it,
//! so the prefix is unique per Database, and the pattern `<prefix>_*` of one Database never
//! matches the indices of another. With `-` it would: `shop-orders-*` also matches the
//! indices of a Database `shop/orders-archive`, and its role, snapshots and restores would
//! reach into them.

use dbo_plugin_sdk::{Database, names};

/// Longest index prefix. Elasticsearch allows 255 bytes per index name; this leaves room for
/// the part users append, and for the `-<timestamp>` of snapshot names.
pub const MAX_PREFIX_BYTES: usize = 100;

/// Separates the namespace from the name in the prefix, and the prefix from the rest of an
/// index name. It occurs in no Kubernetes name.
pub const SEPARATOR: char = '_';

/// Prefix of the role the Database's user has (`dbo-<prefix>`).
pub const ROLE_PREFIX: &str = "dbo-";

/// Length of the `-yyyymmddthhmmssz` suffix of snapshot names.
const STAMP_SUFFIX_LEN: usize = 17;

/// The index prefix of `database`: `<namespace>_<name>`, lower-cased, with anything
/// Elasticsearch does not allow in index names replaced by `-` (valid Kubernetes names have
/// none of it), never starting with `-`, `_`, `+` or `.`, and shortened with a hash suffix
/// beyond [`MAX_PREFIX_BYTES`].
pub fn index_prefix(database: &Database) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let raw = format!(
        "{}{SEPARATOR}{}",
        part(&database.namespace),
        part(&database.name)
    );
    let trimmed = raw.trim_start_matches(['-', '_', '+', '.']);
    let trimmed = if trimmed.is_empty() { "db" } else { trimmed };
    names::shorten(trimmed, MAX_PREFIX_BYTES, '-')
}

/// The role of the Database's user.
pub fn role(prefix: &str) -> String {
    format!("{ROLE_PREFIX}{prefix}")
}

/// Why `name` is not a snapshot this engine's backups could have made, if it is not:
/// `<index prefix>-<yyyymmddthhmmssz>`, lower-case.
pub fn snapshot_name_problem(name: &str) -> Option<String> {
    let example = "shop_orders-20240501t080000z";
    if name.is_empty() {
        return Some(format!(
            "is empty; give the name of a snapshot the backups made, e.g. `{example}`"
        ));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!(
            "{name:?} has upper-case letters, but snapshot names are lower-case; write {:?}",
            name.to_ascii_lowercase()
        ));
    }
    if let Some(bad) = name.chars().find(|&c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.')
    }) {
        return Some(format!(
            "{name:?} contains {bad:?}, which no snapshot name of db-operator has; give a name \
             like `{example}` (the `key` of status.lastBackup)"
        ));
    }
    let stamp_ok = name.len() > STAMP_SUFFIX_LEN
        && name.is_char_boundary(name.len() - STAMP_SUFFIX_LEN)
        && is_stamp(&name[name.len() - STAMP_SUFFIX_LEN..]);
    if !stamp_ok || name.starts_with(['-', '_', '+', '.']) {
        return Some(format!(
            "{name:?} is not `<index prefix>-<yyyymmddthhmmssz>`, the form of the snapshots \
             db-operator takes, e.g. `{example}`"
        ));
    }
    None
}

/// Whether `s` is `-yyyymmddthhmmssz`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == STAMP_SUFFIX_LEN
        && b[0] == b'-'
        && b[1..9].iter().all(u8::is_ascii_digit)
        && b[9] == b't'
        && b[10..16].iter().all(u8::is_ascii_digit)
        && b[16] == b'z'
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
    fn prefixes_join_namespace_and_name_with_an_underscore() {
        assert_eq!(index_prefix(&db("shop", "orders")), "shop_orders");
        assert_eq!(index_prefix(&db("shop", "orders.v2")), "shop_orders.v2");
        assert_eq!(index_prefix(&db("Shop", "Orders")), "shop_orders");
        assert_eq!(index_prefix(&db("shop", "a*b")), "shop_a-b");
    }

    #[test]
    fn prefixes_of_different_databases_never_collide_or_cover_each_other() {
        // With `-` these two would be the same string.
        assert_ne!(index_prefix(&db("a-b", "c")), index_prefix(&db("a", "b-c")));
        // And `shop-orders-*` would cover the indices of `shop/orders-archive`.
        let orders = index_prefix(&db("shop", "orders"));
        let archive = index_prefix(&db("shop", "orders-archive"));
        assert!(!archive.starts_with(&format!("{orders}{SEPARATOR}")));
        assert!(!archive.contains(&format!("{orders}{SEPARATOR}")));
    }

    #[test]
    fn long_prefixes_are_shortened_stably() {
        let a = index_prefix(&db("payments", &"ledger-".repeat(30)));
        let b = index_prefix(&db("payments", &"ledger-".repeat(31)));
        assert!(a.len() <= MAX_PREFIX_BYTES, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, index_prefix(&db("payments", &"ledger-".repeat(30))));
        assert!(a.starts_with("payments_ledger-"), "{a}");
    }

    #[test]
    fn the_role_is_named_after_the_prefix() {
        assert_eq!(role("shop_orders"), "dbo-shop_orders");
    }

    #[test]
    fn snapshot_names_must_be_ours_and_lower_case() {
        assert_eq!(snapshot_name_problem("shop_orders-20240501t080000z"), None);
        assert_eq!(
            snapshot_name_problem("shop_orders.v2-20240501t080000z"),
            None
        );
        let upper = snapshot_name_problem("shop_orders-20240501T080000Z").expect("upper case");
        assert!(
            upper.contains("\"shop_orders-20240501t080000z\""),
            "{upper}"
        );
        for bad in [
            "",
            "shop_orders",
            "shop_orders-latest",
            "-20240501t080000z",
            "shop orders-20240501t080000z",
            "shop/orders-20240501t080000z",
            "shop_orders-2024050t080000z",
        ] {
            assert!(
                snapshot_name_problem(bad).is_some(),
                "{bad:?} must be refused"
            );
        }
    }
}
