//! The `ephdash` binary as an operator runs it: flags, kubeconfig, a listener on port 0 logged,
//! one JSON log line per request naming the user and the env, and a graceful SIGTERM.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devcluster::DevCluster;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(60);

async fn get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: preview.localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_binary_serves_logs_each_request_and_stops_on_sigterm() {
    let cluster = DevCluster::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephdash"))
        .arg("--config")
        .arg(root.join("deploy/base/ephemerator.yaml"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--auth-fake-user",
            "nicks",
        ])
        .arg("--templates")
        .arg(root.join("templates"))
        .arg("--assets")
        .arg(root.join("assets"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ephdash starts");
    let lines = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut stdout = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                assert!(!line.contains('\u{1b}'), "colour codes in a log: {line}");
                if let Ok(entry) = serde_json::from_str(&line) {
                    lines.lock().unwrap().push(entry);
                }
            }
        })
    };
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .lock()
            .unwrap()
            .iter()
            .find(|entry| pred(entry))
            .cloned()
    };
    let until = tokio::time::Instant::now() + DEADLINE;
    let (addr, admin) = loop {
        if let Some(entry) = find(&|e| e["fields"]["message"] == "serving the dashboard") {
            break (
                entry["fields"]["addr"].as_str().unwrap().to_string(),
                entry["fields"]["admin"].as_str().unwrap().to_string(),
            );
        }
        assert!(tokio::time::Instant::now() < until, "no listener logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    loop {
        if get(&admin, "/readyz").await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "never ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(get(&addr, "/envs/nope").await.starts_with("HTTP/1.1 404"));
    let logged = loop {
        let entry = find(&|e| e["fields"]["message"] == "request" && e["span"]["env"] == "nope");
        if let Some(entry) = entry {
            break entry;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no request log line: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(logged["span"]["user"], "nicks", "{logged}");
    assert_eq!(logged["fields"]["status"], 404, "{logged}");

    ephemerator_testkit::send_sigterm(child.id().unwrap());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("ephdash stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    reader.abort();
}

#[tokio::test]
async fn a_bad_identity_from_is_refused_at_start_saying_which_headers_there_are() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_ephdash"))
        .arg("--config")
        .arg(root.join("deploy/base/ephemerator.yaml"))
        .args(["--identity-from", "preferred-username,login"])
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, out)
        .await
        .expect("ephdash exits")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--identity-from")
            && stderr.contains(
                "\"login\" is not an identity header: use preferred-username, user or email"
            ),
        "{stderr}"
    );
}

/// `--help` shows the common flags exactly as the other servers do (README "Running a server").
#[test]
fn help_shows_the_common_flags_as_every_server_does() {
    ephemerator_testkit::assert_help_ends_with(
        env!("CARGO_BIN_EXE_ephdash"),
        &ephemerator_kit::flags::help(),
    );
}
