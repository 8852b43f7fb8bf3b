//! Env names derived from user identities.
//!
//! # Scheme
//!
//! An env name is a DNS label that is also a valid Service name (lowercase letters, digits and
//! `-`, starting with a letter, ending with a letter or digit, at most 63 characters), so the
//! controller can name the env's children after it.
//!
//! The **base name** of an identity is:
//! - the identity itself when it already is such a name, contains no `--`, and is at most
//!   [`MAX_BASE_LEN`] characters (`nicks` → `nicks`, as upstream);
//! - otherwise `PREFIX--HASH`: PREFIX is the identity lowercased, with every run of other
//!   characters replaced by one `-`, trimmed of `-`, prefixed with `u-` unless it starts with a
//!   letter (`u` when nothing is left), cut to [`MAX_PREFIX_LEN`]; HASH is 12 base32 characters
//!   (60 bits) of the SHA-256 of the original identity (`Nick.S@example.com` →
//!   `nick-s-example-com--` + 12 characters).
//!
//! Kept names never contain `--`; hashed ones contain it exactly once, followed by exactly 12
//! characters. So a kept name never equals a hashed one, and distinct identities get distinct
//! base names (hashed ones barring a SHA-256 collision in 60 bits).
//!
//! The **Nth env** of a user (N from 2 to [`MAX_ENVS`]) is `BASE--N`; the first is `BASE`. The
//! part after the last `--` is 1 to 3 digits for an Nth name and 12 characters for a hashed base,
//! so (identity, N) pairs map to distinct names. Base names are capped at [`MAX_BASE_LEN`] so
//! that the longest suffix (`--999`) still fits in 63.
//!
//! Names never contain `---`, which the gateway uses to split `PORT---ENV` host names.

use sha2::{Digest, Sha256};

/// Longest env name (a DNS label).
pub const MAX_NAME_LEN: usize = 63;
/// Highest N for [`nth_env_name`].
pub const MAX_ENVS: u32 = 999;
/// Longest base name: 63 minus the longest Nth suffix `--999`.
pub const MAX_BASE_LEN: usize = MAX_NAME_LEN - 5;
/// Characters of hash in a hashed base name.
pub const HASH_LEN: usize = 12;
/// Longest prefix before `--HASH` in a hashed base name.
pub const MAX_PREFIX_LEN: usize = MAX_BASE_LEN - 2 - HASH_LEN;

/// Errors from [`nth_env_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// N outside 1..=[`MAX_ENVS`].
    #[error("env number {0} is out of range 1..={MAX_ENVS}")]
    IndexOutOfRange(u32),
}

/// The base env name of `identity`: the name of the user's first env. Deterministic; see the
/// module docs for the scheme.
pub fn base_env_name(identity: &str) -> String {
    if is_kept_as_is(identity) {
        return identity.to_string();
    }
    let mut prefix = sanitize(identity);
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        prefix = if prefix.is_empty() {
            "u".to_string()
        } else {
            format!("u-{prefix}")
        };
    }
    // Sanitised text is ASCII, so byte truncation is char truncation.
    prefix.truncate(MAX_PREFIX_LEN);
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}--{}", identity_hash(identity))
}

/// The name of the `n`th env (1-based) of `identity`: the base name for 1, `BASE--N` after.
pub fn nth_env_name(identity: &str, n: u32) -> Result<String, NameError> {
    match n {
        1 => Ok(base_env_name(identity)),
        2..=MAX_ENVS => Ok(format!("{}--{n}", base_env_name(identity))),
        _ => Err(NameError::IndexOutOfRange(n)),
    }
}

/// Whether `name` is a valid env name: a DNS-1123 label that also starts with a letter
/// (a DNS-1035 label, which Service names need), at most 63 characters.
pub fn is_valid_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn is_kept_as_is(identity: &str) -> bool {
    identity.len() <= MAX_BASE_LEN && is_valid_env_name(identity) && !identity.contains("--")
}

