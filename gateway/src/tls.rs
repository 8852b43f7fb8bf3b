//! Optional TLS termination with one (wildcard) certificate for `<gatewayHost>` and
//! `*.<gatewayHost>`, read from PEM files and read again when they change (a renewed
//! cert-manager Secret is swapped into the pod's volume in place). A broken new pair is logged
//! and the old one kept: a bad renewal never takes the gateway down.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The TLS acceptor of client connections.
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// The certificate chain and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Serves the current certificate and replaces it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Stamp, Arc<CertifiedKey>)>,
}

/// Modification times and sizes of both files: what is compared to notice a change.
type Stamp = Option<[(SystemTime, u64); 2]>;

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

    /// Checks the files every `interval`, for ever.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
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
    let one = |path: &PathBuf| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
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
