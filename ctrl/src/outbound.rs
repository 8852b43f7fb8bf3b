//! The one outgoing HTTP client: Tilt's API ([`crate::tilt`]) and the notification webhook
//! ([`crate::notify`]) both ask through an [`Outbound`].
//!
//! It is hyper-util's pooled client (already in kube's tree) over hyper-rustls with the rustls +
//! ring stack kube uses, so plain http and https take one code path. Every request has a
//! deadline for the whole exchange, body included, and a cap on the body it reads; a failure
//! says which step failed, with its error chain on one line. What a status means and whether to
//! try again stay with the callers.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, StatusCode, header};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use tokio::time::Instant;

/// A whole answer: status, headers and the body, read up to the cap.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The status and headers of an answer whose body was not read to the end.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// What went wrong with one request. The reasons are the error and its causes on one line.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// No connection (refused, unresolvable host, TLS handshake, connect timeout).
    #[error("cannot connect: {reason}")]
    Connect { reason: String },
    /// The exchange, body included, took longer than its deadline; `head` if the status and
    /// headers had arrived.
    #[error("no answer within {after:?}")]
    Timeout {
        after: Duration,
        head: Option<Box<Head>>,
    },
    /// The body is larger than the cap (declared in `Content-Length`, or as it arrived).
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize, head: Box<Head> },
    /// Anything else: a connection lost mid-exchange, a malformed answer; `head` if the status
    /// and headers had arrived.
    #[error("request failed: {reason}")]
    Request {
        reason: String,
        head: Option<Box<Head>>,
    },
}

impl OutboundError {
    /// The status and headers, when the failure came while reading the body.
    pub fn head(&self) -> Option<&Head> {
        match self {
            OutboundError::Connect { .. } => None,
            OutboundError::Timeout { head, .. } | OutboundError::Request { head, .. } => {
                head.as_deref()
            }
            OutboundError::TooLarge { head, .. } => Some(head),
        }
    }
}

/// The TLS settings could not be built (no CA bundle on the system, for one).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TlsSetupError {
    reason: String,
}

/// An outgoing HTTP/1 client over http and https. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
}

impl Outbound {
    /// Idle connections kept per host: enough for a poll every few seconds or a few posts.
    pub const MAX_IDLE_PER_HOST: usize = 1;
    /// Idle connections are closed after this long.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// A client for plain-http servers (Tilt inside the cluster). It reads no CA bundle and
    /// trusts no certificate, so an https request fails to connect.
    pub fn plain(connect_timeout: Duration) -> Self {
        let tls = tls_config(RootCertStore::empty()).unwrap_or_else(|err| {
            unreachable!("ring supports rustls' default protocol versions: {err}")
        });
        Self::build(tls, connect_timeout)
    }

