//! Durations in the config file's notation (`15m`, `1h30m`, `90s`), for the file and for flags.

use std::sync::LazyLock;

use jiff::SignedDuration;
use regex::Regex;

static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$").expect("static regex")
});

/// A positive duration for a command-line flag, in the config file's notation (`30s`, `10m`,
/// `1h30m`), or whole milliseconds (`500ms`, for the few flags that go below a second).
pub fn parse_flag_duration(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    if let Some(millis) = trimmed.strip_suffix("ms") {
        return millis
            .parse::<u64>()
            .ok()
            .filter(|millis| *millis > 0 && millis.to_string().len() <= 9)
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| format!("invalid duration {text:?} (use e.g. 500ms, 15m, 1h30m, 90s)"));
    }
    let duration = parse_duration(trimmed)?;
    std::time::Duration::try_from(duration)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("{text:?}: must be more than zero"))
}

/// Parses a duration like `15m`, `1h30m` or `90s`: hours, minutes, seconds in that order, each
/// optional, at least one present (the subset of Go durations upstream used).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("invalid duration {text:?} (use e.g. 15m, 1h30m, 90s)");
    let captures = DURATION.captures(text).ok_or_else(invalid)?;
    if text.is_empty() {
        return Err(invalid());
    }
    let part = |i: usize| -> i64 {
        captures
            .get(i)
            .and_then(|m| m.as_str().parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok(SignedDuration::from_secs(
        part(1) * 3600 + part(2) * 60 + part(3),
    ))
}
