//! The route table: what the gateway knows of each env (phase, message, published ports, and
//! who may open it), kept from the env ConfigMaps by the shared restart-proof watch. Reads
//! never wait on the watch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ephemerator_core::EnvStatus;
use ephemerator_core::access::Access;
use ephemerator_core::labels::{ACCESS_ANNOTATION, OWNER_ANNOTATION, SHARE_LINKS_ANNOTATION};
use ephemerator_core::share::{ShareLink, parse_share_links};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;

/// What the gateway knows of one env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    /// Its status as ephctrl last wrote it.
    pub status: Arc<EnvStatus>,
    /// The ConfigMap's UID: env cookies, codes and share links are bound to it, so none of
    /// them opens a later env that reuses the name.
    pub uid: String,
    /// Its owner (the owner annotation, else the name, as the dashboard reads it).
    pub owner: String,
    /// The level its annotation asks for (`None`: the config's default). An annotation that
    /// does not parse reads as `owner`: the gateway fails closed, ephctrl says what is wrong.
    pub access: Option<Access>,
    /// Its share links; an annotation that does not parse gives none (fail closed).
    pub links: Vec<ShareLink>,
}

/// Env name → what the gateway knows of it.
#[derive(Default)]
pub struct RouteTable {
    envs: RwLock<HashMap<String, Arc<EnvEntry>>>,
    /// The envs of a re-list in progress, swapped in whole when it ends, so envs deleted while
    /// the watch was down disappear and the table is never half-listed.
    relisting: Mutex<Option<HashMap<String, Arc<EnvEntry>>>>,
    listed: AtomicBool,
}

impl RouteTable {
    /// What is known of env `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<EnvEntry>> {
        read(&self.envs).get(name).cloned()
    }

    /// Whether the envs have been listed once (before that, every env would look missing).
    pub fn is_listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// How many envs are known.
    pub fn len(&self) -> usize {
        read(&self.envs).len()
    }

    /// Whether no env is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event; returns the envs it took out of the table.
    pub fn apply(&self, event: &watcher::Event<ConfigMap>) -> Vec<String> {
        match event {
            watcher::Event::Apply(cm) => {
                if let Some((name, status)) = entry(cm) {
                    write(&self.envs).insert(name, status);
                }
            }
            watcher::Event::Delete(cm) => {
                if let Some(name) = &cm.metadata.name
                    && write(&self.envs).remove(name).is_some()
                {
                    return vec![name.clone()];
                }
            }
            watcher::Event::Init => {
                *lock(&self.relisting) = Some(HashMap::new());
            }
            watcher::Event::InitApply(cm) => {
                if let (Some(relisting), Some((name, status))) =
                    (lock(&self.relisting).as_mut(), entry(cm))
                {
                    relisting.insert(name, status);
                }
            }
            watcher::Event::InitDone => {
                let mut gone = Vec::new();
                if let Some(listed) = lock(&self.relisting).take() {
                    let mut envs = write(&self.envs);
                    gone = envs
                        .keys()
                        .filter(|name| !listed.contains_key(*name))
                        .cloned()
                        .collect();
                    *envs = listed;
                }
                self.listed.store(true, Ordering::Release);
                return gone;
            }
        }
        Vec::new()
    }
}

fn entry(cm: &ConfigMap) -> Option<(String, Arc<EnvEntry>)> {
    let meta = &cm.metadata;
    let name = meta.name.clone()?;
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let access = annotation(ACCESS_ANNOTATION).map(|text| {
        text.parse().unwrap_or_else(|problem: String| {
            tracing::warn!(env = %name, %problem, "an unreadable access annotation: owner only");
            Access::Owner
        })
    });
    let links = match annotation(SHARE_LINKS_ANNOTATION).map(|text| parse_share_links(text)) {
        None => Vec::new(),
        Some(Ok(links)) => links,
        Some(Err(problem)) => {
            tracing::warn!(env = %name, %problem, "unreadable share links: none open the env");
            Vec::new()
        }
    };
    let entry = EnvEntry {
        status: Arc::new(EnvStatus::from_meta(meta)),
        uid: meta.uid.clone().unwrap_or_default(),
        owner: annotation(OWNER_ANNOTATION)
            .filter(|owner| !owner.is_empty())
            .cloned()
            .unwrap_or_else(|| name.clone()),
        access,
        links,
    };
    Some((name, Arc::new(entry)))
}

// A panic while holding these locks cannot leave the maps inconsistent (every write is one
// insert, remove or swap), so a poisoned lock is used as is.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::Phase;
    use ephemerator_core::labels::{PHASE_LABEL, PORTS_ANNOTATION};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, phase: &str, ports: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(PHASE_LABEL.to_string(), phase.to_string())].into()),
                annotations: Some([(PORTS_ANNOTATION.to_string(), ports.to_string())].into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn events_add_change_and_remove_envs() {
        let table = RouteTable::default();
        table.apply(&watcher::Event::Apply(cm("a", "Starting", "[]")));
        assert_eq!(table.get("a").unwrap().status.phase, Phase::Starting);
        table.apply(&watcher::Event::Apply(cm(
            "a",
            "Ready",
            r#"[{"name":"web","port":8000}]"#,
        )));
        assert!(table.get("a").unwrap().status.exposes(8000));
        assert_eq!(
            table.apply(&watcher::Event::Delete(cm("a", "Ready", "[]"))),
            vec!["a".to_string()]
        );
        assert!(table.get("a").is_none());
    }

    #[test]
    fn who_may_open_an_env_is_read_failing_closed() {
        let table = RouteTable::default();
        let mut plain = cm("plain", "Ready", "[]");
        plain.metadata.uid = Some("uid-1".into());
        let mut odd = cm("odd", "Ready", "[]");
        let annotations = odd.metadata.annotations.as_mut().unwrap();
        annotations.insert(OWNER_ANNOTATION.into(), "jane.doe".into());
        annotations.insert(ACCESS_ANNOTATION.into(), "everyone".into());
        annotations.insert(SHARE_LINKS_ANNOTATION.into(), "not json".into());
        table.apply(&watcher::Event::Apply(plain));
        table.apply(&watcher::Event::Apply(odd));
        let plain = table.get("plain").unwrap();
        assert_eq!(
            (plain.uid.as_str(), plain.owner.as_str(), plain.access),
            ("uid-1", "plain", None)
        );
        let odd = table.get("odd").unwrap();
        assert_eq!(odd.owner, "jane.doe");
        assert_eq!(
            odd.access,
            Some(Access::Owner),
            "an unreadable level is the closest"
        );
        assert!(odd.links.is_empty(), "unreadable links open nothing");
    }

    #[test]
    fn a_relist_replaces_the_table_only_when_complete() {
        let table = RouteTable::default();
        assert!(!table.is_listed());
        table.apply(&watcher::Event::Init);
        table.apply(&watcher::Event::InitApply(cm("old", "Ready", "[]")));
        assert!(table.apply(&watcher::Event::InitDone).is_empty());
        assert!(table.is_listed());
        // The watch restarts: "old" was deleted meanwhile, "new" created.
        table.apply(&watcher::Event::Init);
        table.apply(&watcher::Event::InitApply(cm("new", "Ready", "[]")));
        assert!(
            table.get("old").is_some(),
            "kept until the re-list completes"
        );
        assert!(table.get("new").is_none());
        assert_eq!(
            table.apply(&watcher::Event::InitDone),
            vec!["old".to_string()],
            "the envs that went while the watch was down"
        );
        assert!(table.get("old").is_none());
        assert!(table.get("new").is_some());
        assert_eq!(table.len(), 1);
    }
}
