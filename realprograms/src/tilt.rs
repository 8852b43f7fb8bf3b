//! The real Tilt, running `tilt up` as a runner does, but with a local-only Tiltfile: no
//! cluster and no Docker (`local_resource` with `serve_cmd` and `links`). It gets a `HOME` of
//! its own with the runner's token written in advance (Tilt reuses `~/.tilt-dev/token`), no
//! analytics, and a `KUBECONFIG` that names a missing file, so it never finds a cluster.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;

use crate::process::Program;
use crate::{binary, free_port};

/// Longest wait for Tilt's web port to serve its view.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Starts tried when the chosen port was taken meanwhile.
const ATTEMPTS: usize = 3;

/// A running `tilt up`.
pub struct RealTilt {
    program: Program,
    port: u16,
    token: String,
    // Dropped after the program: Tilt stops before its files go.
    dir: tempfile::TempDir,
}

impl RealTilt {
    /// Starts `tilt up` with `tiltfile` (its text) on a free port of 127.0.0.1, with `token`
    /// as the token ephctrl asks with, and waits until its web port serves the view.
    pub async fn start(tiltfile: &str, token: &str) -> anyhow::Result<RealTilt> {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            match Self::start_on(free_port()?, tiltfile, token).await {
                Ok(tilt) => return Ok(tilt),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("tilt up did not start")))
    }

    /// [`RealTilt::start`] on `port`.
    pub async fn start_on(port: u16, tiltfile: &str, token: &str) -> anyhow::Result<RealTilt> {
        let binary = binary("tilt").await?;
        let dir = tempfile::tempdir()?;
        let home = dir.path().join("home");
        let source = dir.path().join("src");
        std::fs::create_dir_all(home.join(".tilt-dev"))?;
        std::fs::create_dir_all(&source)?;
        std::fs::write(home.join(".tilt-dev").join("token"), token)?;
        std::fs::write(source.join("Tiltfile"), tiltfile)?;
        let mut command = Command::new(&binary);
        command
            .args(["up", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-f", "Tiltfile", "--legacy=false", "--stream"])
            .current_dir(&source)
            .env("HOME", &home)
            .env("TILT_DISABLE_ANALYTICS", "1")
            .env("KUBECONFIG", home.join("no-cluster"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("DOCKER_HOST");
        let program = Program::spawn("tilt", command, &dir.path().join("tilt.log"), false)?;
        let mut tilt = RealTilt {
            program,
            port,
            token: token.to_string(),
            dir,
        };
        tilt.wait_serving().await?;
        Ok(tilt)
    }

    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/api/view", self.base_url());
        loop {
            if let Some(status) = self.program.exited() {
                bail!("tilt up exited ({status}); {}", self.program.log_tail());
            }
            if status_of(&url, &self.token)
                .await
                .is_some_and(|status| status == 200)
            {
                return Ok(());
            }
            if started.elapsed() > READY_DEADLINE {
                bail!(
                    "Tilt did not serve {url} within {READY_DEADLINE:?}; {}",
                    self.program.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tilt's web port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The token it was given.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The directory of its Tiltfile (its working directory).
    pub fn source_dir(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    /// Replaces the Tiltfile in one step (written aside, then renamed over it), as an editor
    /// does; Tilt sees the change and loads it again.
    pub fn replace_tiltfile(&self, tiltfile: &str) -> anyhow::Result<()> {
        let path = self.source_dir().join("Tiltfile");
        let next = self.source_dir().join("Tiltfile.next");
        std::fs::write(&next, tiltfile).context("writing the new Tiltfile")?;
        std::fs::rename(&next, &path).context("replacing the Tiltfile")?;
        Ok(())
    }

    /// Runs `tilt ARGS --port PORT` against this Tilt (e.g. `disable web`), as its user would.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(binary("tilt").await?)
            .args(args)
            .args(["--port", &self.port.to_string()])
            .env("HOME", self.dir.path().join("home"))
            .env("TILT_DISABLE_ANALYTICS", "1")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .with_context(|| format!("tilt {args:?} took over a minute"))??;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "tilt {args:?} failed: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(text)
    }

    /// The last lines of its output, for error messages.
    pub fn log_tail(&self) -> String {
        self.program.log_tail()
    }
}

/// A local-only Tiltfile line: resource `name` serving plain HTTP on `port` of 127.0.0.1
/// (Python's `http.server`, which every machine of this project has), linked as
/// `http://localhost:PORT/`, ready once it answers. `--directory` is the Tiltfile's own
/// directory, so every page lists its files.
pub fn http_server_resource(name: &str, port: u16) -> String {
    format!(
        "local_resource('{name}', serve_cmd='python3 -m http.server {port} --bind 127.0.0.1', \
         links=['http://localhost:{port}/'], \
         readiness_probe=probe(period_secs=1, http_get=http_get_action(port={port}, host='127.0.0.1')))\n"
    )
}

/// The status of `GET url` with Tilt's token header, or `None` if nothing answers.
async fn status_of(url: &str, token: &str) -> Option<u16> {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::get(url)
        .header("X-Tilt-Token", token)
        .body(Full::default())
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), http.request(request))
        .await
        .ok()?
        .ok()?;
    Some(response.status().as_u16())
}
