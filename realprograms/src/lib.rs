//! The real programs ephemerator talks to, for tests, so that no test's claim about them rests
//! on a stand-in alone: Tilt ([`tilt::RealTilt`]), oauth2-proxy ([`oauth2_proxy::OAuth2Proxy`])
//! and an OpenID Connect provider for it to sign people in with ([`oauth2_proxy::MockOidc`]).
//! `scripts/build-testprograms.sh` builds them from the upstream Go modules pinned in
//! `testprograms/` into `target/testprograms/`; each runs as its own process on free loopback
//! ports with its files in a temporary directory, and stops when dropped.
//!
//! [`browser_client::BrowserClient`] follows redirects and keeps cookies as a browser does,
//! for signing in through the real oauth2-proxy without one.

// Test support: a failed unwrap is a failed test (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

pub mod browser_client;
pub mod oauth2_proxy;
mod process;
pub mod tilt;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tokio::process::Command;
use tokio::sync::Mutex;

/// The Tilt release built (`scripts/build-testprograms.sh`).
pub const TILT_VERSION: &str = "0.34.0";
/// The oauth2-proxy release built (`testprograms/oauth2-proxy/go.mod`).
pub const OAUTH2_PROXY_VERSION: &str = "v7.15.6";

/// The programs `scripts/build-testprograms.sh` builds.
const PROGRAMS: [&str; 3] = ["tilt", "oauth2-proxy", "mockoidc"];

/// One build at a time within a test process.
static BUILDING: Mutex<()> = Mutex::const_new(());

/// `target/testprograms/<name>`. The test command builds every program before the tests run;
/// here the script runs only when one is missing (rebuilding over a binary another test is
/// running would fail). After changing `testprograms/`, run the script.
pub async fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target").join("testprograms");
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let _building = BUILDING.lock().await;
    if PROGRAMS.iter().all(|program| dir.join(program).exists()) {
        return Ok(path);
    }
    let status = Command::new("bash")
        .arg(root.join("scripts/build-testprograms.sh"))
        .status()
        .await
        .context("running scripts/build-testprograms.sh")?;
    if !status.success() {
        bail!("building testprograms/ failed: {status}");
    }
    if !path.exists() {
        bail!("scripts/build-testprograms.sh built no {}", path.display());
    }
    Ok(path)
}

/// A loopback port free at the time of asking, below the kernel's ephemeral range (a client
/// dialing an ephemeral port before its server listens can be connected to itself).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(ephemerator_testkit::free_port())
}
