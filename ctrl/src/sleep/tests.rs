use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use ephemerator_core::labels::KEEP_AWAKE_ANNOTATION;

fn at(time: &str) -> Timestamp {
    time.parse().unwrap()
}

const CREATED: &str = "2030-01-01T10:00:00Z";
const READY: &str = "2030-01-01T10:05:00Z";

fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        creation_timestamp: Some(Time(at(CREATED))),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ObjectMeta::default()
    }
}

fn ready() -> EnvStatus {
    EnvStatus {
        phase: Phase::Ready,
        ready_at: Some(at(READY)),
        ..EnvStatus::default()
    }
}

fn asleep(since: &str) -> EnvStatus {
    EnvStatus {
        phase: Phase::Sleeping,
        ready_at: Some(at(READY)),
        asleep_since: Some(at(since)),
        ..EnvStatus::default()
    }
}

struct Case {
    status: EnvStatus,
    meta: ObjectMeta,
    last_activity: Option<&'static str>,
    runner_ready: bool,
    now: &'static str,
    sleep_after: Option<SignedDuration>,
}

impl Case {
    fn awake(now: &'static str) -> Case {
        Case {
            status: ready(),
            meta: meta(&[]),
            last_activity: None,
            runner_ready: true,
            now,
            sleep_after: Some(SignedDuration::from_mins(30)),
        }
    }

    fn run(&self) -> Sleep {
        sleep(&SleepInputs {
            sleep_after: self.sleep_after,
            status: &self.status,
            meta: &self.meta,
            last_activity: self.last_activity.map(at),
            runner_ready: self.runner_ready,
            now: at(self.now),
        })
    }
}

#[test]
fn an_unused_ready_env_sleeps_after_its_idle_time_counted_from_ready() {
    // Ready at 10:05, never visited: asleep at 10:35, not before.
    let early = Case::awake("2030-01-01T10:34:59Z").run();
    assert!(!early.asleep);
    assert_eq!(early.sleeps_at, Some(at("2030-01-01T10:35:00Z")));
    let due = Case::awake("2030-01-01T10:35:00Z").run();
    assert!(due.asleep && due.falls_asleep);
    assert_eq!(due.asleep_since, Some(at("2030-01-01T10:35:00Z")));
}

#[test]
fn activity_pushes_the_sleep_back() {
    let mut used = Case::awake("2030-01-01T10:40:00Z");
    used.last_activity = Some("2030-01-01T10:20:00Z");
    let decided = used.run();
    assert!(!decided.asleep);
    assert_eq!(decided.sleeps_at, Some(at("2030-01-01T10:50:00Z")));
}

#[test]
fn nothing_sleeps_without_sleep_after_with_keep_awake_or_while_starting() {
    let mut off = Case::awake("2030-01-02T10:00:00Z");
    off.sleep_after = None;
    assert_eq!(off.run(), Sleep::default());
    let mut kept = Case::awake("2030-01-02T10:00:00Z");
    kept.meta = meta(&[(KEEP_AWAKE_ANNOTATION, "true")]);
    assert!(!kept.run().asleep);
    assert_eq!(kept.run().sleeps_at, None);
    // Any other value is not a keep-awake.
    kept.meta = meta(&[(KEEP_AWAKE_ANNOTATION, "yes please")]);
    assert!(kept.run().asleep);
    let mut starting = Case::awake("2030-01-02T10:00:00Z");
    starting.runner_ready = false;
    starting.status.phase = Phase::Starting;
    assert!(!starting.run().asleep);
}

