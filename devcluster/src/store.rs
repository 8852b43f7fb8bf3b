//! The object store: every object of every served type, one global resourceVersion counter,
//! a bounded change history for watch resumption, and change broadcasts.
//!
//! Objects are kept as `Arc<Value>` behind one lock so lists and watches share them without
//! copying; all server-side write semantics (identity, preconditions, generation, status
//! subresource, finalizers, defaults) live here so in-process users get the same behaviour as
//! HTTP clients.

mod defaults;
pub mod events;
pub mod ids;
pub mod meta;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::error::ApiError;
use crate::field_validation::{self, FieldValidation};
use crate::patch;
use crate::resources::{RESOURCES, ResourceType};
use crate::selectors::{LabelSelector, Selectors};

pub use defaults::tracks_generation;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    /// The watch event type (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_watch_type(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change. `object` is the new state (for `Deleted`, the last state with the deletion's
/// resourceVersion); `previous` the state before, for watchers whose selector it may leave.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub resource: &'static ResourceType,
    pub kind: EventKind,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
    pub resource_version: u64,
}

/// How dependents are treated when an owner is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Background,
    Foreground,
    Orphan,
}

impl PropagationPolicy {
    pub fn parse(s: &str) -> Result<PropagationPolicy, ApiError> {
        match s {
            "Background" => Ok(PropagationPolicy::Background),
            "Foreground" => Ok(PropagationPolicy::Foreground),
            "Orphan" => Ok(PropagationPolicy::Orphan),
            other => Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {other:?}: must be Background, Foreground or Orphan"
            ))),
        }
    }
}

/// `DeleteOptions`, from a request body or query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub propagation_policy: Option<PropagationPolicy>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
}

/// Options of a create or update.
#[derive(Clone, Debug)]
pub struct WriteOptions<'a> {
    pub manager: &'a str,
    pub dry_run: bool,
}

impl<'a> WriteOptions<'a> {
    pub fn manager(manager: &'a str) -> Self {
        WriteOptions {
            manager,
            dry_run: false,
        }
    }
}

/// The outcome of a PATCH.
#[derive(Debug)]
pub struct Patched {
    pub object: Value,
    /// Created by an apply.
    pub created: bool,
    /// `fieldValidation=Warn` warnings (unknown fields dropped from the result).
    pub warnings: Vec<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    /// The resourceVersion the list is consistent with.
    pub resource_version: u64,
    /// Where the next page starts (namespace, name), if there is one.
    pub continue_after: Option<(String, String)>,
    pub remaining: usize,
}

/// Store tuning.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Changes kept for watch resumption; older resourceVersions get 410 Expired.
    pub history_size: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            history_size: 10_000,
        }
    }
}

type ObjectKey = (String, String);
type TypedKey = (usize, String, String);

/// Buffered changes per watch channel; a watcher further behind is closed (it resumes).
const TYPE_CHANNEL_CAPACITY: usize = 8192;
const GLOBAL_CHANNEL_CAPACITY: usize = 65536;

struct State {
    rv: u64,
    tables: Vec<BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<StoreEvent>,
    history_size: usize,
    /// The oldest resourceVersion a watch may resume from.
    oldest_resumable: u64,
    by_uid: HashMap<String, TypedKey>,
    /// Owner uid -> objects naming it in ownerReferences.
    dependents: HashMap<String, BTreeSet<TypedKey>>,
    cluster_ips: HashSet<String>,
    next_cluster_ip: u32,
}

struct Inner {
    state: RwLock<State>,
    type_channels: Vec<broadcast::Sender<StoreEvent>>,
    all_changes: broadcast::Sender<StoreEvent>,
    changed: Notify,
}

/// The shared object store (cheap to clone).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The table (position in `RESOURCES`) holding a served type's objects, and the type's
/// `'static` entry. A type served as a view of another (events.k8s.io Events) shares that
/// type's table; its objects are converted on the way in and out.
pub fn type_index(rt: &ResourceType) -> Result<(usize, &'static ResourceType), ApiError> {
    let view = RESOURCES
        .iter()
        .find(|r| r.group == rt.group && r.version == rt.version && r.plural == rt.plural)
        .ok_or_else(|| ApiError::unknown_path(&format!("{}/{}", rt.api_version(), rt.plural)))?;
    let storage = events::storage_type(view);
    let ti = RESOURCES
        .iter()
        .position(|r| std::ptr::eq(r, storage))
        .ok_or_else(|| ApiError::internal(format!("no table stores {}", view.plural)))?;
    Ok((ti, view))
}

