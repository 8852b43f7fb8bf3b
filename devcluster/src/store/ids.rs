//! Server-generated values: uids, generated names and timestamps.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 64 random bits from the standard library's per-process random hasher keys, varied per call.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A random version-4 UUID in its usual text form.
pub fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let hi = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The alphabet the real server draws `generateName` suffixes from (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters; the base is cut so the name stays within 63.
pub fn generated_name(base: &str) -> String {
    let base: String = base.chars().take(58).collect();
    let mut r = random_u64();
    let mut name = base;
    for _ in 0..5 {
        name.push(SUFFIX_ALPHABET[(r % SUFFIX_ALPHABET.len() as u64) as usize] as char);
        r /= SUFFIX_ALPHABET.len() as u64;
    }
    name
}

/// Now, RFC 3339 in whole seconds, as `metav1.Time` serialises.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_distinct_uuid_v4s() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn generated_names_keep_the_base() {
        let n = generated_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        assert_ne!(generated_name("web-"), generated_name("web-"));
    }
}
