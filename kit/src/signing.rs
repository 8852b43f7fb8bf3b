//! Signing keys and the tokens made with them: the gateway's env cookies and one-time codes,
//! and share links, which the dashboard makes and the gateway checks. Every replica of both
//! reads the same keys from a mounted Secret (`--signing-keys DIR`), so any of them can check
//! what another signed.
//!
//! The directory holds `current` and, optionally, `previous`: each at least 32 bytes (e.g.
//! `openssl rand -base64 48`; surrounding whitespace is ignored). Tokens are signed with
//! `current` and checked with either, so rotating is: move `current` to `previous`, put a new
//! `current`. Cookies and links signed before keep working until the next rotation. The files
//! are read again every [`CHECK_EVERY`]; a directory that no longer loads keeps the keys in
//! force (and says so in the log).
//!
//! A token is `KEYID.BODY.MAC`: the key's id (8 hex characters of its SHA-256), the URL-safe
//! base64 of `{"e": expiry (Unix seconds), "b": body}`, and the HMAC-SHA-256 of the purpose,
//! the key id and the body. The purpose ("env-cookie", "code", ...) is signed too, so a token
//! made for one use is never accepted for another.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// How often the key files are read again.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// The shortest key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// The longest token [`SigningKeys::open`] looks at: more is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The key files of the directory.
pub const CURRENT_FILE: &str = "current";
/// See [`CURRENT_FILE`].
pub const PREVIOUS_FILE: &str = "previous";

type HmacSha256 = Hmac<Sha256>;

/// The `--signing-keys` flag of the servers that sign or check tokens (ephdash, ephgateway).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SigningFlags {
    /// Directory of the signing keys (`current`, and `previous` while rotating): the mounted
    /// Secret every dashboard and gateway replica shares.
    #[arg(long = "signing-keys", env = "EPH_SIGNING_KEYS")]
    pub signing_keys: Option<PathBuf>,
}

struct Key {
    id: String,
    secret: Vec<u8>,
}

impl Key {
    fn new(secret: &[u8], file: &str) -> Result<Key, String> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{file}: {} bytes, at least {MIN_KEY_BYTES} are needed",
                secret.len()
            ));
        }
        let digest = Sha256::digest(secret);
        Ok(Key {
            id: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
            secret: secret.to_vec(),
        })
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> HmacSha256 {
        // Any key length is accepted by HMAC.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(self.id.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac
    }
}

/// `Hmac::new_from_slice` fails for no key length; kept out of line so no caller unwraps.
#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC accepts keys of every length")
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token (or too long to be one).
    #[error("not a token")]
    Malformed,
    /// Signed with a key neither `current` nor `previous` (two rotations ago, or forged).
    #[error("signed with an unknown key")]
    UnknownKey,
    /// The signature does not match (tampered, or made for another purpose).
    #[error("the signature does not match")]
    BadSignature,
    /// Signed, but past its expiry.
    #[error("expired")]
    Expired,
}

#[derive(Serialize)]
struct SealedOut<'a, T> {
    e: u64,
    b: &'a T,
}

#[derive(serde::Deserialize)]
struct SealedIn<T> {
    e: u64,
    b: T,
}

/// The keys in force.
pub struct SigningKeys {
    current: Key,
    previous: Option<Key>,
}

impl std::fmt::Debug for SigningKeys {
    /// Key ids only: secrets are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|key| &key.id))
            .finish()
    }
}

