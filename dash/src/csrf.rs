//! Cross-site request forgery defence for every mutating request: a token bound to the user
//! (an HMAC of the identity under a key every replica shares, so no session state is kept), and,
//! when the browser sends `Origin`, a same-origin check. Env pages live on sibling subdomains of
//! the dashboard, so SameSite cookies alone would not stop them.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key the tokens are signed with.
#[derive(Clone)]
pub struct CsrfKey(Vec<u8>);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

/// Shortest key accepted from a file.
pub const MIN_KEY_BYTES: usize = 32;

impl CsrfKey {
    /// A key from a file's bytes (a mounted Secret); at least [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<CsrfKey, String> {
        let key = bytes.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the CSRF key must be at least {MIN_KEY_BYTES} bytes, got {}",
                key.len()
            ));
        }
        Ok(CsrfKey(key.to_vec()))
    }

    /// A random key for this process only (one replica, or tests).
    pub fn random() -> Result<CsrfKey, String> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|error| format!("no randomness: {error}"))?;
        Ok(CsrfKey(key))
    }

    /// The token of `identity`.
    pub fn token(&self, identity: &str) -> String {
        let mut mac = self.mac();
        mac.update(identity.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `token` is `identity`'s (compared in constant time).
    pub fn verify(&self, identity: &str, token: &str) -> bool {
        let expected = self.token(identity);
        expected.len() == token.len() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"ephdash csrf v1\0");
        mac
    }
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
        let other = CsrfKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!other.verify("nicks", &token));
        assert_eq!(key.token("nicks"), token, "stable: any replica verifies it");
        assert!(CsrfKey::from_bytes(b"short").is_err());
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
