//! Two ephctrls: one leads through the Lease, the other stands by and takes over when the
//! leader dies or stops, and what is sent once (notices, Events) is sent once across the
//! takeover. In-process on devcluster; `realcluster/tests/replicas.rs` runs the binaries as
//! their ServiceAccount on the real API server, killed and paused.

// Tests: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephctrl::testing::webhook::StandInWebhook;
use ephemerator_core::{Phase, SecretUrl};
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

/// A controller named `who` reporting to `webhook`, with `config`.
fn replica(client: kube::Client, config: ephemerator_core::Config, who: &str) -> (Ctrl, String) {
    let mut settings = ephctrl::testing::settings(client, NAMESPACE, config);
    settings.lease.identity = ephctrl::leader::identity(who);
    let identity = settings.lease.identity.clone();
    (Ctrl::start(settings), identity)
}

/// Waits until `/readyz` of the controller on `port` says `role`.
async fn wait_for_role(port: u16, role: &str) -> String {
    wait_for(&format!("/readyz to say {role:?}"), || async {
        let (status, body) = http_get(port, "/readyz").await?;
        (status.contains("200") && body.contains(role)).then_some(body)
    })
    .await
}

async fn holder(client: &kube::Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get_opt("ephctrl")
        .await
        .unwrap()?;
    lease
        .spec?
        .holder_identity
        .filter(|holder| !holder.is_empty())
}

/// The `text` of each notice received about `env`.
fn notices_about(webhook: &StandInWebhook, env: &str) -> Vec<String> {
    webhook
        .received()
        .iter()
        .filter_map(|notice| notice.body["text"].as_str().map(str::to_string))
        .filter(|text| text.contains(&format!("*{env}*")))
        .collect()
}

fn count(texts: &[String], part: &str) -> usize {
    texts.iter().filter(|text| text.contains(part)).count()
}

