//! `ephlocal` as the README runs it: it prints the URL to open, serves it, and Ctrl-C (SIGINT)
//! stops everything, leaving nothing listening.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use ephemerator_testkit::{DEADLINE, free_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

#[tokio::test]
async fn it_prints_the_url_serves_it_and_ctrl_c_stops_everything() {
    let data = tempfile::tempdir().unwrap();
    let (port, tilt, app, git) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephlocal"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--port", &port.to_string()])
        .args([
            "--tilt-port",
            &tilt.to_string(),
            "--app-port",
            &app.to_string(),
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ephlocal starts");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("ephemerator is running: open ") {
                return url.to_string();
            }
        }
        panic!("ephlocal ended without printing its URL")
    })
    .await
    .expect("the URL is printed");
    assert_eq!(url, format!("http://preview.localhost:{port}/"));

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request =
        format!("GET / HTTP/1.1\r\nHost: preview.localhost:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("dev@example.com"), "{page}");

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("ephlocal stops after Ctrl-C")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    for port in [port, tilt, app, git] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still listening"
        );
    }
    assert!(data.path().join("kubeconfig").exists());
}
