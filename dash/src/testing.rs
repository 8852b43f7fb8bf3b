//! For integration tests (here and in other crates, with the `test-support` feature): the
//! dashboard's settings with this repository's templates and assets.

use std::time::Duration;

use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;

use crate::csrf::CsrfKey;
use crate::discovery::DiscoverySettings;
use crate::identity::{IdentitySource, NameFields};
use crate::startup::Settings;

/// The signing key of test dashboards (test gateways use the same, to open their links).
pub const TEST_SIGNING_KEY: &[u8] = b"the signing key of the ephemerator tests, 32+ bytes";

/// One worker, the repository's `templates/` and `assets/`, git discovery bounded to 5 s.
pub fn settings(
    client: kube::Client,
    namespace: &str,
    config: LiveConfig,
    identity: IdentitySource,
    csrf: CsrfKey,
) -> Settings {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Settings {
        client,
        api_health: ApiHealth::default(),
        namespace: namespace.into(),
        config,
        identity,
        identity_from: NameFields::default(),
        csrf,
        signing_keys: Some(ephemerator_kit::signing::LiveKeys::fixed(
            ephemerator_kit::signing::SigningKeys::new(TEST_SIGNING_KEY, None)
                .unwrap_or_else(|problem| panic!("{problem}")),
        )),
        templates: root.join("templates"),
        assets: root.join("assets"),
        workers: 1,
        discovery: DiscoverySettings {
            timeout: Duration::from_secs(5),
            ..Default::default()
        },
        shared_rows_max_bytes: crate::fragment_cache::DEFAULT_MAX_BYTES,
        drain_timeout: ephemerator_kit::flags::DEFAULT_DRAIN_TIMEOUT,
    }
}
