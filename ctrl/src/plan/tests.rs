//! The plan as a table: each case an env ConfigMap, what was observed and remembered, and the
//! time; each check what the plan must say.

use std::collections::BTreeMap;

use ephemerator_core::labels::{WAKE_ANNOTATION, child_labels};
use ephemerator_core::{EnvSpec, env_config_map};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::desired::{TEMPLATE_HASH_ANNOTATION, owner_reference};
use crate::memory::Memory;

const CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
  repos:
    - url: https://github.com/example/static-site
      ports: [{name: web, port: 8080}]
expiration: {defaultTTL: 15m, extendBy: 15m, maxLifetime: 1h, warnBefore: 5m}
"#;
const HTML: &str = "https://github.com/tilt-dev/tilt-example-html";
const UID: &str = "uid-1";
const CREATED: &str = "2030-01-01T10:00:00Z";
const TOKEN: &str = "token-1";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn config() -> Config {
    Config::from_yaml_str(CONFIG, "test.yaml").unwrap()
}

fn spec(repo: &str) -> EnvSpec {
    EnvSpec {
        repo: repo.into(),
        branch: "master".into(),
        path: "0-base/Tiltfile".into(),
    }
}

/// The env ConfigMap `nicks` as the API server returns it.
fn config_map(repo: &str, expiration: Option<&str>) -> ConfigMap {
    let mut cm = env_config_map("nicks", "nicks", &spec(repo), expiration.map(at));
    cm.metadata.uid = Some(UID.into());
    cm.metadata.resource_version = Some("10".into());
    cm.metadata.creation_timestamp = Some(Time(at(CREATED)));
    cm
}

fn with_status(mut cm: ConfigMap, status: &EnvStatus) -> ConfigMap {
    cm.metadata
        .labels
        .get_or_insert_default()
        .extend(status.labels());
    cm.metadata
        .annotations
        .get_or_insert_default()
        .extend(status.annotations());
    cm
}