impl SigningKeys {
    /// Keys from their secrets.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Result<SigningKeys, String> {
        Ok(SigningKeys {
            current: Key::new(current, CURRENT_FILE)?,
            previous: previous
                .map(|secret| Key::new(secret, PREVIOUS_FILE))
                .transpose()?,
        })
    }

    /// A random key, for one process that both signs and checks (tests, local runs).
    pub fn random() -> Result<SigningKeys, String> {
        let mut secret = [0u8; 48];
        getrandom::fill(&mut secret).map_err(|error| format!("no randomness: {error}"))?;
        SigningKeys::new(&secret, None)
    }

    /// Reads `dir/current` and, if there, `dir/previous`.
    pub fn load(dir: &Path) -> Result<SigningKeys, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(format!("{}: {error}", path.display())),
            }
        };
        let current = read(CURRENT_FILE)?
            .ok_or_else(|| format!("{}: missing", dir.join(CURRENT_FILE).display()))?;
        let previous = read(PREVIOUS_FILE)?;
        SigningKeys::new(&current, previous.as_deref())
            .map_err(|problem| format!("{}/{problem}", dir.display()))
    }

    /// The id of the key that signs.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    fn key(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key.id == id)
    }

    /// A token for `purpose` carrying `body` until `expires` (Unix seconds).
    pub fn seal<T: Serialize>(&self, purpose: &str, expires: u64, body: &T) -> String {
        let json = serde_json::to_vec(&SealedOut {
            e: expires,
            b: body,
        })
        .unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let mac = self
            .current
            .mac(purpose, body.as_bytes())
            .finalize()
            .into_bytes();
        format!("{}.{body}.{}", self.current.id, URL_SAFE_NO_PAD.encode(mac))
    }

    /// The body of a token made by [`seal`](Self::seal) for `purpose`, if it verifies with a
    /// key in force and has not expired at `now` (Unix seconds).
    pub fn open<T: DeserializeOwned>(
        &self,
        purpose: &str,
        token: &str,
        now: u64,
    ) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(id), Some(body), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let key = self.key(id).ok_or(TokenError::UnknownKey)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        key.mac(purpose, body.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed)?;
        let sealed: SealedIn<T> =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now >= sealed.e {
            return Err(TokenError::Expired);
        }
        Ok(sealed.b)
    }

    /// A short signature of `data` for `purpose` (`KEYID.MAC`, the MAC cut to 128 bits), for
    /// tokens whose content the checker already knows (a share link: the env's UID and the
    /// link's id).
    pub fn tag(&self, purpose: &str, data: &[u8]) -> String {
        let mac = self.current.mac(purpose, data).finalize().into_bytes();
        format!("{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(&mac[..16]))
    }

    /// Whether `tag` is [`tag`](Self::tag) of `data` for `purpose` under a key in force.
    pub fn verify_tag(&self, purpose: &str, data: &[u8], tag: &str) -> bool {
        let Some((id, mac)) = tag.split_once('.') else {
            return false;
        };
        let (Some(key), Ok(mac)) = (self.key(id), URL_SAFE_NO_PAD.decode(mac)) else {
            return false;
        };
        mac.len() == 16 && key.mac(purpose, data).verify_truncated_left(&mac).is_ok()
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// `bytes` random bytes in URL-safe base64 (ids, nonces). `None` only if the operating
/// system has no randomness to give.
pub fn random_token(bytes: usize) -> Option<String> {
    let mut buffer = vec![0; bytes];
    getrandom::fill(&mut buffer).ok()?;
    Some(URL_SAFE_NO_PAD.encode(buffer))
}

/// The URL-safe base64 of the SHA-256 of `text` (a nonce's stand-in in a URL).
pub fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// The keys in force, read again as the files change. Cheap to clone.
#[derive(Clone)]
pub struct LiveKeys {
    keys: Arc<RwLock<Arc<SigningKeys>>>,
    dir: Option<PathBuf>,
    every: Duration,
}

impl LiveKeys {
    /// Loads the keys of `dir`, read again every [`CHECK_EVERY`] once [`watch`](Self::watch)
    /// runs.
    pub fn load(dir: &Path) -> Result<LiveKeys, String> {
        LiveKeys::load_every(dir, CHECK_EVERY)
    }

    /// Loads the keys of `dir`, read again every `every`.
    pub fn load_every(dir: &Path, every: Duration) -> Result<LiveKeys, String> {
        let keys = SigningKeys::load(dir)?;
        Ok(LiveKeys {
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            dir: Some(dir.to_path_buf()),
            every,
        })
    }

    /// Keys that never change (tests, local runs).
    pub fn fixed(keys: SigningKeys) -> LiveKeys {
        LiveKeys {
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            dir: None,
            every: CHECK_EVERY,
        }
    }

    /// The keys in force.
    pub fn current(&self) -> Arc<SigningKeys> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the files again every [`CHECK_EVERY`] (or as loaded), forever; spawn it.
    pub async fn watch(self) {
        let Some(dir) = self.dir.clone() else {
            return;
        };
        let mut last_problem = None;
        loop {
            tokio::time::sleep(self.every).await;
            match SigningKeys::load(&dir) {
                Ok(keys) => {
                    last_problem = None;
                    let now = self.current();
                    let changed = now.current.secret != keys.current.secret
                        || now.previous.as_ref().map(|k| &k.secret)
                            != keys.previous.as_ref().map(|k| &k.secret);
                    if changed {
                        tracing::info!(
                            current = %keys.current.id,
                            previous = ?keys.previous.as_ref().map(|k| &k.id),
                            "signing keys changed"
                        );
                        *self
                            .keys
                            .write()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                    }
                }
                Err(problem) => {
                    if last_problem.as_ref() != Some(&problem) {
                        tracing::error!(%problem, "the signing keys no longer load; the ones in force stay");
                    }
                    last_problem = Some(problem);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef-a";
    const B: &[u8] = b"0123456789abcdef0123456789abcdef-b";
    const C: &[u8] = b"0123456789abcdef0123456789abcdef-c";

    #[test]
    fn a_sealed_token_opens_for_its_purpose_until_it_expires() {
        let keys = SigningKeys::new(A, None).unwrap();
        let token = keys.seal("code", 100, &("env-uid", 8000));
        assert_eq!(
            keys.open("code", &token, 99),
            Ok(("env-uid".to_string(), 8000))
        );
        assert_eq!(
            keys.open::<(String, u16)>("code", &token, 100),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys.open::<(String, u16)>("env-cookie", &token, 99),
            Err(TokenError::BadSignature),
            "made for another use"
        );
        // Tampering with any part breaks it.
        let (id, rest) = token.split_once('.').unwrap();
        let (body, mac) = rest.split_once('.').unwrap();
        let forged = keys.seal("code", 100, &("other-uid", 8000));
        let forged_body = forged.split('.').nth(1).unwrap();
        for bad in [
            format!("{id}.{forged_body}.{mac}"),
            format!("{id}.{body}.{}", &mac[1..]),
            format!("00000000.{body}.{mac}"),
            format!("{id}.{body}"),
            format!("{token}."),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(
                keys.open::<(String, u16)>("code", &bad, 99).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            keys.open::<(String, u16)>("code", &format!("00000000.{body}.{mac}"), 99),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn tokens_survive_one_rotation_and_not_two() {
        let before = SigningKeys::new(A, None).unwrap();
        let token = before.seal("env-cookie", 100, &"jane");
        let tag = before.tag("share-link", b"uid\0id");
        let rotated = SigningKeys::new(B, Some(A)).unwrap();
        assert_eq!(
            rotated.open("env-cookie", &token, 1),
            Ok("jane".to_string())
        );
        assert!(rotated.verify_tag("share-link", b"uid\0id", &tag));
        assert!(!rotated.verify_tag("share-link", b"uid\0other", &tag));
        assert!(!rotated.verify_tag("code", b"uid\0id", &tag));
        // New tokens are signed with the new key.
        assert_ne!(rotated.current_id(), before.current_id());
        assert!(
            rotated
                .tag("share-link", b"uid\0id")
                .starts_with(rotated.current_id())
        );
        let twice = SigningKeys::new(C, Some(B)).unwrap();
        assert_eq!(
            twice.open::<String>("env-cookie", &token, 1),
            Err(TokenError::UnknownKey)
        );
        assert!(!twice.verify_tag("share-link", b"uid\0id", &tag));
    }

    #[tokio::test]
    async fn a_rotation_in_the_directory_takes_effect_and_old_tokens_still_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("current"), A).unwrap();
        let live = LiveKeys::load_every(dir.path(), Duration::from_millis(20)).unwrap();
        let watching = tokio::spawn(live.clone().watch());
        let before = live.current().seal("env-pass", u64::MAX, &"jane");
        // Rotated as the README says: the old key is the previous one.
        std::fs::write(dir.path().join("previous"), A).unwrap();
        std::fs::write(dir.path().join("current"), B).unwrap();
        let rotated = SigningKeys::new(B, None).unwrap().current_id().to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while live.current().current_id() != rotated {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the rotation was not read"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            live.current().open("env-pass", &before, 1),
            Ok("jane".to_string())
        );
        watching.abort();
    }

    #[test]
    fn keys_load_from_a_directory_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let problem = SigningKeys::load(dir.path()).unwrap_err();
        assert!(problem.ends_with("current: missing"), "{problem}");
        std::fs::write(dir.path().join("current"), "short\n").unwrap();
        let problem = SigningKeys::load(dir.path()).unwrap_err();
        assert!(
            problem.contains("current: 5 bytes, at least 32"),
            "{problem}"
        );
        std::fs::write(dir.path().join("current"), [A, b"\n"].concat()).unwrap();
        let keys = SigningKeys::load(dir.path()).unwrap();
        assert_eq!(
            keys.current_id(),
            SigningKeys::new(A, None).unwrap().current_id()
        );
        assert!(
            !format!("{keys:?}").contains("0123456789"),
            "no secret in Debug"
        );
    }
}