    /// A client for http and https servers, trusting the system's CA bundle (read now).
    pub fn with_native_roots(connect_timeout: Duration) -> Result<Self, TlsSetupError> {
        let setup = |err: &(dyn StdError + 'static)| TlsSetupError {
            reason: describe(err),
        };
        let tls = ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| setup(&err))?
            .with_native_roots()
            .map_err(|err| setup(&err))?
            .with_no_client_auth();
        Ok(Self::build(tls, connect_timeout))
    }

    fn build(tls: ClientConfig, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new_with_resolver(Resolver::default());
        // The https connector handles the scheme; this one only connects.
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(Self::MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Self::IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Outbound { client }
    }

    /// Sends `request` and reads the whole answer, giving up after `timeout` (connecting and
    /// the body included) and refusing a body larger than `max_body` bytes: one whose
    /// `Content-Length` says so is not read at all.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Answer, OutboundError> {
        let deadline = Instant::now() + timeout;
        let (head, body) = match self.open(request, deadline).await {
            Ok(opened) => opened,
            Err(OutboundError::Timeout { head, .. }) => {
                return Err(OutboundError::Timeout {
                    after: timeout,
                    head,
                });
            }
            Err(other) => return Err(other),
        };
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body as u64) {
            return Err(OutboundError::TooLarge {
                limit: max_body,
                head: Box::new(head),
            });
        }
        let collected =
            match tokio::time::timeout_at(deadline, Limited::new(body, max_body).collect()).await {
                Ok(Ok(collected)) => collected,
                Ok(Err(err)) if err.is::<LengthLimitError>() => {
                    return Err(OutboundError::TooLarge {
                        limit: max_body,
                        head: Box::new(head),
                    });
                }
                Ok(Err(err)) => {
                    return Err(OutboundError::Request {
                        reason: describe(err.as_ref()),
                        head: Some(Box::new(head)),
                    });
                }
                Err(_) => {
                    return Err(OutboundError::Timeout {
                        after: timeout,
                        head: Some(Box::new(head)),
                    });
                }
            };
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: collected.to_bytes(),
        })
    }

    /// Sends `request` and returns the head of the answer and its body unread, or fails if no
    /// head arrived by `deadline`. The caller reads the body, within the same deadline (a body
    /// streamed rather than held: [`crate::tilt`]).
    pub async fn open(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<(Head, Incoming), OutboundError> {
        let started = Instant::now();
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                let reason = describe(&err);
                return Err(if err.is_connect() {
                    OutboundError::Connect { reason }
                } else {
                    OutboundError::Request { reason, head: None }
                });
            }
            Err(_) => {
                return Err(OutboundError::Timeout {
                    after: deadline.saturating_duration_since(started),
                    head: None,
                });
            }
        };
        let (parts, body) = response.into_parts();
        Ok((
            Head {
                status: parts.status,
                headers: parts.headers,
            },
            body,
        ))
    }
}

/// The system's resolver, except that `localhost` and every name under it are the loopback
/// address without asking anyone, as RFC 6761 (6.3) asks of resolvers and browsers do: a Tilt
/// URL template such as `http://{env}.localhost:PORT` names each env's Tilt on this machine.
#[derive(Clone)]
pub struct Resolver {
    system: GaiResolver,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            system: GaiResolver::new(),
        }
    }
}

