//! Expiry notices to a Slack-compatible incoming webhook.
//!
//! [`Notifier::send`] never blocks a reconcile: it queues the notice on a spawned task, which
//! posts it with bounded retries and backoff (connect errors, timeouts, 5xx, 429) and logs what
//! happened. A full queue drops the notice with a warning rather than grow without bound.
//! Webhook URLs carry their secret in the path, so logs and errors name only scheme and host.
//! Posts go through the crate's one outgoing client ([`crate::outbound`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::outbound::{Head, Outbound, OutboundError};

/// Something worth telling the env's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The env expires soon; `url` is where it can be extended (the dashboard).
    ExpiresSoon {
        env: String,
        owner: String,
        at: Timestamp,
        url: Option<String>,
    },
    /// The env expired and was deleted.
    Expired { env: String, owner: String },
    /// A new env was accepted and its runner is being made; `url` is the dashboard.
    Created {
        env: String,
        owner: String,
        repo: String,
        branch: String,
        url: Option<String>,
    },
    /// The env was deleted (by its owner, an admin or an operator; expiry says `Expired`).
    Deleted { env: String, owner: String },
    /// A config change took the env's repo (or branch, or path) off the allow-list: it was
    /// stopped and its runner removed.
    Stopped {
        env: String,
        owner: String,
        reason: String,
    },
}

impl Notice {
    /// The env the notice is about.
    pub fn env(&self) -> &str {
        match self {
            Notice::ExpiresSoon { env, .. }
            | Notice::Expired { env, .. }
            | Notice::Created { env, .. }
            | Notice::Deleted { env, .. }
            | Notice::Stopped { env, .. } => env,
        }
    }

    /// The Slack-compatible body: `text` (also the fallback of notifications) and one `blocks`
    /// section; in the section the time renders in each reader's own time zone.
    pub fn payload(&self) -> Value {
        let (text, rich) = match self {
            Notice::ExpiresSoon {
                env,
                owner,
                at,
                url,
            } => {
                let utc = at.strftime("%Y-%m-%d %H:%M UTC").to_string();
                let local = format!(
                    "<!date^{}^{{date_short_pretty}} at {{time}}|{utc}>",
                    at.as_second()
                );
                let extend = url
                    .as_deref()
                    .map(|url| {
                        let url = escape_link(url);
                        format!(" Extend it at <{url}|{url}>.")
                    })
                    .unwrap_or_default();
                let lead = format!("Env *{}* of {}", escape(env), escape(owner));
                (
                    format!("{lead} expires at {utc}.{extend}"),
                    format!(":hourglass: {lead} expires {local}.{extend}"),
                )
            }
            Notice::Expired { env, owner } => {
                let text = format!(
                    "Env *{}* of {} expired and was deleted.",
                    escape(env),
                    escape(owner)
                );
                (text.clone(), format!(":wastebasket: {text}"))
            }
            Notice::Created {
                env,
                owner,
                repo,
                branch,
                url,
            } => {
                let open = url
                    .as_deref()
                    .map(|url| {
                        let url = escape_link(url);
                        format!(" See it at <{url}|{url}>.")
                    })
                    .unwrap_or_default();
                let text = format!(
                    "Env *{}* of {} was created from {} ({}).{open}",
                    escape(env),
                    escape(owner),
                    escape(repo),
                    escape(branch)
                );
                (text.clone(), format!(":rocket: {text}"))
            }
            Notice::Deleted { env, owner } => {
                let text = format!("Env *{}* of {} was deleted.", escape(env), escape(owner));
                (text.clone(), format!(":wastebasket: {text}"))
            }
            Notice::Stopped { env, owner, reason } => {
                let text = format!(
                    "Env *{}* of {} was stopped: {}.",
                    escape(env),
                    escape(owner),
                    escape(reason)
                );
                (text.clone(), format!(":no_entry: {text}"))
            }
        };
        json!({
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": rich}}],
        })
    }
}

/// Slack's control characters in message text (`&`, `<`, `>`), so names cannot inject links or
/// mentions.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL inside `<url|label>`: escaped, and `|` encoded so it cannot end the URL part.
fn escape_link(url: &str) -> String {
    escape(url).replace('|', "%7C")
}