/// Our runner Deployment with `ready` replicas, for the spec of `repo`.
fn runner(repo: &str, ready: i32) -> RunnerDeployment {
    RunnerDeployment::from(Deployment {
        metadata: ObjectMeta {
            name: Some("nicks".into()),
            uid: Some("dep-uid".into()),
            generation: Some(1),
            resource_version: Some("20".into()),
            labels: Some(child_labels("nicks")),
            owner_references: Some(vec![owner_reference("nicks", UID)]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    annotations: Some(BTreeMap::from([(
                        TEMPLATE_HASH_ANNOTATION.to_string(),
                        spec(repo).fingerprint(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: None,
            },
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            ready_replicas: Some(ready),
            updated_replicas: Some(1),
            observed_generation: Some(1),
            ..DeploymentStatus::default()
        }),
    })
}

fn child_meta(uid: &str, labels: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some("nicks".into()),
        uid: Some(uid.into()),
        resource_version: Some("30".into()),
        labels: labels.then(|| child_labels("nicks")),
        owner_references: labels.then(|| vec![owner_reference("nicks", UID)]),
        ..ObjectMeta::default()
    }
}

/// One case: everything the plan reads.
struct Case {
    config: Config,
    config_map: ConfigMap,
    deployment: Option<(Ownership, RunnerDeployment)>,
    service: Option<(Ownership, ObjectMeta)>,
    ingress: Option<(Ownership, ObjectMeta)>,
    memory: Memory,
    now: Timestamp,
    tilt_answered: bool,
    last_activity: Option<Timestamp>,
}

impl Case {
    fn new(config_map: ConfigMap) -> Case {
        Case {
            config: config(),
            config_map,
            deployment: None,
            service: None,
            ingress: None,
            memory: Memory::default(),
            now: at("2030-01-01T10:01:00Z"),
            tilt_answered: false,
            last_activity: None,
        }
    }

    fn config_map_status(&self) -> EnvStatus {
        EnvStatus::from_meta(&self.config_map.metadata)
    }

    fn with_runner(mut self, runner: RunnerDeployment) -> Case {
        self.deployment = Some((Ownership::Ours, runner));
        self.service = Some((Ownership::Ours, child_meta("svc-uid", true)));
        self
    }

    fn at(mut self, now: &str) -> Case {
        self.now = at(now);
        self
    }

    fn plan(&self) -> Plan {
        let memory = self.memory.of("nicks");
        plan(&Inputs {
            config: &self.config,
            config_digest: crate::desired::children_config_digest(&self.config),
            namespace: "eph",
            now: self.now,
            config_map: &self.config_map,
            memory: &memory,
            observed: Observed {
                deployment: self.deployment.as_ref().map(|(o, d)| (*o, d)),
                service: self.service.as_ref().map(|(o, m)| (*o, m)),
                ingress: self.ingress.as_ref().map(|(o, m)| (*o, m)),
            },
            tilt_token: TOKEN,
            dashboard_url: "http://preview.localhost/",
            tilt_polls: TiltPolls::default(),
            tilt_answered: self.tilt_answered,
            last_activity: self.last_activity,
        })
    }

    /// Remembers that the current children were applied from the current inputs (as after
    /// an earlier reconcile).
    fn applied_before(self) -> Case {
        let env = Env::from_config_map(&self.config_map).unwrap();
        let memory = self.memory.of("nicks");
        let digest = ChildrenInputs {
            name: "nicks",
            namespace: "eph",
            config_map_uid: UID,
            spec: &env.spec,
            tilt_token: TOKEN,
            discovered_ports: &memory.ports().discovered,
            config: &self.config,
            config_digest: crate::desired::children_config_digest(&self.config),
            asleep: self.config_map_status().phase == Phase::Sleeping,
        }
        .digest();
        for (kind, meta) in [
            (
                ChildKind::Deployment,
                self.deployment.as_ref().map(|(_, d)| &d.metadata),
            ),
            (ChildKind::Service, self.service.as_ref().map(|(_, m)| m)),
        ] {
            if let Some(meta) = meta {
                self.memory.applied(
                    "nicks",
                    kind,
                    crate::memory::AppliedChild::new(kind, digest, meta, true),
                );
            }
        }
        self
    }
}

fn phase(plan: &Plan) -> Option<Phase> {
    plan.status.as_ref().map(|change| change.status.phase)
}

fn message(plan: &Plan) -> String {
    plan.status
        .as_ref()
        .and_then(|change| change.status.message.clone())
        .unwrap_or_default()
}

#[test]
fn a_new_env_gets_its_expiration_its_children_and_starts() {
    let plan = Case::new(config_map(HTML, None)).plan();
    assert_eq!(plan.write_expiration, Some(at("2030-01-01T10:16:00Z")));
    assert_eq!(plan.apply, vec![ChildKind::Deployment, ChildKind::Service]);
    let children = plan.children.as_ref().expect("children to apply");
    assert!(children.ingress.is_none(), "no Ingress mode");
    assert_eq!(phase(&plan), Some(Phase::Starting));
    let change = plan.status.as_ref().unwrap();
    assert_eq!(change.event.as_ref().unwrap().reason, "Starting");
    assert_eq!(change.status.ports.len(), 1, "Tilt's port");
    // Woken at the warning (10:11), before the deadline (10:16).
    assert_eq!(plan.requeue, Some(Duration::from_secs(10 * 60)));
    assert!(plan.delete.is_empty() && plan.expire.is_none() && plan.ask_tilt.is_none());
}

#[test]
fn the_phase_follows_the_runner() {
    let expiration = Some("2030-01-01T10:15:00Z");
    let starting = Case::new(config_map(HTML, expiration))
        .with_runner(runner(HTML, 0))
        .applied_before();
    let plan = starting.plan();
    assert_eq!(phase(&plan), Some(Phase::Starting));
    assert_eq!(message(&plan), "runner starting");
    assert!(
        plan.apply.is_empty(),
        "applied before, unchanged: {:?}",
        plan.apply
    );
    assert!(plan.children.is_none());

    // Ready: first Tilt is asked for the ports...
    let ready = Case::new(config_map(HTML, expiration))
        .with_runner(runner(HTML, 1))
        .applied_before();
    let plan = ready.plan();
    assert_eq!(
        plan.ask_tilt,
        Some(runner_key(&spec(HTML).fingerprint(), TOKEN))
    );
    assert!(
        plan.status.is_none() && plan.apply.is_empty(),
        "nothing else yet"
    );

    // ...then, with its answer remembered, the Service gets the ports and the env is Ready.
    ready.memory.polled_ports(
        "nicks",
        PortMemory {
            discovered: vec![Port {
                name: "web".into(),
                port: 8000,
            }],
            for_runner: plan.ask_tilt.clone(),
            pending: false,
            polled_at: Some(ready.now),
            note: None,
        },
    );
    let plan = ready.plan();
    assert_eq!(plan.ask_tilt, None);
    assert_eq!(phase(&plan), Some(Phase::Ready));
    assert_eq!(plan.apply, vec![ChildKind::Deployment, ChildKind::Service]);
    let change = plan.status.unwrap();
    assert_eq!(change.status.ready_at, Some(ready.now));
    assert_eq!(change.first_ready_after, Some(Duration::from_secs(60)));
    let ports: Vec<u16> = change.status.ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![8000, 10350]);

    // A Ready env whose status shows it already: nothing to write at all.
    let shown = EnvStatus {
        phase: Phase::Ready,
        message: Some("runner ready".into()),
        ports: vec![Port {
            name: "tilt".into(),
            port: 10350,
        }],
        ready_at: Some(at("2030-01-01T10:00:30Z")),
        ..EnvStatus::default()
    };
    let settled =
        Case::new(with_status(config_map(HTML, expiration), &shown)).with_runner(runner(HTML, 1));
    settled.memory.polled_ports(
        "nicks",
        PortMemory {
            discovered: Vec::new(),
            for_runner: Some(runner_key(&spec(HTML).fingerprint(), TOKEN)),
            pending: false,
            polled_at: Some(at("2030-01-01T10:00:40Z")),
            note: None,
        },
    );
    let plan = settled.applied_before().plan();
    assert!(plan.status.is_none(), "{:?}", plan.status);
    assert!(plan.apply.is_empty() && plan.delete.is_empty() && plan.write_expiration.is_none());
}

#[test]
fn tilt_is_asked_again_while_resources_are_pending() {
    let case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")))
        .with_runner(runner(HTML, 1))
        .applied_before();
    let key = runner_key(&spec(HTML).fingerprint(), TOKEN);
    case.memory.polled_ports(
        "nicks",
        PortMemory {
            discovered: Vec::new(),
            for_runner: Some(key.clone()),
            pending: true,
            polled_at: Some(at("2030-01-01T10:00:55Z")),
            note: None,
        },
    );
    // Polled 5 s ago: the next poll is at +10 s, which is the next wake-up.
    let plan = case.plan();
    assert_eq!(plan.ask_tilt, None);
    assert_eq!(plan.requeue, Some(Duration::from_secs(5)));
    // 10 s later: ask again.
    let plan = case.at("2030-01-01T10:01:05Z").plan();
    assert_eq!(plan.ask_tilt, Some(key));
}

#[test]
fn an_answer_slower_than_the_poll_interval_is_used_and_the_next_ask_planned() {
    let mut case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")))
        .with_runner(runner(HTML, 1))
        .applied_before();
    let key = runner_key(&spec(HTML).fingerprint(), TOKEN);
    // Asked at 10:00:48 (still pending); the answer took 12 s, past the 10 s interval.
    case.memory.polled_ports(
        "nicks",
        PortMemory {
            discovered: Vec::new(),
            for_runner: Some(key.clone()),
            pending: true,
            polled_at: Some(at("2030-01-01T10:00:48Z")),
            note: Some("the app's ports are not known yet: Tilt answered HTTP 500".into()),
        },
    );
    // Before an ask, that poll is due again...
    assert_eq!(case.plan().ask_tilt, Some(key));
    // ...but with its answer in hand the plan writes it and wakes up an interval later.
    case.tilt_answered = true;
    let plan = case.plan();
    assert_eq!(plan.ask_tilt, None);
    assert_eq!(plan.requeue, Some(Duration::from_secs(10)));
    let status = plan.status.expect("the answer is written").status;
    assert_eq!(
        status.message.as_deref(),
        Some("runner ready; the app's ports are not known yet: Tilt answered HTTP 500")
    );
}

#[test]
fn static_ports_never_ask_tilt() {
    let repo = "https://github.com/example/static-site";
    let plan = Case::new(config_map(repo, Some("2030-01-01T10:15:00Z")))
        .with_runner(runner(repo, 1))
        .plan();
    assert_eq!(plan.ask_tilt, None);
    assert_eq!(phase(&plan), Some(Phase::Ready));
    let ports: Vec<u16> = plan
        .status
        .unwrap()
        .status
        .ports
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, vec![8080, 10350]);
}

#[test]
fn a_changed_spec_rolls_the_runner_out_again() {
    let mut case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")))
        .with_runner(runner(HTML, 1))
        .applied_before();
    // The branch changes; the runner still runs the old spec.
    case.config_map
        .data
        .as_mut()
        .unwrap()
        .insert("branch".into(), "main".into());
    let plan = case.plan();
    assert!(plan.apply.contains(&ChildKind::Deployment));
    assert_eq!(phase(&plan), Some(Phase::Starting));
    assert_eq!(message(&plan), "rolling out the runner for the new spec");
}

#[test]
fn a_failing_rollout_is_failed_with_its_reason() {
    let mut stuck = runner(HTML, 0);
    stuck.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "Progressing".into(),
        status: "False".into(),
        reason: Some("ProgressDeadlineExceeded".into()),
        message: Some("timed out progressing".into()),
        ..DeploymentCondition::default()
    }]);
    let plan = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")))
        .with_runner(stuck)
        .applied_before()
        .plan();
    assert_eq!(phase(&plan), Some(Phase::Failed));
    assert!(message(&plan).contains("timed out progressing"));
    let event = plan.status.unwrap().event.unwrap();
    assert_eq!(event.type_, EventType::Warning);
}

