//! The sample repository of local runs, served over git's smart HTTP on loopback, so that the
//! dashboard's branch and Tiltfile discovery really works offline.
//!
//! [`ensure_sample_repo`] creates `sample.git` (branches `main` and `feature/login`, Tiltfiles
//! at the root, in `services/api/` and, on the feature branch, in `deploy/staging/`) once;
//! [`serve`] runs `git http-backend` as a CGI program for each request, as a web server would.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// The sample repository's name under the git root (its URL is `http://HOST/sample.git`).
pub const SAMPLE_REPO: &str = "sample.git";
/// Largest request body a git client sends here (a fetch negotiation).
const MAX_REQUEST: usize = 1 << 20;

/// Runs git with no system or user configuration, in `dir`.
async fn git(dir: &Path, home: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("git")
        .args([
            "-c",
            "user.name=ephemerator",
            "-c",
            "user.email=local@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("running git (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Creates the sample repository under `root` unless it is there already; returns its path.
pub async fn ensure_sample_repo(root: &Path) -> anyhow::Result<PathBuf> {
    let bare = root.join(SAMPLE_REPO);
    // Made again when an earlier version of it is there (its Tiltfiles published no link).
    let marker = bare.join(SAMPLE_VERSION_FILE);
    if std::fs::read_to_string(&marker).is_ok_and(|version| version == SAMPLE_VERSION) {
        return Ok(bare);
    }
    let _ = std::fs::remove_dir_all(&bare);
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let work = root.join("sample-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("services/api"))?;
    std::fs::write(work.join("Tiltfile"), sample_tiltfile("web"))?;
    std::fs::write(work.join("services/api/Tiltfile"), sample_tiltfile("api"))?;
    std::fs::write(
        work.join("README.md"),
        "A sample app for ephemerator's local run.\n",
    )?;
    git(&work, root, &["init", "--quiet"]).await?;
    git(&work, root, &["add", "."]).await?;
    git(&work, root, &["commit", "--quiet", "-m", "The sample app"]).await?;
    git(&work, root, &["checkout", "--quiet", "-b", "feature/login"]).await?;
    std::fs::create_dir_all(work.join("deploy/staging"))?;
    std::fs::write(
        work.join("deploy/staging/Tiltfile"),
        sample_tiltfile("staging"),
    )?;
    git(&work, root, &["add", "."]).await?;
    git(
        &work,
        root,
        &["commit", "--quiet", "-m", "A staging Tiltfile"],
    )
    .await?;
    git(
        root,
        root,
        &["clone", "--quiet", "--bare", "sample-work", SAMPLE_REPO],
    )
    .await?;
    std::fs::remove_dir_all(&work)?;
    std::fs::write(&marker, SAMPLE_VERSION)?;
    Ok(bare)
}

/// Which version of the sample repository is in a data directory.
const SAMPLE_VERSION_FILE: &str = "ephemerator-sample-version";
const SAMPLE_VERSION: &str = "2";

/// A Tiltfile of the sample app: one `local_resource` serving its checkout over HTTP, linked,
/// so that a real Tilt runs it with no cluster and ephctrl publishes its port. The port is
/// `EPH_APP_PORT`, which the local run's real runners give each env (8000 elsewhere).
pub fn sample_tiltfile(what: &str) -> String {
    format!(
        "# The {what} of the sample app: this checkout over HTTP.\n\
         port = os.getenv('EPH_APP_PORT', '8000')\n\
         local_resource(\n    '{what}',\n    \
         serve_cmd='python3 -m http.server %s --bind 127.0.0.1' % port,\n    \
         links=['http://localhost:%s/' % port],\n    \
         readiness_probe=probe(period_secs=1, http_get=http_get_action(port=int(port), host='127.0.0.1')),\n)\n"
    )
}

/// Serves the repositories under `root` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, root: PathBuf) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let root = root.clone();
                async move {
                    Ok::<_, Infallible>(cgi(&root, request).await.unwrap_or_else(|error| {
                        tracing::warn!(%error, "the sample git host failed a request");
                        let mut response =
                            Response::new(Full::new(Bytes::from(format!("{error}\n"))));
                        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        response
                    }))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request through `git http-backend`, run as a CGI program for the repositories under
/// `root` (also what the dashboard's discovery tests serve their repositories with).
pub async fn cgi(root: &Path, request: Request<Incoming>) -> anyhow::Result<Response<Full<Bytes>>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("REQUEST_METHOD", request.method().as_str())
        .env("PATH_INFO", request.uri().path())
        .env("QUERY_STRING", request.uri().query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let body = http_body_util::Limited::new(request.into_body(), MAX_REQUEST)
        .collect()
        .await
        .map_err(|error| anyhow::anyhow!("reading the request: {error}"))?
        .to_bytes();
    let mut child = command.spawn().context("running git http-backend")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).await?;
    }
    let output = child.wait_with_output().await?;
    let raw = output.stdout;
    let (head_end, gap) = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .context("git http-backend wrote no CGI headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut response = Response::builder();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value
                .trim()
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    Ok(response.body(Full::new(Bytes::copy_from_slice(&raw[head_end + gap..])))?)
}
