//! What every ephemerator server runs on, used the same way by `ephctrl`, `ephdash` and
//! `ephgateway`:
//! - [`cluster`]: the API client whose every request is bounded, and watches that survive API
//!   server restarts;
//! - [`events`]: Events on env ConfigMaps, written in the background;
//! - [`live_config`]: the config file, reloaded while the server runs ([`LiveConfig`]);
//! - [`admin`]: the `/healthz`, `/readyz` and `/metrics` listener beside the traffic;
//! - [`logging`]: one log setup (text or JSON);
//! - [`metrics`]: the registry and series every server's `/metrics` has;
//! - [`runner_logs`]: an env runner's setup logs, as the dashboard and the gateway show them;
//! - [`shutdown`]: SIGTERM and Ctrl-C as one future;
//! - [`signing`]: the keys of the Secret that sign env cookies, codes and share links, and
//!   the tokens made with them;
//! - [`flags`]: the common flags ([`CommonFlags`]), the same on every server;
//! - [`boot`]: what every `main` does before `start`; [`running`]: what every `Running` handle
//!   is made of.
//!
//! The model the servers share (envs, config, validation) is `ephemerator-core`, which has no
//! runtime and no network.

pub mod admin;
pub mod boot;
pub mod cluster;
pub mod events;
pub mod flags;
pub mod live_config;
pub mod logging;
pub mod metrics;
pub mod runner_logs;
pub mod running;
pub mod shutdown;
pub mod signing;

pub use boot::{Boot, Listeners};
pub use flags::CommonFlags;
pub use live_config::LiveConfig;
