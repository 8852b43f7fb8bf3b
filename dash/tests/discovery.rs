//! The create form's branch and Tiltfile lists, discovered from real git repositories served
//! over smart HTTP on loopback (`git http-backend` behind a small CGI bridge), with the limits
//! that matter: only allow-listed URLs are contacted, no redirect is followed, a silent host
//! costs a bounded time, answers are cached, and the form falls back to typing.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::*;
use ephdash::identity::IdentitySource;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Runs git in `dir`, failing the test on error.
fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A bare repo `app.git` under `root` with three branches and Tiltfiles here and there.
fn make_repo(root: &Path) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for (path, content) in [
        ("Tiltfile", "k8s_yaml('app.yaml')\n"),
        ("deploy/app.tiltfile", "# more\n"),
        ("services/api/Tiltfile", "# api\n"),
        ("README.md", "# app\n"),
        ("docs/Tiltfile.md", "# not a Tiltfile\n"),
    ] {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["branch", "feature/login"]);
    git(&work, &["checkout", "-q", "-b", "release-1.2"]);
    std::fs::create_dir_all(work.join("release")).unwrap();
    std::fs::write(work.join("release/Tiltfile"), "# release\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "release"]);
    let bare = root.join("app.git");
    git(root, &["clone", "-q", "--bare", "work", "app.git"]);
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    git(&bare, &["config", "http.receivepack", "false"]);
}

/// What the stand-in git host saw: request paths.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|path| path.starts_with(prefix))
            .count()
    }
}