/// How hard to try one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each later one.
    pub first_backoff: Duration,
    /// Longest wait between attempts (also caps a `Retry-After`).
    pub max_backoff: Duration,
    /// Connecting gives up after this long.
    pub connect_timeout: Duration,
    /// One attempt, body included, gives up after this long.
    pub request_timeout: Duration,
    /// Notices waiting or in flight at most; more are dropped with a warning.
    pub max_queued: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_queued: 1024,
        }
    }
}

/// What became of a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The webhook accepted it.
    Delivered { attempts: u32 },
    /// The webhook refused it for good (a 4xx other than 429: wrong URL, revoked token).
    Refused { status: u16 },
    /// Every attempt failed; `last_error` says how the last one did.
    GaveUp { attempts: u32, last_error: String },
    /// No webhook is configured.
    Disabled,
}

/// What [`Notifier::send`] did with a notice; the outcome itself is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// It will be posted in the background.
    Queued,
    /// No webhook is configured.
    Disabled,
    /// Too many notices are waiting, or there is no Tokio runtime: dropped (logged).
    Dropped,
}

/// Posts [`Notice`]s to the configured webhook. Cheap to clone; `None` URL = disabled.
#[derive(Clone)]
pub struct Notifier {
    inner: Option<Arc<Webhook>>,
}

struct Webhook {
    uri: Uri,
    /// Scheme and host only: the path of a webhook URL is its secret.
    shown: String,
    client: Outbound,
    policy: RetryPolicy,
    queued: AtomicUsize,
    /// Posts at once; the rest wait their turn (Slack allows about one message a second).
    concurrent: Semaphore,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(webhook) => write!(f, "Notifier({})", webhook.shown),
            None => f.write_str("Notifier(disabled)"),
        }
    }
}

impl Notifier {
    const MAX_CONCURRENT_POSTS: usize = 4;
    /// Of the webhook's answer only this much is read (Slack explains refusals in a few words).
    const MAX_ANSWER_BYTES: usize = 1024;

    /// A notifier posting to `webhook_url` (config `notifications.webhookUrl`) with the default
    /// [`RetryPolicy`]. `None`, or a URL that cannot be used (logged), disables it.
    pub fn new(webhook_url: Option<url::Url>) -> Self {
        Self::with_policy(webhook_url, RetryPolicy::default())
    }

    /// As [`Notifier::new`] with another retry policy.
    pub fn with_policy(webhook_url: Option<url::Url>, policy: RetryPolicy) -> Self {
        let Some(url) = webhook_url else {
            return Notifier { inner: None };
        };
        let shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
        let uri = match url.as_str().parse::<Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => uri,
            _ => {
                warn!(webhook = %shown, "notifications disabled: the webhook URL is not a usable http(s) URL");
                return Notifier { inner: None };
            }
        };
        // The system's CA bundle is read only when the webhook needs TLS.
        let client = match uri.scheme_str() {
            Some("https") => Outbound::with_native_roots(policy.connect_timeout),
            _ => Ok(Outbound::plain(policy.connect_timeout)),
        };
        let client = match client {
            Ok(client) => client,
            Err(reason) => {
                warn!(webhook = %shown, %reason, "notifications disabled: cannot set up TLS");
                return Notifier { inner: None };
            }
        };
        Notifier {
            inner: Some(Arc::new(Webhook {
                uri,
                shown,
                client,
                policy,
                queued: AtomicUsize::new(0),
                concurrent: Semaphore::new(Self::MAX_CONCURRENT_POSTS),
            })),
        }
    }

    /// Whether a webhook is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `notice` for posting in the background and returns at once; never blocks, never
    /// panics. Must be called within a Tokio runtime (otherwise the notice is dropped, logged).
    pub fn send(&self, notice: Notice) -> Queued {
        let Some(webhook) = &self.inner else {
            return Queued::Disabled;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(
                env = notice.env(),
                "notice dropped: no Tokio runtime to post it from"
            );
            return Queued::Dropped;
        };
        // Reserve a queue slot, or drop the notice when the queue is full.
        let reserved = webhook
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < webhook.policy.max_queued).then_some(n + 1)
            });
        if reserved.is_err() {
            warn!(
                env = notice.env(),
                webhook = %webhook.shown,
                max_queued = webhook.policy.max_queued,
                "notice dropped: too many notices waiting for the webhook"
            );
            return Queued::Dropped;
        }
        let webhook = webhook.clone();
        runtime.spawn(async move {
            let delivery = webhook.deliver(&notice).await;
            webhook.queued.fetch_sub(1, Ordering::SeqCst);
            log_delivery(&webhook.shown, &notice, &delivery);
        });
        Queued::Queued
    }

    /// Posts `notice` now, retrying as the policy says, and tells how it went. For callers that
    /// want to wait (tests, shutdown); reconciles use [`Notifier::send`].
    pub async fn deliver(&self, notice: &Notice) -> Delivery {
        match &self.inner {
            Some(webhook) => webhook.deliver(notice).await,
            None => Delivery::Disabled,
        }
    }
}

