//! How fast ephctrl reads a Tilt's view and how much memory that holds, side by side with
//! parsing the whole view into memory (what reading it without streaming costs at least). A
//! benchmark, not a test: it prints figures and checks nothing.
//!
//! ```text
//! cargo bench -p ephctrl --bench tilt_view
//! ```
//!
//! Views (shaped like Tilt 0.34.0's `/api/view`, see `ephctrl::testing::tilt::view_with_log`):
//! Tilt's own cap of 2 MB of log text in lines of about 40 characters, and a short log; each
//! with 50 resources. Per view: its size; the median time of `read_view` (the streaming
//! parser, from memory) and of `serde_json::from_slice::<Value>` over `TILT_VIEW_REPEAT` runs
//! (default 9), and their ratio; the peak heap of each (dhat); and the median time of a whole
//! `TiltClient::ask` over HTTP to the stand-in Tilt serving it.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ephctrl::testing::tilt::{FakeResource, StandInTilt, TiltRules, view_with_log};
use ephctrl::tilt::{TiltClient, read_view};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The peak heap in bytes while `work` runs (dhat's figure for a profiler around it alone).
fn peak_heap<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get().curr_bytes as u64;
    let out = work();
    let peak = dhat::HeapStats::get().max_bytes as u64;
    drop(profiler);
    (out, peak.saturating_sub(before))
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else only smoke-runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let repeat: usize = if full {
        std::env::var("TILT_VIEW_REPEAT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(9)
    } else {
        1
    };
    let resources: Vec<FakeResource> = (0..50)
        .map(|i| {
            FakeResource::new(
                &format!("service-{i}"),
                "ok",
                &[&format!("http://localhost:{}/", 8000 + i)],
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("tilt_view: 50 resources, {repeat} run(s) each, medians");
    for (label, log_bytes) in [
        ("Tilt's log cap (2 MB of text)", 2_000_000),
        ("short log", 2_000),
    ] {
        let body = view_with_log(&resources, log_bytes);
        let bytes = body.as_bytes();
        let mib = bytes.len() as f64 / (1024.0 * 1024.0);

        let (mut streamed, mut whole) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let started = Instant::now();
            let state = read_view(bytes)?;
            streamed.push(started.elapsed());
            assert_eq!(state.ports.len(), 50, "every resource's port is read");
            let started = Instant::now();
            let value: serde_json::Value = serde_json::from_slice(bytes)?;
            whole.push(started.elapsed());
            drop(value);
        }
        let (streamed, whole) = (median(streamed), median(whole));
        let (_, streamed_peak) = peak_heap(|| read_view(bytes));
        let (_, whole_peak) =
            peak_heap(|| serde_json::from_slice::<serde_json::Value>(bytes).map(drop));

        let tilt = runtime.block_on(StandInTilt::start(TiltRules::Open, "t", body.clone()))?;
        let client = TiltClient::new();
        let mut asked = Vec::new();
        for _ in 0..repeat {
            let started = Instant::now();
            runtime.block_on(client.ask(&tilt.base_url(), "t"))?;
            asked.push(started.elapsed());
        }
        println!("  {label}: view {mib:.2} MiB");
        println!(
            "    read_view {:.1} ms ({:.0} MiB/s), peak heap {:.1} KiB",
            streamed.as_secs_f64() * 1e3,
            mib / streamed.as_secs_f64(),
            streamed_peak as f64 / 1024.0
        );
        println!(
            "    parsed whole {:.1} ms, peak heap {:.1} MiB: read_view takes {:.2}x the time, {:.4}x the memory",
            whole.as_secs_f64() * 1e3,
            whole_peak as f64 / (1024.0 * 1024.0),
            streamed.as_secs_f64() / whole.as_secs_f64(),
            streamed_peak as f64 / whole_peak as f64
        );
        println!(
            "    TiltClient::ask over HTTP: {:.1} ms",
            median(asked).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
