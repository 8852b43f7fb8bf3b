//! Port discovery from a running Tilt.
//!
//! ephctrl asks the runner's Tilt, on its web port, for `GET /api/view` ([`VIEW_PATH`]): the
//! view Tilt's own web UI starts from, whose `uiResources` are the objects of
//! `tilt get uiresources -o json`. Every Tilt from 0.34 to the newest answers it; from 0.37.4
//! it needs the token of the runner ([`TOKEN_HEADER`], which ephctrl gave the runner) and
//! refuses a request whose `Origin` is another host (ephctrl sends none). Tilt's `/proxy`
//! route does not serve UIResources (it forwards only `uibuttons`), and Tilt's own API server
//! listens on the runner's loopback only; reading the view needs no `pods/exec`.
//!
//! The view also carries Tilt's log (up to 2 MB of text, several MB of JSON), which is not
//! needed here: the body is parsed as it streams in, on a blocking thread, keeping only what
//! port discovery uses (names, statuses and the ports of local links, each bounded), so an
//! answer of [`TiltClient::MAX_VIEW_BYTES`] costs kilobytes, not megabytes. What a runner's Tilt
//! sends is written by whoever pushed to the repo: every size and count is bounded, every
//! shape is an error that says where, never a panic.
//!
//! Each link of a resource that points at the runner itself (`http://0.0.0.0:PORT`,
//! `localhost`, `127.0.0.1`) becomes a port of the env's Service, following upstream's rules;
//! see [`state_from_resources`].

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ephemerator_core::Port;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::outbound::{Outbound, OutboundError, describe};

/// Tilt's own web port; the Service always exposes it as [`TILT_PORT_NAME`], so discovery never
/// returns it.
pub const TILT_PORT: u16 = 10350;
/// The Service port name of Tilt's web port; reserved, so a resource called `tilt` gets `tilt-2`.
pub const TILT_PORT_NAME: &str = "tilt";
/// Where Tilt serves its view, relative to its web port.
pub const VIEW_PATH: &str = "/api/view";
/// The header Tilt 0.37.4+ checks against its token file.
pub const TOKEN_HEADER: &str = "X-Tilt-Token";

/// Longest Kubernetes port name (an IANA service name).
const MAX_PORT_NAME_LEN: usize = 15;
/// Link hosts that mean "this runner" (Tilt runs with `--host 0.0.0.0`).
const LOCAL_HOSTS: [&str; 3] = ["0.0.0.0", "localhost", "127.0.0.1"];
/// The resource Tilt uses for the Tiltfile itself; its links and resources appear once it loads.
const TILTFILE_RESOURCE: &str = "(Tiltfile)";
/// Resources read from one view; the rest are ignored (a Tiltfile has tens, not thousands).
pub const MAX_RESOURCES: usize = 1000;
/// Links read per resource; the rest are ignored.
pub const MAX_LINKS: usize = 64;
/// Characters kept of a resource name (port names use 15) and of a status word.
const MAX_NAME_CHARS: usize = 64;
/// Resource names kept for a status message, per kind (starting, failing).
pub const MAX_NAMED: usize = 5;

/// Whether Tilt has loaded the Tiltfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TiltfileState {
    /// Still loading (or Tilt has not reported the Tiltfile yet): resources may appear.
    #[default]
    Loading,
    /// Loaded.
    Loaded,
    /// Loading failed; Tilt's page says why.
    Failed,
}

/// What a Tilt's view says: the ports its resources publish, and how far they got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TiltState {
    /// Sorted by port, unique ports and unique valid Kubernetes port names, never [`TILT_PORT`].
    pub ports: Vec<Port>,
    /// The Tiltfile's state.
    pub tiltfile: TiltfileState,
    /// Resources still starting (runtime status empty, `pending` or `unknown`): the first
    /// [`MAX_NAMED`] names, and how many in all.
    pub starting: Named,
    /// Resources whose runtime or update failed (status `error`).
    pub failing: Named,
}

/// The first [`MAX_NAMED`] of some resources' names, and their number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Named {
    /// The first names, in Tilt's order.
    pub names: Vec<String>,
    /// How many there are in all.
    pub count: usize,
}

