//! Which of several ephctrls acts: leader election over a `coordination.k8s.io/v1` Lease in the
//! controller's namespace. Every replica watches and keeps its caches warm; only the one holding
//! the Lease reconciles ([`Leadership::is_leading`], checked before every write).
//!
//! The rules are client-go's, the election every Kubernetes controller-manager runs:
//! - a candidate takes over a Lease whose record has not changed for its
//!   `leaseDurationSeconds`, timed on the candidate's own monotonic clock from the moment it
//!   *saw* the record change, never by comparing another machine's `renewTime` with its own
//!   wall clock (so clock skew between nodes cannot make two leaders);
//! - every write of the Lease is guarded by its resourceVersion, so of two candidates at most
//!   one wins a round;
//! - the leader counts itself leader only until [`LeaseTimings::renew_deadline`] after it
//!   *sent* the last renewal that landed, less than the lease duration: it stops before anyone
//!   else may start. A process that was paused (or cut off) past that finds its deadline gone
//!   when it runs again and stops before its next write.
//!
//! [`decide`] is the rule, with no cluster and no clock; [`run`] carries it out.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::context::FIELD_MANAGER;

/// The default Lease name (`--lease-name`).
pub const DEFAULT_LEASE_NAME: &str = "ephctrl";

/// How long a Lease holds and how often it is looked at; client-go's defaults, which every
/// Kubernetes controller-manager uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease holds without renewal before a standby may take it (whole seconds: the
    /// Lease records it so).
    pub lease_duration: Duration,
    /// How long the leader keeps acting after the last renewal it sent that landed; less than
    /// `lease_duration`, the difference being the margin for clocks that run at different
    /// rates and for the time a request takes.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTimings {
    /// Checks that the timings can work: a whole number of seconds for the Lease, and
    /// retry period < renew deadline < lease duration.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.is_zero() {
            return Err(format!(
                "--lease-duration {:?}: must be a whole number of seconds (the Lease records it so)",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--lease-renew-deadline {:?} must be less than --lease-duration {:?}: the leader must stop before a standby may start",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--lease-retry-period {:?} must be more than zero and less than --lease-renew-deadline {:?}: the leader renews several times before its deadline",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// The longest a single look at the Lease (a read and a write) may take: half the renew
    /// deadline, so a hung request never eats the whole of it.
    fn request_timeout(&self) -> Duration {
        self.renew_deadline / 2
    }
}

/// Who elects and through which Lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's name, in the controller's namespace.
    pub name: String,
    /// This replica's holder identity: unique among replicas and restarts (see [`identity`]).
    pub identity: String,
    /// How long it holds and how often it is looked at.
    pub timings: LeaseTimings,
}

impl LeaseSettings {
    /// Settings with the default name and timings, as `who` (see [`identity`]).
    pub fn new(who: &str) -> Self {
        LeaseSettings {
            name: DEFAULT_LEASE_NAME.to_string(),
            identity: identity(who),
            timings: LeaseTimings::default(),
        }
    }
}

/// A holder identity: `who` (the pod's name) and a random suffix, as client-go makes them, so a
/// restarted container never mistakes the Lease of the process before it for its own.
pub fn identity(who: &str) -> String {
    let mut bytes = [0u8; 4];
    // Without randomness the suffix is the time: still different from the last process's.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = Timestamp::now().subsec_nanosecond().unsigned_abs();
        bytes = nanos.to_be_bytes();
    }
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{who}_{suffix}")
}

/// The part of a Lease the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Who holds it (`None`: nobody, or released).
    pub holder: Option<String>,
    /// Its `leaseDurationSeconds`.
    pub duration: Option<Duration>,
    /// Its `leaseTransitions`.
    pub transitions: i32,
    /// Its `metadata.resourceVersion`: any write changes it, renewals included.
    pub version: String,
}

