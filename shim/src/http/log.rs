//! The HTTP server's own log lines (accept errors, failed requests, broken connections),
//! written to the container's stderr by a thread of their own, so that the server never
//! blocks on a stderr nobody reads (`ctr run -d` without a log, a log reader that fell
//! behind): a full pipe would otherwise stop the Tokio worker that wrote, and with it the
//! accept loop. Lines that find the queue full are dropped and counted; the next line
//! written says how many.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, OnceLock};

/// Lines waiting for the writer at most.
const QUEUE: usize = 1024;

/// A queue of lines in front of a writer thread.
pub struct Log {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Log {
    /// A log writing to `out` from a thread of its own, with `queue` lines of room. When the
    /// thread cannot start, every line is dropped (and counted).
    pub fn new(mut out: impl Write + Send + 'static, queue: usize) -> Log {
        let (tx, rx) = sync_channel::<String>(queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let _ = std::thread::Builder::new()
            .name("http-log".into())
            .spawn(move || {
                for line in rx {
                    let lost = counted.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let _ =
                            writeln!(out, "wasmlet: {lost} log lines dropped (stderr not read)");
                    }
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            });
        Log { tx, dropped }
    }

    /// Queue `line`, or drop it when the queue is full; never blocks.
    pub fn line(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Log `line` to the container's stderr without blocking (see the module's doc).
pub fn line(line: String) {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        // A descriptor of its own for stderr: a write blocked on a full pipe must not hold
        // std's stderr lock, which the process takes again on its way out.
        use std::os::fd::AsFd;
        match std::io::stderr().as_fd().try_clone_to_owned() {
            Ok(fd) => Log::new(std::fs::File::from(fd), QUEUE),
            Err(_) => Log::new(std::io::sink(), QUEUE),
        }
    })
    .line(line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::Mutex;

    /// A writer that blocks until the test lets it go, then keeps what it is given.
    struct Held {
        go: Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
        released: bool,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.released {
                let _ = self.go.recv();
                self.released = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_blocks_never_blocks_the_logger_and_drops_are_counted() {
        let (go, wait): (Sender<()>, Receiver<()>) = channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = Log::new(
            Held {
                go: wait,
                written: written.clone(),
                released: false,
            },
            4,
        );
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            log.line(format!("line {i}"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        go.send(()).unwrap();
        // Once the writer has made room (a dropped "after" would not be a line of the test's).
        while log.tx.try_send("after".into()).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = loop {
            let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
            if text.contains("after") {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(text.ends_with("after\n"), "{text}");
        // The writer took a line or two, the queue held four: the rest were dropped, and
        // counted, none lost silently.
        let written = text.lines().filter(|l| l.starts_with("line ")).count() as u64;
        let dropped: u64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("wasmlet: "))
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(dropped > 0 && written <= 6, "{text}");
        assert_eq!(written + dropped, 10_000, "{text}");
    }
}
