//! The `ephgateway` binary as an operator runs it: flags, kubeconfig, listeners on port 0
//! logged, the admin listener, a clear refusal of bad flags, and a graceful SIGTERM.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devcluster::DevCluster;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(60);

async fn get(addr: &str, host: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/ephemerator.yaml")
}

#[tokio::test]
async fn bad_flags_are_refused_with_the_reason() {
    for (flag, value, expected) in [
        (
            "--auth",
            "maybe",
            "--auth \"maybe\": use oauth2-proxy or none",
        ),
        ("--upstream-template", "{env}.svc", "must contain {port}"),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ephgateway"));
        command.arg("--config").arg(config()).args([flag, value]);
        if flag != "--auth" {
            command.args(["--auth", "none"]);
        }
        let output = command
            .env("KUBECONFIG", "/nonexistent")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    let cluster = DevCluster::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephgateway"))
        .arg("--config")
        .arg(config())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--auth", "none", "--log-format", "json", "--workers", "2"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ephgateway starts");
    let logged = Arc::new(Mutex::new(None::<(String, String)>));
    let reader = {
        let logged = logged.clone();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut stdout = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == "serving" {
                    let field = |name: &str| entry["fields"][name].as_str().unwrap().to_string();
                    *logged.lock().unwrap() = Some((field("addr"), field("admin")));
                }
            }
        })
    };
    let until = tokio::time::Instant::now() + DEADLINE;
    let (addr, admin) = loop {
        if let Some(addrs) = logged.lock().unwrap().clone() {
            break addrs;
        }
        assert!(tokio::time::Instant::now() < until, "no listeners logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    while !get(&admin, "admin", "/readyz")
        .await
        .starts_with("HTTP/1.1 200")
    {
        assert!(tokio::time::Instant::now() < until, "never ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let gone = get(&addr, "8000---gone.preview.localhost", "/").await;
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    assert!(
        gone.contains("There might have been an environment here once"),
        "{gone}"
    );
    let metrics = get(&admin, "admin", "/metrics").await;
    assert!(metrics.contains("ephgateway_requests_total"), "{metrics}");

    ephemerator_testkit::send_sigterm(child.id().unwrap());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("ephgateway stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    reader.abort();
}

/// `--help` shows the common flags exactly as the other servers do (README "Running a server").
#[test]
fn help_shows_the_common_flags_as_every_server_does() {
    ephemerator_testkit::assert_help_ends_with(
        env!("CARGO_BIN_EXE_ephgateway"),
        &ephemerator_kit::flags::help(),
    );
}
