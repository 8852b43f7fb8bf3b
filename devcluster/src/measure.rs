//! For the benchmarks that run servers against a devcluster: resident memory from `/proc`
//! (Linux), settled and readable, and knobs from the environment.

use std::time::Duration;

use anyhow::Context;

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// VmRSS once it stops moving: the median of five samples taken over a second.
pub async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(proc_status_kib(pid, "VmRSS:")?);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    samples.sort_unstable();
    Ok(samples[samples.len() / 2])
}

/// A benchmark knob: the number in environment variable `name`, else `default`.
pub fn knob(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// KiB as `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size() {
        let rss = proc_status_kib(std::process::id(), "VmRSS:").unwrap();
        assert!(rss > 0);
        assert_eq!(mib(1536), "1.5 MiB");
        assert!(proc_status_kib(std::process::id(), "NoSuchField:").is_err());
    }
}
