//! What every ephemerator server runs on, used the same way by `ephctrl`, `ephdash` and
//! `ephgateway`:
//! - [`cluster`]: the API client whose every request is bounded, and watches that survive API
//!   server restarts;
//! - [`live_config`]: the config file, reloaded while the server runs ([`LiveConfig`]);
//! - [`admin`]: the `/healthz`, `/readyz` and `/metrics` listener beside the traffic;
//! - [`logging`]: one log setup (text or JSON);
//! - [`shutdown`]: SIGTERM and Ctrl-C as one future.
//!
//! The model the servers share (envs, config, validation) is `ephemerator-core`, which has no
//! runtime and no network.

pub mod admin;
pub mod cluster;
pub mod live_config;
pub mod logging;
pub mod shutdown;

pub use live_config::LiveConfig;
