//! ephdash: the dashboard where a team lists, creates, extends and deletes its envs.
//!
//! Laid out like ephctrl: [`startup::start`] builds the app around its listeners and returns
//! its `Running` handle; the route table is [`routes`], whose handlers are thin: [`decide`]
//! decides (pure functions: no cluster, no clock), [`write`] writes (nothing there decides),
//! [`render`] fills the templates from one reading of the state per request ([`views`] are
//! the values they show). `main.rs` only parses flags and boots.

pub mod chunked;
pub mod csrf;
pub mod decide;
pub mod discovery;
pub mod error;
pub mod fragment_cache;
pub mod identity;
pub mod metrics;
pub mod render;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod views;
pub mod write;