/// A git host on 127.0.0.1: `/app.git` is served by `git http-backend`; `/moved.git` redirects
/// to another host; `/silent.git` never answers.
async fn git_host(root: PathBuf) -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let shared = (root, seen.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(answer(&shared.0, &shared.1, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn answer(root: &Path, seen: &Seen, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    seen.0.lock().unwrap().push(path.clone());
    if path.starts_with("/moved.git") {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("http://127.0.0.2:9{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if path.starts_with("/silent.git") {
        std::future::pending::<()>().await;
    }
    ephlocal::git_host::cgi(root, request)
        .await
        .expect("git http-backend answers")
}

fn config(addr: SocketAddr) -> String {
    format!(
        r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: http://{addr}/app.git
    - url: http://{addr}/moved.git
    - url: http://{addr}/silent.git
    - url: http://{addr}/pinned.git
      branches: [stable]
      paths: [ci/Tiltfile]
"#
    )
}

fn options(body: &str, list: &str) -> Vec<String> {
    let start = body
        .find(&format!("<datalist id=\"{list}\">"))
        .unwrap_or_else(|| panic!("no {list} in {body}"));
    let end = start + body[start..].find("</datalist>").unwrap();
    body[start..end]
        .split("<option value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().replace("&#x2F;", "/"))
        .collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    encode_form(pairs)
}

#[tokio::test]
async fn branches_then_tiltfiles_come_from_the_repository() {
    let root = tempfile::tempdir().unwrap();
    make_repo(root.path());
    let (addr, seen) = git_host(root.path().to_path_buf()).await;
    let dash = Dash::start_with(&config(addr), IdentitySource::Fake("nicks".into())).await;
    let repo = format!("http://{addr}/app.git");

    let answer = dash
        .get(
            &format!("/form/branches?{}", query(&[("repo", &repo)])),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        options(&answer.body, "branch-options"),
        vec!["main", "feature/login", "release-1.2"],
        "main first"
    );
    // The Tiltfiles of the first branch come along, out of band.
    assert!(answer.body.contains("hx-swap-oob=\"true\""));
    assert_eq!(
        options(&answer.body, "path-options"),
        vec!["Tiltfile", "deploy/app.tiltfile", "services/api/Tiltfile"]
    );
    let paths = dash
        .get(
            &format!(
                "/form/paths?{}",
                query(&[("repo", &repo), ("branch", "release-1.2")])
            ),
            None,
        )
        .await;
    assert!(
        options(&paths.body, "path-options").contains(&"release/Tiltfile".to_string()),
        "{}",
        paths.body
    );

    // Cached: asking again contacts the host no more.
    let before = seen.count("/app.git");
    dash.get(
        &format!("/form/branches?{}", query(&[("repo", &repo)])),
        None,
    )
    .await;
    assert_eq!(seen.count("/app.git"), before);
}

#[tokio::test]
async fn only_allow_listed_repos_are_contacted_and_nothing_is_injected() {
    let root = tempfile::tempdir().unwrap();
    make_repo(root.path());
    let (addr, seen) = git_host(root.path().to_path_buf()).await;
    let dash = Dash::start_with(&config(addr), IdentitySource::Fake("nicks".into())).await;

    let typed = format!("http://{addr}/app.git/../secret.git");
    let refused = dash
        .get(
            &format!("/form/branches?{}", query(&[("repo", &typed)])),
            None,
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("not on the allow-list"));
    // A branch that would be a git option is no branch: no git call at all.
    let marker = root.path().join("pwned");
    let injected = format!("--upload-pack=touch {}", marker.display());
    let repo = format!("http://{addr}/app.git");
    let answer = dash
        .get(
            &format!(
                "/form/paths?{}",
                query(&[("repo", &repo), ("branch", &injected)])
            ),
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert!(options(&answer.body, "path-options").is_empty());
    assert!(!marker.exists());
    // Listed branches and paths of an entry are used as they are: no contact.
    let pinned = format!("http://{addr}/pinned.git");
    let answer = dash
        .get(
            &format!("/form/branches?{}", query(&[("repo", &pinned)])),
            None,
        )
        .await;
    assert_eq!(options(&answer.body, "branch-options"), vec!["stable"]);
    assert_eq!(options(&answer.body, "path-options"), vec!["ci/Tiltfile"]);
    assert_eq!(
        seen.count("/"),
        0,
        "the git host saw: {:?}",
        seen.0.lock().unwrap()
    );
}

#[tokio::test]
async fn a_redirecting_or_silent_host_falls_back_to_typing() {
    let root = tempfile::tempdir().unwrap();
    make_repo(root.path());
    let (addr, seen) = git_host(root.path().to_path_buf()).await;
    let dash = Dash::start_with(&config(addr), IdentitySource::Fake("nicks".into())).await;

    let moved = format!("http://{addr}/moved.git");
    let answer = dash
        .get(
            &format!("/form/branches?{}", query(&[("repo", &moved)])),
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert!(options(&answer.body, "branch-options").is_empty());
    assert!(
        answer.body.contains("Could not list the branches"),
        "{}",
        answer.body
    );
    assert_eq!(
        seen.count("/moved.git"),
        1,
        "asked once, the redirect not followed"
    );

    let silent = format!("http://{addr}/silent.git");
    let started = std::time::Instant::now();
    let answer = dash
        .get(
            &format!("/form/branches?{}", query(&[("repo", &silent)])),
            None,
        )
        .await;
    assert!(
        answer.body.contains("did not answer within"),
        "{}",
        answer.body
    );
    assert!(started.elapsed() < DEADLINE);
    // The field is still a plain text field that takes a typed branch.
    assert!(answer.body.contains("<input id=\"branch\" name=\"branch\""));
}

/// The Tiltfile lookups of `user` for `branches` of the silent repo, asked all at once.
async fn ask_at_once(
    dash: &Dash,
    addr: SocketAddr,
    user: &str,
    branches: &[String],
) -> Vec<Answer> {
    let silent = format!("http://{addr}/silent.git");
    futures::future::join_all(branches.iter().map(|branch| {
        let path = format!(
            "/form/paths?{}",
            query(&[("repo", &silent), ("branch", branch)])
        );
        async move { dash.get(&path, Some(user)).await }
    }))
    .await
}

fn saying(answers: &[Answer], text: &str) -> usize {
    answers.iter().filter(|a| a.body.contains(text)).count()
}

#[tokio::test]
async fn lookups_are_bounded_per_person_and_per_server_and_shared_when_identical() {
    let root = tempfile::tempdir().unwrap();
    make_repo(root.path());
    // A host that never answers: every git call it gets runs until the discovery timeout, so
    // every call asked for at once is running at once.
    let (addr, seen) = git_host(root.path().to_path_buf()).await;
    let dash = Dash::start_with(&config(addr), IdentitySource::AuthRequest).await;
    const TIMED_OUT: &str = "did not answer within";

    // One person, 40 branches at once: two git calls, and 38 answers at once that say why.
    let branches: Vec<String> = (0..40).map(|i| format!("one-{i}")).collect();
    let answers = ask_at_once(&dash, addr, "nicks", &branches).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert_eq!(saying(&answers, TIMED_OUT), 2);
    assert_eq!(
        saying(
            &answers,
            "you are running your most lookups at once; try again in a moment"
        ),
        38,
        "{}",
        answers[39].body
    );
    assert_eq!(seen.count("/silent.git"), 2, "git calls made");

    // Ten people, the same branch at once: one git call, the same answer for all.
    let same = vec!["shared".to_string()];
    let answers = futures::future::join_all((0..10).map(|i| {
        let same = same.clone();
        let dash = &dash;
        async move { ask_at_once(dash, addr, &format!("user-{i}"), &same).await }
    }))
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    assert_eq!(saying(&answers, TIMED_OUT), 10);
    assert_eq!(seen.count("/silent.git"), 3, "one more git call");

    // Three people, two branches each: four git calls run in the server at most.
    let answers = futures::future::join_all(["ann", "bob", "cy"].map(|user| {
        let dash = &dash;
        async move {
            let branches = vec![format!("{user}-1"), format!("{user}-2")];
            ask_at_once(dash, addr, user, &branches).await
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    assert_eq!(saying(&answers, TIMED_OUT), 4);
    assert_eq!(
        saying(&answers, "the server is running its most lookups at once"),
        2
    );
    assert_eq!(seen.count("/silent.git"), 7);

    // The refusals were not remembered: asked again alone, a refused branch is looked up.
    let refused = branches[39].clone();
    let again = ask_at_once(&dash, addr, "nicks", &[refused]).await;
    assert_eq!(saying(&again, TIMED_OUT), 1);
}
