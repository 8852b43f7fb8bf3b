//! Who uses an env, as the gateway alone sees it: a person's requests to its ports and the
//! messages their browser sends on its WebSockets (see `ephemerator_core::activity` for what
//! counts and why). Each is noted here, and at most once a minute per env (or a quarter of
//! `sleepAfter`) this replica renews the env's activity Lease, from a bounded queue on the main
//! runtime: a request never waits on the API server, and no amount of traffic grows the queue,
//! the writes or the memory.
//!
//! A person navigating to a sleeping env wakes it: the Lease is renewed at once, past the time
//! it fell asleep, which ephctrl takes for a wake. Each replica sends one such renewal per
//! sleep, however many visitors and reloads come; of several replicas', ephctrl acts on the
//! first (its writes are guarded by the ConfigMap's version), so an env wakes once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ephemerator_core::activity::{lease_name, renewal};
use futures::StreamExt;
use hyper::HeaderMap;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::mpsc;

/// Field manager of the gateway's Lease writes.
pub const FIELD_MANAGER: &str = "ephgateway";
/// Renewals waiting to be written; past it a renewal is dropped (the next request brings it).
const QUEUE: usize = 256;
/// Renewals written at once.
const WRITERS: usize = 4;
/// Most envs remembered as renewed; past it the memory keeps only the last minute's.
const MAX_REMEMBERED: usize = 10_000;

/// Whether a request to an env's port, let through its gate, is a person's use of the env: it
/// comes from a browser (`Sec-Fetch-Mode`, which browsers send on every request and monitors,
/// probes and scripts do not), and is not the opening of a WebSocket (whose messages count
/// instead).
pub fn counts_as_activity(headers: &HeaderMap) -> bool {
    match headers
        .get("sec-fetch-mode")
        .and_then(|mode| mode.to_str().ok())
    {
        Some(mode) => !mode.eq_ignore_ascii_case("websocket"),
        None => false,
    }
}

/// Whether a request is a person opening a page in a browser tab: a top-level navigation
/// (`Sec-Fetch-Mode: navigate` to a `document`), not a frame, an XHR, a fetch, a WebSocket,
/// or a script without Fetch Metadata. Only this wakes a sleeping env.
pub fn is_top_level_navigation(headers: &HeaderMap) -> bool {
    let is = |name: &str, value: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    };
    is("sec-fetch-mode", "navigate") && is("sec-fetch-dest", "document")
}

/// One env's activity to record.
struct Seen {
    env: String,
    uid: String,
    at: Timestamp,
}

/// Notes activity and renews the envs' Leases. Clones share it.
#[derive(Clone)]
pub struct Activity {
    renewed: Arc<Mutex<HashMap<String, Instant>>>,
    /// The sleep (its `asleep-since`) each env was last woken from by this replica.
    woken: Arc<Mutex<HashMap<String, Timestamp>>>,
    queue: mpsc::Sender<Seen>,
}

impl Activity {
    /// The recorder and its writer, which renews Leases in `namespace` as `replica` until the
    /// recorder is dropped (poll it on the main runtime).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        replica: String,
    ) -> (Activity, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let renewed = Arc::new(Mutex::new(HashMap::new()));
        let woken = Arc::new(Mutex::new(HashMap::new()));
        let writer = write(
            Api::namespaced(client, namespace),
            replica,
            receiver,
            renewed.clone(),
            woken.clone(),
        );
        (
            Activity {
                renewed,
                woken,
                queue,
            },
            writer,
        )
    }

    /// A person used env `env` (the ConfigMap with `uid`) now; renewed at most once per
    /// `every` (`ephemerator_core::activity::record_every`).
    pub fn noticed(&self, env: &str, uid: &str, every: Duration) {
        let now = Instant::now();
        {
            let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
            if renewed
                .get(env)
                .is_some_and(|at| now.duration_since(*at) < every)
            {
                return;
            }
            if renewed.len() >= MAX_REMEMBERED {
                renewed.retain(|_, at| now.duration_since(*at) < every);
            }
            renewed.insert(env.to_string(), now);
        }
        let seen = Seen {
            env: env.to_string(),
            uid: uid.to_string(),
            at: Timestamp::now(),
        };
        if self.queue.try_send(seen).is_err() {
            // Full (the API server is slow): the next request of this env tries again.
            self.forget(env);
        }
    }

    fn forget(&self, env: &str) {
        forget(&self.renewed, env);
    }

    /// A person navigated to env `env` (the ConfigMap with `uid`), asleep since
    /// `asleep_since`: its Lease is renewed now, unless this replica did so for this sleep
    /// already. Whether a renewal was queued.
    pub fn wake(&self, env: &str, uid: &str, asleep_since: Option<Timestamp>) -> bool {
        let since = asleep_since.unwrap_or(Timestamp::UNIX_EPOCH);
        {
            let mut woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
            if woken.get(env) == Some(&since) {
                return false;
            }
            if woken.len() >= MAX_REMEMBERED {
                woken.clear();
            }
            woken.insert(env.to_string(), since);
        }
        // Past the sleep's start even if this replica's clock is behind ephctrl's, or the wake
        // would never be seen as one.
        let at = Timestamp::now().max(
            since
                .checked_add(jiff::SignedDuration::from_millis(1))
                .unwrap_or(since),
        );
        self.renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(env.to_string(), Instant::now());
        let seen = Seen {
            env: env.to_string(),
            uid: uid.to_string(),
            at,
        };
        if self.queue.try_send(seen).is_err() {
            forget_woken(&self.woken, env);
            self.forget(env);
            return false;
        }
        true
    }

    /// Copies a WebSocket's bytes both ways until both sides are done, noting each data message
    /// the client sends as a use of env `env` (with `uid`).
    pub async fn carry_socket<C, U>(
        self,
        client: C,
        upstream: U,
        env: String,
        uid: String,
        every: Duration,
    ) where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
        let from_client = async {
            let mut frames = ClientFrames::default();
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let read = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                if frames.feed(&buffer[..read]) > 0 {
                    self.noticed(&env, &uid, every);
                }
                if upstream_write.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
            let _ = upstream_write.shutdown().await;
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        };
        tokio::join!(from_client, to_client);
    }
}

