//! Cross-site request forgery defence for every mutating request: a token bound to the user
//! and to a time window (an HMAC of the identity and the window under a key every replica
//! shares, so no session state is kept), and, when the browser sends `Origin`, a same-origin
//! check. Env pages live on sibling subdomains of the dashboard, so SameSite cookies alone
//! would not stop them.
//!
//! A token is `WINDOW.MAC`: the number of the [`CsrfKey::window`] it was made in (hex) and the
//! HMAC-SHA256 of the identity and that number. It is accepted in its own window and the next
//! (so a form is good for one to two windows, an hour or two by default); a page polled by
//! htmx gets fresh tokens with every refresh. Keys rotate without a refused form: a key that
//! only verifies ([`CsrfKey::with_verifying`]) is added to every replica first, then made the
//! signing one, then the old one dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The keys tokens are signed and verified with, and their time window.
#[derive(Clone)]
pub struct CsrfKey {
    /// Signs and verifies.
    signing: Vec<u8>,
    /// Only verify (a key being rotated in or out).
    verifying: Vec<Vec<u8>>,
    window: Duration,
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

/// Shortest key accepted from a file.
pub const MIN_KEY_BYTES: usize = 32;
/// The default window: a token is good for one to two hours.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

fn checked_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let key = bytes.trim_ascii();
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the CSRF key must be at least {MIN_KEY_BYTES} bytes, got {}",
            key.len()
        ));
    }
    Ok(key.to_vec())
}

impl CsrfKey {
    /// A key from a file's bytes (a mounted Secret); at least [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<CsrfKey, String> {
        Ok(CsrfKey {
            signing: checked_key(bytes)?,
            verifying: Vec::new(),
            window: DEFAULT_WINDOW,
        })
    }

    /// A random key for this process only (one replica, or tests).
    pub fn random() -> Result<CsrfKey, String> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|error| format!("no randomness: {error}"))?;
        // Used as it is: trimming, as for a key read from a file, could shorten random bytes.
        Ok(CsrfKey {
            signing: key,
            verifying: Vec::new(),
            window: DEFAULT_WINDOW,
        })
    }

    /// The same key, also accepting tokens signed with `bytes` (a key being rotated).
    pub fn with_verifying(mut self, bytes: &[u8]) -> Result<CsrfKey, String> {
        self.verifying.push(checked_key(bytes)?);
        Ok(self)
    }

    /// The same key with another time window (at least a second).
    pub fn with_window(mut self, window: Duration) -> CsrfKey {
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// The token's time window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The token of `identity`, now.
    pub fn token(&self, identity: &str) -> String {
        self.token_at(identity, SystemTime::now())
    }

    /// The token of `identity` made at `at`.
    pub fn token_at(&self, identity: &str, at: SystemTime) -> String {
        let window = self.window_of(at);
        format!("{window:x}.{}", hex(&mac(&self.signing, identity, window)))
    }

    /// Whether `token` is `identity`'s and from this window or the one before (compared in
    /// constant time).
    pub fn verify(&self, identity: &str, token: &str) -> bool {
        self.verify_at(identity, token, SystemTime::now())
    }

    /// [`CsrfKey::verify`] at `now`.
    pub fn verify_at(&self, identity: &str, token: &str, now: SystemTime) -> bool {
        let Some((window, given)) = token.split_once('.') else {
            return false;
        };
        let Ok(window) = u64::from_str_radix(window, 16) else {
            return false;
        };
        let current = self.window_of(now);
        if window > current || current - window > 1 {
            return false;
        }
        std::iter::once(&self.signing)
            .chain(&self.verifying)
            .any(|key| {
                let expected = hex(&mac(key, identity, window));
                expected.len() == given.len()
                    && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
            })
    }

    fn window_of(&self, at: SystemTime) -> u64 {
        let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        seconds / self.window.as_secs().max(1)
    }
}

