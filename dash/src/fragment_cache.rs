//! The env list, rendered once and shared: what keeps `/envs` cheap for many viewers in
//! bounded memory.
//!
//! htmx polls the list every 2 s from every open tab. A row the viewer cannot change (someone
//! else's env, for anyone but an admin) reads the same for every such viewer but for their
//! CSRF token in a sleeping env's Wake button, so every env's row is rendered once in that
//! shared form, without the token, and the rows joined, in name order, into one
//! [`SharedList`] per [`LinkBase`] the links are written with (the token is put in as a
//! viewer's answer is sliced). A viewer's answer is slices of
//! it around their own envs (a few pieces, no copy: see [`crate::chunked`]), plus their own
//! rows, which carry their buttons and CSRF token and are kept per env, person and token
//! ([`RowCache::get`]). Everything is in one cache bounded in bytes, and nothing is kept per
//! viewer beyond those few rows: a thousand people polling cost the memory one does.
//!
//! The list is good while the caches have not changed (a [`Generation`] bumped by every watch
//! event) within the same minute (the "in 12 min" texts move once a minute; the page's script
//! keeps the exact countdown): the first request of a newer [`Stamp`] drops everything older.
//! The envs parsed from the cache are kept for the current generation too ([`Snapshot`]), and
//! a stamp's generation is its snapshot's, so a shared list lines up with the snapshot's envs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ephemerator_core::Env;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::chunked::TOKEN_MARKER;
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

/// One rendered row, or rows, shared (sent as it is: see [`crate::chunked`]).
pub type Row = actix_web::web::Bytes;

/// Every env's row as a viewer who cannot change it sees it, joined in the snapshot's order.
/// The one thing such a row holds of the viewer, the CSRF token of a sleeping env's Wake
/// button, is left out where [`TOKEN_MARKER`] was and put in as each viewer's answer is sliced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedList {
    body: Row,
    /// Where each row ends in `body`, in the snapshot's order.
    ends: Vec<usize>,
    /// Where in `body` the viewer's token goes, in order.
    tokens: Vec<usize>,
    /// How many of `tokens` each row and those before it hold.
    tokens_ends: Vec<usize>,
}

impl SharedList {
    /// Joins rows given in the snapshot's order.
    pub fn join(rows: impl IntoIterator<Item = String>) -> Self {
        let mut body = String::new();
        let mut ends = Vec::new();
        let mut tokens = Vec::new();
        let mut tokens_ends = Vec::new();
        for row in rows {
            let mut parts = row.split(TOKEN_MARKER);
            body.push_str(parts.next().unwrap_or_default());
            for part in parts {
                tokens.push(body.len());
                body.push_str(part);
            }
            ends.push(body.len());
            tokens_ends.push(tokens.len());
        }
        SharedList {
            body: Row::from(body),
            ends,
            tokens,
            tokens_ends,
        }
    }

    /// The rows whose index `keep` picks, with `token` where the viewer's token goes: as few
    /// slices of the body as there are runs of picked rows and tokens in them (no copy).
    pub fn pick(&self, token: &Row, mut keep: impl FnMut(usize) -> bool) -> Vec<Row> {
        let mut pieces = Vec::new();
        // The current run of picked rows: where it starts in the body and in `tokens`.
        let mut run: Option<(usize, usize)> = None;
        let (mut start, mut tokens_start) = (0, 0);
        for (index, (&end, &tokens_end)) in self.ends.iter().zip(&self.tokens_ends).enumerate() {
            if keep(index) {
                run.get_or_insert((start, tokens_start));
            } else if let Some((from, tokens_from)) = run.take() {
                self.push_run(&mut pieces, token, from..start, tokens_from..tokens_start);
            }
            (start, tokens_start) = (end, tokens_end);
        }
        if let Some((from, tokens_from)) = run {
            self.push_run(&mut pieces, token, from..start, tokens_from..tokens_start);
        }
        pieces
    }