fn namespace_type() -> (usize, &'static ResourceType) {
    RESOURCES
        .iter()
        .enumerate()
        .find(|(_, r)| r.group.is_empty() && r.plural == "namespaces")
        .expect("the resource table serves namespaces")
}

/// A write to `/status` needs a type with that subresource; the real server has no such path else.
fn require_status_subresource(rt: &ResourceType, status: bool) -> Result<(), ApiError> {
    if status && !rt.status_subresource {
        return Err(ApiError::unknown_path(&format!("{}/status", rt.plural)));
    }
    Ok(())
}

fn key_ns(rt: &ResourceType, namespace: Option<&str>) -> String {
    if rt.namespaced {
        namespace.unwrap_or("").to_string()
    } else {
        String::new()
    }
}

fn rv_string(rv: u64) -> Value {
    Value::String(rv.to_string())
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreSettings::default())
    }
}

impl Store {
    /// An empty store with the namespaces every cluster has (`default`, `kube-system`, `kube-public`).
    pub fn new(settings: StoreSettings) -> Store {
        let store = Store::empty(settings);
        store.ensure_system_namespaces();
        store
    }

    /// A store without any object (for restoring persisted state).
    pub fn empty(settings: StoreSettings) -> Store {
        let state = State {
            rv: 0,
            tables: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            history_size: settings.history_size.max(1),
            oldest_resumable: 0,
            by_uid: HashMap::new(),
            dependents: HashMap::new(),
            cluster_ips: HashSet::new(),
            next_cluster_ip: 10,
        };
        Store {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                type_channels: RESOURCES
                    .iter()
                    .map(|_| broadcast::channel(TYPE_CHANNEL_CAPACITY).0)
                    .collect(),
                all_changes: broadcast::channel(GLOBAL_CHANNEL_CAPACITY).0,
                changed: Notify::new(),
            }),
        }
    }

    /// Creates `default`, `kube-system` and `kube-public` if missing.
    pub fn ensure_system_namespaces(&self) {
        let (_, ns_rt) = namespace_type();
        for name in ["default", "kube-node-lease", "kube-public", "kube-system"] {
            let obj = json!({"metadata": {"name": name}});
            match self.create(ns_rt, None, obj, "devcluster") {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => {
                    tracing::error!(namespace = name, error = %e, "creating system namespace")
                }
            }
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get_arc(rt, namespace, name).map(|o| (*o).clone())
    }

    pub fn get_arc(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let (ti, rt) = type_index(rt)?;
        self.read().existing(ti, rt, namespace, name)
    }

    /// Objects of `rt` (in `namespace`, or all) matching the label selector, with the list's resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        let selectors = Selectors {
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            ..Default::default()
        };
        let page = self.list_page(rt, namespace, &selectors, None, None)?;
        Ok((
            page.items.iter().map(|o| (**o).clone()).collect(),
            page.resource_version,
        ))
    }

    /// A page of up to `limit` matching objects, ordered by namespace/name, starting after `after`.
    pub fn list_page(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        selectors: &Selectors,
        limit: Option<usize>,
        after: Option<&(String, String)>,
    ) -> Result<ListPage, ApiError> {
        let (ti, rt) = type_index(rt)?;
        let state = self.read();
        let table = &state.tables[ti];
        let ns_filter = if rt.namespaced { namespace } else { None };
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.clone()),
            None => match ns_filter {
                Some(ns) => std::ops::Bound::Included((ns.to_string(), String::new())),
                None => std::ops::Bound::Unbounded,
            },
        };
        let mut items = Vec::new();
        let mut continue_after = None;
        let mut remaining = 0;
        for (key, obj) in table.range((start, std::ops::Bound::Unbounded)) {
            if let Some(ns) = ns_filter
                && key.0 != ns
            {
                break;
            }
            if !selectors.matches(obj) {
                continue;
            }
            match limit {
                Some(l) if items.len() >= l => {
                    remaining += 1;
                    if continue_after.is_none() {
                        let last: &Arc<Value> = items.last().expect("limit is at least 1");
                        continue_after = Some((
                            meta::namespace(last).to_string(),
                            meta::name(last).to_string(),
                        ));
                    }
                }
                _ => items.push(events::present(rt, obj)),
            }
        }
        Ok(ListPage {
            items,
            resource_version: state.rv,
            continue_after,
            remaining,
        })
    }

    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        self.create_with(rt, namespace, obj, &WriteOptions::manager(manager))
    }

    pub fn create_with(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let (ti, rt) = type_index(rt)?;
        let now = ids::now_rfc3339();
        patch::record_update(opts.manager, None, &mut obj, &now, None);
        let mut state = self.write();
        let prepared = state.prepare_create(ti, rt, namespace, obj, &now)?;
        if opts.dry_run {
            return Ok(prepared);
        }
        Ok((*self.commit(&mut state, ti, rt, prepared, EventKind::Added)).clone())
    }

    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        self.update_with(rt, namespace, obj, &WriteOptions::manager(manager), false)
    }

    pub fn update_status(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        self.update_with(rt, namespace, obj, &WriteOptions::manager(manager), true)
    }

    /// PUT: replaces the object (or, with `status`, only its status) under the usual rules.
    pub fn update_with(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
        status: bool,
    ) -> Result<Value, ApiError> {
        let (ti, rt) = type_index(rt)?;
        require_status_subresource(rt, status)?;
        let name = meta::name(&obj).to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request(
                "name is required in the object's metadata",
            ));
        }
        let now = ids::now_rfc3339();
        let mut state = self.write();
        let old = state.existing(ti, rt, namespace, &name)?;
        let body_rv = meta::resource_version(&obj);
        if !body_rv.is_empty() && body_rv != meta::resource_version(&old) {
            return Err(ApiError::stale_resource_version(rt, &name));
        }
        let sub = status.then_some("status");
        let mut new = merge_for_update(rt, &old, obj, status)?;
        patch::record_update(opts.manager, Some(&old), &mut new, &now, sub);
        self.finish_update(&mut state, ti, rt, &old, new, opts.dry_run)
    }

    /// PATCH (all kinds, including server-side apply, which may create).
    /// Returns the result and whether it was created. Unknown fields are dropped silently.
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        req: &patch::PatchRequest,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let patched =
            self.patch_validated(rt, namespace, name, req, dry_run, FieldValidation::Ignore)?;
        Ok((patched.object, patched.created))
    }

    /// PATCH with field validation: unknown fields of a non-apply patch's result are dropped and
    /// judged by `directive` (an apply configuration is checked by the caller, before).
    pub fn patch_validated(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        req: &patch::PatchRequest,
        dry_run: bool,
        directive: FieldValidation,
    ) -> Result<Patched, ApiError> {
        let (ti, rt) = type_index(rt)?;
        let status = req.subresource == Some("status");
        require_status_subresource(rt, status)?;
        let now = ids::now_rfc3339();
        let mut state = self.write();
        let old = state.present(ti, rt, namespace, name);
        // Only an apply to the main resource may create; everything else needs the object,
        // and the real server says so (404) before looking at the patch.
        if old.is_none() && (req.kind != patch::PatchKind::Apply || status) {
            return Err(ApiError::not_found(rt, name));
        }
        let mut patched =
            patch::apply_patch(req, old.as_deref()).map_err(|e| patch_error(rt, name, e))?;
        let mut warnings = Vec::new();
        if req.kind != patch::PatchKind::Apply
            && let Some(old) = &old
        {
            let problems = field_validation::prune(rt, &mut patched);
            if !problems.is_empty() {
                warnings = problems.resolve(directive, |problem| {
                    // Only on this failure path: the patch again, for the unpruned result.
                    let unpruned = patch::apply_patch(req, Some(old))
                        .map(|value| value.to_string())
                        .unwrap_or_default();
                    ApiError::invalid_patch_result(&unpruned, &problem)
                })?;
                // The patch's manager owns what was kept, not the fields dropped.
                let m = meta::metadata_mut(&mut patched);
                match old.pointer("/metadata/managedFields") {
                    Some(fields) => m.insert("managedFields".into(), fields.clone()),
                    None => m.remove("managedFields"),
                };
                patch::record_update(
                    req.field_manager.unwrap_or(patch::DEFAULT_MANAGER),
                    Some(old),
                    &mut patched,
                    req.now,
                    req.subresource,
                );
            }
        }
        if meta::name(&patched) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&patched)
            )));
        }
        let Some(old) = old else {
            let prepared = state.prepare_create(ti, rt, namespace, patched, &now)?;
            let object = if dry_run {
                prepared
            } else {
                (*self.commit(&mut state, ti, rt, prepared, EventKind::Added)).clone()
            };
            return Ok(Patched {
                object,
                created: true,
                warnings,
            });
        };
        let patched_rv = meta::resource_version(&patched);
        if !patched_rv.is_empty() && patched_rv != meta::resource_version(&old) {
            return Err(ApiError::stale_resource_version(rt, name));
        }
        let new = merge_for_update(rt, &old, patched, status)?;
        let object = self.finish_update(&mut state, ti, rt, &old, new, dry_run)?;
        Ok(Patched {
            object,
            created: false,
            warnings,
        })
    }

    /// Shared tail of PUT and PATCH: validation, generation, no-op detection, finalization.
    fn finish_update(
        &self,
        state: &mut State,
        ti: usize,
        rt: &'static ResourceType,
        old: &Arc<Value>,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = meta::name(old).to_string();
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            if let Some(added) = meta::finalizers(&new).iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    rt,
                    &name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"
                    ),
                ));
            }
        }
        defaults::on_update(rt, old, &mut new)?;
        if tracks_generation(rt) {
            let old_gen = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let generation = if meta::spec_part(old) != meta::spec_part(&new) {
                old_gen + 1
            } else {
                old_gen
            };
            meta::metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if meta::comparable(old) == meta::comparable(&new) {
            return Ok((**old).clone());
        }
        if dry_run {
            return Ok(new);
        }
        let finished = meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !state.namespace_blocks_removal(rt, &new);
        let kind = if finished {
            EventKind::Deleted
        } else {
            EventKind::Modified
        };
        Ok((*self.commit(state, ti, rt, new, kind)).clone())
    }

    /// DELETE: removes the object, or marks it for deletion while finalizers remain.
    /// Returns the deleted object, or the object pending deletion (its finalizers non-empty).
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let (ti, rt) = type_index(rt)?;
        let mut state = self.write();
        let old = state.existing(ti, rt, namespace, name)?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid(&old)
        {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&old)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_resource_version
            && rv != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(&old)
                ),
            ));
        }
        let mut new = (*old).clone();
        let mut finalizers = meta::finalizers(&new);
        let extra = match opts.propagation_policy {
            Some(PropagationPolicy::Orphan) => Some("orphan"),
            Some(PropagationPolicy::Foreground) => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = extra {
            // Only when the object has dependents would the real GC have work; it adds the
            // finalizer regardless, and so do we (it is removed as soon as the GC looks).
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(f.to_string());
            }
        }
        let pending = !finalizers.is_empty() || state.namespace_blocks_removal(rt, &new);
        if pending {
            if meta::is_deleting(&old) && finalizers == meta::finalizers(&old) {
                return Ok((*old).clone());
            }
            meta::set_finalizers(&mut new, &finalizers);
            let m = meta::metadata_mut(&mut new);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(ids::now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if rt.kind == "Namespace" && rt.group.is_empty() {
                new["status"] = json!({"phase": "Terminating"});
            }
            if opts.dry_run {
                return Ok(new);
            }
            return Ok((*self.commit(&mut state, ti, rt, new, EventKind::Modified)).clone());
        }
        if opts.dry_run {
            return Ok(new);
        }
        Ok((*self.commit(&mut state, ti, rt, new, EventKind::Deleted)).clone())
    }

    /// Every change to every type, in resourceVersion order, for in-process controllers.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.all_changes.subscribe()
    }

    /// Runs an in-process controller until the store is dropped: `resync` first and whenever
    /// changes were missed (the channel lagged), `handle` for every change seen.
    pub fn spawn_controller(
        self,
        resync: fn(&Store),
        handle: fn(&Store, &StoreEvent),
    ) -> tokio::task::JoinHandle<()> {
        let mut changes = self.subscribe();
        tokio::spawn(async move {
            resync(&self);
            loop {
                match changes.recv().await {
                    Ok(ev) => handle(&self, &ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => resync(&self),
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// Starts a watch of `rt` in `namespace` (None: all). With `after` = None, the initial events
    /// are ADDED for every current object; with `Some(n)`, every change after `n` from the history
    /// (410 Expired when `n` is older than it). Returns the initial events, the resourceVersion
    /// they bring the watcher to, and the receiver of later changes of this type.
    pub fn watch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        after: Option<u64>,
    ) -> Result<(Vec<StoreEvent>, u64, broadcast::Receiver<StoreEvent>), ApiError> {
        let (ti, rt) = type_index(rt)?;
        // Changes carry the stored type; a view's watchers convert them as they send.
        let stored_rt = &RESOURCES[ti];
        let state = self.read();
        let rx = self.inner.type_channels[ti].subscribe();
        let ns_filter = if rt.namespaced { namespace } else { None };
        let in_ns = |obj: &Value| ns_filter.is_none_or(|ns| meta::namespace(obj) == ns);
        let initial = match after {
            None => state.tables[ti]
                .values()
                .filter(|o| in_ns(o))
                .map(|o| StoreEvent {
                    resource: stored_rt,
                    kind: EventKind::Added,
                    object: o.clone(),
                    previous: None,
                    resource_version: state.rv,
                })
                .collect(),
            Some(n) => {
                if n < state.oldest_resumable {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {n} ({})",
                        state.oldest_resumable
                    )));
                }
                state
                    .history
                    .iter()
                    .filter(|e| e.resource_version > n && std::ptr::eq(e.resource, stored_rt))
                    .filter(|e| in_ns(&e.object))
                    .cloned()
                    .collect()
            }
        };
        Ok((initial, state.rv, rx))
    }

    /// The current resourceVersion if `rx` has no pending change (a bookmark at it is then
    /// accurate: the watcher has seen every change up to it).
    pub fn bookmark_version(&self, rx: &broadcast::Receiver<StoreEvent>) -> Option<u64> {
        let state = self.read();
        rx.is_empty().then_some(state.rv)
    }

    /// Whether a continue token / resumption from `rv` can still be served.
    pub fn is_resumable(&self, rv: u64) -> bool {
        rv >= self.read().oldest_resumable
    }

    /// Forgets the change history: every resumption from an earlier resourceVersion gets 410.
    pub fn compact_history(&self) {
        let mut state = self.write();
        state.history.clear();
        state.oldest_resumable = state.rv + 1;
    }

    /// Signalled after every change (for persistence).
    pub fn changed(&self) -> &Notify {
        &self.inner.changed
    }

    /// Every object with its type, and the counter, for persistence.
    pub fn snapshot(&self) -> (u64, Vec<(&'static ResourceType, Arc<Value>)>) {
        let state = self.read();
        let mut objects = Vec::new();
        for (ti, table) in state.tables.iter().enumerate() {
            objects.extend(table.values().map(|o| (&RESOURCES[ti], o.clone())));
        }
        (state.rv, objects)
    }

    /// Loads persisted objects into an empty store; no events are sent for them.
    pub fn restore(
        &self,
        resource_version: u64,
        objects: Vec<(&'static ResourceType, Value)>,
    ) -> Result<(), ApiError> {
        let mut state = self.write();
        for (rt, obj) in objects {
            let (ti, rt) = type_index(rt)?;
            let obj = events::to_storage(rt, obj);
            let key = (
                key_ns(rt, Some(meta::namespace(&obj))),
                meta::name(&obj).to_string(),
            );
            if let Some(ip) = meta::str_at(&obj, "/spec/clusterIP") {
                state.cluster_ips.insert(ip.to_string());
            }
            let obj = Arc::new(obj);
            state.index(ti, &key, None, Some(&obj));
            state.tables[ti].insert(key, obj);
        }
        state.rv = state.rv.max(resource_version);
        state.oldest_resumable = state.rv;
        Ok(())
    }

    /// The objects naming `owner_uid` in their ownerReferences, with their types.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(&'static ResourceType, Arc<Value>)> {
        let state = self.read();
        state
            .dependents
            .get(owner_uid)
            .map(|deps| {
                deps.iter()
                    .filter_map(|(ti, ns, name)| {
                        let obj = state.tables[*ti].get(&(ns.clone(), name.clone()))?;
                        Some((&RESOURCES[*ti], obj.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The object with this uid, if it exists.
    pub fn get_by_uid(&self, uid: &str) -> Option<(&'static ResourceType, Arc<Value>)> {
        let state = self.read();
        let (ti, ns, name) = state.by_uid.get(uid)?;
        let obj = state.tables[*ti].get(&(ns.clone(), name.clone()))?;
        Some((&RESOURCES[*ti], obj.clone()))
    }

    /// Every object in `namespace`, of every namespaced type.
    pub fn objects_in_namespace(
        &self,
        namespace: &str,
    ) -> Vec<(&'static ResourceType, Arc<Value>)> {
        let state = self.read();
        let mut out = Vec::new();
        for (ti, table) in state.tables.iter().enumerate() {
            if !RESOURCES[ti].namespaced {
                continue;
            }
            let start = (namespace.to_string(), String::new());
            out.extend(
                table
                    .range(start..)
                    .take_while(|(k, _)| k.0 == namespace)
                    .map(|(_, o)| (&RESOURCES[ti], o.clone())),
            );
        }
        out
    }

    /// Applies `change` to the current object and writes it as an update by `manager`
    /// (no resourceVersion precondition). `change` returns false to leave it alone.
    pub fn modify(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        manager: &str,
        change: impl FnOnce(&mut Value) -> bool,
    ) -> Result<Value, ApiError> {
        let (ti, rt) = type_index(rt)?;
        let now = ids::now_rfc3339();
        let mut state = self.write();
        let old = state.existing(ti, rt, namespace, name)?;
        let mut new = (*old).clone();
        if !change(&mut new) {
            return Ok((*old).clone());
        }
        patch::record_update(manager, Some(&old), &mut new, &now, None);
        self.finish_update(&mut state, ti, rt, &old, new, false)
    }

    /// Removes a terminating namespace once it is empty (the namespace controller's last step).
    pub fn finalize_namespace(&self, name: &str) -> Result<bool, ApiError> {
        let (ti, rt) = namespace_type();
        let mut state = self.write();
        let Some(ns) = state.tables[ti]
            .get(&(String::new(), name.to_string()))
            .cloned()
        else {
            return Ok(false);
        };
        if !meta::is_deleting(&ns) || state.namespace_has_objects(name) {
            return Ok(false);
        }
        let mut new = (*ns).clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("finalizers".into(), json!([]));
        }
        let kind = if meta::finalizers(&new).is_empty() {
            EventKind::Deleted
        } else {
            EventKind::Modified
        };
        self.commit(&mut state, ti, rt, new, kind);
        Ok(kind == EventKind::Deleted)
    }

    /// Assigns the next resourceVersion and records the change: table, indexes, history,
    /// channels. `obj` is in `rt`'s form; it is stored in the table's form and returned in `rt`'s.
    fn commit(
        &self,
        state: &mut State,
        ti: usize,
        rt: &ResourceType,
        obj: Value,
        kind: EventKind,
    ) -> Arc<Value> {
        state.rv += 1;
        let rv = state.rv;
        let mut obj = events::to_storage(rt, obj);
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), rv_string(rv));
        let key = (
            meta::namespace(&obj).to_string(),
            meta::name(&obj).to_string(),
        );
        let obj = Arc::new(obj);
        let previous = match kind {
            EventKind::Deleted => {
                let prev = state.tables[ti].remove(&key);
                state.index(ti, &key, prev.as_deref(), None);
                if let Some(ip) = meta::str_at(&obj, "/spec/clusterIP") {
                    state.cluster_ips.remove(ip);
                }
                prev
            }
            _ => {
                let prev = state.tables[ti].insert(key.clone(), obj.clone());
                state.index(ti, &key, prev.as_deref(), Some(&obj));
                prev
            }
        };
        let event = StoreEvent {
            resource: &RESOURCES[ti],
            kind,
            object: obj.clone(),
            previous,
            resource_version: rv,
        };
        if state.history.len() >= state.history_size
            && let Some(old) = state.history.pop_front()
        {
            state.oldest_resumable = state.oldest_resumable.max(old.resource_version);
        }
        state.history.push_back(event.clone());
        // Sending never blocks; a receiver that falls behind sees `Lagged` and is closed.
        let _ = self.inner.type_channels[ti].send(event.clone());
        let _ = self.inner.all_changes.send(event);
        self.inner.changed.notify_one();
        events::present(rt, &obj)
    }
}

/// Builds the object an update writes from the old object and the client's version: identity
/// and server-owned metadata come from the old object; with a status subresource, the main
/// resource keeps the old status and `/status` changes only the status.
fn merge_for_update(
    rt: &'static ResourceType,
    old: &Value,
    mut body: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    let name = meta::name(old).to_string();
    if !body.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    check_type(rt, &body)?;
    if meta::name(&body) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::name(&body)
        )));
    }
    let body_ns = meta::namespace(&body);
    if rt.namespaced && !body_ns.is_empty() && body_ns != meta::namespace(old) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let body_uid = meta::uid(&body);
    if !body_uid.is_empty() && body_uid != meta::uid(old) {
        return Err(ApiError::conflict(
            rt,
            &name,
            &format!(
                "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {}",
                meta::uid(old)
            ),
        ));
    }
    let mut new = if status_only {
        let mut new = old.clone();
        match body.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if let Some(mf) = body.pointer("/metadata/managedFields") {
            meta::metadata_mut(&mut new).insert("managedFields".into(), mf.clone());
        }
        new
    } else {
        if rt.status_subresource {
            match old.get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    if let Some(m) = body.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        body
    };
    new["kind"] = json!(rt.kind);
    new["apiVersion"] = json!(rt.api_version());
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let m = meta::metadata_mut(&mut new);
    for field in [
        "uid",
        "namespace",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "generateName",
        "managedFields",
    ] {
        let keep_client_value = field == "managedFields" && m.contains_key(field);
        if keep_client_value {
            continue;
        }
        match old_meta.and_then(|om| om.get(field)) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    Ok(new)
}

/// Rejects a body whose apiVersion/kind names another type.
fn check_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !api_version.is_empty() && api_version != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

/// The Status for a failed patch: the patch module's message, and for apply conflicts one
/// `FieldManagerConflict` cause per field, exactly as the real server reports them.
fn patch_error(rt: &ResourceType, name: &str, e: patch::PatchError) -> ApiError {
    use patch::PatchError as P;
    let message = e.to_string();
    match e {
        P::BadRequest(_) => ApiError::bad_request(message),
        P::UnsupportedMediaType(_) => ApiError::unsupported_media_type(message),
        P::Invalid(m) => ApiError::invalid(rt, name, "patch", &m),
        P::Conflict(conflicts) => ApiError {
            // The real apply conflict names no object, only the causes.
            details: Some(Box::new(crate::error::ErrorDetails {
                causes: conflicts
                    .iter()
                    .map(|c| crate::error::StatusCause {
                        reason: "FieldManagerConflict".into(),
                        message: c.cause_message(),
                        field: c.field.clone(),
                    })
                    .collect(),
                ..Default::default()
            })),
            ..ApiError::new(409, "Conflict", message)
        },
    }
}

impl State {
    /// The stored object `name` of type `ti`, as clients of `rt` see it.
    fn present(
        &self,
        ti: usize,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>> {
        self.tables[ti]
            .get(&(key_ns(rt, namespace), name.to_string()))
            .map(|o| events::present(rt, o))
    }

    /// Like [`State::present`], with Not Found when there is no such object.
    fn existing(
        &self,
        ti: usize,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.present(ti, rt, namespace, name)
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Create-time checks and server-set fields. `obj` already carries its managedFields.
    fn prepare_create(
        &mut self,
        ti: usize,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        mut obj: Value,
        now: &str,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        check_type(rt, &obj)?;
        obj["kind"] = json!(rt.kind);
        obj["apiVersion"] = json!(rt.api_version());
        let body_ns = meta::namespace(&obj).to_string();
        let ns = if rt.namespaced {
            let url_ns = namespace.unwrap_or("");
            match (url_ns.is_empty(), body_ns.is_empty()) {
                (false, false) if url_ns != body_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (true, true) => {
                    return Err(ApiError::bad_request(
                        "a namespace is required for this object",
                    ));
                }
                (false, _) => url_ns.to_string(),
                (true, false) => body_ns,
            }
        } else {
            String::new()
        };
        let m = meta::metadata_mut(&mut obj);
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        let explicit_name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = m
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut name = explicit_name.clone();
        if name.is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            // A few attempts, as a clash of 5 random characters is rare but possible.
            for _ in 0..8 {
                name = ids::generated_name(&generate);
                if !self.tables[ti].contains_key(&(ns.clone(), name.clone())) {
                    break;
                }
            }
        }
        if !generate.is_empty() {
            defaults::validate_generate_name(rt, &name, &generate)?;
        }
        defaults::validate_name(rt, &name)?;
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(ids::new_uid()));
        m.insert("creationTimestamp".into(), json!(now));
        for server_owned in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(server_owned);
        }
        if tracks_generation(rt) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if rt.namespaced {
            let (nti, _) = namespace_type();
            match self.tables[nti].get(&(String::new(), ns.clone())) {
                None => {
                    let (_, ns_rt) = namespace_type();
                    return Err(ApiError::not_found(ns_rt, &ns));
                }
                Some(n) if meta::is_deleting(n) => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        crate::error::qualified_resource(rt)
                    )));
                }
                Some(_) => {}
            }
        }
        if self.tables[ti].contains_key(&(ns.clone(), name.clone())) {
            return Err(ApiError::already_exists(rt, &name));
        }
        defaults::on_create(rt, &mut obj);
        if rt.kind == "Service" && rt.group.is_empty() {
            self.allocate_cluster_ip(rt, &mut obj)?;
        }
        Ok(obj)
    }

    fn allocate_cluster_ip(&mut self, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let requested = meta::str_at(obj, "/spec/clusterIP")
            .unwrap_or("")
            .to_string();
        let ip = if requested == "None" {
            requested
        } else if !requested.is_empty() {
            if !self.cluster_ips.insert(requested.clone()) {
                return Err(ApiError::invalid(
                    rt,
                    meta::name(obj),
                    "spec.clusterIPs",
                    &format!(
                        "Invalid value: []string{{\"{requested}\"}}: failed to allocate IP {requested}: provided IP is already allocated"
                    ),
                ));
            }
            requested
        } else {
            // 10.96.0.0/16 minus the first addresses, which real clusters give to system services.
            let mut found = None;
            for _ in 0..65_000 {
                let n = self.next_cluster_ip;
                self.next_cluster_ip = if n >= 65_534 { 10 } else { n + 1 };
                let candidate = format!("10.96.{}.{}", n / 256, n % 256);
                if !n.is_multiple_of(256) && self.cluster_ips.insert(candidate.clone()) {
                    found = Some(candidate);
                    break;
                }
            }
            found.ok_or_else(|| ApiError::internal("the service cluster IP range is full"))?
        };
        let spec = obj
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::internal("service spec missing after defaulting"))?;
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        Ok(())
    }

    /// Keeps the uid and ownerReference indexes in step with a table change.
    fn index(&mut self, ti: usize, key: &ObjectKey, old: Option<&Value>, new: Option<&Value>) {
        let typed: TypedKey = (ti, key.0.clone(), key.1.clone());
        if let Some(old) = old {
            self.by_uid.remove(meta::uid(old));
            for r in meta::owner_refs(old) {
                if let Some(set) = self.dependents.get_mut(&r.uid) {
                    set.remove(&typed);
                    if set.is_empty() {
                        self.dependents.remove(&r.uid);
                    }
                }
            }
        }
        if let Some(new) = new {
            self.by_uid
                .insert(meta::uid(new).to_string(), typed.clone());
            for r in meta::owner_refs(new) {
                self.dependents
                    .entry(r.uid)
                    .or_default()
                    .insert(typed.clone());
            }
        }
    }

    fn namespace_has_objects(&self, namespace: &str) -> bool {
        self.tables.iter().enumerate().any(|(ti, table)| {
            RESOURCES[ti].namespaced
                && table
                    .range((namespace.to_string(), String::new())..)
                    .next()
                    .is_some_and(|(k, _)| k.0 == namespace)
        })
    }

    /// A namespace stays (Terminating) while it holds objects or its spec finalizers remain.
    fn namespace_blocks_removal(&self, rt: &ResourceType, obj: &Value) -> bool {
        rt.kind == "Namespace"
            && rt.group.is_empty()
            && (obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
                || self.namespace_has_objects(meta::name(obj)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn cm() -> &'static ResourceType {
        lookup("", "v1", "configmaps").expect("served")
    }

    #[test]
    fn resource_versions_come_from_one_counter() {
        let store = Store::default();
        let a = store
            .create(
                cm(),
                Some("default"),
                json!({"metadata": {"name": "a"}}),
                "test",
            )
            .unwrap();
        let b = store
            .create(
                cm(),
                Some("default"),
                json!({"metadata": {"name": "b"}}),
                "test",
            )
            .unwrap();
        let ra: u64 = meta::resource_version(&a).parse().unwrap();
        let rb: u64 = meta::resource_version(&b).parse().unwrap();
        assert_eq!(rb, ra + 1);
    }

    #[test]
    fn unchanged_update_keeps_the_resource_version() {
        let store = Store::default();
        let a = store
            .create(
                cm(),
                Some("default"),
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                "test",
            )
            .unwrap();
        let again = store
            .update(cm(), Some("default"), a.clone(), "test")
            .unwrap();
        assert_eq!(meta::resource_version(&a), meta::resource_version(&again));
    }

    #[test]
    fn history_bound_expires_old_resumptions() {
        let store = Store::new(StoreSettings { history_size: 2 });
        for i in 0..5 {
            store
                .create(
                    cm(),
                    Some("default"),
                    json!({"metadata": {"name": format!("c{i}")}}),
                    "t",
                )
                .unwrap();
        }
        assert!(store.watch(cm(), None, Some(1)).is_err());
        let (events, _, _) = store
            .watch(cm(), None, Some(store.resource_version() - 1))
            .unwrap();
        assert_eq!(events.len(), 1);
    }
}