#[tokio::test]
async fn one_of_two_controllers_acts_and_the_other_takes_over_when_it_dies() {
    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let mut config = config();
    config.notifications.webhook_url = Some(SecretUrl::new(webhook.url()));

    let (first, first_id) = replica(client.clone(), config.clone(), "first");
    let said = wait_for_role(first.admin_port, "leading as").await;
    assert!(said.contains(&first_id), "{said}");
    let (second, second_id) = replica(client.clone(), config.clone(), "second");
    let said = wait_for_role(second.admin_port, &format!("; {first_id} leads")).await;
    assert!(
        said.contains(&format!("standing by as {second_id}; {first_id} leads")),
        "{said}"
    );
    assert_eq!(holder(&client).await.as_deref(), Some(first_id.as_str()));
    let (_, metrics) = http_get(second.admin_port, "/metrics").await.unwrap();
    assert!(
        metrics.lines().any(|line| line == "ephctrl_leading 0"),
        "{metrics}"
    );
    let (_, metrics) = http_get(first.admin_port, "/metrics").await.unwrap();
    assert!(
        metrics.lines().any(|line| line == "ephctrl_leading 1"),
        "{metrics}"
    );

    // Both see the env; one acts, so it is announced once.
    create_env(&client, "before", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "before", Phase::Ready).await;
    webhook.wait_for(1, DEADLINE).await;
    // Its Event out too: a leader killed with Events still queued loses them (never sends them
    // twice).
    wait_for("before's Ready Event", || async {
        (event_count(&client, "before", "Ready").await == 1).then_some(())
    })
    .await;

    // The leader dies: the standby takes over, and envs created meanwhile converge.
    first.kill().await;
    create_env(&client, "meanwhile", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_role(second.admin_port, "leading as").await;
    wait_for_phase(&client, "meanwhile", Phase::Ready).await;
    assert_eq!(holder(&client).await.as_deref(), Some(second_id.as_str()));

    // A deletion, seen by every replica, is announced by the leader alone.
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .delete("before", &Default::default())
        .await
        .unwrap();
    wait_for("the deletion notice", || async {
        (count(&notices_about(&webhook, "before"), "was deleted") == 1).then_some(())
    })
    .await;
    webhook.wait_for(3, DEADLINE).await;
    let before = notices_about(&webhook, "before");
    let meanwhile = notices_about(&webhook, "meanwhile");
    assert_eq!(count(&before, "was created"), 1, "{before:?}");
    assert_eq!(count(&meanwhile, "was created"), 1, "{meanwhile:?}");
    // The one before the takeover was not announced again by the new leader.
    assert_eq!(
        before.len() + meanwhile.len(),
        3,
        "{before:?} {meanwhile:?}"
    );
    assert_eq!(event_count(&client, "meanwhile", "Ready").await, 1);
    assert_eq!(event_count(&client, "before", "Ready").await, 1);
}

#[tokio::test]
async fn a_warning_sent_before_a_takeover_is_not_sent_again_and_expiry_is_on_time() {
    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let mut config = config();
    config.notifications.webhook_url = Some(SecretUrl::new(webhook.url()));
    // Warned a second after creation, deleted at twelve seconds: the takeover (a three-second
    // Lease, see ephctrl::testing) falls between.
    config.expiration.default_ttl = SignedDuration::from_secs(12);
    config.expiration.warn_before = SignedDuration::from_secs(11);

    let (first, _) = replica(client.clone(), config.clone(), "first");
    wait_for_role(first.admin_port, "leading as").await;
    let (second, _) = replica(client.clone(), config.clone(), "second");
    wait_for_role(second.admin_port, "standing by").await;
    create_env(&client, "carol", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for("the warning", || async {
        (count(&notices_about(&webhook, "carol"), "expires at") == 1).then_some(())
    })
    .await;
    let expiration: jiff::Timestamp = get::<ConfigMap>(&client, "carol")
        .await
        .unwrap()
        .data
        .unwrap()["expiration"]
        .parse()
        .unwrap();

    wait_for("the warning's Event", || async {
        (event_count(&client, "carol", "ExpiresSoon").await == 1).then_some(())
    })
    .await;
    // The leader dies after warning; the new one reconciles every env and finds it warned.
    first.kill().await;
    wait_for_role(second.admin_port, "leading as").await;
    expires_on_time(&client, "carol", expiration).await;
    wait_for("the expiry notice", || async {
        (count(&notices_about(&webhook, "carol"), "expired") == 1).then_some(())
    })
    .await;
    let carol = notices_about(&webhook, "carol");
    assert_eq!(count(&carol, "was created"), 1, "{carol:?}");
    assert_eq!(count(&carol, "expires at"), 1, "{carol:?}");
    assert_eq!(carol.len(), 3, "{carol:?}");
    wait_for("the Expired Event", || async {
        (event_count(&client, "carol", "Expired").await == 1).then_some(())
    })
    .await;
    assert_eq!(event_count(&client, "carol", "ExpiresSoon").await, 1);
}

#[tokio::test]
async fn a_leader_that_stops_gives_the_lease_up_to_the_standby() {
    let cluster = cluster().await;
    let client = cluster.client();
    let (first, first_id) = replica(client.clone(), config(), "first");
    wait_for_role(first.admin_port, "leading as").await;
    let (second, second_id) = replica(client.clone(), config(), "second");
    wait_for_role(second.admin_port, "standing by").await;

    first.stop().await;
    // Released as it stopped: nobody holds it until the standby takes it.
    let after_stop = holder(&client).await;
    assert_ne!(after_stop.as_deref(), Some(first_id.as_str()));
    wait_for_role(second.admin_port, "leading as").await;
    assert_eq!(holder(&client).await.as_deref(), Some(second_id.as_str()));
    create_env(&client, "after", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "after", Phase::Ready).await;
    let lease = Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get("ephctrl")
        .await
        .unwrap();
    // Taken over once at least (more only if a loaded machine starved a leader past its
    // deadline).
    assert!(lease.spec.unwrap().lease_transitions >= Some(1));
}

/// Waits for env `name` to be deleted, and checks that it was at `expiration`: not before, and
/// not a Lease's worth after (the controller of the moment deletes it at its time).
async fn expires_on_time(client: &kube::Client, name: &str, expiration: jiff::Timestamp) {
    wait_for("the env to expire", || async {
        get::<ConfigMap>(client, name).await.is_none().then_some(())
    })
    .await;
    let gone_at = jiff::Timestamp::now();
    assert!(
        gone_at >= expiration,
        "deleted at {gone_at}, before {expiration}"
    );
    assert!(
        gone_at.duration_since(expiration) < SignedDuration::from_secs(5),
        "deleted at {gone_at}, long after {expiration}"
    );
}

/// How many Events with `reason` were recorded on env `name`.
async fn event_count(client: &kube::Client, name: &str, reason: &str) -> usize {
    event_reasons(client, name)
        .await
        .iter()
        .filter(|r| *r == reason)
        .count()
}

/// The ephctrl binary as its ServiceAccount on the real API server, with short Lease timings
/// (4 s; the README's figures are for the defaults) and notices to `webhook`.
struct Binaries {
    cluster: realcluster::RealCluster,
    dir: tempfile::TempDir,
    webhook: StandInWebhook,
}

impl Binaries {
    async fn start() -> Binaries {
        let cluster = realcluster::RealCluster::start_with_overlay("dev")
            .await
            .expect("the real control plane with deploy/'s dev overlay");
        let dir = tempfile::tempdir().unwrap();
        cluster
            .kubeconfig_as(NAMESPACE, "ephctrl", &dir.path().join("kubeconfig"))
            .await
            .unwrap();
        std::fs::write(
            dir.path().join("ephemerator.yaml"),
            format!("{CONFIG_YAML}expiration:\n  warnBefore: 30s\n"),
        )
        .unwrap();
        let webhook = StandInWebhook::start(&[]).await.unwrap();
        Binaries {
            cluster,
            dir,
            webhook,
        }
    }

    /// Starts replica `pod` and returns it with its admin port.
    async fn replica(&self, pod: &str) -> (tokio::process::Child, u16) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ephctrl"));
        command
            .arg("--config")
            .arg(self.dir.path().join("ephemerator.yaml"))
            .args(["--admin-listen", "127.0.0.1:0", "--log-format", "json"])
            .args([
                "--tilt-url-template",
                ephctrl::testing::NO_TILT_URL_TEMPLATE,
            ])
            .args(["--webhook-url", self.webhook.url().as_str()])
            .args(["--pod-name", pod])
            .args(["--lease-duration", "4s", "--lease-renew-deadline", "3s"])
            .args(["--lease-retry-period", "500ms"])
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST");
        spawn_with_listener(command).await
    }
}

#[tokio::test]
async fn on_the_real_api_server_a_killed_and_a_paused_leader_are_replaced_and_nothing_is_sent_twice()
 {
    let setup = Binaries::start().await;
    let admin = setup.cluster.client().await.unwrap();
    let webhook = &setup.webhook;

    let (mut a, a_port) = setup.replica("ephctrl-a").await;
    wait_for_role(a_port, "leading as ephctrl-a_").await;
    let (mut b, b_port) = setup.replica("ephctrl-b").await;
    let said = wait_for_role(b_port, "; ephctrl-a_").await;
    assert!(
        said.contains("standing by as ephctrl-b_") && said.contains("; ephctrl-a_"),
        "{said}"
    );
    create_env(&admin, "one", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&admin, "one", Phase::Ready).await;
    // Its notice and Event out (a leader killed with them still queued loses them: they are
    // sent after the write that decides them, never twice).
    wait_for("one's notice and Ready Event", || async {
        (notices_about(webhook, "one").len() == 1 && event_count(&admin, "one", "Ready").await == 1)
            .then_some(())
    })
    .await;

    // SIGKILL: no chance to give the Lease up. The standby takes it once it lapses, and an env
    // created while nobody leads converges.
    a.kill().await.unwrap();
    create_env(&admin, "two", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_role(b_port, "leading as ephctrl-b_").await;
    wait_for_phase(&admin, "two", Phase::Ready).await;
    // Kubernetes replaces the killed pod: a new standby.
    let (_a2, a2_port) = setup.replica("ephctrl-c").await;
    wait_for_role(a2_port, "standing by").await;

    // An env warned 5 s from now, expiring in 35 s, while b leads.
    let expiration = jiff::Timestamp::now() + SignedDuration::from_secs(35);
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let env = ephemerator_core::env_config_map(
        "warned",
        "warned",
        &spec(HTML_REPO, "master", "0-base"),
        Some(expiration),
    );
    api.create(&Default::default(), &env).await.unwrap();
    wait_for_phase(&admin, "warned", Phase::Ready).await;

    // b stops in its tracks (SIGSTOP) with the warning due in its queue, and comes back only
    // after c has taken the Lease and sent the warning: b's timers fire at once, and b must
    // not act on them.
    let b_pid = b.id().unwrap();
    ephemerator_testkit::send_signal(b_pid, "STOP");
    wait_for_role(a2_port, "leading as ephctrl-c_").await;
    wait_for("c to warn", || async {
        (count(&notices_about(webhook, "warned"), "expires at") == 1).then_some(())
    })
    .await;
    ephemerator_testkit::send_signal(b_pid, "CONT");
    let said = wait_for_role(b_port, "; ephctrl-c_").await;
    assert!(
        said.contains("standing by as ephctrl-b_") && said.contains("; ephctrl-c_"),
        "{said}"
    );
    create_env(&admin, "three", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&admin, "three", Phase::Ready).await;

    // Expiry on time, by the leader of the moment.
    expires_on_time(&admin, "warned", expiration).await;
    wait_for("the expiry notice and the last creation notice", || async {
        (count(&notices_about(webhook, "warned"), "expired") == 1
            && count(&notices_about(webhook, "three"), "was created") == 1)
            .then_some(())
    })
    .await;

    // Each once: created (one, two, warned, three), warned, expired.
    for env in ["one", "two", "three"] {
        let notices = notices_about(webhook, env);
        assert_eq!(notices.len(), 1, "{env}: {notices:?}");
        assert_eq!(event_count(&admin, env, "Ready").await, 1, "{env}");
    }
    let warned = notices_about(webhook, "warned");
    assert_eq!(count(&warned, "was created"), 1, "{warned:?}");
    assert_eq!(count(&warned, "expires at"), 1, "{warned:?}");
    assert_eq!(warned.len(), 3, "{warned:?}");
    wait_for("the Expired Event", || async {
        (event_count(&admin, "warned", "Expired").await == 1).then_some(())
    })
    .await;
    assert_eq!(event_count(&admin, "warned", "ExpiresSoon").await, 1);
    let lease = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get("ephctrl")
        .await
        .unwrap();
    // a -> b -> c at least (more only if a loaded machine starved a leader past its deadline).
    assert!(
        lease.spec.unwrap().lease_transitions >= Some(2),
        "a -> b -> c"
    );
    b.kill().await.unwrap();
}

#[tokio::test]
async fn of_three_controllers_started_at_once_exactly_one_leads() {
    let cluster = cluster().await;
    let client = cluster.client();
    let replicas: Vec<(Ctrl, String)> = ["a", "b", "c"]
        .iter()
        .map(|who| replica(client.clone(), config(), who))
        .collect();
    // Settled: every replica has read the Lease and names the same leader.
    let leader = wait_for("one leader, named by all", || async {
        let mut leaders = Vec::new();
        let mut standing_by = 0;
        for (ctrl, id) in &replicas {
            let (status, body) = http_get(ctrl.admin_port, "/readyz").await?;
            if !status.contains("200") {
                return None;
            }
            if body.contains("leading as") {
                leaders.push(id.clone());
            } else if let Some((_, holder)) = body
                .trim_end()
                .strip_suffix(" leads")
                .and_then(|b| b.rsplit_once("; "))
            {
                leaders.push(holder.to_string());
                standing_by += 1;
            } else {
                return None;
            }
        }
        leaders.dedup();
        (leaders.len() == 1 && standing_by == 2).then(|| leaders.remove(0))
    })
    .await;
    assert_eq!(holder(&client).await, Some(leader.clone()));
    let leading: usize = {
        let mut count = 0;
        for (ctrl, _) in &replicas {
            let (_, metrics) = http_get(ctrl.admin_port, "/metrics").await.unwrap();
            count += usize::from(metrics.lines().any(|line| line == "ephctrl_leading 1"));
        }
        count
    };
    assert_eq!(leading, 1);
}
