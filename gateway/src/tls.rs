//! Optional TLS termination with one (wildcard) certificate for `<gatewayHost>` and
//! `*.<gatewayHost>`, read from PEM files and read again when they change (a renewed
//! cert-manager Secret is swapped into the pod's volume in place). A broken new pair is logged
//! and the old one kept: a bad renewal never takes the gateway down.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// The TLS acceptor of client connections.
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// The certificate chain and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are checked for a change.
    pub check_every: Duration,
}

/// Default of [`TlsFiles::check_every`]: a renewed certificate is in use within seconds,
/// for reading two small files.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Serves the current certificate and replaces it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Stamp, Arc<CertifiedKey>)>,
}

/// A digest of both files' contents: what is compared to notice a change. Contents, not
/// modification times, whose granularity can hide a quick second write; reading two small
/// files every few seconds costs nothing.
type Stamp = Option<[u8; 32]>;

impl ReloadingCert {
    /// Reads the files now; an error says which file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = stamp(&files);
        let key = read_pair(&files, &provider)?;
        Ok(Arc::new(ReloadingCert {
            files,
            provider,
            current: RwLock::new((stamp, Arc::new(key))),
        }))
    }

    /// An acceptor serving this certificate (HTTP/1.1 only).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again if they changed since last time. `Ok(true)` when a new pair is
    /// in use.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.files);
        if now == self.read().0 {
            return Ok(false);
        }
        match read_pair(&self.files, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (now, Arc::new(key));
                Ok(true)
            }
            Err(problem) => {
                // Remember the broken stamp too, so the same broken pair is reported once.
                self.current.write().unwrap_or_else(|p| p.into_inner()).0 = now;
                Err(problem)
            }
        }
    }

    /// Checks the files every [`TlsFiles::check_every`], for ever.
    pub async fn watch(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.files.check_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(problem) => {
                    tracing::error!(%problem, "the new TLS certificate is unusable; keeping the old one")
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Stamp, Arc<CertifiedKey>)> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().1.clone())
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let mut digest = Sha256::new();
    for path in [&files.cert, &files.key] {
        let bytes = std::fs::read(path).ok()?;
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    }
    Some(digest.finalize().into())
}

fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|error| format!("{cert_path}: {error}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{cert_path}: {error}"))?;
    if chain.is_empty() {
        return Err(format!("{cert_path}: no CERTIFICATE block"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|error| format!("{key_path}: {error}"))?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|error| format!("{cert_path} and {key_path}: {error}"))?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn leaf(cert: &ReloadingCert) -> Vec<u8> {
        cert.read().1.cert[0].to_vec()
    }

    #[test]
    fn a_broken_renewal_keeps_the_old_pair_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            check_every: DEFAULT_CHECK_EVERY,
        };
        let (cert, key) = pair("first.test");
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let reloading = ReloadingCert::load(files.clone()).unwrap();
        let first = leaf(&reloading);
        assert_eq!(reloading.reload_if_changed(), Ok(false));

        std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken").unwrap();
        let problem = reloading.reload_if_changed().unwrap_err();
        assert!(problem.contains("tls.crt"), "{problem}");
        assert_eq!(leaf(&reloading), first, "the old pair is still served");

        // A certificate that does not match the key is refused too.
        let (other_cert, _) = pair("other.test");
        std::fs::write(&files.cert, other_cert).unwrap();
        assert!(reloading.reload_if_changed().is_err());
        assert_eq!(leaf(&reloading), first);

        let (cert, key) = pair("second.test");
        std::fs::write(&files.key, key).unwrap();
        std::fs::write(&files.cert, cert).unwrap();
        assert_eq!(reloading.reload_if_changed(), Ok(true));
        assert_ne!(leaf(&reloading), first);
    }

    #[test]
    fn unusable_files_are_named_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("missing.crt"),
            key: dir.path().join("missing.key"),
            check_every: DEFAULT_CHECK_EVERY,
        };
        let problem = ReloadingCert::load(files).unwrap_err();
        assert!(problem.contains("missing.crt"), "{problem}");
    }
}
