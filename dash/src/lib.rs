//! ephdash: the dashboard where a team lists, creates, extends and deletes its envs.
//!
//! [`startup::start`] builds the app around a listener; the route table is
//! [`routes`]; decisions are pure functions in [`decide`]; `main.rs` only parses flags.

pub mod chunked;
pub mod csrf;
pub mod decide;
pub mod discovery;
pub mod error;
pub mod fragment_cache;
pub mod identity;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod views;