impl Record {
    /// The record of `lease`.
    pub fn of(lease: &Lease) -> Record {
        let spec = lease.spec.as_ref();
        Record {
            holder: spec
                .and_then(|spec| spec.holder_identity.clone())
                .filter(|holder| !holder.is_empty()),
            duration: spec
                .and_then(|spec| spec.lease_duration_seconds)
                .and_then(|seconds| u64::try_from(seconds).ok())
                .map(Duration::from_secs),
            transitions: spec.and_then(|spec| spec.lease_transitions).unwrap_or(0),
            version: lease.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

/// What a candidate does after a look at the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It holds the Lease: renew it.
    Renew,
    /// Nobody holds it, or its holder let it lapse: take it.
    Acquire,
    /// Someone else holds it, for at least `for_at_least` more.
    Wait {
        /// The holder.
        holder: String,
        /// How long the Lease holds at least, as this candidate has seen it.
        for_at_least: Duration,
    },
}

/// The rule. `unchanged_for` is how long this candidate has seen the record as it is now (on
/// its own clock); `own_duration` stands in for a record without a duration.
pub fn decide(
    record: &Record,
    me: &str,
    unchanged_for: Duration,
    own_duration: Duration,
) -> Decision {
    let Some(holder) = &record.holder else {
        return Decision::Acquire;
    };
    if holder == me {
        return Decision::Renew;
    }
    let duration = record.duration.unwrap_or(own_duration);
    match duration.checked_sub(unchanged_for) {
        Some(left) if !left.is_zero() => Decision::Wait {
            holder: holder.clone(),
            for_at_least: left,
        },
        _ => Decision::Acquire,
    }
}

/// Where this replica stands, as [`Leadership`] shares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// Until when this replica may act (`None`: it does not lead).
    pub leading_until: Option<Instant>,
    /// The holder last seen (this replica's identity while it leads).
    pub holder: Option<String>,
    /// How many times this replica has taken the lead.
    pub terms: u64,
    /// Whether the last look at the Lease landed (else who leads is not known).
    pub looked: bool,
}

/// The shared view of the election: cheap to clone, read by every reconcile.
#[derive(Debug, Clone)]
pub struct Leadership {
    identity: Arc<str>,
    standing: Arc<watch::Sender<Standing>>,
}

impl Leadership {
    /// A replica `identity` that does not lead yet.
    pub fn new(identity: &str) -> Self {
        Leadership {
            identity: identity.into(),
            standing: Arc::new(watch::Sender::new(Standing::default())),
        }
    }

    /// This replica's holder identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this replica may act now: it holds the Lease and its last renewal is recent
    /// enough. Checked before every write; a deadline that passed means no, whatever the
    /// election loop has had time to notice.
    pub fn is_leading(&self) -> bool {
        self.standing
            .borrow()
            .leading_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// The holder last seen, if anyone holds the Lease.
    pub fn holder(&self) -> Option<String> {
        self.standing.borrow().holder.clone()
    }

    /// Whether the last look at the Lease landed.
    pub fn has_looked(&self) -> bool {
        self.standing.borrow().looked
    }

    /// How many times this replica has taken the lead.
    pub fn terms(&self) -> u64 {
        self.standing.borrow().terms
    }

    /// A stream with one item each time this replica takes the lead (from now on).
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let receiver = self.standing.subscribe();
        let seen = receiver.borrow().terms;
        futures::stream::unfold((receiver, seen), |(mut receiver, seen)| async move {
            let standing = receiver
                .wait_for(|standing| standing.terms > seen)
                .await
                .ok()?;
            let terms = standing.terms;
            drop(standing);
            Some(((), (receiver, terms)))
        })
    }

