//! The env list, rendered row by row and shared: what keeps `/envs` cheap for many viewers in
//! bounded memory.
//!
//! htmx polls the list every 2 s from every open tab. A row the viewer cannot change (someone
//! else's env, for anyone but an admin) reads the same for every such viewer, so it is rendered
//! once and shared by all of them: [`RowCache`], keyed by the env and the [`LinkBase`] its
//! links are written with, and bounded in bytes. The viewer's own rows, which carry their
//! buttons and CSRF token, are rendered for each request (a person has a handful). Nothing is
//! kept per viewer: a thousand people polling cost the memory one does.
//!
//! A row is good while the caches have not changed (a [`Generation`] bumped by every watch
//! event) within the same minute (the "in 12 min" texts move once a minute; the page's script
//! keeps the exact countdown): the first request of a newer [`Stamp`] drops every older row.
//! The envs parsed from the cache are kept for the current generation too ([`Snapshot`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ephemerator_core::Env;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::views::{EventView, LinkBase};

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

/// When a rendered row is good: one generation of the caches, in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The cache generation.
    pub generation: u64,
    /// The minute (Unix seconds / 60).
    pub minute: i64,
}

/// One rendered row, shared.
pub type Row = Arc<str>;

/// The shared rows' default bound: about sixteen lists of 1,000 envs.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Shared rendered rows, by link base and env name, for one [`Stamp`].
#[derive(Debug)]
pub struct RowCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    stamp: Option<Stamp>,
    by_links: HashMap<LinkBase, Rows>,
    bytes: usize,
    /// Counts lookups, to find the link base used longest ago.
    clock: u64,
}

#[derive(Debug, Default)]
struct Rows {
    rows: HashMap<String, Row>,
    last_used: u64,
}

impl Default for RowCache {
    fn default() -> Self {
        RowCache::new(DEFAULT_MAX_BYTES)
    }
}

impl RowCache {
    /// A cache holding at most `max_bytes` of rows (and their names).
    pub fn new(max_bytes: usize) -> Self {
        RowCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    /// The rows of `names` for `links` at `stamp`, as far as they are kept (one lock for all).
    pub fn get(&self, stamp: Stamp, links: &LinkBase, names: &[&str]) -> Vec<Option<Row>> {
        let mut inner = self.lock();
        if !inner.renew(stamp) {
            return vec![None; names.len()];
        }
        inner.clock += 1;
        let clock = inner.clock;
        match inner.by_links.get_mut(links) {
            None => vec![None; names.len()],
            Some(rows) => {
                rows.last_used = clock;
                names
                    .iter()
                    .map(|name| rows.rows.get(*name).cloned())
                    .collect()
            }
        }
    }

    /// Keeps freshly rendered rows of `links` at `stamp`. Past the bound the rows of the link
    /// bases used longest ago go first; rows that would not fit even then are not kept.
    pub fn put(&self, stamp: Stamp, links: &LinkBase, rendered: Vec<(String, Row)>) {
        let mut inner = self.lock();
        if !inner.renew(stamp) {
            return;
        }
        let added: usize = rendered
            .iter()
            .map(|(name, row)| name.len() + row.len())
            .sum();
        if added > self.max_bytes {
            return;
        }
        while inner.bytes + added > self.max_bytes {
            let oldest = inner
                .by_links
                .iter()
                .filter(|(base, _)| *base != links)
                .min_by_key(|(_, rows)| rows.last_used)
                .map(|(base, _)| base.clone());
            let Some(oldest) = oldest else { break };
            if let Some(rows) = inner.by_links.remove(&oldest) {
                inner.bytes -= rows.size();
            }
        }
        if inner.bytes + added > self.max_bytes {
            return;
        }
        let clock = inner.clock;
        let rows = inner.by_links.entry(links.clone()).or_default();
        rows.last_used = clock;
        let mut change: isize = 0;
        for (name, row) in rendered {
            let size = (name.len() + row.len()) as isize;
            if let Some(old) = rows.rows.insert(name.clone(), row) {
                change -= (name.len() + old.len()) as isize;
            }
            change += size;
        }
        inner.bytes = inner.bytes.saturating_add_signed(change);
    }

    /// The bytes of rows (and names) kept now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Moves on to `stamp` if it is newer (every older row goes); whether rows of `stamp` may
    /// be read and kept (not for a request that read an older generation).
    fn renew(&mut self, stamp: Stamp) -> bool {
        match self.stamp {
            Some(current) if current == stamp => true,
            Some(current) if current > stamp => false,
            _ => {
                self.stamp = Some(stamp);
                self.by_links.clear();
                self.bytes = 0;
                true
            }
        }
    }
}

impl Rows {
    fn size(&self) -> usize {
        self.rows
            .iter()
            .map(|(name, row)| name.len() + row.len())
            .sum()
    }
}

/// The envs as cached at one generation, parsed, by name, with their recent Events.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The generation they were read at.
    pub generation: u64,
    /// Every env that parses, by name.
    pub envs: Vec<(Arc<ConfigMap>, Env)>,
    /// The recent Events of each env, by env name, newest first.
    pub events: HashMap<String, Vec<EventView>>,
}

