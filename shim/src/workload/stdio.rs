//! Wiring a workload's standard streams to what containerd names in CreateTaskRequest.
//!
//! stdout and stderr: the workload writes straight into containerd's FIFOs (no copy through
//! the shim, so nothing is lost or reordered when it exits). The shim also holds a read end
//! of each FIFO, as runc's shim does, so a client that goes away (`ctr run -d`) cannot make
//! the workload's writes fail. `file://` URIs are opened for appending; empty paths are
//! `/dev/null`.
//!
//! stdin: a thread copies the FIFO into a pipe, so the workload sees end-of-file when the
//! client closes its side or containerd calls CloseIO.
//!
//! A process with a terminal starts with `/dev/null` on all three: the terminal it makes in
//! the container replaces them, and the shim keeps the FIFOs (stdout, and stdin's pipe) for
//! the terminal's copy ([`super::console`]). A terminal has no stderr: its path is ignored.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::console::Streams;
use crate::error::{Error, Result};
use crate::task::instance::StdioPaths;

/// The three descriptors the workload process receives.
pub struct ChildStdio {
    pub stdin: File,
    pub stdout: File,
    pub stderr: File,
}

/// What the shim keeps for a workload's stdio until the task is deleted.
pub struct StdioGuard {
    _held: Vec<File>,
    stdin: Option<StdinFeed>,
    /// With a terminal: the streams its copy takes once the terminal exists.
    terminal: Option<Streams>,
}

struct StdinFeed {
    fifo: PathBuf,
    writer: Arc<Mutex<Option<File>>>,
    closed: Arc<AtomicBool>,
    opened: Arc<AtomicBool>,
}

/// Open everything named in `paths`.
pub fn open(paths: &StdioPaths) -> Result<(ChildStdio, StdioGuard)> {
    let mut held = Vec::new();
    let stdout = open_output(&paths.stdout, &mut held)?;
    let stderr = if paths.terminal {
        dev_null(true)?
    } else {
        open_output(&paths.stderr, &mut held)?
    };
    let (stdin, feed) = if paths.stdin.is_empty() {
        (dev_null(false)?, None)
    } else {
        check_scheme(&paths.stdin)?;
        let (reader, feed) = StdinFeed::spawn(Path::new(&paths.stdin))?;
        (reader, Some(feed))
    };
    if !paths.terminal {
        let child = ChildStdio {
            stdin,
            stdout,
            stderr,
        };
        let guard = StdioGuard {
            _held: held,
            stdin: feed,
            terminal: None,
        };
        return Ok((child, guard));
    }
    let child = ChildStdio {
        stdin: dev_null(false)?,
        stdout: dev_null(true)?,
        stderr,
    };
    let streams = Streams {
        stdout,
        held,
        stdin: feed.is_some().then_some(stdin),
    };
    let guard = StdioGuard {
        _held: Vec::new(),
        stdin: feed,
        terminal: Some(streams),
    };
    Ok((child, guard))
}

fn dev_null(write: bool) -> Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(Error::io("opening", "/dev/null"))
}

fn check_scheme(uri: &str) -> Result<()> {
    match uri.split_once("://") {
        Some((scheme, _)) if scheme != "file" => Err(Error::UnsupportedStdio {
            uri: uri.to_string(),
        }),
        _ => Ok(()),
    }
}

fn open_output(uri: &str, held: &mut Vec<File>) -> Result<File> {
    if uri.is_empty() {
        return dev_null(true);
    }
    check_scheme(uri)?;
    if let Some(path) = uri.strip_prefix("file://") {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating log directory", dir))?;
        }
        return OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io("opening log file", path));
    }
    // A non-blocking read end opens at once and lets the write end open without waiting.
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(uri)
        .map_err(Error::io("opening stdio fifo", uri))?;
    let writer = OpenOptions::new()
        .write(true)
        .open(uri)
        .map_err(Error::io("opening stdio fifo", uri))?;
    held.push(reader);
    Ok(writer)
}