#[test]
fn rejected_envs_lose_their_children_and_say_why() {
    // A repo that is not on the allow-list, with children from before (a config change).
    let case = Case::new(config_map(
        "https://github.com/evil/repo",
        Some("2030-01-01T10:15:00Z"),
    ))
    .with_runner(runner(HTML, 1));
    let plan = case.plan();
    assert_eq!(phase(&plan), Some(Phase::Rejected));
    assert!(
        message(&plan).contains("not on the allow-list"),
        "{}",
        message(&plan)
    );
    assert_eq!(plan.delete, vec![ChildKind::Deployment, ChildKind::Service]);
    assert!(plan.apply.is_empty());
    // Rejected envs still expire: woken at the deadline.
    assert_eq!(plan.requeue, Some(Duration::from_secs(14 * 60)));

    // A ConfigMap that is not a valid env at all (no branch).
    let mut broken = config_map(HTML, None);
    broken.data.as_mut().unwrap().remove("branch");
    let plan = Case::new(broken).plan();
    assert_eq!(phase(&plan), Some(Phase::Rejected));
    assert_eq!(message(&plan), "data.branch: missing");
    assert_eq!(plan.write_expiration, None);
}

#[test]
fn foreign_objects_are_never_touched_and_an_earlier_envs_children_go() {
    let mut case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")));
    case.service = Some((Ownership::Foreign, child_meta("someone-elses", false)));
    case.deployment = Some((Ownership::PreviousEnv, runner(HTML, 1)));
    let plan = case.plan();
    assert_eq!(phase(&plan), Some(Phase::Failed));
    assert!(
        message(&plan).contains("a Service named \"nicks\" already exists"),
        "{}",
        message(&plan)
    );
    assert_eq!(
        plan.delete,
        vec![ChildKind::Deployment],
        "only the earlier env's"
    );
    assert!(plan.apply.is_empty());
    assert_eq!(plan.requeue, Some(FAILED_RECHECK));

    // Without Ingress mode a foreign Ingress of that name is none of our business.
    let mut case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")));
    case.ingress = Some((Ownership::Foreign, child_meta("other", false)));
    let plan = case.plan();
    assert_eq!(phase(&plan), Some(Phase::Starting));
    assert!(plan.delete.is_empty());
}