/// The latest [`Snapshot`], made again when the generation moves.
#[derive(Debug, Default)]
pub struct SnapshotCache(Mutex<Option<Arc<Snapshot>>>);

impl SnapshotCache {
    /// The snapshot of `generation`, made with `make` if the one kept is of another.
    pub fn get_or_make(&self, generation: u64, make: impl FnOnce() -> Snapshot) -> Arc<Snapshot> {
        if let Some(snapshot) = self.lock().as_ref().filter(|s| s.generation == generation) {
            return snapshot.clone();
        }
        // Made outside the lock: a request of another generation is never held up by it.
        let snapshot = Arc::new(make());
        let mut kept = self.lock();
        if kept
            .as_ref()
            .is_none_or(|s| s.generation <= snapshot.generation)
        {
            *kept = Some(snapshot.clone());
        }
        snapshot
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Snapshot>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(port: &str) -> LinkBase {
        LinkBase {
            scheme: "http".into(),
            port_suffix: port.into(),
        }
    }

    const AT: Stamp = Stamp {
        generation: 1,
        minute: 100,
    };

    fn row(text: &str) -> Row {
        Row::from(text)
    }

    #[test]
    fn rows_are_shared_until_the_caches_or_the_minute_change() {
        let cache = RowCache::default();
        cache.put(AT, &links(""), vec![("a".into(), row("<li>a</li>"))]);
        assert_eq!(
            cache.get(AT, &links(""), &["a", "b"]),
            vec![Some(row("<li>a</li>")), None]
        );
        assert_eq!(
            cache.get(AT, &links(":8080"), &["a"]),
            vec![None],
            "other links"
        );
        let later = Stamp { minute: 101, ..AT };
        assert_eq!(
            cache.get(later, &links(""), &["a"]),
            vec![None],
            "a minute passed"
        );
        assert_eq!(cache.bytes(), 0, "the older rows went");
        // A request that read the older generation neither reads nor keeps rows.
        cache.put(AT, &links(""), vec![("a".into(), row("old"))]);
        assert_eq!(cache.bytes(), 0);
        let changed = Stamp {
            generation: 2,
            ..later
        };
        cache.put(changed, &links(""), vec![("a".into(), row("new"))]);
        assert_eq!(
            cache.get(changed, &links(""), &["a"]),
            vec![Some(row("new"))]
        );
    }

    #[test]
    fn the_bound_drops_the_links_used_longest_ago() {
        // Room for two link bases' rows of 10 bytes each.
        let cache = RowCache::new(22);
        let ten = || vec![("a".to_string(), row("123456789"))];
        cache.put(AT, &links(":1"), ten());
        cache.put(AT, &links(":2"), ten());
        cache.get(AT, &links(":1"), &["a"]);
        cache.put(AT, &links(":3"), ten());
        assert!(cache.bytes() <= 22, "{}", cache.bytes());
        assert_eq!(
            cache.get(AT, &links(":2"), &["a"]),
            vec![None],
            "used longest ago"
        );
        assert!(cache.get(AT, &links(":1"), &["a"])[0].is_some());
        assert!(cache.get(AT, &links(":3"), &["a"])[0].is_some());
        // Rows larger than the whole bound are not kept.
        cache.put(AT, &links(":4"), vec![("b".into(), row(&"x".repeat(100)))]);
        assert!(cache.bytes() <= 22);
        assert_eq!(cache.get(AT, &links(":4"), &["b"]), vec![None]);
    }
}
