//! The watches that feed the controller: the env ConfigMaps (what to reconcile) and the
//! children of every kind (what changed under an env). Each keeps its store, triggers only
//! what needs a reconcile (never the echo of the controller's own write), and marks its first
//! list in [`Synced`].

use std::fmt::Debug;
use std::sync::Arc;

use ephemerator_core::activity::ACTIVITY_OF_LABEL;
use ephemerator_core::labels::{PART_OF_KEY, PART_OF_VALUE, env_label_selector};
use ephemerator_core::{EnvStatus, Phase};
use ephemerator_kit::cluster::reflected_watch;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::cached::slim_meta;
use crate::context::{Context, Synced};
use crate::notify;
use crate::observe::ChildKind;

/// The env ConfigMaps, as the Controller's main stream: every env listed or changed, a
/// deletion announced to its owner.
pub fn env_watch(
    client: &Client,
    namespace: &str,
    writer: reflector::store::Writer<ConfigMap>,
    ctx: &Arc<Context>,
) -> impl Stream<Item = Result<ConfigMap, watcher::Error>> + Send + 'static {
    let (deletions, echoes) = (ctx.clone(), ctx.clone());
    reflected_watch(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(&env_label_selector()),
        writer,
        |cm| slim_meta(&mut cm.metadata),
    )
    .inspect(mark_listed(ctx.synced.clone(), Synced::CONFIG_MAPS))
    .inspect(move |event| {
        if let watcher::Event::Delete(cm) = event {
            deleted(&deletions, cm);
        }
    })
    .scan(Vec::new(), |listing, event| {
        futures::future::ready(Some(futures::stream::iter(triggers(listing, event))))
    })
    .flatten()
    // The echo of the controller's own status write: nothing new to reconcile.
    .filter(move |cm| {
        let echo = echoes
            .memory
            .is_own_status_write(&cm.name_any(), cm.resource_version().as_deref());
        futures::future::ready(!echo)
    })
    .map(Ok::<_, watcher::Error>)
}

/// The items of `stream` while this replica leads; the others are dropped (after the
/// reflector upstream has stored them).
pub fn while_leading<S, T>(
    stream: S,
    leadership: &crate::leader::Leadership,
) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    let leadership = leadership.clone();
    stream.filter(move |_| futures::future::ready(leadership.is_leading()))
}

/// An env ConfigMap was deleted: its owner is told by the leader (every replica sees the
/// deletion; a standby says nothing), unless the controller expired it (that notice is sent
/// already), and its memory goes.
fn deleted(ctx: &Context, config_map: &ConfigMap) {
    let name = config_map.name_any();
    if ctx.leadership.is_leading()
        && !ctx.memory.of(&name).was_expired()
        && let Ok(env) = ephemerator_core::Env::from_config_map(config_map)
    {
        tracing::info!(env = %name, "env deleted");
        ctx.notifier.send(notify::Notice::Deleted {
            env: env.name,
            owner: env.owner,
        });
    }
    ctx.memory.forget(&name);
}

/// The objects an event brings to reconcile: every object listed or changed (deletions need
/// none: garbage collection removes an env's children).
/// The env ConfigMaps a watch event of theirs triggers a reconcile of. A (re-)list's objects
/// are held back until it is done: the reflector swaps them into the store only then, and the
/// Controller drops a reconcile whose object is not in the store. Triggered one by one, every
/// env created while the watch was down (a `410 Gone` re-list of more than one page) was never
/// reconciled; at 10,000 envs thousands stayed without a phase.
fn triggers<K>(listing: &mut Vec<K>, event: watcher::Event<K>) -> Vec<K> {
    match event {
        watcher::Event::Apply(object) => vec![object],
        watcher::Event::Init => {
            listing.clear();
            Vec::new()
        }
        watcher::Event::InitApply(object) => {
            listing.push(object);
            Vec::new()
        }
        watcher::Event::InitDone => std::mem::take(listing),
        watcher::Event::Delete(_) => Vec::new(),
    }
}

