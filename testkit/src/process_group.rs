//! A program run with everything it starts (nginx's workers, a shell's children) in a process
//! group of its own, stopped as a whole when dropped: SIGTERM to the group, then SIGKILL to
//! what is left after a grace period. Killing the first process alone leaves its children
//! running and listening, loading whatever runs next.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the group has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A started program and its process group.
pub struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<ProcessGroup> {
        let child = command.process_group(0).spawn()?;
        Ok(ProcessGroup { child })
    }

    /// The leader's pid (the group's id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Signals every process of the group (the shell's own `kill`: every Debian has
    /// /bin/sh, not every one has procps).
    fn signal(&self, signal: &str) {
        let _ = Command::new("/bin/sh")
            .args([
                "-c",
                "kill -s \"$0\" -- \"-$1\"",
                signal,
                &self.id().to_string(),
            ])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal("TERM");
        let until = Instant::now() + STOP_GRACE;
        // The leader is not reaped until the group is gone, so its id names no other group.
        while Instant::now() < until && group_alive(self.id()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

/// Whether any process of group `pgid` still runs (zombies count as gone), from `/proc`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
        let Some((_, after)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = after.split(' ');
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && pgrp == Some(pgid.to_string().as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// Whether process `pid` still runs (a zombie counts as gone).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, after)| !after.starts_with('Z'))
        })
    }

    #[test]
    fn dropping_it_stops_the_children_too() {
        // A shell that starts a child and then waits, as nginx's master does its workers.
        let mut group = ProcessGroup::spawn(
            Command::new("/bin/sh")
                .args(["-c", "sleep 600 & echo $!; wait"])
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(group.child().stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let worker: u32 = line.trim().parse().unwrap();
        assert!(alive(worker));
        let leader = group.id();
        drop(group);
        let until = Instant::now() + Duration::from_secs(30);
        while alive(worker) {
            assert!(
                Instant::now() < until,
                "the group's child {worker} still runs after its leader {leader} was stopped"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!group_alive(leader));
    }
}