impl Named {
    fn push(&mut self, name: &str) {
        self.count += 1;
        if self.names.len() < MAX_NAMED {
            self.names.push(name.to_string());
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl fmt::Display for Named {
    /// `web, api` or `a, b, c, d, e and 3 more`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names.join(", "))?;
        let more = self.count.saturating_sub(self.names.len());
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        Ok(())
    }
}

impl TiltState {
    /// Whether more links may still appear, so Tilt is worth asking again soon (upstream:
    /// while any resource is pending, in 10 s).
    pub fn pending(&self) -> bool {
        self.tiltfile == TiltfileState::Loading || !self.starting.is_empty()
    }

    /// What is not fine yet, for the env's status message; `None` when everything runs.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        match self.tiltfile {
            TiltfileState::Loading => parts.push("Tilt is loading the Tiltfile".to_string()),
            TiltfileState::Failed => {
                parts.push("Tilt could not load the Tiltfile (its page says why)".to_string())
            }
            TiltfileState::Loaded => {}
        }
        if !self.starting.is_empty() {
            parts.push(format!("starting in Tilt: {}", self.starting));
        }
        if !self.failing.is_empty() {
            parts.push(format!("failing in Tilt: {}", self.failing));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// What went wrong asking Tilt for its view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TiltError {
    #[error("invalid Tilt URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to Tilt at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("request to Tilt at {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("Tilt at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// 401 or 403: Tilt 0.37.4+ without the right token, or a Tilt that does not serve the view.
    #[error("Tilt at {url} refused ephctrl (HTTP {status}: {reason})")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("Tilt at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("Tilt's answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("Tilt's view is invalid at `{path}`: {reason}")]
    Parse { path: String, reason: String },
}

impl TiltError {
    /// What went wrong, for an env's status message: the env's own Tilt, so without its URL.
    pub fn summary(&self) -> String {
        match self {
            TiltError::InvalidUrl { reason, .. } => {
                format!("ephctrl's Tilt URL is invalid: {reason}")
            }
            TiltError::Connect { .. } => "Tilt does not answer yet (no connection)".to_string(),
            TiltError::Request { reason, .. } => format!("asking Tilt failed: {reason}"),
            TiltError::Timeout { timeout, .. } => format!("Tilt did not answer within {timeout:?}"),
            TiltError::Refused { status, reason, .. } => {
                format!("Tilt refused ephctrl (HTTP {status}: {reason})")
            }
            TiltError::Status { status, .. } => format!("Tilt answered HTTP {status}"),
            TiltError::TooLarge { limit, .. } => {
                format!("Tilt's view is larger than {limit} bytes")
            }
            TiltError::Parse { path, reason } => {
                format!("Tilt's view is invalid at `{path}`: {reason}")
            }
        }
    }
}

/// Reads a Tilt view (the body of [`VIEW_PATH`]) as it streams from `reader`, keeping only the
/// resources, and turns them into a [`TiltState`] with [`state_from_resources`]. Everything but
/// `uiResources` (the log, above all) is skipped without being held.
pub fn read_view(reader: impl Read) -> Result<TiltState, TiltError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let view: View =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| TiltError::Parse {
            path: err.path().to_string(),
            reason: err.inner().to_string(),
        })?;
    deserializer.end().map_err(|err| TiltError::Parse {
        path: ".".to_string(),
        reason: err.to_string(),
    })?;
    Ok(state_from_resources(&view.resources))
}

/// The state of a Tilt from its resources, with upstream's port rules: per resource in Tilt's
/// order, each link to this runner with a numeric port adds that port named after the resource
/// (sanitised to a Kubernetes port name); a repeated port is skipped, a repeated name gets
/// `-2`, `-3`…; sorted by port. [`TILT_PORT`] is never included. Unlike upstream, a resource
/// publishes its links only once it has started (upstream published them as soon as the
/// Tiltfile listed them), and one that is disabled in Tilt publishes nothing and is never
/// pending: nothing serves their links.
fn state_from_resources(resources: &[Resource]) -> TiltState {
    let mut state = TiltState::default();
    let mut used_ports = BTreeSet::from([TILT_PORT]);
    let mut used_names = BTreeSet::from([TILT_PORT_NAME.to_string()]);
    for resource in resources {
        let name = resource.name.as_str();
        if name == TILTFILE_RESOURCE {
            // Loaded only once Tilt says so: right after `tilt up` the Tiltfile is listed with
            // no update status (or `none`) before its first load starts.
            state.tiltfile = match resource.update_status.as_str() {
                "ok" | "not_applicable" => TiltfileState::Loaded,
                "error" => TiltfileState::Failed,
                _ => TiltfileState::Loading,
            };
            continue;
        }
        if resource.disabled {
            continue;
        }
        if matches!(resource.runtime_status.as_str(), "" | "pending" | "unknown") {
            // Its links are published once it runs: until then the gateway says the env does
            // not publish the port yet, rather than that nothing answers on it.
            state.starting.push(name);
            continue;
        }
        if resource.runtime_status == "error" || resource.update_status == "error" {
            state.failing.push(name);
        }
        for &port in &resource.link_ports {
            if !used_ports.insert(port) {
                continue;
            }
            let port_name = unique_name(&sanitize_port_name(name, port), &mut used_names);
            state.ports.push(Port {
                name: port_name,
                port,
            });
        }
    }
    state.ports.sort_by_key(|p| p.port);
    state
}