#[test]
fn switching_ingress_mode_off_deletes_our_ingress() {
    let mut case =
        Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z"))).with_runner(runner(HTML, 0));
    case.ingress = Some((Ownership::Ours, child_meta("ing-uid", true)));
    assert_eq!(case.plan().delete, vec![ChildKind::Ingress]);
    case.config.ingress.enabled = true;
    let plan = case.plan();
    assert!(plan.delete.is_empty());
    assert!(plan.apply.contains(&ChildKind::Ingress));
    assert!(plan.children.unwrap().ingress.is_some());
}

#[test]
fn a_malformed_expiration_fails_the_env_and_deletes_nothing() {
    let mut cm = config_map(HTML, None);
    cm.data
        .as_mut()
        .unwrap()
        .insert("expiration".into(), "tomorrow".into());
    let plan = Case::new(cm).with_runner(runner(HTML, 1)).plan();
    assert_eq!(phase(&plan), Some(Phase::Failed));
    assert!(message(&plan).contains("data.expiration: must be an RFC 3339 timestamp"));
    assert!(message(&plan).contains("kept until it is fixed"));
    assert!(plan.delete.is_empty() && plan.apply.is_empty() && plan.expire.is_none());
    assert_eq!(plan.write_expiration, None, "never overwritten");
    assert_eq!(plan.requeue, None);
}

