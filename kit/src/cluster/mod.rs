//! Talking to the API server in a way that survives it: the one client setup and the one watch
//! setup that ephctrl, ephdash and ephgateway share.
//!
//! - [`client`]: a kube `Client` whose every request has a bounded time, and [`ApiHealth`],
//!   which says whether the API server currently answers (for `/readyz`).
//! - [`watch`]: a watch that never ends and never errors: it re-lists and re-watches with its
//!   own backoff through API server restarts, dropped watches and `410 Gone`.
//!
//! Why each watch has its own backoff instead of sharing one: kube-runtime's `Controller`
//! pauses *all* of its input streams for a growing joint backoff whenever *any* of them yields
//! an error, and stops polling the paused streams' requests meanwhile. After an API server
//! restart each watch yields a few errors in turn (refused connections, then `410 Gone`), so
//! the joint pause grew past 30 s per error and the re-lists that would have fixed the watches
//! were hardly ever polled: the controller stopped seeing new envs. Streams from [`watch`]
//! yield no errors, so nothing shared ever pauses.

pub mod client;
pub mod watch;

pub use client::{
    ApiHealth, Cluster, ConnectError, DEFAULT_REQUEST_TIMEOUT, bounded_client, connect,
};
pub use watch::{WatchBackoff, event_watch, reflected_watch};