/// The port of an `http://` link to this runner (`0.0.0.0`, `localhost`, `127.0.0.1`) with an
/// explicit, numeric, non-zero port; `None` for anything else.
fn local_link_port(url: &str) -> Option<u16> {
    let scheme_len = "http://".len();
    if !url.get(..scheme_len)?.eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = authority.rsplit_once(':')?;
    if !LOCAL_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return None;
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|&p| p != 0)
}

/// A valid Kubernetes port name (IANA service name: at most 15 characters of lowercase letters,
/// digits and single hyphens, not at either end, at least one letter) from a resource name.
/// Falls back to `port-PORT` when nothing usable is left.
fn sanitize_port_name(resource: &str, port: u16) -> String {
    let mut name = String::new();
    for c in resource.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = truncate_name(&name, MAX_PORT_NAME_LEN);
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        name
    } else {
        format!("port-{port}")
    }
}

/// `base` cut to `max` characters with no hyphen left at the end (names are ASCII by now).
fn truncate_name(base: &str, max: usize) -> String {
    base[..base.len().min(max)]
        .trim_end_matches('-')
        .to_string()
}

/// `base`, or `base-2`, `base-3`… (shortened to stay a valid port name), whichever is unused.
fn unique_name(base: &str, used: &mut BTreeSet<String>) -> String {
    if used.insert(base.to_string()) {
        return base.to_string();
    }
    // Terminates: candidates differ for every n (the stem never ends in '-', so the last '-'
    // starts the suffix) and only finitely many names are used.
    let mut n = 2usize;
    loop {
        let suffix = format!("-{n}");
        let mut stem = truncate_name(base, MAX_PORT_NAME_LEN - suffix.len());
        // Cutting may remove the only letters (`123456789012345a`): a name needs one.
        if !stem.bytes().any(|b| b.is_ascii_lowercase()) {
            stem = "port".to_string();
        }
        let candidate = format!("{stem}{suffix}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

// What is read of a view. Tilt's Go types leave empty fields out (`omitempty`), so every field
// may be missing or null; fields not named here are skipped unread.

/// A view: `uiResources` only.
struct View {
    resources: Vec<Resource>,
}

/// One UIResource, as much as port discovery needs.
#[derive(Debug, Default)]
struct Resource {
    name: String,
    runtime_status: String,
    update_status: String,
    disabled: bool,
    /// The ports of its local links, at most [`MAX_LINKS`] links read.
    link_ports: Vec<u16>,
}

impl<'de> Deserialize<'de> for View {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ViewVisitor;
        impl<'de> Visitor<'de> for ViewVisitor {
            type Value = View;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object (Tilt's view)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<View, A::Error> {
                let mut resources = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Named("uiResources") => {
                            resources = map
                                .next_value::<Option<Bounded<RawResource, MAX_RESOURCES>>>()?
                                .map(|list| list.0.into_iter().map(Resource::from).collect())
                                .unwrap_or_default();
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(View { resources })
            }
        }
        deserializer.deserialize_map(ViewVisitor)
    }
}

/// A UIResource as it is read.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RawResource {
    metadata: Option<RawMeta>,
    status: Option<RawStatus>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    name: Option<Short>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawStatus {
    endpoint_links: Option<Bounded<RawLink, MAX_LINKS>>,
    runtime_status: Option<Short>,
    update_status: Option<Short>,
    disable_status: Option<RawDisableStatus>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RawDisableStatus {
    state: Option<Short>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RawLink {
    url: Option<LinkPort>,
}

impl From<RawResource> for Resource {
    fn from(raw: RawResource) -> Self {
        let short = |value: Option<Short>| value.map(|s| s.0).unwrap_or_default();
        let status = raw.status.unwrap_or_default();
        Resource {
            name: short(raw.metadata.and_then(|m| m.name)),
            runtime_status: short(status.runtime_status),
            update_status: short(status.update_status),
            disabled: status
                .disable_status
                .and_then(|d| d.state)
                .is_some_and(|state| state.0 == "Disabled"),
            link_ports: status
                .endpoint_links
                .map(|links| links.0)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|link| link.url.and_then(|url| url.0))
                .collect(),
        }
    }
}

/// A map key: the names this module reads are matched as they stream by; others are dropped.
enum Key {
    Named(&'static str),
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "uiResources" => Key::Named("uiResources"),
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A string of which at most [`MAX_NAME_CHARS`] characters are kept.
struct Short(String);

impl<'de> Deserialize<'de> for Short {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShortVisitor;
        impl Visitor<'_> for ShortVisitor {
            type Value = Short;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Short, E> {
                Ok(Short(text.chars().take(MAX_NAME_CHARS).collect()))
            }
        }
        deserializer.deserialize_str(ShortVisitor)
    }
}

/// A link URL, kept only as the local port it names (see [`local_link_port`]).
struct LinkPort(Option<u16>);

impl<'de> Deserialize<'de> for LinkPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LinkVisitor;
        impl Visitor<'_> for LinkVisitor {
            type Value = LinkPort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, url: &str) -> Result<LinkPort, E> {
                Ok(LinkPort(local_link_port(url)))
            }
        }
        deserializer.deserialize_str(LinkVisitor)
    }
}