#[test]
fn expiry_warning_and_the_cap() {
    let expiration = Some("2030-01-01T10:15:00Z");
    // At the deadline: delete the env, nothing else.
    let plan = Case::new(config_map(HTML, expiration))
        .with_runner(runner(HTML, 1))
        .at("2030-01-01T10:15:00Z")
        .plan();
    assert!(matches!(
        plan.expire,
        Some(Expiry {
            notice: Notice::Expired { .. }
        })
    ));
    assert!(plan.status.is_none() && plan.apply.is_empty() && plan.delete.is_empty());

    // In the warning window: warned once per deadline.
    let case = Case::new(config_map(HTML, expiration))
        .with_runner(runner(HTML, 0))
        .applied_before()
        .at("2030-01-01T10:11:00Z");
    let plan = case.plan();
    let warning = plan.warn.expect("a warning");
    assert_eq!(warning.deadline, at("2030-01-01T10:15:00Z"));
    assert_eq!(warning.event.reason, "ExpiresSoon");
    assert!(matches!(warning.notice, Notice::ExpiresSoon { .. }));
    case.memory.warned("nicks", warning.deadline);
    assert!(case.plan().warn.is_none(), "warned already");
    assert_eq!(case.plan().requeue, Some(Duration::from_secs(4 * 60)));

    // Warned by another replica (or before a restart): the ConfigMap says so, and the memory
    // of this one is empty.
    let warned_elsewhere = |value: &str| {
        let mut cm = config_map(HTML, expiration);
        cm.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                ephemerator_core::labels::WARNED_FOR_ANNOTATION.to_string(),
                value.to_string(),
            );
        Case::new(cm)
            .with_runner(runner(HTML, 0))
            .applied_before()
            .at("2030-01-01T10:11:00Z")
            .plan()
    };
    assert!(
        warned_elsewhere("2030-01-01T10:15:00Z").warn.is_none(),
        "warned already"
    );
    // A warning for an earlier deadline (since extended), or a value that is no time, does not
    // count.
    assert!(warned_elsewhere("2030-01-01T10:00:00Z").warn.is_some());
    assert!(warned_elsewhere("soon").warn.is_some());

    // Written past the cap (created 10:00, cap 11:00): the cap is written back, and the env
    // is deleted at the cap.
    let far = Some("2030-01-02T00:00:00Z");
    let plan = Case::new(config_map(HTML, far)).plan();
    assert_eq!(plan.write_expiration, Some(at("2030-01-01T11:00:00Z")));
    let plan = Case::new(config_map(HTML, far))
        .at("2030-01-01T11:00:00Z")
        .plan();
    assert!(plan.expire.is_some());
    assert_eq!(plan.write_expiration, None);
}

