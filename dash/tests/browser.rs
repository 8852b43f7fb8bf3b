//! ephdash in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! the dashboard, a devcluster and ephctrl in-process. One user creates an env, watches its
//! phase reach Ready without a reload (htmx), reads its setup logs, extends it and deletes it
//! (accepting the confirm dialog); every step leaves a screenshot in
//! `target/screenshots/dashboard-<step>.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them); without
//! them the test fails rather than skipping.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use ephdash::identity::IdentitySource;
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The repo entry lists its branches and Tiltfiles, so the form offers them without asking
/// any git host (tests send nothing off this machine).
const BROWSER_CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: https://github.com/tilt-dev/tilt-example-html
      branches: [main, develop]
      paths: [0-base/Tiltfile, 1-measured/Tiltfile]
expiration: {defaultTTL: 15m, extendBy: 15m, maxLifetime: 1h}
maxEnvsPerUser: 1
"#;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The env the fake user's create makes (named after its owner).
const ENV: &str = "nicks";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

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

/// A WebDriver session on the dashboard at `base`.
struct Browser {
    client: Client,
    base: String,
    screenshots: PathBuf,
    // Dropped in this order: the browser is killed before its profile directory goes.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: String) -> Browser {
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
            .parent()
            .unwrap()
            .join("target/screenshots");
        std::fs::create_dir_all(&screenshots).unwrap();
        let browser = Browser {
            client,
            base,
            screenshots,
            _driver: driver,
            _profile: profile,
        };
        browser.viewport(DESKTOP).await;
        browser
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (what a screenshot shows): the
    /// window is that much larger than its viewport, even headless.
    async fn viewport(&self, (width, height): (u32, u32)) {
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

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|error| panic!("opening {path}: {error}"));
    }

    /// Saves what the window shows as `target/screenshots/dashboard-<step>.png`.
    async fn screenshot(&self, step: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.screenshots.join(format!("dashboard-{step}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Runs `script` (a function body) in the page.
    async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("running {script}: {error}"))
    }

    /// Polls `script` (a function body) until it returns something truthy, and returns that;
    /// fails the test after [`DEADLINE`] with a screenshot and the page's text.
    async fn until(&self, what: &str, script: &str) -> Value {
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
    async fn click(&self, what: &str, locator: Locator<'_>) {
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

    /// Fills the create form as a person would: the first repository, then the branch
    /// (leaving the field, which makes htmx refresh the Tiltfile field), then the Tiltfile.
    /// The form's fields may be swapped by htmx (branch and Tiltfile discovery) while this
    /// types, so it waits for htmx to be idle and checks the values, typing again if a swap
    /// replaced them.
    async fn fill_create_form(&self, branch: &str, path: &str) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            self.until("the create form, htmx idle", FORM_IDLE).await;
            let repo = self.client.find(Locator::Css("#repo")).await.unwrap();
            repo.select_by_index(0).await.unwrap();
            assert_eq!(
                repo.prop("value").await.unwrap().as_deref(),
                Some(HTML_REPO)
            );
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

    async fn type_into(&self, css: &str, keys: &str) {
        match self.client.find(Locator::Css(css)).await {
            Ok(field) => {
                // Swapped out meanwhile: the caller checks the values and types again.
                let _ = field.send_keys(keys).await;
            }
            Err(error) if retry(&error) => {}
            Err(error) => panic!("finding {css}: {error}"),
        }
    }

    async fn fail(&self, what: &str, last: &str) -> ! {
        if let Ok(png) = self.client.screenshot().await {
            let path = self.screenshots.join("dashboard-failed.png");
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

fn truthy(value: &Value) -> bool {
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
const FORM_IDLE: &str = "return typeof htmx !== 'undefined' \
     && document.querySelector('form.create') !== null \
     && document.querySelector('#create [hx-trigger=\"load\"], #create .htmx-request, \
        #create .htmx-swapping, #create .htmx-settling') === null";

/// The page has not reloaded since [`MARK`] ran: its JavaScript state is still there.
const MARK: &str = "window.__ephNoReload = true";
const MARKED: &str = "return window.__ephNoReload === true";

#[tokio::test]
async fn a_browser_creates_watches_extends_and_deletes_an_env() {
    let dash = Dash::start_with(BROWSER_CONFIG, IdentitySource::Fake(ENV.into())).await;
    let config = ephemerator_core::Config::from_yaml_str(BROWSER_CONFIG, "test.yaml").unwrap();
    let ctrl = tokio::spawn(ephctrl::run(ephctrl::testing::settings(
        dash.client(),
        "default",
        config,
    )));
    // Always the same host (the dashboard compares a POST's Origin with its Host).
    let browser = Browser::start(format!("http://{}", dash.running.addr)).await;
    let row = format!("#env-{ENV}");

    // Create, by keyboard alone: the form filled in (typing, Tab between fields), then
    // Enter in the last field submits it, posted by htmx.
    browser.goto("/").await;
    browser.run(MARK).await;
    browser.fill_create_form("main", "0-base/Tiltfile").await;
    browser.screenshot("create").await;
    browser.type_into("#path", &Key::Enter.to_string()).await;

    // The row appears and its phase goes to Ready through htmx's polling, no reload.
    let phase = format!(
        "var p = document.querySelector('{row} span.phase[data-phase]'); \
         return p ? p.getAttribute('data-phase') : null"
    );
    let mut phases: Vec<String> = Vec::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen = browser.until("the new env on the list", &phase).await;
        let seen = seen.as_str().unwrap_or_default().to_string();
        if phases.last() != Some(&seen) {
            phases.push(seen.clone());
        }
        if seen == "Ready" {
            break;
        }
        if tokio::time::Instant::now() >= until {
            browser
                .fail("the phase Ready", &format!("phases seen: {phases:?}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("phases seen: {phases:?}");
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    browser.screenshot("ready").await;

    // The same page at phone width.
    browser.viewport(PHONE).await;
    browser.screenshot("phone").await;
    browser.viewport(DESKTOP).await;

    // The env's page: ephctrl's Events and the runner's setup logs.
    browser
        .click(
            "the link to the env's page",
            Locator::XPath(&format!(
                "//li[@id='env-{ENV}']//a[normalize-space()='Events and setup logs']"
            )),
        )
        .await;
    browser
        .until(
            "the setup logs",
            &format!(
                "return location.pathname === '/envs/{ENV}' && \
                 Array.from(document.querySelectorAll('pre.log')) \
                 .some(function (p) {{ return p.textContent.includes('container tilt-upper started'); }})"
            ),
        )
        .await;
    browser
        .until(
            "the Ready Event",
            "return Array.from(document.querySelectorAll('ol.events strong')) \
             .some(function (s) { return s.textContent === 'Ready'; })",
        )
        .await;
    browser.screenshot("logs").await;

    // Back to the list; Extend answers with a notice and the list shows the later time.
    browser
        .click(
            "the link back to the list",
            Locator::XPath("//main//a[normalize-space()='← All environments']"),
        )
        .await;
    let expires = format!(
        "var t = document.querySelector('{row} time[data-expires]'); return t ? t.getAttribute('data-expires') : null"
    );
    let before = browser.until("the list again", &expires).await;
    browser
        .until("htmx on the list", "return typeof htmx !== 'undefined'")
        .await;
    browser.run(MARK).await;
    browser
        .click(
            "Extend",
            Locator::Css(&format!("{row} form[action$='/extend'] button")),
        )
        .await;
    browser
        .until(
            "the notice of the extension",
            "return document.querySelector('#notice').textContent.includes('now expires at')",
        )
        .await;
    browser
        .until(
            "the later expiry on the list",
            &format!(
                "var t = document.querySelector('{row} time[data-expires]'); \
                 return t !== null && t.getAttribute('data-expires') !== {before}"
            ),
        )
        .await;
    browser.screenshot("extended").await;

    // Delete asks first (hx-confirm): the dialog is accepted through WebDriver.
    browser
        .click(
            "Delete",
            Locator::Css(&format!("{row} form[action$='/delete'] button")),
        )
        .await;
    let until = tokio::time::Instant::now() + DEADLINE;
    let question = loop {
        match browser.client.get_alert_text().await {
            Ok(text) => break text,
            Err(error) if error.is_no_such_alert() && tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("waiting for the confirm dialog: {error}"),
        }
    };
    assert_eq!(question, format!("Delete {ENV}?"));
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "the notice of the deletion",
            "return document.querySelector('#notice').textContent.includes('is being deleted')",
        )
        .await;
    browser
        .until(
            "the env gone from the list",
            &format!("return document.querySelector('{row}') === null"),
        )
        .await;
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    assert!(
        Api::<ConfigMap>::namespaced(dash.client(), "default")
            .get_opt(ENV)
            .await
            .unwrap()
            .is_none(),
        "the ConfigMap is deleted"
    );
    browser.screenshot("deleted").await;

    browser.client.clone().close().await.unwrap();
    ctrl.abort();
}