/// A list of which the first `N` elements are kept; the rest are skipped unread.
struct Bounded<T, const N: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for BoundedVisitor<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bounded<T, N>, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < N {
                    match seq.next_element::<T>()? {
                        Some(element) => kept.push(element),
                        None => return Ok(Bounded(kept)),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Bounded(kept))
            }
        }
        deserializer.deserialize_seq(BoundedVisitor(std::marker::PhantomData))
    }
}

/// Asks running Tilts for their views. Cheap to clone (one shared connection pool and one
/// bound on views read at once).
#[derive(Clone)]
pub struct TiltClient {
    outbound: Outbound,
    request_timeout: Duration,
    max_body: usize,
    /// Views read at once: each may hold a blocking thread and, for a hostile Tilt, a string
    /// of up to `max_body` bytes while it is parsed.
    reading: Arc<Semaphore>,
}

impl Default for TiltClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TiltClient {
    /// Connecting gives up after this long (a runner that is not up yet).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The whole request, body included, gives up after this long.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Larger views are refused. Tilt keeps at most 2 MB of log text, which its view carries
    /// as segments of about 100 bytes of JSON each besides their text: 7 MB for lines of 40
    /// characters, 20 MB for very short ones. The resources of a large Tiltfile add well under
    /// 1 MB. Nothing of the log is held, so the bound is one of time, not memory.
    pub const MAX_VIEW_BYTES: usize = 64 * 1024 * 1024;
    /// Views read at once.
    pub const MAX_READING: usize = 4;
    /// Bytes of a refusal's body kept for its reason.
    const MAX_REASON_BYTES: usize = 256;
    /// Chunks of a view in flight between the connection and the parser.
    const CHUNKS_IN_FLIGHT: usize = 4;

    /// A client with the default timeouts and size cap.
    pub fn new() -> Self {
        Self::with_limits(
            Self::CONNECT_TIMEOUT,
            Self::REQUEST_TIMEOUT,
            Self::MAX_VIEW_BYTES,
        )
    }

    /// A client with other limits (tests use small ones).
    pub fn with_limits(
        connect_timeout: Duration,
        request_timeout: Duration,
        max_body: usize,
    ) -> Self {
        TiltClient {
            // Tilt serves plain HTTP inside the cluster: no CA bundle needed.
            outbound: Outbound::plain(connect_timeout),
            request_timeout,
            max_body,
            reading: Arc::new(Semaphore::new(Self::MAX_READING)),
        }
    }

