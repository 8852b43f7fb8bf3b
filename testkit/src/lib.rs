//! Test support shared by the browser tests of the dashboard and of the local stack: headless
//! Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test.sh` installs; without them a test fails rather than skipping), and the steps a
//! person takes on the dashboard's create form; and the waiting and port helpers every
//! integration test uses.

// Test support: a failed unwrap is a failed test (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

pub use fantoccini;

pub mod app;
pub mod process_group;
pub mod service;

/// Registers each `async fn name(server)` as two tests, `name::on_devcluster` and
/// `name::on_real_apiserver`, running the same body with the server `dev` and `real` give
/// (expressions with absolute paths, e.g. `crate::common::Server::start_dev().await`): tests
/// written once, run against devcluster and against the real API server.
#[macro_export]
macro_rules! on_devcluster_and_real_apiserver {
    (dev: $dev:expr, real: $real:expr; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_devcluster() {
                super::$name($dev).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_real_apiserver() {
                super::$name($real).await
            }
        }
    )*};
}

/// Registers each `async fn name(target)` as one test per target: `written_once!([on_stand_in:
/// expr, on_real_tilt: expr]; a, b)` gives `a::on_stand_in`, `a::on_real_tilt`, `b::…`, each
/// running the same body with what its expression gives. For tests of a stand-in and the real
/// program it stands for, written once (as [`on_devcluster_and_real_apiserver!`] does for the
/// two API servers).
#[macro_export]
macro_rules! written_once {
    ($targets:tt; $($name:ident),* $(,)?) => {$(
        $crate::written_once!(@one $name; $targets);
    )*};
    (@one $name:ident; [$($target:ident: $make:expr),+ $(,)?]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $target() {
                    super::$name($make).await
                }
            )+
        }
    };
}

/// How long any one step may take.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Polls `check` every 25 ms until it gives a value; fails the test after [`DEADLINE`]
/// naming `what`. The one way tests wait for a condition (never a fixed sleep).
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Replaces the file at `path` with `contents` in one step (a new file renamed over it), as
/// editors and kubelet do: a server following the file never reads it half-written. The same
/// shape as `std::fs::write`.
pub fn replace_file(
    path: impl AsRef<std::path::Path>,
    contents: impl AsRef<[u8]>,
) -> std::io::Result<()> {
    let path = path.as_ref();
    let next = path.with_extension("next");
    std::fs::write(&next, contents)?;
    std::fs::rename(&next, path)
}

/// The notes of the Events in `namespace` about object `regarding` with `reason` (what
/// `kubectl describe` shows of them).
pub async fn event_notes(
    client: &kube::Client,
    namespace: &str,
    regarding: &str,
    reason: &str,
) -> Vec<String> {
    kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| {
            event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
                && event.reason.as_deref() == Some(reason)
        })
        .filter_map(|event| event.note)
        .collect()
}

