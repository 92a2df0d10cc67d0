//! The daemon's log: each record written to containerd's `log` FIFO (in the bundle, the
//! daemon's working directory) with one `write`, in containerd-shim's format
//! (`time="..." level=info msg="..."`).
//!
//! containerd copies every shim's FIFO into its own log as the bytes arrive. containerd-shim's
//! own logger writes a record in many small writes (one per formatted piece), so the records
//! of shims logging at the same moment (ten containers starting) were interleaved mid-line in
//! containerd's log: a line could name one container and another's outcome. A write of at
//! most `PIPE_BUF` (4096) bytes to a pipe is atomic, so a record is never split.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the level (containerd-shim's own).
const LEVEL_ENV: &str = "RUST_LOG";

struct FifoLines(Mutex<File>);

impl Log for FifoLines {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "time=\"{}\" level={} msg=\"{}\"\n",
            rfc3339(SystemTime::now()),
            record.level().as_str().to_lowercase(),
            record.args()
        );
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // containerd may be away (a restart): the line is lost, nothing else happens.
        let _ = file.write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Log to the `log` FIFO of the working directory at `RUST_LOG`'s level, else `default`
/// (debug when containerd runs with `-debug`).
pub fn init(debug: bool, default: LevelFilter) -> std::io::Result<()> {
    let file = File::options().write(true).open("log")?;
    let level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    log::set_max_level(if debug {
        level.max(LevelFilter::Debug)
    } else {
        level
    });
    log::set_boxed_logger(Box::new(FifoLines(Mutex::new(file))))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// `at` as RFC 3339 in UTC with microseconds: `2026-11-30T00:49:33.666589Z`.
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_in_utc() {
        let at = |s: u64, us: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(at(1_795_999_773, 666_589)),
            "2026-11-30T00:49:33.666589Z"
        );
        // A leap day, and the last second of a year.
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(at(1_767_225_599, 1)), "2025-12-31T23:59:59.000001Z");
    }
}