    /// `GET {base_url}/api/view` with the token, read into a [`TiltState`]. `base_url` is Tilt's
    /// web address, e.g. `http://ENV.NAMESPACE.svc:10350`.
    pub async fn ask(&self, base_url: &str, token: &str) -> Result<TiltState, TiltError> {
        let url = format!("{}{VIEW_PATH}", base_url.trim_end_matches('/'));
        let invalid = |reason: String| TiltError::InvalidUrl {
            url: url.clone(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|err: hyper::http::uri::InvalidUri| invalid(err.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// is supported".to_string()));
        }
        let request = Request::get(uri)
            .header(TOKEN_HEADER, token)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|err| invalid(err.to_string()))?;

        let deadline = Instant::now() + self.request_timeout;
        let (head, body) = self
            .outbound
            .open(request, deadline)
            .await
            .map_err(|err| self.error(&url, err))?;
        // Only reading a view is bounded (a parser each, and for a hostile Tilt up to
        // `max_body` bytes); connecting and waiting for the head hold a socket, as many as
        // reconciles run. Bounding those too let runners that are not up yet (a connect
        // timeout each) hold up every other env's reconcile: at 10,000 envs, new ones waited
        // behind the polls of ready ones and were not reconciled for minutes.
        let Ok(Ok(_reading)) = tokio::time::timeout_at(deadline, self.reading.acquire()).await
        else {
            return Err(TiltError::Timeout {
                url,
                timeout: self.request_timeout,
            });
        };
        let status = head.status;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // Tilt says why in a line of text ("invalid session token").
            let reason = tokio::time::timeout_at(
                deadline,
                Limited::new(body, Self::MAX_REASON_BYTES).collect(),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|body| reason_text(&body.to_bytes()))
            .filter(|reason| !reason.is_empty())
            .unwrap_or_else(|| "no reason given".to_string());
            return Err(TiltError::Refused {
                url,
                status: status.as_u16(),
                reason,
            });
        }
        if !status.is_success() {
            return Err(TiltError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(TiltError::TooLarge {
                url,
                limit: self.max_body,
            });
        }
        self.read_body(&url, body, deadline).await
    }

    /// Feeds the body to [`read_view`] on a blocking thread as it arrives, within the deadline
    /// and the size cap. When either runs out, or the connection fails, the feeding stops, the
    /// parser sees the end of its input and the thread is free again.
    async fn read_body(
        &self,
        url: &str,
        mut body: hyper::body::Incoming,
        deadline: Instant,
    ) -> Result<TiltState, TiltError> {
        let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(Self::CHUNKS_IN_FLIGHT);
        let parser = tokio::task::spawn_blocking(move || read_view(ChunkReader::new(received)));
        let mut read = 0usize;
        let fed: Result<(), TiltError> = loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    break Err(TiltError::Timeout {
                        url: url.to_string(),
                        timeout: self.request_timeout,
                    });
                }
                Ok(None) => break Ok(()),
                Ok(Some(Err(err))) => {
                    break Err(TiltError::Request {
                        url: url.to_string(),
                        reason: describe(&err),
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            read += data.len();
            if read > self.max_body {
                break Err(TiltError::TooLarge {
                    url: url.to_string(),
                    limit: self.max_body,
                });
            }
            // Waits while the parser is behind (a bounded channel).
            match tokio::time::timeout_at(deadline, chunks.send(data)).await {
                Ok(Ok(())) => {}
                // The parser stopped early (malformed JSON): its error says why.
                Ok(Err(_)) => break Ok(()),
                Err(_) => {
                    break Err(TiltError::Timeout {
                        url: url.to_string(),
                        timeout: self.request_timeout,
                    });
                }
            }
        };
        drop(chunks);
        let parsed = parser.await.map_err(|err| TiltError::Request {
            url: url.to_string(),
            reason: format!("reading the view failed: {err}"),
        })?;
        fed?;
        parsed
    }

    fn error(&self, url: &str, err: OutboundError) -> TiltError {
        let url = url.to_string();
        match err {
            OutboundError::Connect { reason } => TiltError::Connect { url, reason },
            OutboundError::Request { reason, .. } => TiltError::Request { url, reason },
            OutboundError::Timeout { .. } => TiltError::Timeout {
                url,
                timeout: self.request_timeout,
            },
            OutboundError::TooLarge { .. } => TiltError::TooLarge {
                url,
                limit: self.max_body,
            },
        }
    }
}

/// The first line of a refusal's body, printable ASCII only (it ends up in a status message).
fn reason_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect::<String>()
        .trim()
        .to_string()
}

/// The chunks of a body, sent by the connection's task, as a blocking [`Read`] (for a blocking
/// thread): the input of [`read_view`]. The end of the channel is the end of the input.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    fn new(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChunkReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
