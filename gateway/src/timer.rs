//! The timer hyper uses for the request-header deadline of client connections: a coarse one,
//! per worker thread, with one-second resolution.
//!
//! hyper starts a new header timer for every request on a keep-alive connection. On tokio's
//! timer each start registers an entry and, measured with `strace` and `perf`, wakes the
//! worker's event loop once more per request (an `eventfd` write and an extra `epoll_wait`).
//! [`CoarseTimer`] keeps its deadlines in a small table that one task per worker sweeps every
//! second: starting, moving and dropping a timer is a table update, and the event loop is
//! woken only by the sweep. A header deadline of seconds does not need better than a second.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// How often deadlines are checked: a timer ends up to this much after its deadline.
pub const RESOLUTION: Duration = Duration::from_secs(1);

/// A hyper [`Timer`] whose sleeps end at the first sweep after their deadline.
#[derive(Clone, Default)]
pub struct CoarseTimer {
    table: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

struct Entry {
    deadline: Instant,
    waker: Option<Waker>,
    fired: bool,
}

impl CoarseTimer {
    /// Ends every sleep whose deadline has passed; call every [`RESOLUTION`] (see
    /// [`CoarseTimer::sweep_forever`]).
    pub fn sweep(&self, now: Instant) {
        let wakers: Vec<Waker> = {
            let mut table = lock(&self.table);
            table
                .entries
                .values_mut()
                .filter(|entry| !entry.fired && entry.deadline <= now)
                .filter_map(|entry| {
                    entry.fired = true;
                    entry.waker.take()
                })
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Sweeps every [`RESOLUTION`], for ever (spawn it on the worker's runtime).
    pub async fn sweep_forever(self) {
        let mut ticks = tokio::time::interval(RESOLUTION);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sweep(now());
        }
    }

    /// How many sleeps are pending (tests).
    pub fn pending(&self) -> usize {
        lock(&self.table).entries.len()
    }
}

impl Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let mut table = lock(&self.table);
        let id = table.next_id;
        table.next_id += 1;
        table.entries.insert(
            id,
            Entry {
                deadline,
                waker: None,
                fired: deadline <= now(),
            },
        );
        Box::pin(CoarseSleep {
            id,
            table: self.table.clone(),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<CoarseSleep>() {
            Some(coarse) => {
                if let Some(entry) = lock(&self.table).entries.get_mut(&coarse.id) {
                    entry.deadline = new_deadline;
                    entry.fired = new_deadline <= now();
                }
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> Instant {
        now()
    }
}

struct CoarseSleep {
    id: u64,
    table: Arc<Mutex<Table>>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut table = lock(&self.table);
        match table.entries.get_mut(&self.id) {
            Some(entry) if !entry.fired => {
                entry.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

impl Sleep for CoarseSleep {}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        lock(&self.table).entries.remove(&self.id);
    }
}

/// tokio's clock (the same as the system's, except in tests that pause it).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

// Every update of the table is one insert, change or removal: a panic elsewhere cannot leave it
// inconsistent, so a poisoned lock is used as is.
fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeps_end_at_the_first_sweep_after_their_deadline() {
        let timer = CoarseTimer::default();
        tokio::spawn(timer.clone().sweep_forever());
        let start = timer.now();
        let mut sleep = timer.sleep(Duration::from_millis(2500));
        sleep.as_mut().await;
        let waited = timer.now() - start;
        assert!(
            waited >= Duration::from_millis(2500)
                && waited <= Duration::from_millis(2500) + RESOLUTION,
            "{waited:?}"
        );

        // Moved later, it ends later; moved into the past, at once.
        let start = timer.now();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        timer.reset(&mut sleep, start + Duration::from_secs(10));
        sleep.as_mut().await;
        assert!(timer.now() - start >= Duration::from_secs(10));
        let mut sleep = timer.sleep(Duration::from_secs(30));
        timer.reset(&mut sleep, timer.now() - Duration::from_secs(1));
        let before = timer.now();
        sleep.as_mut().await;
        assert_eq!(timer.now(), before);
    }

    #[tokio::test]
    async fn dropped_sleeps_leave_the_table() {
        let timer = CoarseTimer::default();
        let sleeps: Vec<_> = (0..3)
            .map(|_| timer.sleep(Duration::from_secs(30)))
            .collect();
        assert_eq!(timer.pending(), 3);
        drop(sleeps);
        assert_eq!(timer.pending(), 0);
    }
}