/// A loopback port free at the time of asking (for servers a test must name up front).
///
/// Picked at random below the kernel's ephemeral range: a port the kernel hands out (port 0,
/// or the source port of any outgoing connection) could be taken again by another test's
/// connection before the server binds it, which the busiest tests made happen.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    if ephemeral_low > LOWEST + 1000 {
        let span = u64::from(ephemeral_low - LOWEST);
        for attempt in 0..1000u64 {
            let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
            let port = LOWEST + (random % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A desktop viewport.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// A phone viewport.
pub const PHONE: (u32, u32) = (390, 844);

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver and the Chromium it starts, in a process group of their own: dropping this
/// kills the whole group, so no browser outlives the test (even one that panicked).
struct Driver {
    child: tokio::process::Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver on a port it chooses itself (`--port=0`; it prints the port it got),
    /// so there is no window between picking a free port and binding it.
    async fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (scripts/test.sh does)"
            );
        }
        let mut child = tokio::process::Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        forward(child.stderr.take().unwrap(), "chromedriver stderr");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("chromedriver's output") {
                eprintln!("chromedriver: {line}");
                // "ChromeDriver was started successfully on port 33469."
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    return port.trim().trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .expect("chromedriver says its port in time")
        .expect("chromedriver says which port it listens on");
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("chromedriver: {line}");
            }
        });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`); Chromium and its helpers
        // are in it too. SIGKILL, as kill_on_drop would send to chromedriver alone; the
        // shell's own `kill` (every Debian has /bin/sh, not every one has procps).
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("/bin/sh")
                .args(["-c", "kill -s KILL -- \"-$0\"", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Copies a child's output to the test's stderr (shown when the test fails).
fn forward(output: impl AsyncRead + Unpin + Send + 'static, name: &'static str) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name}: {line}");
        }
    });
}

/// A WebDriver session on the site at `base` (a URL without a trailing slash).
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    base: String,
    screenshots: PathBuf,
    prefix: String,
    // Dropped in this order: the browser is killed before its profile directory goes.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium; screenshots are saved as `target/screenshots/<prefix>-<step>.png`.
    pub async fn start(base: String, prefix: &str) -> Browser {
        let driver = Driver::start().await;
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            // A dialog is left to the test (accept_alert), never dismissed by another command.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    // Small /dev/shm in containers would crash the renderer otherwise.
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        // Plain HTTP to 127.0.0.1: no TLS stack needed.
        let client = tokio::time::timeout(
            DEADLINE,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{}", driver.port)),
        )
        .await
        .expect("Chromium starts in time")
        .expect("a WebDriver session with Chromium");
        let screenshots = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/screenshots");
        std::fs::create_dir_all(&screenshots).unwrap();
        let browser = Browser {
            client,
            base,
            screenshots,
            prefix: prefix.to_string(),
            _driver: driver,
            _profile: profile,
        };
        browser.viewport(DESKTOP).await;
        browser
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (what a screenshot shows): the
    /// window is that much larger than its viewport, even headless.
    pub async fn viewport(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .run("return [window.innerWidth, window.innerHeight]")
            .await;
        let inner = |i: usize| inner[i].as_u64().expect("a size") as u32;
        self.client
            .set_window_size(2 * width - inner(0), 2 * height - inner(1))
            .await
            .unwrap();
        self.until(
            "the window resized",
            &format!("return window.innerWidth === {width} && window.innerHeight === {height}"),
        )
        .await;
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|error| panic!("opening {path}: {error}"));
    }

    /// Saves what the window shows as `target/screenshots/dashboard-<step>.png`.
    pub async fn screenshot(&self, step: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.screenshots.join(format!("{}-{step}.png", self.prefix));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Runs `script` (a function body) in the page.
    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("running {script}: {error}"))
    }

    /// Polls `script` (a function body) until it returns something truthy, and returns that;
    /// fails the test after [`DEADLINE`] with a screenshot and the page's text.
    pub async fn until(&self, what: &str, script: &str) -> Value {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            // An error (the page navigating meanwhile) is "not yet".
            let last = self.client.execute(script, vec![]).await;
            if let Ok(value) = &last
                && truthy(value)
            {
                return value.clone();
            }
            if tokio::time::Instant::now() >= until {
                self.fail(what, &format!("{last:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks what `locator` finds, finding it again when htmx swapped it out meanwhile.
    pub async fn click(&self, what: &str, locator: Locator<'_>) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let clicked = match self.client.find(locator).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return,
                Err(error) if retry(&error) && tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => self.fail(what, &error.to_string()).await,
            }
        }
    }

    /// Fills the create form as a person would: the repository `repo`, then the branch
    /// (leaving the field, which makes htmx refresh the Tiltfile field), then the Tiltfile.
    /// The form's fields may be swapped by htmx (branch and Tiltfile discovery) while this
    /// types, so it waits for htmx to be idle and checks the values, typing again if a swap
    /// replaced them.
    pub async fn fill_create_form(&self, repo: &str, branch: &str, path: &str) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            self.until("the create form, htmx idle", FORM_IDLE).await;
            let field = self.client.find(Locator::Css("#repo")).await.unwrap();
            field.select_by_value(repo).await.unwrap();
            assert_eq!(field.prop("value").await.unwrap().as_deref(), Some(repo));
            // Select all, type over it, then Tab: one `change` event, as a person makes.
            self.type_into(
                "#branch",
                &(Key::Control + "a" + &Key::Null + branch + &Key::Tab),
            )
            .await;
            self.until("the branch's Tiltfiles, htmx idle", FORM_IDLE)
                .await;
            self.type_into("#path", &(Key::Control + "a" + &Key::Null + path))
                .await;
            let filled = self
                .client
                .execute(
                    "return document.querySelector('#branch').value === arguments[0] \
                     && document.querySelector('#path').value === arguments[1]",
                    vec![json!(branch), json!(path)],
                )
                .await;
            if matches!(filled, Ok(Value::Bool(true))) {
                return;
            }
            if tokio::time::Instant::now() >= until {
                self.fail("the create form filled in", &format!("{filled:?}"))
                    .await;
            }
        }
    }

    /// Accepts the confirmation dialog the page opens (a `confirm()`, e.g. htmx's
    /// `hx-confirm`) once it is there, and returns its question.
    pub async fn accept_confirm(&self) -> String {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            match self.client.get_alert_text().await {
                Ok(question) => {
                    self.client
                        .accept_alert()
                        .await
                        .expect("the dialog accepted");
                    return question;
                }
                Err(error) if error.is_no_such_alert() && tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("waiting for the confirm dialog: {error}"),
            }
        }
    }

    pub async fn type_into(&self, css: &str, keys: &str) {
        match self.client.find(Locator::Css(css)).await {
            Ok(field) => {
                // Swapped out meanwhile: the caller checks the values and types again.
                let _ = field.send_keys(keys).await;
            }
            Err(error) if retry(&error) => {}
            Err(error) => panic!("finding {css}: {error}"),
        }
    }

    pub async fn fail(&self, what: &str, last: &str) -> ! {
        if let Ok(png) = self.client.screenshot().await {
            let path = self.screenshots.join(format!("{}-failed.png", self.prefix));
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot: {}", path.display());
        }
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .unwrap_or_default();
        panic!("timed out waiting for {what}; last: {last}; the page says:\n{text}");
    }
}

/// Whether a script's result counts as "yes".
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}

/// Errors a later try may not have: the element was swapped out or is not there yet.
fn retry(error: &CmdError) -> bool {
    error.is_stale_element_reference() || error.is_no_such_element()
}

/// The create form is there and htmx is neither loading nor swapping anything in it.
pub const FORM_IDLE: &str = "return typeof htmx !== 'undefined' \
     && document.querySelector('form.create') !== null \
     && document.querySelector('#create [hx-trigger=\"load\"], #create .htmx-request, \
        #create .htmx-swapping, #create .htmx-settling') === null";

/// The page has not reloaded since [`MARK`] ran: its JavaScript state is still there.
pub const MARK: &str = "window.__ephNoReload = true";
pub const MARKED: &str = "return window.__ephNoReload === true";

/// Runs `binary --help` (with no `EPH_*` value shown) and fails unless its help ends with
/// `expected`: the common flags' section every server prints the same.
pub fn assert_help_ends_with(binary: &str, expected: &str) {
    let output = std::process::Command::new(binary)
        .arg("--help")
        .env_remove("EPH_CONFIG")
        .env_remove("EPH_NAMESPACE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{binary} --help failed");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.ends_with(expected),
        "{help}\n--- expected to end with ---\n{expected}"
    );
}

/// Sends SIGTERM to the process `pid`, as Kubernetes does to stop a pod.
pub fn send_sigterm(pid: u32) {
    send_signal(pid, "TERM");
}

/// Sends signal `name` (`TERM`, `STOP`, `CONT`, `KILL`) to the process `pid`: `STOP` pauses it
/// as a hung node or a long GC pause would, `CONT` lets it run on where it was.
pub fn send_signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}