    /// Waits until this replica leads.
    pub async fn wait_until_leading(&self) {
        let mut receiver = self.standing.subscribe();
        loop {
            if self.is_leading() {
                return;
            }
            // The sender lives in `self`: the channel cannot close while waiting.
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }

    fn led_until(&self, until: Instant) {
        self.standing.send_modify(|standing| {
            let gained = standing
                .leading_until
                .is_none_or(|was| Instant::now() >= was);
            standing.leading_until = Some(until);
            standing.holder = Some(self.identity.to_string());
            standing.looked = true;
            if gained {
                standing.terms += 1;
            }
        });
    }

    /// The lead lapsed without a look at the Lease: who leads now is not known.
    fn lapsed(&self) {
        self.standing.send_modify(|standing| {
            standing.leading_until = None;
            standing.holder = None;
            standing.looked = false;
        });
    }

    fn follows(&self, holder: Option<String>) {
        self.standing.send_if_modified(|standing| {
            let changed =
                standing.leading_until.is_some() || standing.holder != holder || !standing.looked;
            standing.leading_until = None;
            standing.holder = holder;
            standing.looked = true;
            changed
        });
    }
}

/// What this candidate last saw of the Lease, and when it first saw it so.
struct Seen {
    record: Record,
    since: Instant,
}

/// Elects until dropped: looks at the Lease every retry period, renews it while this replica
/// holds it, takes it when it lapses. API errors only cost time: the leader stops at its
/// deadline, a standby looks again.
pub async fn run(
    client: kube::Client,
    namespace: String,
    settings: LeaseSettings,
    leadership: Leadership,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let timings = settings.timings;
    let mut seen: Option<Seen> = None;
    info!(lease = %settings.name, identity = %settings.identity, "electing a leader");
    loop {
        let started = Instant::now();
        let round = tokio::time::timeout(
            timings.request_timeout(),
            look(&api, &settings, &mut seen, started),
        )
        .await;
        let leading_until = started + timings.renew_deadline;
        match round {
            Ok(Ok(Outcome::Leads)) => {
                if !leadership.is_leading() {
                    info!(lease = %settings.name, identity = %settings.identity, "leading");
                }
                leadership.led_until(leading_until);
            }
            Ok(Ok(Outcome::Follows(holder))) => {
                if leadership.is_leading() {
                    warn!(lease = %settings.name, holder = ?holder, "lost the lead to another replica");
                }
                leadership.follows(holder);
            }
            Ok(Ok(Outcome::Contended)) => {
                if leadership.is_leading() {
                    warn!(lease = %settings.name, "the lease was written by another replica; standing by");
                }
                leadership.lapsed();
            }
            Ok(Err(error)) => note_failure(&leadership, &settings.name, &error.to_string()),
            Err(_) => note_failure(
                &leadership,
                &settings.name,
                "the API server did not answer in time",
            ),
        }
        // Wake at the deadline too, so a lapse is noticed (and logged) when it happens.
        let deadline = leadership.standing.borrow().leading_until;
        let next = started + timings.retry_period;
        tokio::time::sleep_until(deadline.map_or(next, |until| next.min(until))).await;
        if deadline.is_some_and(|until| Instant::now() >= until)
            && leadership.standing.borrow().leading_until == deadline
        {
            warn!(lease = %settings.name, "could not renew the lease before the deadline; standing by");
            leadership.lapsed();
        }
    }
}

fn note_failure(leadership: &Leadership, lease: &str, error: &str) {
    if leadership.is_leading() {
        warn!(%lease, %error, "renewing the lease failed; trying again until the deadline");
    } else {
        debug!(%lease, %error, "looking at the lease failed");
    }
}

enum Outcome {
    /// This replica holds the Lease, renewed now.
    Leads,
    /// Another holds it (or nobody, for a moment).
    Follows(Option<String>),
    /// Someone wrote the Lease between this replica's read and its write: who leads is read
    /// again next round, and this replica does not lead meanwhile.
    Contended,
}

/// One look: read the Lease (create it if there is none), decide, write if the rule says so.
async fn look(
    api: &Api<Lease>,
    settings: &LeaseSettings,
    seen: &mut Option<Seen>,
    now: Instant,
) -> kube::Result<Outcome> {
    let Some(lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(held_spec(settings, None, 0)),
        };
        return match api.create(&post_params(), &lease).await {
            Ok(_) => Ok(Outcome::Leads),
            // Another replica created it first: its record is read next round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Contended),
            Err(error) => Err(error),
        };
    };
    let record = Record::of(&lease);
    let since = match seen {
        Some(seen) if seen.record == record => seen.since,
        _ => now,
    };
    *seen = Some(Seen {
        record: record.clone(),
        since,
    });
    let decision = decide(
        &record,
        &settings.identity,
        now.saturating_duration_since(since),
        settings.timings.lease_duration,
    );
    let transitions = match &decision {
        Decision::Wait { holder, .. } => return Ok(Outcome::Follows(Some(holder.clone()))),
        Decision::Renew => record.transitions,
        Decision::Acquire => record.transitions.saturating_add(1),
    };
    let acquired = match decision {
        Decision::Renew => lease
            .spec
            .as_ref()
            .and_then(|spec| spec.acquire_time.clone()),
        _ => None,
    };
    let mut updated = lease.clone();
    updated.spec = Some(held_spec(settings, acquired, transitions));
    match api.replace(&settings.name, &post_params(), &updated).await {
        Ok(_) => Ok(Outcome::Leads),
        // Someone wrote it since it was read (another candidate won the round, or the holder
        // renewed): read again next round.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Contended),
        Err(error) => Err(error),
    }
}

/// The spec of a Lease held by this replica, renewed now.
fn held_spec(settings: &LeaseSettings, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: i32::try_from(settings.timings.lease_duration.as_secs()).ok(),
        acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// Gives the Lease up, if this replica holds it, so a standby takes over at its next look
/// instead of waiting for the Lease to lapse. Called once the controller has stopped acting.
pub async fn release(client: kube::Client, namespace: &str, settings: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let released = tokio::time::timeout(settings.timings.request_timeout(), async {
        let Some(mut lease) = api.get_opt(&settings.name).await? else {
            return Ok(false);
        };
        if Record::of(&lease).holder.as_deref() != Some(settings.identity.as_str()) {
            return Ok(false);
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        api.replace(&settings.name, &post_params(), &lease).await?;
        Ok::<_, kube::Error>(true)
    })
    .await;
    match released {
        Ok(Ok(true)) => info!(lease = %settings.name, "gave up the lease"),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => {
            warn!(lease = %settings.name, %error, "could not give up the lease; a standby takes over once it lapses")
        }
        Err(_) => {
            warn!(lease = %settings.name, "giving up the lease took too long; a standby takes over once it lapses")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn record(holder: Option<&str>, duration: Option<u64>) -> Record {
        Record {
            holder: holder.map(str::to_string),
            duration: duration.map(Duration::from_secs),
            transitions: 3,
            version: "7".to_string(),
        }
    }

    #[test]
    fn the_rule() {
        let wait = |holder: &str, left: u64| Decision::Wait {
            holder: holder.to_string(),
            for_at_least: Duration::from_secs(left),
        };
        let cases = [
            // Nobody holds it (never held, or released): take it.
            (record(None, None), 0, Decision::Acquire),
            (record(None, Some(15)), 0, Decision::Acquire),
            // Ours: renew, however long since it changed.
            (record(Some("me"), Some(15)), 0, Decision::Renew),
            (record(Some("me"), Some(15)), 100, Decision::Renew),
            // Another's: wait while it may still be renewed, by its own duration.
            (record(Some("other"), Some(15)), 0, wait("other", 15)),
            (record(Some("other"), Some(15)), 14, wait("other", 1)),
            (record(Some("other"), Some(15)), 15, Decision::Acquire),
            (record(Some("other"), Some(15)), 60, Decision::Acquire),
            (record(Some("other"), Some(5)), 4, wait("other", 1)),
            // No duration recorded: our own stands in.
            (record(Some("other"), None), 9, wait("other", 1)),
            (record(Some("other"), None), 10, Decision::Acquire),
        ];
        for (record, unchanged_for, expected) in cases {
            assert_eq!(
                decide(&record, "me", unchanged_for * SECOND, 10 * SECOND),
                expected,
                "{record:?} unchanged for {unchanged_for}s"
            );
        }
    }

    #[test]
    fn an_empty_holder_is_nobody() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(1),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(Record::of(&lease).holder, None);
        assert_eq!(Record::of(&lease).duration, Some(SECOND));
    }

    #[test]
    fn timings_must_let_the_leader_stop_before_a_standby_starts() {
        assert!(LeaseTimings::default().check().is_ok());
        let timings = |lease, renew, retry| LeaseTimings {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        };
        assert!(timings(3000, 2000, 500).check().is_ok());
        let error = timings(3000, 3000, 500).check().unwrap_err();
        assert!(error.contains("--lease-renew-deadline"), "{error}");
        let error = timings(3000, 2000, 2000).check().unwrap_err();
        assert!(error.contains("--lease-retry-period"), "{error}");
        let error = timings(2500, 2000, 500).check().unwrap_err();
        assert!(error.contains("whole number of seconds"), "{error}");
        assert!(timings(3000, 2000, 0).check().is_err());
    }

    #[test]
    fn identities_differ_between_restarts() {
        let (a, b) = (identity("ephctrl-5d8f"), identity("ephctrl-5d8f"));
        assert!(a.starts_with("ephctrl-5d8f_"), "{a}");
        assert_ne!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_passed_means_not_leading_at_once() {
        let leadership = Leadership::new("me");
        assert!(!leadership.is_leading());
        let mut gained = Box::pin(leadership.gained());
        leadership.led_until(Instant::now() + 10 * SECOND);
        assert!(leadership.is_leading());
        assert_eq!(leadership.terms(), 1);
        futures::StreamExt::next(&mut gained).await.expect("gained");
        // Renewed in time: the same term.
        leadership.led_until(Instant::now() + 10 * SECOND);
        assert_eq!(leadership.terms(), 1);
        // Paused past the deadline: no longer leading, before anything else runs.
        tokio::time::advance(11 * SECOND).await;
        assert!(!leadership.is_leading());
        // Leading again is a new term.
        leadership.led_until(Instant::now() + 10 * SECOND);
        assert_eq!(leadership.terms(), 2);
        futures::StreamExt::next(&mut gained)
            .await
            .expect("gained again");
        leadership.follows(Some("other".to_string()));
        assert!(!leadership.is_leading());
        assert_eq!(leadership.holder().as_deref(), Some("other"));
    }
}
