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
    lease.spec?.holder_identity.filter(|holder| !holder.is_empty())
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
    let said = wait_for_role(second.admin_port, "standing by").await;
    assert!(said.contains(&format!("{first_id} leads")), "{said}");
    assert_eq!(holder(&client).await.as_deref(), Some(first_id.as_str()));
    let (_, metrics) = http_get(second.admin_port, "/metrics").await.unwrap();
    assert!(metrics.contains("ephctrl_leading 0"), "{metrics}");
    let (_, metrics) = http_get(first.admin_port, "/metrics").await.unwrap();
    assert!(metrics.contains("ephctrl_leading 1"), "{metrics}");

    // Both see the env; one acts, so it is announced once.
    create_env(&client, "before", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "before", Phase::Ready).await;
    webhook.wait_for(1, DEADLINE).await;

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
    assert_eq!(before.len() + meanwhile.len(), 3, "{before:?} {meanwhile:?}");
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
    // Warned a second after creation, deleted at twelve seconds: the takeover (a two-second
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

    // The leader dies after warning; the new one reconciles every env and finds it warned.
    first.kill().await;
    wait_for_role(second.admin_port, "leading as").await;
    wait_for("the env to expire", || async {
        get::<ConfigMap>(&client, "carol").await.is_none().then_some(())
    })
    .await;
    let gone_at = jiff::Timestamp::now();
    assert!(gone_at >= expiration, "deleted at {gone_at}, before {expiration}");
    assert!(
        gone_at.duration_since(expiration) < SignedDuration::from_secs(5),
        "deleted at {gone_at}, long after {expiration}"
    );
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
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));
}

/// How many Events with `reason` were recorded on env `name`.
async fn event_count(client: &kube::Client, name: &str, reason: &str) -> usize {
    event_reasons(client, name)
        .await
        .iter()
        .filter(|r| *r == reason)
        .count()
}