#[test]
fn a_lagging_cache_shows_the_last_write_not_the_stale_status() {
    let case = Case::new(config_map(HTML, Some("2030-01-01T10:15:00Z")))
        .with_runner(runner(HTML, 0))
        .applied_before();
    let starting = case.plan().status.unwrap().status;
    // The status was written (ConfigMap version 10 -> 11), but the cache still shows 10.
    case.memory.wrote_status(
        "nicks",
        crate::memory::StatusWrite {
            from_versions: vec!["10".into()],
            to_version: "11".into(),
            status: read_back(&starting),
        },
    );
    let plan = case.plan();
    assert!(
        plan.status.is_none(),
        "not written twice: {:?}",
        plan.status
    );
}

#[test]
fn a_config_map_being_deleted_gets_nothing() {
    let mut cm = config_map(HTML, None);
    cm.metadata.deletion_timestamp = Some(Time(at("2030-01-01T10:00:30Z")));
    let plan = Case::new(cm).with_runner(runner(HTML, 1)).plan();
    assert!(plan.status.is_none() && plan.apply.is_empty() && plan.write_expiration.is_none());
    assert_eq!(plan.requeue, None);
}

#[test]
fn requeue_picks_the_earliest_future_deadline_rounded_up() {
    let now = at("2024-05-01T10:00:00Z");
    let deadlines = [
        at("2024-05-01T09:00:00Z"),
        at("2024-05-01T10:00:10.0000001Z"),
        at("2024-05-01T10:05:00Z"),
    ];
    assert_eq!(requeue(now, deadlines), Some(Duration::from_millis(10_001)));
    assert_eq!(requeue(now, [at("2024-05-01T09:00:00Z")]), None);
    assert_eq!(requeue(now, [now]), None);
}

#[test]
fn a_status_already_on_the_config_map_is_not_written_again() {
    let status = EnvStatus {
        phase: Phase::Ready,
        message: Some("runner ready".into()),
        // Tilt's port first, as the Service lists it; the annotation sorts by port.
        ports: vec![
            Port {
                name: "tilt".into(),
                port: 10350,
            },
            Port {
                name: "web".into(),
                port: 8000,
            },
        ],
        ready_at: Some("2030-01-01T00:00:00Z".parse().unwrap()),
        ..EnvStatus::default()
    };
    let written = ObjectMeta {
        labels: Some(status.labels()),
        annotations: Some(status.annotations()),
        ..ObjectMeta::default()
    };
    assert!(status_is_current(&written, &status));
    assert!(!status_is_current(&ObjectMeta::default(), &status));
    // A missing phase label reads as Pending, but Pending must still be written.
    assert!(!status_is_current(
        &ObjectMeta::default(),
        &EnvStatus::default()
    ));
}

