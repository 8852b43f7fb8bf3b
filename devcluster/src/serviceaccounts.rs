//! The service-account controller's one job here: every active namespace has a `default`
//! ServiceAccount, created shortly after the namespace (asynchronously, as in a real cluster)
//! and re-created if deleted.

use serde_json::json;

use crate::resources::{self, ResourceType};
use crate::store::{EventKind, Store, StoreEvent, meta};

/// The manager name the real controller writes as.
const MANAGER: &str = "kube-controller-manager";
const DEFAULT_ACCOUNT: &str = "default";

fn service_accounts() -> &'static ResourceType {
    resources::lookup("", "v1", "serviceaccounts")
        .expect("the resource table serves ServiceAccounts")
}

fn namespaces() -> &'static ResourceType {
    resources::lookup("", "v1", "namespaces").expect("the resource table serves Namespaces")
}

/// Starts the controller; it runs until the store is dropped.
pub fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    store.spawn_controller(resync, handle)
}

fn handle(store: &Store, ev: &StoreEvent) {
    let rt = ev.resource;
    if rt.group.is_empty() && rt.kind == "Namespace" && ev.kind != EventKind::Deleted {
        ensure_default_account(store, meta::name(&ev.object));
    } else if rt.group.is_empty()
        && rt.kind == "ServiceAccount"
        && ev.kind == EventKind::Deleted
        && meta::name(&ev.object) == DEFAULT_ACCOUNT
    {
        ensure_default_account(store, meta::namespace(&ev.object));
    }
}

/// Every namespace (the pre-created ones included), at start and after missed changes.
pub fn resync(store: &Store) {
    match store.list(namespaces(), None, None) {
        Ok((all, _)) => {
            for ns in all {
                ensure_default_account(store, meta::name(&ns));
            }
        }
        Err(e) => tracing::error!(error = %e, "listing namespaces for service accounts"),
    }
}

/// Creates `default` in `namespace` unless it exists or the namespace is gone or terminating.
fn ensure_default_account(store: &Store, namespace: &str) {
    let active = store
        .get_arc(namespaces(), None, namespace)
        .is_ok_and(|ns| !meta::is_deleting(&ns));
    if !active
        || store
            .get_arc(service_accounts(), Some(namespace), DEFAULT_ACCOUNT)
            .is_ok()
    {
        return;
    }
    let account = json!({"metadata": {"name": DEFAULT_ACCOUNT, "namespace": namespace}});
    match store.create(service_accounts(), Some(namespace), account, MANAGER) {
        Ok(_) => {}
        // Lost a race with another writer or with the namespace's deletion: nothing to do.
        Err(e) if matches!(e.code, 403 | 404 | 409) => {}
        Err(e) => tracing::error!(%namespace, error = %e, "creating the default ServiceAccount"),
    }
}
