//! The `ephctrl` binary as an operator runs it: config file, kubeconfig, listener, flags.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use devcluster::DevCluster;
use ephemerator_core::Phase;
use tokio::process::Command;

/// A devcluster, its kubeconfig and a config file in a temp dir.
struct Setup {
    cluster: DevCluster,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(config_yaml: &str) -> Setup {
        let cluster = cluster().await;
        let dir = tempfile::tempdir().unwrap();
        // The kubeconfig's namespace is the tests' (the binary takes it from there).
        let kubeconfig = devcluster::kubeconfig_yaml(cluster.url())
            .replace("namespace: default", &format!("namespace: {NAMESPACE}"));
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        std::fs::write(dir.path().join("ephemerator.yaml"), config_yaml).unwrap();
        Setup { cluster, dir }
    }

    /// The binary with this config and kubeconfig, its listener on a free port, Tilt on a
    /// closed loopback port.
    fn ephctrl(&self) -> Command {
        self.ephctrl_with_tilt(ephctrl::testing::NO_TILT_URL_TEMPLATE)
    }

    fn ephctrl_with_tilt(&self, tilt_url_template: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ephctrl"));
        command
            .arg("--config")
            .arg(self.dir.path().join("ephemerator.yaml"))
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--tilt-url-template", tilt_url_template])
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST");
        command
    }
}

/// Runs a command that must exit by itself.
async fn exits(mut command: Command) -> Output {
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("ephctrl exits")
        .expect("ephctrl runs");
    assert!(!output.status.success());
    output
}

#[tokio::test]
async fn the_binary_reads_its_config_and_kubeconfig_runs_envs_and_stops_on_sigterm() {
    let setup = Setup::new(CONFIG_YAML).await;
    let client = setup.cluster.client();
    let mut command = setup.ephctrl();
    command.args(["--log-format", "json"]);
    let (mut child, port) = spawn_with_listener(command).await;

    wait_for("/readyz to answer 200", || async {
        let (status, _) = http_get(port, "/readyz").await?;
        status.contains("200").then_some(())
    })
    .await;
    // The namespace came from the kubeconfig.
    create_env(&client, "olga", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "olga", Phase::Ready).await;
    // The gauge counts the controller's cache, which sees the status write a moment later.
    wait_for("ephctrl_envs to count the Ready env", || async {
        let (_, metrics) = http_get(port, "/metrics").await?;
        metrics
            .contains("ephctrl_envs{phase=\"Ready\"} 1")
            .then_some(())
    })
    .await;

    // SIGTERM, as Kubernetes stops a pod: the controller drains and exits cleanly.
    ephemerator_testkit::send_sigterm(child.id().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("ephctrl stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn a_broken_config_file_stops_the_binary_with_its_location() {
    let setup =
        Setup::new("gatewayHost: preview.localhost\nexpiration:\n  defaultTTL: soon\n").await;
    let output = exits(setup.ephctrl()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ephemerator.yaml:3:"), "{stderr}");
    assert!(stderr.contains("expiration.defaultTTL"), "{stderr}");
}

#[tokio::test]
async fn a_tilt_url_template_without_the_env_is_refused_at_start() {
    let setup = Setup::new(CONFIG_YAML).await;
    let output = exits(setup.ephctrl_with_tilt("http://127.0.0.1:10350")).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tilt-url-template"), "{stderr}");
    assert!(stderr.contains("must contain {env}"), "{stderr}");
}

#[tokio::test]
async fn logs_have_no_colour_codes_when_not_on_a_terminal_and_hide_the_webhook() {
    let setup = Setup::new(CONFIG_YAML).await;
    let secret = setup.dir.path().join("webhook-url");
    std::fs::write(
        &secret,
        "https://hooks.example.com/services/T0/B0/SECRET-PATH\n",
    )
    .unwrap();
    let mut command = setup.ephctrl();
    command.arg("--webhook-url-file").arg(&secret);
    command.env("RUST_LOG", "debug");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ephctrl starts");
    let stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    wait_for("ephctrl to list its envs", || {
        let ready = seen.lock().unwrap().contains("ready");
        async move { ready.then_some(()) }
    })
    .await;
    child.kill().await.unwrap();
    reader.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.contains('\u{1b}'), "escape codes in: {seen}");
    assert!(
        !seen.contains("SECRET-PATH"),
        "the webhook's secret logged: {seen}"
    );
}

/// `--help` shows the common flags exactly as the other servers do (README "Running a server").
#[test]
fn help_shows_the_common_flags_as_every_server_does() {
    ephemerator_testkit::assert_help_ends_with(
        env!("CARGO_BIN_EXE_ephctrl"),
        &ephemerator_kit::flags::help(),
    );
}