#[test]
fn a_shorter_max_lifetime_in_a_new_config_never_cuts_a_recorded_env_short() {
    use ephemerator_core::env::record_max_lifetime;
    // Created 10:00 under an 8h cap, expiring 12:00; the new config caps lifetimes at 1h.
    let mut shorter = config();
    shorter.expiration.max_lifetime = SignedDuration::from_hours(1);
    shorter.expiration.default_ttl = SignedDuration::from_mins(15);
    let mut recorded = config_map(HTML, Some("2030-01-01T12:00:00Z"));
    record_max_lifetime(&mut recorded, SignedDuration::from_hours(8));
    let mut case = Case::new(recorded).at("2030-01-01T11:30:00Z");
    case.config = shorter.clone();
    let plan = case.plan();
    assert!(plan.expire.is_none(), "not deleted early");
    assert_eq!(plan.write_expiration, None, "not cut to the new cap");
    assert_eq!(plan.record_max_lifetime, None, "already recorded");
    assert_eq!(
        plan.requeue,
        Some(Duration::from_secs(25 * 60)),
        "warned at 11:55"
    );

    // Without a record (an env from before the annotation), the config in force is the cap,
    // and it is recorded with the write.
    let mut case =
        Case::new(config_map(HTML, Some("2030-01-01T12:00:00Z"))).at("2030-01-01T10:30:00Z");
    case.config = shorter;
    let plan = case.plan();
    assert_eq!(plan.write_expiration, Some(at("2030-01-01T11:00:00Z")));
    assert_eq!(
        plan.record_max_lifetime,
        Some(SignedDuration::from_hours(1))
    );
}

mod sleeping {
    use super::*;

    const STATIC: &str = "https://github.com/example/static-site";
    const EXPIRES: &str = "2030-01-01T10:55:00Z";

    fn sleepy() -> Config {
        Config::from_yaml_str(&format!("{CONFIG}sleepAfter: 10m\n"), "test.yaml").unwrap()
    }

    fn replicas(plan: &Plan) -> Option<i32> {
        plan.children.as_ref()?.deployment.spec.as_ref()?.replicas
    }

    fn case(status: &EnvStatus, ready: i32, now: &str) -> Case {
        let mut case = Case::new(with_status(config_map(STATIC, Some(EXPIRES)), status))
            .with_runner(runner(STATIC, ready))
            .applied_before()
            .at(now);
        case.config = sleepy();
        case
    }

    fn ready() -> EnvStatus {
        EnvStatus {
            phase: Phase::Ready,
            message: Some("runner ready".into()),
            ports: vec![
                Port {
                    name: "web".into(),
                    port: 8080,
                },
                Port {
                    name: "tilt".into(),
                    port: 10350,
                },
            ],
            ready_at: Some(at("2030-01-01T10:00:30Z")),
            ..EnvStatus::default()
        }
    }

    #[test]
    fn an_idle_ready_env_falls_asleep_its_runner_scaled_to_zero_and_its_service_kept() {
        let awake = case(&ready(), 1, "2030-01-01T10:10:00Z").plan();
        assert!(
            awake.status.is_none() && awake.apply.is_empty(),
            "{awake:?}"
        );
        assert_eq!(awake.requeue, Some(Duration::from_secs(30)), "at 10:10:30");

        let plan = case(&ready(), 1, "2030-01-01T10:10:30Z").plan();
        assert_eq!(phase(&plan), Some(Phase::Sleeping));
        assert!(
            message(&plan).starts_with("asleep since 2030-01-01T10:10:30Z"),
            "{}",
            message(&plan)
        );
        assert_eq!(replicas(&plan), Some(0));
        assert!(
            plan.delete.is_empty(),
            "the Service stays: {:?}",
            plan.delete
        );
        let change = plan.status.as_ref().unwrap();
        assert!(change.falls_asleep);
        assert_eq!(change.event.as_ref().unwrap().reason, "Sleeping");
        assert_eq!(change.status.ports, ready().ports, "its ports stay shown");
        // Still woken for its warning and deadline.
        assert_eq!(
            plan.requeue,
            Some(Duration::from_secs(39 * 60 + 30)),
            "the warning at 10:50"
        );
    }

