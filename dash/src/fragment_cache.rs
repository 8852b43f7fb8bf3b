//! The env-list fragment, rendered once and served to every poll until something changes.
//!
//! htmx polls the list every 2 s from every open tab; rendering 1,000 envs costs milliseconds,
//! serving a rendered copy microseconds. A copy is good while the caches have not changed (a
//! generation bumped by every watch event), for the same user, filter and link base, within the
//! same minute (the fragment's "in 12 min" texts move once a minute; the page's script keeps
//! the exact countdown). Each answer carries an ETag, so a browser revalidating gets a 304.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web::Bytes;

/// Counts changes of the watched caches.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    /// Something changed.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// The current generation.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Who sees which version of the fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The user (rows show their buttons and their CSRF token).
    pub user: String,
    /// The mine/all filter.
    pub mine_only: bool,
    /// How the endpoint links are written.
    pub links: crate::views::LinkBase,
    /// The refused config file's error, for an admin's banner (`None` for everyone else):
    /// a new error, or its fix, is a new fragment.
    pub config_refused: Option<String>,
}

/// A rendered fragment and when it was made.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The cache generation it was rendered at.
    pub generation: u64,
    /// The minute (Unix seconds / 60) it was rendered in.
    pub minute: i64,
    /// The body.
    pub body: Bytes,
    /// Its entity tag.
    pub etag: String,
}

/// Most fragments kept (one per user, filter and link base in use); past it the cache starts over.
const MAX_ENTRIES: usize = 4096;

/// Rendered fragments by [`Key`].
#[derive(Debug, Default)]
pub struct FragmentCache {
    entries: Mutex<HashMap<Key, Rendered>>,
}

impl FragmentCache {
    /// The fragment for `key` if it is still good at `generation` and `minute`.
    pub fn get(&self, key: &Key, generation: u64, minute: i64) -> Option<Rendered> {
        let entries = self.lock();
        entries
            .get(key)
            .filter(|rendered| rendered.generation == generation && rendered.minute == minute)
            .cloned()
    }

    /// Keeps a freshly rendered fragment and returns it with its ETag.
    pub fn put(&self, key: Key, generation: u64, minute: i64, body: String) -> Rendered {
        let etag = format!("\"{generation:x}-{minute:x}-{:x}\"", digest(&body));
        let rendered = Rendered {
            generation,
            minute,
            body: Bytes::from(body),
            etag,
        };
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, rendered.clone());
        rendered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Rendered>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn digest(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> Key {
        Key {
            user: user.into(),
            mine_only: false,
            links: crate::views::LinkBase {
                scheme: "http".into(),
                port_suffix: String::new(),
            },
            config_refused: None,
        }
    }

    #[test]
    fn a_fragment_is_reused_until_the_caches_or_the_minute_change() {
        let cache = FragmentCache::default();
        let first = cache.put(key("nicks"), 1, 100, "<ul></ul>".into());
        assert_eq!(cache.get(&key("nicks"), 1, 100).unwrap().etag, first.etag);
        assert!(
            cache.get(&key("nicks"), 2, 100).is_none(),
            "the caches changed"
        );
        assert!(
            cache.get(&key("nicks"), 1, 101).is_none(),
            "a minute passed"
        );
        assert!(cache.get(&key("other"), 1, 100).is_none(), "another user");
        let second = cache.put(key("nicks"), 2, 100, "<ul><li></li></ul>".into());
        assert_ne!(first.etag, second.etag);
    }
}