/// Whether `host` is `localhost` or a name under it.
fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host
            .len()
            .checked_sub(".localhost".len())
            .and_then(|start| host.get(start..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
}

type Resolved = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for Resolver {
    type Response = Resolved;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if is_localhost(name.as_str()) {
            // The connector fills in the port.
            let loopback = vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ];
            return Box::pin(std::future::ready(Ok(loopback.into_iter())));
        }
        let lookup = self.system.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// The same rustls + ring stack kube uses, set explicitly so no process-wide default matters.
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(roots: RootCertStore) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An error and its causes on one line (hyper's own messages are terse).
pub(crate) fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;

    /// Every test finishes well within this, or fails.
    const DEADLINE: Duration = Duration::from_secs(10);
    const BIG: usize = 64 * 1024;

    /// A server on 127.0.0.1 that reads each request's head, writes `answer`, and keeps the
    /// connection open (so a short answer leaves the client waiting). Stops when aborted.
    async fn raw_server(answer: Vec<u8>) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(&answer).await;
                held.push(stream);
            }
        });
        (url, server)
    }

    fn get(url: &str) -> Request<Full<Bytes>> {
        Request::get(url).body(Full::default()).unwrap()
    }

    fn client() -> Outbound {
        Outbound::plain(Duration::from_secs(2))
    }

    async fn send(url: &str, timeout: Duration, max_body: usize) -> Result<Answer, OutboundError> {
        tokio::time::timeout(DEADLINE, client().send(get(url), timeout, max_body))
            .await
            .expect("the client keeps its own deadline")
    }

    #[tokio::test]
    async fn a_whole_answer_comes_back() {
        let (url, server) = raw_server(
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 5\r\n\r\nslow!"
                .to_vec(),
        )
        .await;
        let answer = send(&url, DEADLINE, 5).await.unwrap();
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers[header::RETRY_AFTER], "7");
        assert_eq!(answer.body, Bytes::from_static(b"slow!"));
        server.abort();
    }

    #[tokio::test]
    async fn a_body_larger_than_the_cap_is_refused() {
        // Declared too large: refused before reading; the head still tells the status.
        let (url, server) =
            raw_server(format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").into_bytes())
                .await;
        let err = send(&url, DEADLINE, 1024).await.unwrap_err();
        assert!(
            matches!(&err, OutboundError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
        assert_eq!(err.head().map(|h| h.status), Some(StatusCode::OK));
        server.abort();

        // Not declared (chunked): refused as it arrives.
        let chunk = "x".repeat(BIG);
        let (url, server) = raw_server(
            format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{BIG:x}\r\n{chunk}\r\n0\r\n\r\n"
            )
            .into_bytes(),
        )
        .await;
        let err = send(&url, DEADLINE, 1024).await.unwrap_err();
        assert!(
            matches!(&err, OutboundError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
        assert_eq!(err.to_string(), "the answer is larger than 1024 bytes");
        // The same answer within a larger cap is read whole.
        let answer = send(&url, DEADLINE, BIG).await.unwrap();
        assert_eq!(answer.body.len(), BIG);
        server.abort();
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        // Accepts, reads the request, writes nothing.
        let (url, server) = raw_server(Vec::new()).await;
        let started = Instant::now();
        let err = send(&url, Duration::from_millis(300), BIG)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, OutboundError::Timeout { head: None, .. }),
            "{err}"
        );
        assert_eq!(err.to_string(), "no answer within 300ms");
        assert!(started.elapsed() < Duration::from_secs(5));
        server.abort();

        // The head arrives, the body never ends: still a timeout, and the status is known.
        let (url, server) = raw_server(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 100\r\n\r\npart".to_vec(),
        )
        .await;
        let err = send(&url, Duration::from_millis(300), BIG)
            .await
            .unwrap_err();
        assert!(matches!(&err, OutboundError::Timeout { .. }), "{err}");
        assert_eq!(
            err.head().map(|h| h.status),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Nobody listens on a port that was just released.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = send(&url, DEADLINE, BIG).await.unwrap_err();
        match &err {
            OutboundError::Connect { reason } => {
                // The whole chain, on one line.
                assert!(reason.contains("tcp connect error"), "{reason}");
                assert!(!reason.contains('\n'), "{reason}");
            }
            other => panic!("expected a connect error, got {other}"),
        }
        assert!(err.head().is_none());
    }

    #[tokio::test]
    async fn a_plain_client_sends_nothing_in_the_clear_to_https() {
        // A server that is not TLS at all: the handshake fails, a connect error.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
                held.push(stream);
            }
        });
        let err = send(&url, DEADLINE, BIG).await.unwrap_err();
        assert!(matches!(&err, OutboundError::Connect { .. }), "{err}");
        server.abort();
    }

    #[test]
    fn localhost_names_are_loopback() {
        for host in [
            "localhost",
            "LOCALHOST",
            "nicks.localhost",
            "a.b.localhost.",
        ] {
            assert!(is_localhost(host), "{host}");
        }
        for host in [
            "localhost.example.com",
            "notlocalhost",
            "example.com",
            "",
            "xlocalhost",
        ] {
            assert!(!is_localhost(host), "{host}");
        }
    }

    #[tokio::test]
    async fn a_name_under_localhost_reaches_a_loopback_server() {
        let (url, server) =
            raw_server(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
        let url = url.replace("127.0.0.1", "nicks.localhost");
        let answer = send(&url, DEADLINE, BIG).await.unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        server.abort();
    }

    #[test]
    fn describe_joins_the_chain_on_one_line() {
        let err = Wrapped(std::io::Error::other("connection reset"));
        assert_eq!(describe(&err), "wrapped: connection reset");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
}