    #[test]
    fn a_person_using_it_keeps_it_awake() {
        let mut used = case(&ready(), 1, "2030-01-01T10:20:00Z");
        used.last_activity = Some(at("2030-01-01T10:15:00Z"));
        let plan = used.plan();
        assert!(plan.status.is_none(), "{:?}", plan.status);
        assert_eq!(plan.requeue, Some(Duration::from_secs(5 * 60)));
    }

    fn asleep() -> EnvStatus {
        EnvStatus {
            phase: Phase::Sleeping,
            message: Some(crate::sleep::asleep_message(
                at("2030-01-01T10:10:30Z"),
                Some(SignedDuration::from_mins(10)),
            )),
            asleep_since: Some(at("2030-01-01T10:10:30Z")),
            ..ready()
        }
    }

    #[test]
    fn a_sleeping_env_stays_asleep_and_a_visit_wakes_it() {
        let still = case(&asleep(), 0, "2030-01-01T10:30:00Z").plan();
        assert!(still.status.is_none(), "{:?}", still.status);
        assert!(still.apply.is_empty(), "{:?}", still.apply);

        let mut visited = case(&asleep(), 0, "2030-01-01T10:30:00Z");
        visited.last_activity = Some(at("2030-01-01T10:29:59Z"));
        let plan = visited.plan();
        assert_eq!(phase(&plan), Some(Phase::Starting));
        assert_eq!(message(&plan), "woken by a visit; runner starting");
        assert_eq!(replicas(&plan), Some(1));
        let change = plan.status.as_ref().unwrap();
        assert_eq!(change.status.woke_at, Some(visited.now));
        assert_eq!(change.status.asleep_since, asleep().asleep_since);
        assert_eq!(change.event.as_ref().unwrap().note, message(&plan));
    }

    #[test]
    fn the_wake_ends_ready_and_is_measured() {
        let waking = EnvStatus {
            phase: Phase::Starting,
            message: Some("woken by a visit; runner starting".into()),
            woke_at: Some(at("2030-01-01T10:30:00Z")),
            ..asleep()
        };
        let plan = case(&waking, 1, "2030-01-01T10:31:00Z").plan();
        assert_eq!(phase(&plan), Some(Phase::Ready));
        let change = plan.status.as_ref().unwrap();
        assert_eq!(change.woke_after, Some(Duration::from_secs(60)));
        assert_eq!(change.status.asleep_since, None);
        assert_eq!(change.first_ready_after, None, "not its first Ready");
    }

    #[test]
    fn the_wake_annotation_wakes_it_and_is_cleared() {
        let mut cm = with_status(config_map(STATIC, Some(EXPIRES)), &asleep());
        cm.metadata
            .annotations
            .get_or_insert_default()
            .insert(WAKE_ANNOTATION.into(), "nicks".into());
        let mut asked = Case::new(cm)
            .with_runner(runner(STATIC, 0))
            .applied_before()
            .at("2030-01-01T10:30:00Z");
        asked.config = sleepy();
        let plan = asked.plan();
        assert!(plan.clear_wake);
        assert_eq!(message(&plan), "woken by nicks; runner starting");
        assert_eq!(replicas(&plan), Some(1));
    }

    #[test]
    fn a_sleeping_env_still_expires_on_time() {
        let plan = case(&asleep(), 0, EXPIRES).plan();
        assert!(plan.expire.is_some(), "{plan:?}");
    }
}