fn mac(key: &[u8], identity: &str, window: u64) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"ephdash csrf v2\0");
    mac.update(&window.to_be_bytes());
    mac.update(identity.as_bytes());
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an `Origin` header (if any) names the host the request was sent to: a form posted
/// from an env page (another subdomain) names another host and is refused.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        // Browsers send Origin on every cross-origin POST; without one the token decides.
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Some(origin_host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_user_and_the_key() {
        let key = CsrfKey::from_bytes(&[7u8; 32]).unwrap();
        let token = key.token("nicks");
        assert!(key.verify("nicks", &token));
        assert!(!key.verify("mallory", &token));
        assert!(!key.verify("nicks", ""));
        assert!(!key.verify("nicks", &token[1..]));
        assert!(!key.verify("nicks", &token[..token.len() - 1]));
        let other = CsrfKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!other.verify("nicks", &token));
        let replica = CsrfKey::from_bytes(&[7u8; 32]).unwrap();
        assert!(replica.verify("nicks", &token), "any replica verifies it");
        assert!(CsrfKey::from_bytes(b"short").is_err());
    }

    #[test]
    fn random_keys_are_always_usable() {
        // Random bytes often start or end with what a file's key would have trimmed.
        for _ in 0..2000 {
            let key = CsrfKey::random().unwrap();
            assert_eq!(key.signing.len(), 32);
            assert!(key.verify("nicks", &key.token("nicks")));
        }
    }

    #[test]
    fn tokens_are_good_in_their_window_and_the_next_only() {
        let key = CsrfKey::from_bytes(&[7u8; 32]).unwrap();
        let made = UNIX_EPOCH + Duration::from_secs(1_000_000 * 3600 + 1800);
        let token = key.token_at("nicks", made);
        let hours = |h: u64| made + Duration::from_secs(h * 3600);
        assert!(key.verify_at("nicks", &token, made));
        assert!(key.verify_at("nicks", &token, hours(1)), "the next window");
        assert!(!key.verify_at("nicks", &token, hours(2)), "expired");
        assert!(
            !key.verify_at("nicks", &token, made - Duration::from_secs(3600)),
            "not from the future"
        );
        // The window is in the MAC: moving a token to another window breaks it.
        let (_, mac) = token.split_once('.').unwrap();
        let moved = format!("{:x}.{mac}", 1_000_001u64);
        assert!(!key.verify_at("nicks", &moved, hours(1)));
        assert!(!key.verify_at("nicks", "zz.00", made));
    }

    #[test]
    fn a_rotated_key_keeps_forms_working() {
        let old = CsrfKey::from_bytes(&[1u8; 32]).unwrap();
        let token = old.token("nicks");
        // Step 1: every replica also verifies the new key; step 2: the new key signs, the old
        // still verifies; step 3: the old one goes.
        let adding = old.clone().with_verifying(&[2u8; 32]).unwrap();
        let swapped = CsrfKey::from_bytes(&[2u8; 32])
            .unwrap()
            .with_verifying(&[1u8; 32])
            .unwrap();
        let done = CsrfKey::from_bytes(&[2u8; 32]).unwrap();
        assert!(adding.verify("nicks", &token) && swapped.verify("nicks", &token));
        assert!(adding.verify("nicks", &swapped.token("nicks")));
        assert!(!done.verify("nicks", &token));
        assert!(old.clone().with_verifying(b"short").is_err());
    }

    #[test]
    fn only_the_dashboards_own_origin_passes() {
        assert!(same_origin(None, Some("preview.localhost")));
        assert!(same_origin(
            Some("http://preview.localhost"),
            Some("preview.localhost")
        ));
        assert!(same_origin(
            Some("https://preview.localhost:8443"),
            Some("preview.localhost:8443")
        ));
        assert!(!same_origin(
            Some("http://8000---nicks.preview.localhost"),
            Some("preview.localhost")
        ));
        assert!(!same_origin(Some("null"), Some("preview.localhost")));
        assert!(!same_origin(Some("http://preview.localhost"), None));
    }
}