impl StdinFeed {
    fn spawn(fifo: &Path) -> Result<(File, StdinFeed)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(Error::sys("creating stdin pipe"))?;
        let writer = Arc::new(Mutex::new(Some(File::from(w))));
        let closed = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicBool::new(false));
        let feed = StdinFeed {
            fifo: fifo.to_path_buf(),
            writer: writer.clone(),
            closed: closed.clone(),
            opened: opened.clone(),
        };
        let path = fifo.to_path_buf();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                // Blocks until the client opens its write end.
                let src = File::open(&path);
                opened.store(true, Ordering::SeqCst);
                if let Ok(mut src) = src {
                    let mut buf = vec![0u8; 32 * 1024];
                    while !closed.load(Ordering::SeqCst) {
                        let n = match src.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                        let delivered = w
                            .as_mut()
                            .is_some_and(|pipe| pipe.write_all(&buf[..n]).is_ok());
                        if !delivered {
                            break;
                        }
                    }
                }
                writer.lock().unwrap_or_else(|p| p.into_inner()).take();
            })
            .map_err(Error::io("spawning stdin thread", fifo))?;
        Ok((File::from(r), feed))
    }
}

impl StdioGuard {
    /// The streams for a terminal's copy (once), if the workload has a terminal.
    pub fn take_terminal(&mut self) -> Option<Streams> {
        self.terminal.take()
    }

    /// CloseIO: the workload sees end-of-file on stdin once buffered input is delivered.
    pub fn close_stdin(&self) {
        if let Some(feed) = &self.stdin {
            feed.closed.store(true, Ordering::SeqCst);
            if let Ok(mut w) = feed.writer.try_lock() {
                w.take();
            }
        }
    }
}

impl Drop for StdioGuard {
    fn drop(&mut self) {
        if let Some(feed) = &self.stdin {
            feed.closed.store(true, Ordering::SeqCst);
            if !feed.opened.load(Ordering::SeqCst) {
                // Release the stdin thread from its blocking open: a non-blocking writer
                // opens at once because that thread is a waiting reader.
                let _ = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&feed.fifo);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(dir: &Path, name: &str) -> String {
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn fifo_output_opens_without_a_reader_and_delivers() {
        let d = tempfile::tempdir().unwrap();
        let out = mkfifo(d.path(), "out");
        let paths = StdioPaths {
            stdout: out.clone(),
            ..Default::default()
        };
        let (mut child, guard) = open(&paths).unwrap();
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        child.stdout.write_all(b"hello").unwrap();
        drop(child);
        let mut got = [0u8; 5];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        drop(guard);
    }

    /// A stdin FIFO in `d` and the stdio opened on it.
    fn with_stdin(d: &Path) -> (String, ChildStdio, StdioGuard) {
        let inp = mkfifo(d, "in");
        let paths = StdioPaths {
            stdin: inp.clone(),
            ..Default::default()
        };
        let (child, guard) = open(&paths).unwrap();
        (inp, child, guard)
    }

    #[test]
    fn stdin_is_copied_and_closed() {
        let d = tempfile::tempdir().unwrap();
        let (inp, mut child, guard) = with_stdin(d.path());
        let mut client = OpenOptions::new().write(true).open(&inp).unwrap();
        client.write_all(b"input").unwrap();
        drop(client);
        let mut got = String::new();
        child.stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "input");
        drop(guard);
    }

    #[test]
    fn close_io_gives_eof_while_client_still_open() {
        let d = tempfile::tempdir().unwrap();
        let (inp, mut child, guard) = with_stdin(d.path());
        let _client = OpenOptions::new().write(true).open(&inp).unwrap();
        guard.close_stdin();
        let mut got = Vec::new();
        child.stdin.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn unopened_stdin_does_not_leak_a_blocked_thread() {
        let d = tempfile::tempdir().unwrap();
        let (_, child, guard) = with_stdin(d.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(guard);
        let mut stdin = child.stdin;
        let mut got = Vec::new();
        stdin.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn files_and_unsupported_schemes() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("logs/out.log");
        let paths = StdioPaths {
            stdout: format!("file://{}", log.display()),
            ..Default::default()
        };
        let (mut child, _g) = open(&paths).unwrap();
        child.stdout.write_all(b"x").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"x");
        let paths = StdioPaths {
            stdout: "binary:///usr/bin/logger?x=y".into(),
            ..Default::default()
        };
        let err = open(&paths).err().expect("binary:// refused");
        assert!(matches!(err, Error::UnsupportedStdio { .. }));
    }
}
