//! TLS termination: the gateway serves its wildcard certificate for the bare host and env
//! hosts, links and redirects say https, and a renewed certificate is picked up without a
//! restart.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ephgateway::tls::TlsFiles;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for the gateway host and its wildcard: (cert PEM, key PEM, DER).
fn certificate(organisation: &str) -> (String, String, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec![GATEWAY_HOST.to_string(), format!("*.{GATEWAY_HOST}")])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, organisation);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// GET `/echo` on `host` over TLS, trusting only `trusted`. `Err` when the handshake fails.
async fn get_tls(
    addr: std::net::SocketAddr,
    host: &str,
    trusted: &CertificateDer<'static>,
    cookie: &str,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|error| error.to_string())?;
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn the_gateway_terminates_tls_and_picks_up_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert_pem, key_pem, first) = certificate("first");
    std::fs::write(&cert_path, cert_pem).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();

    let cluster = devcluster().await;
    let oauth2 = oauth2_proxy().await;
    let dashboard = env_server().await;
    let mut tls_settings = settings(cluster.client(), Auth::Proxy(oauth2.addr), dashboard.addr);
    tls_settings.tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
        check_every: Duration::from_millis(50),
    });
    let listeners = ephemerator_kit::Listeners::local(true).unwrap();
    let running = ephgateway::start(tls_settings, listeners).expect("the gateway starts");
    let addr = running.addr;

    // The wildcard covers env hosts (there is no env "mia": its page answers, over TLS).
    let env_host = env_host(8000, "mia");
    let answer = get_tls(addr, &env_host, &first, "")
        .await
        .expect("the handshake succeeds");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    // Sign-in redirects say https.
    let answer = get_tls(addr, GATEWAY_HOST, &first, "").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    assert!(
        answer.contains("location: https://preview.localhost/oauth2/sign_in?rd=https%3A%2F%2Fpreview.localhost%2Fecho"),
        "{answer}"
    );
    let dash = get_tls(addr, GATEWAY_HOST, &first, &session("mia"))
        .await
        .unwrap();
    assert!(dash.starts_with("HTTP/1.1 200"), "{dash}");
    assert!(dash.contains("x-forwarded-proto: https"), "{dash}");

    // The renewed pair replaces it without a restart (a broken one is kept out: see the unit
    // tests of `ephgateway::tls`).
    let (cert_pem, key_pem, second) = certificate("second");
    std::fs::write(&key_path, key_pem).unwrap();
    std::fs::write(&cert_path, cert_pem).unwrap();
    wait_for("the renewed certificate", || async {
        get_tls(addr, GATEWAY_HOST, &second, "").await.ok()
    })
    .await;
    assert!(get_tls(addr, GATEWAY_HOST, &first, "").await.is_err());
    running.stop().await;
}