#[test]
fn a_sleeping_env_stays_asleep_until_something_wakes_it() {
    let mut case = Case::awake("2030-01-01T12:00:00Z");
    case.status = asleep("2030-01-01T11:00:00Z");
    case.runner_ready = false;
    // Activity from before it fell asleep wakes nothing.
    case.last_activity = Some("2030-01-01T10:59:00Z");
    let stays = case.run();
    assert!(stays.asleep && !stays.falls_asleep);
    assert_eq!(stays.asleep_since, Some(at("2030-01-01T11:00:00Z")));
    assert_eq!(stays.wakes, None);

    let wakes = |case: &Case| case.run().wakes;
    let mut visited = Case { ..case };
    visited.last_activity = Some("2030-01-01T11:59:00Z");
    assert_eq!(wakes(&visited), Some(Wake::Visit));
    let woken = visited.run();
    assert!(!woken.asleep && woken.waking);
    assert_eq!(woken.woke_at, Some(at("2030-01-01T12:00:00Z")));
    // Still marked as having slept, so the wake's end is measured.
    assert_eq!(woken.asleep_since, Some(at("2030-01-01T11:00:00Z")));

    let mut asked = Case {
        last_activity: None,
        ..visited
    };
    asked.meta = meta(&[(WAKE_ANNOTATION, "nicks\u{7}")]);
    let woken = asked.run();
    assert_eq!(woken.wakes, Some(Wake::Asked("nicks".into())));
    assert!(woken.clear_wake);
    assert_eq!(Wake::Asked("nicks".into()).describe(), "woken by nicks");

    asked.meta = meta(&[(KEEP_AWAKE_ANNOTATION, "true")]);
    assert_eq!(wakes(&asked), Some(Wake::KeptAwake));
    asked.meta = meta(&[]);
    asked.sleep_after = None;
    assert_eq!(wakes(&asked), Some(Wake::SleepTurnedOff));
}

#[test]
fn a_wake_ends_when_the_runner_is_ready_and_is_measured_once() {
    let waking = EnvStatus {
        phase: Phase::Starting,
        asleep_since: Some(at("2030-01-01T11:00:00Z")),
        woke_at: Some(at("2030-01-01T12:00:00Z")),
        ready_at: Some(at(READY)),
        ..EnvStatus::default()
    };
    let mut case = Case::awake("2030-01-01T12:01:30Z");
    case.status = waking.clone();
    case.runner_ready = false;
    let still = case.run();
    assert!(still.waking && !still.asleep);
    assert_eq!(still.woke_after, None);
    assert_eq!(still.asleep_since, waking.asleep_since);

    case.runner_ready = true;
    let done = case.run();
    assert!(!done.waking && !done.asleep);
    assert_eq!(done.woke_after, Some(Duration::from_secs(90)));
    assert_eq!(done.asleep_since, None);
    // Its idle time counts from the end of the wake.
    assert_eq!(done.woke_at, Some(at("2030-01-01T12:01:30Z")));
    assert_eq!(done.sleeps_at, Some(at("2030-01-01T12:31:30Z")));

    // A runner restarted by a spec change was never asleep: nothing is measured.
    let mut restarted = Case::awake("2030-01-01T10:20:00Z");
    restarted.status.woke_at = Some(at("2030-01-01T10:10:00Z"));
    assert_eq!(restarted.run().woke_after, None);
}

#[test]
fn a_wake_asked_of_an_awake_env_restarts_its_idle_time() {
    let mut case = Case::awake("2030-01-01T10:34:00Z");
    case.meta = meta(&[(WAKE_ANNOTATION, "")]);
    let decided = case.run();
    assert!(!decided.asleep && decided.clear_wake);
    assert_eq!(decided.woke_at, Some(at("2030-01-01T10:34:00Z")));
    assert_eq!(decided.sleeps_at, Some(at("2030-01-01T11:04:00Z")));
    assert_eq!(Wake::Asked(String::new()).describe(), "woken on request");
}

#[test]
fn a_sleeping_phase_without_its_time_sleeps_since_the_latest_time_known() {
    let mut case = Case::awake("2030-01-01T12:00:00Z");
    case.status = EnvStatus {
        phase: Phase::Sleeping,
        ..EnvStatus::default()
    };
    let decided = case.run();
    assert!(decided.asleep);
    assert_eq!(decided.asleep_since, Some(at(CREATED)));
}

#[test]
fn the_wake_annotation_is_quoted_short_and_printable() {
    let long = "x".repeat(500);
    let asked = wake_asked(&meta(&[(WAKE_ANNOTATION, &long)])).unwrap();
    assert_eq!(asked.len(), MAX_ASKER);
    assert_eq!(wake_asked(&meta(&[])), None);
}
