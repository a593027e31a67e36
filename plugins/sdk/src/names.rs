//! Names every engine needs: where a database's backups live, and how to fit a name into an
//! engine's length limit without collisions.

use sha2::{Digest, Sha256};

use crate::S3Target;

/// Key prefix (no leading or trailing `/`) under which the backups of `database_name` live:
/// `<prefix>/<database_name>`, or just `<database_name>` when the target has no prefix.
///
/// Backup objects are then `<object_prefix>/<database_name>-<YYYYmmddTHHMMSSZ>.<ext>`, with a
/// `<database_name>-latest.<ext>` copy of the newest successful one.
pub fn object_prefix(target: &S3Target, database_name: &str) -> String {
    let prefix = target.prefix.trim_matches('/');
    let name = database_name.trim_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Length of the hash suffix [`shorten`] appends (hex digits).
pub const HASH_SUFFIX_LEN: usize = 8;

/// `name` itself when it fits in `max_bytes`, else its longest prefix that fits together with
/// `separator` and the first [`HASH_SUFFIX_LEN`] hex digits of its SHA-256.
///
/// The suffix keeps two long names that share a prefix apart, and is stable, so the same input
/// always maps to the same server-side name. `max_bytes` must leave room for the suffix
/// (at least `HASH_SUFFIX_LEN + 1 + separator.len_utf8()`); smaller limits return just the hash.
pub fn shorten(name: &str, max_bytes: usize, separator: char) -> String {
    if name.len() <= max_bytes {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .take(HASH_SUFFIX_LEN)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
        .collect();
    let room = max_bytes.saturating_sub(HASH_SUFFIX_LEN + separator.len_utf8());
    if room == 0 {
        return hash;
    }
    let mut cut = room;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = name[..cut].trim_end_matches(separator);
    format!("{head}{separator}{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3Auth;

    fn target(prefix: &str) -> S3Target {
        S3Target {
            bucket: "backups".into(),
            prefix: prefix.into(),
            region: None,
            endpoint: None,
            auth: S3Auth::Ambient,
        }
    }

    #[test]
    fn object_prefix_joins_without_double_or_stray_slashes() {
        assert_eq!(object_prefix(&target(""), "shop-orders"), "shop-orders");
        assert_eq!(
            object_prefix(&target("prod"), "shop-orders"),
            "prod/shop-orders"
        );
        assert_eq!(
            object_prefix(&target("/prod/pg/"), "shop-orders"),
            "prod/pg/shop-orders"
        );
    }

    #[test]
    fn short_names_are_kept_and_long_ones_get_a_stable_hash() {
        assert_eq!(shorten("shop-orders", 63, '-'), "shop-orders");
        let long = format!("team-{}", "a".repeat(80));
        let short = shorten(&long, 63, '-');
        assert_eq!(short.len(), 63);
        assert!(short.starts_with("team-aaaa"), "{short}");
        assert_eq!(short, shorten(&long, 63, '-'), "same input, same name");
        let other = format!("team-{}b", "a".repeat(80));
        assert_ne!(
            short,
            shorten(&other, 63, '-'),
            "a shared prefix must not collide"
        );
        let suffix = &short[short.len() - HASH_SUFFIX_LEN..];
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{short}");
    }

    #[test]
    fn shortening_never_splits_a_character_nor_doubles_the_separator() {
        let name = format!("{}é{}", "x".repeat(53), "y".repeat(20));
        let short = shorten(&name, 63, '_');
        assert!(short.len() <= 63, "{short}");
        let dashed = format!("{}-{}", "x".repeat(53), "y".repeat(20));
        let short = shorten(&dashed, 63, '-');
        assert!(!short.contains("--"), "{short}");
    }
}
