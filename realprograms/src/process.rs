//! One program of a test: started with its output in a log file, stopped when dropped the way
//! its operator would stop it (SIGTERM, so Tilt stops the servers it started in sessions of
//! their own), killed if it does not stop in time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// How long a program has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct Program {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Program {
    /// Starts `command` with stdout and stderr appended to `log` (stdout piped instead when
    /// `stdout_piped`, for a program that prints where it listens).
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        stdout_piped: bool,
    ) -> anyhow::Result<Program> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let stdout = if stdout_piped {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone()?)
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Program {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it has exited (with how).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{} log ({}):\n{}",
            self.name,
            self.log.display(),
            tail.join("\n")
        )
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else {
            return;
        };
        // The shell's own `kill` (every Debian has /bin/sh, not every one has procps).
        let _ = std::process::Command::new("/bin/sh")
            .args(["-c", "kill -s TERM \"$0\"", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + STOP_GRACE;
        while Instant::now() < until {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.start_kill();
    }
}