    /// Pushes the body's `bytes` with `token` at each of `tokens[in_tokens]`.
    fn push_run(
        &self,
        pieces: &mut Vec<Row>,
        token: &Row,
        bytes: std::ops::Range<usize>,
        in_tokens: std::ops::Range<usize>,
    ) {
        let mut cursor = bytes.start;
        for &at in self.tokens.get(in_tokens).unwrap_or_default() {
            if at > cursor {
                pieces.push(self.body.slice(cursor..at));
            }
            if !token.is_empty() {
                pieces.push(token.clone());
            }
            cursor = at;
        }
        if bytes.end > cursor {
            pieces.push(self.body.slice(cursor..bytes.end));
        }
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn size(&self) -> usize {
        self.body.len() + (self.ends.len() * 2 + self.tokens.len()) * std::mem::size_of::<usize>()
    }
}

/// The shared rows' default bound: about sixteen lists of 1,000 envs.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Rendered rows for one [`Stamp`], by link base: the [`SharedList`], and the rows that carry
/// one person's buttons by a key naming env, person and token.
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
    list: Option<Arc<SharedList>>,
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
        match self.lock().used(stamp, links) {
            None => vec![None; names.len()],
            Some(rows) => names
                .iter()
                .map(|name| rows.rows.get(*name).cloned())
                .collect(),
        }
    }

    /// The shared list for `links` at `stamp`, if kept.
    pub fn list(&self, stamp: Stamp, links: &LinkBase) -> Option<Arc<SharedList>> {
        self.lock().used(stamp, links)?.list.clone()
    }

    /// Keeps freshly rendered rows of `links` at `stamp`. Past the bound the rows of the link
    /// bases used longest ago go first; rows that would not fit even then are not kept.
    pub fn put(&self, stamp: Stamp, links: &LinkBase, rendered: Vec<(String, Row)>) {
        let added: usize = rendered
            .iter()
            .map(|(name, row)| name.len() + row.len())
            .sum();
        let mut inner = self.lock();
        let Some(rows) = inner.room(stamp, links, added, self.max_bytes) else {
            return;
        };
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

    /// Keeps the shared list of `links` at `stamp`, under the same bound as [`Self::put`].
    pub fn put_list(&self, stamp: Stamp, links: &LinkBase, list: Arc<SharedList>) {
        let added = list.size();
        let mut inner = self.lock();
        let Some(rows) = inner.room(stamp, links, added, self.max_bytes) else {
            return;
        };
        let removed = rows.list.replace(list).map_or(0, |old| old.size());
        inner.bytes = (inner.bytes + added).saturating_sub(removed);
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
    /// The rows of `links` at `stamp`, marked as used now.
    fn used(&mut self, stamp: Stamp, links: &LinkBase) -> Option<&mut Rows> {
        if !self.renew(stamp) {
            return None;
        }
        self.clock += 1;
        let clock = self.clock;
        let rows = self.by_links.get_mut(links)?;
        rows.last_used = clock;
        Some(rows)
    }

    /// The rows of `links` at `stamp` with room made for `added` more bytes under
    /// `max_bytes` (the link bases used longest ago go first), or none if they cannot fit.
    fn room(
        &mut self,
        stamp: Stamp,
        links: &LinkBase,
        added: usize,
        max_bytes: usize,
    ) -> Option<&mut Rows> {
        if !self.renew(stamp) || added > max_bytes {
            return None;
        }
        while self.bytes + added > max_bytes {
            let oldest = self
                .by_links
                .iter()
                .filter(|(base, _)| *base != links)
                .min_by_key(|(_, rows)| rows.last_used)
                .map(|(base, _)| base.clone());
            let Some(oldest) = oldest else { break };
            if let Some(rows) = self.by_links.remove(&oldest) {
                self.bytes -= rows.size();
            }
        }
        if self.bytes + added > max_bytes {
            return None;
        }
        let clock = self.clock;
        let rows = self.by_links.entry(links.clone()).or_default();
        rows.last_used = clock;
        Some(rows)
    }

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
        let rows: usize = self
            .rows
            .iter()
            .map(|(name, row)| name.len() + row.len())
            .sum();
        rows + self.list.as_ref().map_or(0, |list| list.size())
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
        Row::copy_from_slice(text.as_bytes())
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

    #[test]
    fn a_shared_list_is_picked_as_one_slice_per_run_of_rows() {
        let list = SharedList::join(["<a>", "<b>", "<c>", "<d>"].map(String::from));
        let joined = |pieces: Vec<Row>| {
            (
                pieces.len(),
                pieces.iter().flat_map(|p| p.to_vec()).collect::<Vec<u8>>(),
            )
        };
        let none = Row::new();
        assert_eq!(
            joined(list.pick(&none, |_| true)),
            (1, b"<a><b><c><d>".to_vec())
        );
        assert_eq!(
            joined(list.pick(&none, |i| i != 1)),
            (2, b"<a><c><d>".to_vec())
        );
        assert_eq!(
            joined(list.pick(&none, |i| i == 0 || i == 3)),
            (2, b"<a><d>".to_vec())
        );
        assert_eq!(joined(list.pick(&none, |_| false)), (0, Vec::new()));
        assert_eq!(list.len(), 4);
    }

    #[test]
    fn each_viewer_gets_their_own_token_where_the_shared_rows_have_the_marker() {
        let rows = [
            format!("<a v={TOKEN_MARKER}>"),
            "<b>".to_string(),
            format!("<c v={TOKEN_MARKER} w={TOKEN_MARKER}>"),
        ];
        let list = SharedList::join(rows);
        let picked = |token: &str, keep: fn(usize) -> bool| {
            let pieces = list.pick(&row(token), keep);
            String::from_utf8(pieces.iter().flat_map(|p| p.to_vec()).collect()).unwrap()
        };
        assert_eq!(picked("T1", |_| true), "<a v=T1><b><c v=T1 w=T1>");
        assert_eq!(picked("T2", |i| i != 0), "<b><c v=T2 w=T2>");
        assert_eq!(picked("T3", |i| i != 2), "<a v=T3><b>");
        assert_eq!(picked("T4", |i| i == 2), "<c v=T4 w=T4>");
        assert_eq!(picked("", |i| i == 0), "<a v=>");
        assert!(!picked("T5", |_| true).contains(TOKEN_MARKER));
    }

    #[test]
    fn the_shared_list_counts_against_the_bound_and_goes_with_its_stamp() {
        let cache = RowCache::new(100);
        let list = Arc::new(SharedList::join(["<li>a</li>".to_string()]));
        cache.put_list(AT, &links(""), list.clone());
        assert_eq!(cache.list(AT, &links("")).as_deref(), Some(&*list));
        assert!(cache.bytes() >= 10, "{}", cache.bytes());
        let big = Arc::new(SharedList::join(["x".repeat(200)]));
        cache.put_list(AT, &links(":1"), big);
        assert_eq!(cache.list(AT, &links(":1")), None, "larger than the bound");
        let later = Stamp { minute: 101, ..AT };
        assert_eq!(cache.list(later, &links("")), None, "a minute passed");
        assert_eq!(cache.bytes(), 0);
    }
}