/// A namespace-wide watch of one child kind, reflected into `writer`'s store (every object of
/// that kind in the namespace, so foreign objects of an env's name are seen too). `K` is the
/// slim form of the kind (see [`cached`]), so the store holds only what the controller reads.
/// The echo of the controller's own apply reaches the store but triggers no reconcile; a
/// deletion always does.
pub fn child_watch<K>(
    client: &Client,
    namespace: &str,
    writer: reflector::store::Writer<K>,
    ctx: &Arc<Context>,
    kind: ChildKind,
    bit: u8,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let ctx = ctx.clone();
    let listed = mark_listed(ctx.synced.clone(), bit);
    reflected_watch(
        Api::<K>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        writer,
        |_| {},
    )
    .inspect(listed)
    .flat_map(move |event| {
        let touched = match event {
            watcher::Event::Apply(object) => {
                let echo = ctx.memory.is_own_apply(
                    &object.name_any(),
                    kind,
                    object.meta().resource_version.as_deref(),
                );
                (!echo).then_some(object)
            }
            watcher::Event::InitApply(object) | watcher::Event::Delete(object) => Some(object),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::stream::iter(touched)
    })
    .map(Ok)
}

/// Marks `bit` in `synced` once a watch's first list has reached its store (and again after
/// each re-list, harmlessly).
fn mark_listed<K>(synced: Synced, bit: u8) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            synced.mark(bit);
        }
    }
}

/// The envs' activity Leases, reflected into `writer`'s store (managed fields dropped). A
/// renewal triggers the reconcile of its env only while the env sleeps: that is a wake; an
/// awake env's idle time is checked at the deadline its plan set.
pub fn activity_watch(
    client: &Client,
    namespace: &str,
    writer: reflector::store::Writer<Lease>,
    ctx: &Arc<Context>,
    config_maps: &Store<ConfigMap>,
) -> impl Stream<Item = Result<Lease, watcher::Error>> + Send + 'static {
    let (config_maps, namespace_owned) = (config_maps.clone(), namespace.to_string());
    let selector = format!("{PART_OF_KEY}={PART_OF_VALUE},{ACTIVITY_OF_LABEL}");
    reflected_watch(
        Api::<Lease>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(&selector),
        writer,
        |lease| slim_meta(&mut lease.metadata),
    )
    .inspect(mark_listed(ctx.synced.clone(), Synced::ACTIVITY))
    .filter_map(move |event| {
        let renewed = match event {
            watcher::Event::Apply(lease) => {
                let asleep = activity_of(&lease)
                    .and_then(|env| config_maps.get(&ObjectRef::new(env).within(&namespace_owned)))
                    .is_some_and(|cm| EnvStatus::from_meta(&cm.metadata).phase == Phase::Sleeping);
                asleep.then_some(lease)
            }
            _ => None,
        };
        futures::future::ready(renewed.map(Ok))
    })
}

/// The env an activity Lease tells of.
pub fn activity_of(lease: &Lease) -> Option<&str> {
    lease
        .metadata
        .labels
        .as_ref()?
        .get(ACTIVITY_OF_LABEL)
        .map(String::as_str)
}

/// Maps an activity Lease to its env's ConfigMap.
pub fn env_of_activity(
    namespace: &str,
) -> impl Fn(Lease) -> Option<ObjectRef<ConfigMap>> + Send + Sync + 'static {
    let namespace = namespace.to_string();
    move |lease: Lease| activity_of(&lease).map(|env| ObjectRef::new(env).within(&namespace))
}

/// Maps a child (or a foreign object) to the env ConfigMap of the same name, if there is one.
pub fn env_of<K: Resource>(
    config_maps: &Store<ConfigMap>,
    namespace: &str,
) -> impl Fn(K) -> Option<ObjectRef<ConfigMap>> + Send + Sync + 'static {
    let (config_maps, namespace) = (config_maps.clone(), namespace.to_string());
    move |object: K| {
        let env = ObjectRef::new(&object.name_any()).within(&namespace);
        config_maps.get(&env).is_some().then_some(env)
    }
}
