//! The watch setup every server uses for its caches: a kube watcher with its own backoff,
//! reflected into a store, whose errors are logged and retried but never passed on.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// Watches `api` (as `config` selects), keeps `writer`'s store up to date, and yields every
/// watch event, for ever: through dropped watches (re-watched from the last version), `410
/// Gone` (re-listed) and an API server that is down or restarting (retried with
/// [`WatchBackoff`]). Errors are logged, never yielded; `modify` trims each object before it
/// is stored (drop what the caller never reads).
pub fn reflected_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    modify: impl FnMut(&mut K) + Send + 'static,
) -> impl Stream<Item = watcher::Event<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    without_errors::<K>(retried_watch(api, config, modify).reflect(writer))
}

/// [`reflected_watch`] for a caller that keeps its own index of the events (the gateway's route
/// table) and needs no store of the objects.
pub fn event_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    modify: impl FnMut(&mut K) + Send + 'static,
) -> impl Stream<Item = watcher::Event<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    without_errors::<K>(retried_watch(api, config, modify))
}

/// The watcher both share: its own backoff, objects trimmed by `modify`.
fn retried_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    modify: impl FnMut(&mut K) + Send + 'static,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher(api, config)
        .backoff(WatchBackoff::default())
        .modify(modify)
}

/// The events of a watch of `K`, its errors logged (never passed on: the watcher retries).
fn without_errors<K: Resource<DynamicType = ()> + Send + 'static>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = watcher::Event<K>> + Send + 'static {
    let kind = K::plural(&()).into_owned();
    events.filter_map(move |result| {
        futures::future::ready(match result {
            Ok(event) => Some(event),
            Err(error) => {
                log_watch_error(&kind, &error);
                None
            }
        })
    })
}

fn log_watch_error(kind: &str, error: &watcher::Error) {
    match error {
        // Routine: the history was compacted or the server restarted; the watcher re-lists.
        watcher::Error::WatchError(status) if status.code == 410 => {
            tracing::info!(
                watch = kind,
                "watch history expired (410 Gone); listing again"
            )
        }
        _ => tracing::warn!(watch = kind, %error, "watch failed; retrying"),
    }
}

/// The retry delays of one watch: 250 ms doubling to at most 5 s, each drawn at random from its
/// upper half so that many clients do not retry in step; back to 250 ms after any success.
///
/// Shorter than kube's default (800 ms to 30 s): a watch retry is one cheap request, and after
/// a restart of the API server the caches should catch up within seconds.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    /// The first delay.
    pub const MIN: Duration = Duration::from_millis(250);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Without randomness (never seen in practice) the retry just is not jittered.
        let fraction = getrandom::u32().map_or(1.0, |bits| f64::from(bits) / f64::from(u32::MAX));
        Some(ceiling.mul_f64(0.5 + fraction / 2.0))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut backoff).take(8).collect();
        let ceilings = [250, 500, 1000, 2000, 4000, 5000, 5000, 5000];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                *delay <= ceiling && *delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next().unwrap() <= WatchBackoff::MIN);
    }
}