/// One attempt's failure: whether trying again may help, how long the server asked to wait.
struct AttemptError {
    retry: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
    reason: String,
}

impl Webhook {
    async fn deliver(&self, notice: &Notice) -> Delivery {
        let body = Bytes::from(notice.payload().to_string());
        let mut backoff = self.policy.first_backoff;
        let attempts = self.policy.attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = {
                // A closed semaphore cannot happen (never closed); post anyway if it did.
                let _permit = self.concurrent.acquire().await.ok();
                self.post(body.clone()).await
            };
            let failure = match result {
                Ok(()) => return Delivery::Delivered { attempts: attempt },
                Err(failure) => failure,
            };
            if !failure.retry {
                return match failure.status {
                    Some(status) => Delivery::Refused { status },
                    None => Delivery::GaveUp {
                        attempts: attempt,
                        last_error: failure.reason,
                    },
                };
            }
            if attempt >= attempts {
                return Delivery::GaveUp {
                    attempts: attempt,
                    last_error: failure.reason,
                };
            }
            let wait = failure
                .retry_after
                .unwrap_or(backoff)
                .min(self.policy.max_backoff);
            debug!(
                env = notice.env(),
                webhook = %self.shown,
                attempt,
                reason = %failure.reason,
                wait_ms = wait.as_millis() as u64,
                "webhook attempt failed; retrying"
            );
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2).min(self.policy.max_backoff);
            attempt += 1;
        }
    }

    async fn post(&self, body: Bytes) -> Result<(), AttemptError> {
        let failed = |retry: bool, reason: String| AttemptError {
            retry,
            retry_after: None,
            status: None,
            reason,
        };
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|err| failed(false, format!("cannot build the request: {err}")))?;
        let answered = self
            .client
            .send(
                request,
                self.policy.request_timeout,
                Notifier::MAX_ANSWER_BYTES,
            )
            .await;
        // The whole answer is read so the connection can be reused; Slack explains refusals in
        // the body (`invalid_token`, `no_service`). A body that does not arrive whole (too long,
        // broken off) leaves the detail empty: the status still counts.
        let (status, headers, detail) = match answered {
            Ok(answer) => (
                answer.status,
                answer.headers,
                String::from_utf8_lossy(&answer.body).trim().to_string(),
            ),
            Err(
                OutboundError::TooLarge { head, .. }
                | OutboundError::Request {
                    head: Some(head), ..
                },
            ) => {
                let Head { status, headers } = *head;
                (status, headers, String::new())
            }
            Err(OutboundError::Connect { reason }) => {
                return Err(failed(
                    true,
                    format!("cannot connect to {}: {reason}", self.shown),
                ));
            }
            Err(OutboundError::Request { reason, head: None }) => {
                return Err(failed(
                    true,
                    format!("request failed to {}: {reason}", self.shown),
                ));
            }
            Err(OutboundError::Timeout { after, .. }) => {
                return Err(failed(
                    true,
                    format!("{} did not answer within {after:?}", self.shown),
                ));
            }
        };
        if status.is_success() {
            return Ok(());
        }
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        Err(AttemptError {
            retry,
            retry_after: retry_after.filter(|_| retry),
            status: Some(status.as_u16()),
            reason: format!("{} answered HTTP {status} {detail:?}", self.shown),
        })
    }
}