fn forget_woken(woken: &Mutex<HashMap<String, Timestamp>>, env: &str) {
    woken.lock().unwrap_or_else(|p| p.into_inner()).remove(env);
}

fn forget(renewed: &Mutex<HashMap<String, Instant>>, env: &str) {
    renewed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(env);
}

async fn write(
    api: Api<Lease>,
    replica: String,
    receiver: mpsc::Receiver<Seen>,
    renewed: Arc<Mutex<HashMap<String, Instant>>>,
    woken: Arc<Mutex<HashMap<String, Timestamp>>>,
) {
    let queued = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|seen| (seen, receiver))
    });
    queued
        .for_each_concurrent(WRITERS, |seen| {
            let (api, replica, renewed, woken) = (&api, &replica, &renewed, &woken);
            async move {
                let name = lease_name(&seen.env);
                let lease = renewal(&seen.env, &seen.uid, replica, seen.at);
                let params = PatchParams::apply(FIELD_MANAGER).force();
                if let Err(error) = api.patch(&name, &params, &Patch::Apply(&lease)).await {
                    tracing::warn!(env = %seen.env, %error, "recording the env's activity failed");
                    // Tried again at the next use (or the waking page's next reload).
                    forget(renewed, &seen.env);
                    forget_woken(woken, &seen.env);
                }
            }
        })
        .await;
}

/// Follows the frames a client sends on a WebSocket (RFC 6455 §5.2), however the bytes are cut
/// into reads, and tells when a data message starts: text or binary, not its continuations and
/// not the control frames (pings, pongs, close) a browser sends by itself.
#[derive(Debug, Default)]
pub struct ClientFrames {
    /// The header bytes of the frame being read (at most 14).
    header: Vec<u8>,
    /// Payload bytes still to skip.
    payload_left: u64,
}

impl ClientFrames {
    /// Feeds the next bytes from the client; how many data messages started in them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> usize {
        let mut started = 0;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes = &bytes[skip..];
                self.payload_left -= skip as u64;
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some((opcode, payload)) = self.complete_header() {
                self.header.clear();
                self.payload_left = payload;
                if opcode == 0x1 || opcode == 0x2 {
                    started += 1;
                }
            }
        }
        started
    }

    /// The opcode and payload length once the header read so far is whole.
    fn complete_header(&self) -> Option<(u8, u64)> {
        let header = &self.header;
        if header.len() < 2 {
            return None;
        }
        let opcode = header[0] & 0x0f;
        let masked = header[1] & 0x80 != 0;
        let (length_bytes, short) = match header[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            short => (0, Some(u64::from(short))),
        };
        let needed = 2 + length_bytes + if masked { 4 } else { 0 };
        if header.len() < needed {
            return None;
        }
        let payload = short.unwrap_or_else(|| {
            header[2..2 + length_bytes]
                .iter()
                .fold(0u64, |length, byte| (length << 8) | u64::from(*byte))
        });
        Some((opcode, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn data_messages_count_and_control_frames_do_not() {
        let mut stream = Vec::new();
        stream.extend(frame(0xA, b"pong"));
        stream.extend(frame(0x9, b""));
        stream.extend(frame(0x1, b"hello"));
        stream.extend(frame(0x2, &[0u8; 300]));
        stream.extend(frame(0x0, b"continued"));
        stream.extend(frame(0x1, &vec![b'x'; 70_000]));
        stream.extend(frame(0x8, b""));
        // Whole, and cut into every size of read.
        assert_eq!(ClientFrames::default().feed(&stream), 3);
        for cut in [1, 2, 3, 7, 13, 127, 4096] {
            let mut frames = ClientFrames::default();
            let started: usize = stream.chunks(cut).map(|chunk| frames.feed(chunk)).sum();
            assert_eq!(started, 3, "reads of {cut} bytes");
        }
        // A silent socket's pongs alone: nothing.
        let pongs: Vec<u8> = (0..10).flat_map(|_| frame(0xA, b"")).collect();
        assert_eq!(ClientFrames::default().feed(&pongs), 0);
    }

    #[test]
    fn browsers_count_and_scripts_and_socket_openings_do_not() {
        let with = |mode: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(mode) = mode {
                headers.insert("sec-fetch-mode", mode.parse().unwrap());
            }
            counts_as_activity(&headers)
        };
        assert!(with(Some("navigate")));
        assert!(with(Some("cors")));
        assert!(with(Some("no-cors")));
        assert!(!with(Some("websocket")));
        assert!(!with(None));
    }
}
