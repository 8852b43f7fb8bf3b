//! The garbage collector and namespace controller, as an async task fed by store events:
//! - Background: a dependent whose every owner is gone is deleted; dangling references to
//!   deleted owners are removed from dependents that still have a live owner.
//! - Orphan: an owner with the `orphan` finalizer has itself removed from its dependents'
//!   ownerReferences, then the finalizer is removed (and the owner goes).
//! - Foreground: an owner with the `foregroundDeletion` finalizer has its dependents deleted
//!   (in foreground too); once no dependent with `blockOwnerDeletion` remains, the finalizer goes.
//! - A terminating namespace has its contents deleted and is removed once empty.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::store::{DeleteOptions, EventKind, PropagationPolicy, Store, StoreEvent, meta};

/// The manager name the real controllers write as.
const MANAGER: &str = "kube-controller-manager";

/// Starts the collector; it runs until the store is dropped.
pub fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    store.spawn_controller(resync, handle)
}

fn ns_of<'a>(rt: &ResourceType, obj: &'a Value) -> Option<&'a str> {
    rt.namespaced.then(|| meta::namespace(obj))
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Namespace"
}

fn handle(store: &Store, ev: &StoreEvent) {
    let obj = &ev.object;
    match ev.kind {
        EventKind::Deleted => {
            for (rt, dep) in store.dependents_of(meta::uid(obj)) {
                process_dependent(store, rt, &dep);
            }
            recheck_owners(store, obj);
            if ev.resource.namespaced {
                finalize_namespace_if_done(store, meta::namespace(obj));
            }
        }
        EventKind::Added | EventKind::Modified => {
            if meta::is_deleting(obj) {
                process_deleting(store, ev.resource, obj);
            }
            if ev.kind == EventKind::Added && !meta::owner_refs(obj).is_empty() {
                process_dependent(store, ev.resource, obj);
            }
            if let Some(prev) = &ev.previous {
                recheck_owners(store, prev);
            }
        }
    }
}

/// Everything, from scratch (at start and after missing events).
fn resync(store: &Store) {
    let (_, objects) = store.snapshot();
    for (rt, obj) in objects {
        if meta::is_deleting(&obj) {
            process_deleting(store, rt, &obj);
        }
        if !meta::owner_refs(&obj).is_empty() {
            process_dependent(store, rt, &obj);
        }
    }
}

fn log_failure(what: &str, obj: &Value, result: Result<Value, crate::error::ApiError>) {
    if let Err(e) = result {
        // NotFound and Conflict are races with other writers; the next event retries.
        if e.code != 404 && e.code != 409 {
            tracing::warn!(name = meta::name(obj), error = %e, "garbage collector could not {what}");
        }
    }
}

fn delete(store: &Store, rt: &ResourceType, obj: &Value, policy: PropagationPolicy) {
    let opts = DeleteOptions {
        propagation_policy: Some(policy),
        precondition_uid: Some(meta::uid(obj).to_string()),
        ..Default::default()
    };
    log_failure(
        "delete",
        obj,
        store.delete(rt, ns_of(rt, obj), meta::name(obj), &opts),
    );
}

fn remove_finalizer(store: &Store, rt: &ResourceType, obj: &Value, finalizer: &str) {
    let result = store.modify(rt, ns_of(rt, obj), meta::name(obj), MANAGER, |o| {
        let mut f = meta::finalizers(o);
        let before = f.len();
        f.retain(|x| x != finalizer);
        meta::set_finalizers(o, &f);
        f.len() != before
    });
    log_failure("remove a finalizer", obj, result);
}

/// A dependent: deleted when every owner is gone, else stripped of references to gone owners.
fn process_dependent(store: &Store, rt: &ResourceType, dep: &Value) {
    let refs = meta::owner_refs(dep);
    if refs.is_empty() || meta::is_deleting(dep) {
        return;
    }
    let gone: Vec<String> = refs
        .iter()
        .filter(|r| store.get_by_uid(&r.uid).is_none())
        .map(|r| r.uid.clone())
        .collect();
    if gone.is_empty() {
        return;
    }
    if gone.len() == refs.len() {
        delete(store, rt, dep, PropagationPolicy::Background);
    } else {
        let result = store.modify(rt, ns_of(rt, dep), meta::name(dep), MANAGER, |o| {
            meta::remove_owner_refs(o, &gone);
            true
        });
        log_failure("remove dangling owner references", dep, result);
    }
}

/// An object being deleted: run whichever deletion finalizers it carries.
fn process_deleting(store: &Store, rt: &'static ResourceType, obj: &Value) {
    let uid = meta::uid(obj).to_string();
    let finalizers = meta::finalizers(obj);
    if is_namespace(rt) {
        let name = meta::name(obj);
        for (child_rt, child) in store.objects_in_namespace(name) {
            if !meta::is_deleting(&child) {
                delete(store, child_rt, &child, PropagationPolicy::Background);
            }
        }
        finalize_namespace_if_done(store, name);
    }
    if finalizers.iter().any(|f| f == "orphan") {
        for (dep_rt, dep) in store.dependents_of(&uid) {
            let result = store.modify(
                dep_rt,
                ns_of(dep_rt, &dep),
                meta::name(&dep),
                MANAGER,
                |o| {
                    meta::remove_owner_refs(o, std::slice::from_ref(&uid));
                    true
                },
            );
            log_failure("orphan a dependent", &dep, result);
        }
        remove_finalizer(store, rt, obj, "orphan");
    }
    if finalizers.iter().any(|f| f == "foregroundDeletion") {
        let dependents = store.dependents_of(&uid);
        for (dep_rt, dep) in &dependents {
            if !meta::is_deleting(dep) {
                delete(store, dep_rt, dep, PropagationPolicy::Foreground);
            }
        }
        let blocking = dependents.iter().any(|(_, dep)| {
            meta::owner_refs(dep)
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion)
        });
        if !blocking {
            remove_finalizer(store, rt, obj, "foregroundDeletion");
        }
    }
}

/// Owners waiting in foreground deletion for `dependent` look again.
fn recheck_owners(store: &Store, dependent: &Value) {
    for r in meta::owner_refs(dependent) {
        if let Some((rt, owner)) = store.get_by_uid(&r.uid)
            && meta::is_deleting(&owner)
            && meta::finalizers(&owner)
                .iter()
                .any(|f| f == "foregroundDeletion")
        {
            process_deleting(store, rt, &owner);
        }
    }
}

fn finalize_namespace_if_done(store: &Store, namespace: &str) {
    if let Err(e) = store.finalize_namespace(namespace) {
        tracing::warn!(namespace, error = %e, "could not finalize namespace");
    }
}