/// Lowercases ASCII letters and digits and turns each run of anything else into one `-`.
fn sanitize(identity: &str) -> String {
    let mut out = String::new();
    for c in identity.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() > MAX_PREFIX_LEN + 2 {
            break; // Enough for the prefix; the hash covers the rest.
        }
    }
    out.trim_matches('-').to_string()
}

/// 12 lowercase RFC 4648 base32 characters (60 bits) of SHA-256(identity).
fn identity_hash(identity: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(identity.as_bytes());
    let mut bits = 0u64;
    for byte in &digest[..8] {
        bits = (bits << 8) | u64::from(*byte);
    }
    (0..HASH_LEN)
        .map(|i| ALPHABET[((bits >> (64 - 5 * (i + 1))) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_logins_are_kept() {
        assert_eq!(base_env_name("nicks"), "nicks");
        assert_eq!(base_env_name("dev-42"), "dev-42");
    }

    #[test]
    fn changed_identities_get_a_hash_suffix() {
        let name = base_env_name("Nick.S@example.com");
        assert!(name.starts_with("nick-s-example-com--"), "{name}");
        assert_eq!(name.len(), "nick-s-example-com--".len() + HASH_LEN);
        assert!(is_valid_env_name(&name));
        // Upper case alone is a change: it must not collide with the lowercase login.
        assert_ne!(base_env_name("Nicks"), base_env_name("nicks"));
        assert!(base_env_name("Nicks").starts_with("nicks--"));
    }

    #[test]
    fn identities_that_look_hashed_or_numbered_are_hashed_themselves() {
        let hashed = base_env_name("Nicks");
        assert_ne!(base_env_name(&hashed), hashed);
        assert_ne!(base_env_name("nicks--2"), nth_env_name("nicks", 2).unwrap());
    }

    #[test]
    fn identities_without_usable_characters_still_get_valid_names() {
        for identity in ["日本語", "", "---", "42", "_", "ÄÖÜ@ß.de"] {
            let name = base_env_name(identity);
            assert!(is_valid_env_name(&name), "{identity:?} -> {name}");
        }
        assert!(base_env_name("42").starts_with("u-42--"));
        assert!(base_env_name("日本語").starts_with("u--"));
    }

    #[test]
    fn long_identities_are_cut_but_stay_distinct() {
        let a = "a".repeat(300);
        let b = format!("{}b", "a".repeat(299));
        assert_ne!(base_env_name(&a), base_env_name(&b));
        assert!(base_env_name(&a).len() <= MAX_BASE_LEN);
        assert_eq!(
            base_env_name(&"x".repeat(MAX_BASE_LEN)),
            "x".repeat(MAX_BASE_LEN)
        );
        assert_ne!(
            base_env_name(&"x".repeat(MAX_BASE_LEN + 1)),
            "x".repeat(MAX_BASE_LEN + 1)
        );
    }

    #[test]
    fn nth_names_append_a_number_and_fit() {
        assert_eq!(nth_env_name("nicks", 1).unwrap(), "nicks");
        assert_eq!(nth_env_name("nicks", 2).unwrap(), "nicks--2");
        let longest = nth_env_name(&"Z".repeat(500), MAX_ENVS).unwrap();
        assert!(is_valid_env_name(&longest), "{longest}");
        assert_eq!(nth_env_name("nicks", 0), Err(NameError::IndexOutOfRange(0)));
        assert_eq!(
            nth_env_name("nicks", MAX_ENVS + 1),
            Err(NameError::IndexOutOfRange(MAX_ENVS + 1))
        );
    }

    #[test]
    fn validity_check_matches_dns_rules() {
        assert!(is_valid_env_name("a"));
        assert!(is_valid_env_name(&"a".repeat(63)));
        assert!(!is_valid_env_name(&"a".repeat(64)));
        for bad in ["", "-a", "a-", "1a", "A", "a_b", "a.b", "ä"] {
            assert!(!is_valid_env_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(base_env_name("x@y.z"), base_env_name("x@y.z"));
    }
}