fn log_delivery(webhook: &str, notice: &Notice, delivery: &Delivery) {
    let env = notice.env();
    match delivery {
        Delivery::Delivered { attempts } => {
            info!(env, webhook, attempts, "notice delivered")
        }
        Delivery::Refused { status } => {
            warn!(
                env,
                webhook, status, "notice refused by the webhook; not retrying"
            )
        }
        Delivery::GaveUp {
            attempts,
            last_error,
        } => warn!(env, webhook, attempts, error = %last_error, "notice not delivered; giving up"),
        Delivery::Disabled => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::webhook::StandInWebhook;

    const WAIT: Duration = Duration::from_secs(10);

    fn quick_policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_queued: 16,
        }
    }

    fn expires_soon() -> Notice {
        Notice::ExpiresSoon {
            env: "nicks".to_string(),
            owner: "nick@example.com".to_string(),
            at: "2024-05-01T10:15:00Z".parse().unwrap(),
            url: Some("https://preview.tilt.build/".to_string()),
        }
    }

    fn expired() -> Notice {
        Notice::Expired {
            env: "nicks".to_string(),
            owner: "nick@example.com".to_string(),
        }
    }

    fn text_of(payload: &Value) -> &str {
        payload["text"].as_str().unwrap()
    }

    fn section_of(payload: &Value) -> &str {
        payload["blocks"][0]["text"]["text"].as_str().unwrap()
    }

    #[test]
    fn expiry_warning_names_env_owner_time_and_where_to_extend() {
        let payload = expires_soon().payload();
        assert_eq!(
            text_of(&payload),
            "Env *nicks* of nick@example.com expires at 2024-05-01 10:15 UTC. \
             Extend it at <https://preview.tilt.build/|https://preview.tilt.build/>."
        );
        let section = section_of(&payload);
        assert_eq!(payload["blocks"][0]["type"], "section");
        assert_eq!(payload["blocks"][0]["text"]["type"], "mrkdwn");
        // Slack renders the time in the reader's zone, with the UTC text as fallback.
        assert!(
            section
                .contains("<!date^1714558500^{date_short_pretty} at {time}|2024-05-01 10:15 UTC>"),
            "{section}"
        );
        assert!(
            section.contains("<https://preview.tilt.build/|https://preview.tilt.build/>"),
            "{section}"
        );

        let without_url = Notice::ExpiresSoon {
            env: "nicks".to_string(),
            owner: "nick".to_string(),
            at: "2024-05-01T10:15:00Z".parse().unwrap(),
            url: None,
        };
        assert_eq!(
            text_of(&without_url.payload()),
            "Env *nicks* of nick expires at 2024-05-01 10:15 UTC."
        );
    }

    #[test]
    fn expiry_notice_says_the_env_was_deleted() {
        let payload = expired().payload();
        assert_eq!(
            text_of(&payload),
            "Env *nicks* of nick@example.com expired and was deleted."
        );
        assert!(section_of(&payload).ends_with("expired and was deleted."));
    }

    #[test]
    fn names_cannot_inject_mentions_or_links() {
        let notice = Notice::ExpiresSoon {
            env: "a&b".to_string(),
            owner: "<!channel> <https://evil.example|click>".to_string(),
            at: Timestamp::UNIX_EPOCH,
            url: Some("https://dash.example/?a=1&b=<2>|x".to_string()),
        };
        let payload = notice.payload();
        for text in [text_of(&payload), section_of(&payload)] {
            assert!(!text.contains("<!channel>"), "{text}");
            assert!(!text.contains("<https://evil"), "{text}");
            assert!(text.contains("a&amp;b"), "{text}");
            assert!(text.contains("&lt;!channel&gt;"), "{text}");
            assert!(
                text.contains("<https://dash.example/?a=1&amp;b=&lt;2&gt;%7Cx|"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_notice_is_posted_as_json_to_the_webhook() {
        let receiver = StandInWebhook::start(&[]).await.unwrap();
        let notifier = Notifier::with_policy(Some(receiver.url()), quick_policy(3));
        assert!(notifier.is_enabled());
        assert_eq!(
            notifier.deliver(&expired()).await,
            Delivery::Delivered { attempts: 1 }
        );
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].path, "/services/T000/B000/s3cr3tpath");
        assert_eq!(
            received[0].content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(received[0].body, expired().payload());
    }

    #[tokio::test]
    async fn send_returns_at_once_and_the_notice_arrives_in_the_background() {
        // The first answer is a 500: the retry happens on the background task.
        let receiver = StandInWebhook::start(&[500]).await.unwrap();
        let notifier = Notifier::with_policy(Some(receiver.url()), quick_policy(3));
        assert_eq!(notifier.send(expires_soon()), Queued::Queued);
        assert_eq!(notifier.send(expired()), Queued::Queued);
        let received = receiver.wait_for(3, WAIT).await;
        assert_eq!(received.len(), 3, "two notices, one retried: {received:?}");
        let bodies: Vec<&Value> = received.iter().map(|r| &r.body).collect();
        assert!(bodies.contains(&&expires_soon().payload()));
        assert!(bodies.contains(&&expired().payload()));
    }

    #[tokio::test]
    async fn server_errors_and_rate_limits_are_retried() {
        let receiver = StandInWebhook::start(&[500, 429]).await.unwrap();
        let notifier = Notifier::with_policy(Some(receiver.url()), quick_policy(3));
        assert_eq!(
            notifier.deliver(&expired()).await,
            Delivery::Delivered { attempts: 3 }
        );
        let received = receiver.received();
        assert_eq!(received.len(), 3);
        assert!(received.iter().all(|r| r.body == expired().payload()));
    }

    #[tokio::test]
    async fn it_gives_up_after_the_configured_attempts() {
        let receiver = StandInWebhook::start(&[503, 503, 503, 503, 503])
            .await
            .unwrap();
        let notifier = Notifier::with_policy(Some(receiver.url()), quick_policy(3));
        match notifier.deliver(&expired()).await {
            Delivery::GaveUp {
                attempts,
                last_error,
            } => {
                assert_eq!(attempts, 3);
                assert!(last_error.contains("503"), "{last_error}");
                // The webhook's secret path stays out of errors (and so out of logs).
                assert!(!last_error.contains("s3cr3t"), "{last_error}");
            }
            other => panic!("expected to give up, got {other:?}"),
        }
        assert_eq!(receiver.received().len(), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let receiver = StandInWebhook::start(&[404]).await.unwrap();
        let notifier = Notifier::with_policy(Some(receiver.url()), quick_policy(3));
        assert_eq!(
            notifier.deliver(&expired()).await,
            Delivery::Refused { status: 404 }
        );
        assert_eq!(receiver.received().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_retried_then_given_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!(
            "http://{}/hook/secret",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        drop(listener);
        let notifier = Notifier::with_policy(Some(url), quick_policy(2));
        match notifier.deliver(&expired()).await {
            Delivery::GaveUp {
                attempts,
                last_error,
            } => {
                assert_eq!(attempts, 2);
                assert!(
                    last_error.starts_with("cannot connect to http://127.0.0.1"),
                    "{last_error}"
                );
                assert!(!last_error.contains("secret"), "{last_error}");
            }
            other => panic!("expected to give up, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_notices_instead_of_growing() {
        // A webhook that accepts connections and never answers keeps notices in flight.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            url::Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let policy = RetryPolicy {
            max_queued: 2,
            request_timeout: Duration::from_secs(60),
            ..quick_policy(1)
        };
        let notifier = Notifier::with_policy(Some(url), policy);
        assert_eq!(notifier.send(expired()), Queued::Queued);
        assert_eq!(notifier.send(expired()), Queued::Queued);
        assert_eq!(notifier.send(expired()), Queued::Dropped);
        hold.abort();
    }

    #[tokio::test]
    async fn without_a_webhook_nothing_is_sent() {
        let notifier = Notifier::new(None);
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.send(expired()), Queued::Disabled);
        assert_eq!(notifier.deliver(&expired()).await, Delivery::Disabled);
    }

    #[test]
    fn sending_outside_a_runtime_drops_instead_of_panicking() {
        let url = url::Url::parse("http://127.0.0.1:9/hook").unwrap();
        let notifier = Notifier::with_policy(Some(url), quick_policy(1));
        assert_eq!(notifier.send(expired()), Queued::Dropped);
    }

    #[test]
    fn https_webhooks_get_the_system_roots_and_logs_hide_the_path() {
        let url = url::Url::parse("https://hooks.slack.example/services/T1/B2/secret").unwrap();
        let notifier = Notifier::new(Some(url));
        // This machine has a CA bundle; without one the notifier disables itself (logged).
        assert!(notifier.is_enabled());
        assert_eq!(
            format!("{notifier:?}"),
            "Notifier(https://hooks.slack.example)"
        );
    }
}
