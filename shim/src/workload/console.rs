//! The shim's side of a process's terminal: the pty master the process sent back
//! ([`crate::isolation`] makes the terminal in the container), copied to and from
//! containerd's FIFOs by one thread, and resized on ResizePty.
//!
//! What the terminal prints goes to the stdout FIFO (a terminal has no separate stderr);
//! stdin (through [`super::stdio`]'s feed, so CloseIO and a client that never opens its
//! end behave as for pipes) goes to the terminal. The copy ends, and the stdout FIFO is
//! closed so that containerd sees the end of the output, when every holder of the terminal
//! is gone, or once the process has exited and what it wrote is drained. Like runc's shim,
//! the end of stdin hangs the terminal up (the master is closed).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{Error, Result};

/// How long Delete waits for the copy to finish draining.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// What the copy needs besides the master: where output goes and where input comes from.
pub struct Streams {
    /// The stdout FIFO (or file), and descriptors held with it (a read end, so that writes
    /// never fail when the client goes away).
    pub stdout: File,
    pub held: Vec<File>,
    /// The read end of the stdin feed, if the process has stdin.
    pub stdin: Option<File>,
}

/// A running terminal copy.
pub struct Console {
    /// For ResizePty; taken when the terminal is hung up.
    resize: Arc<Mutex<Option<OwnedFd>>>,
    exited: Arc<AtomicBool>,
    wake: Arc<EventFd>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Console {
    /// Start copying between `master` and `streams`.
    pub fn start(master: OwnedFd, streams: Streams) -> Result<Console> {
        let sys = |what: &str| Error::sys(format!("{what} the terminal"));
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys("making non-blocking"))?;
        let resize = Arc::new(Mutex::new(Some(
            master
                .try_clone()
                .map_err(Error::io("duplicating", "the terminal"))?,
        )));
        let wake = Arc::new(
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(sys("creating the wake-up of"))?,
        );
        let exited = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let copy = Copy {
            master: File::from(master),
            streams,
            resize: resize.clone(),
            exited: exited.clone(),
            wake: wake.clone(),
        };
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                copy.run();
                let _ = tx.send(());
            })
            .map_err(Error::io("spawning the copy of", "the terminal"))?;
        Ok(Console {
            resize,
            exited,
            wake,
            done: Mutex::new(Some(rx)),
        })
    }

    /// ResizePty: the terminal's new size. A terminal already hung up has no size to set.
    pub fn resize(&self, cols: u32, rows: u32) -> Result<()> {
        let guard = self.resize.lock().unwrap_or_else(|p| p.into_inner());
        let Some(master) = guard.as_ref() else {
            return Ok(());
        };
        let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        crate::sys::set_window_size(master, clamp(rows), clamp(cols))
            .map_err(Error::sys("resizing the terminal"))
    }

    /// The process has exited: drain what it wrote, then end the copy.
    pub fn exited(&self) {
        self.exited.store(true, Ordering::SeqCst);
        let _ = self.wake.write(1);
    }

    /// Wait (a while) for the copy to end.
    pub fn wait(&self, timeout: Duration) -> bool {
        let rx = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        rx.is_none_or(|rx| rx.recv_timeout(timeout).is_ok())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.exited();
        if !self.wait(DRAIN_WAIT) {
            log::warn!("the terminal's output was still being copied after {DRAIN_WAIT:?}");
        }
    }
}

/// The copying thread's state.
struct Copy {
    master: File,
    streams: Streams,
    resize: Arc<Mutex<Option<OwnedFd>>>,
    exited: Arc<AtomicBool>,
    wake: Arc<EventFd>,
}

impl Copy {
    fn run(mut self) {
        let mut buf = vec![0u8; 32 * 1024];
        // Input read from stdin, not yet taken by the terminal.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let exiting = self.exited.load(Ordering::SeqCst);
            let mut master_events = PollFlags::POLLIN;
            if !pending.is_empty() {
                master_events |= PollFlags::POLLOUT;
            }
            let stdin_open = self.streams.stdin.is_some() && pending.len() < buf.len();
            let mut fds = vec![
                PollFd::new(self.master.as_fd(), master_events),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            if let (true, Some(stdin)) = (stdin_open, &self.streams.stdin) {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            // Exiting: no more waiting, just what is there to drain.
            let timeout = if exiting {
                PollTimeout::ZERO
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    log::warn!("waiting on the terminal: {e}");
                    break;
                }
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .unwrap_or(PollFlags::empty())
            };
            let (master, wake, stdin) = (ready(0), ready(1), ready(2));
            drop(fds);
            if wake.contains(PollFlags::POLLIN) {
                let _ = self.wake.read();
            }
            if master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match self.drain(&mut buf) {
                    Drained::More => {}
                    Drained::Closed => break,
                }
            } else if exiting {
                // Nothing left to read after the exit.
                break;
            }
            if master.contains(PollFlags::POLLOUT) && !pending.is_empty() {
                match self.master.write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => pending.clear(),
                }
            }
            if stdin.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                let Some(input) = self.streams.stdin.as_mut() else {
                    continue;
                };
                let room = buf.len() - pending.len();
                match input.read(&mut buf[..room]) {
                    Ok(0) | Err(_) => {
                        // The end of stdin hangs the terminal up, as with runc's shim.
                        self.streams.stdin = None;
                        self.hang_up();
                        self.exited.store(true, Ordering::SeqCst);
                    }
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
        }
        self.hang_up();
        // The end of the output for containerd: our write end (and held read end) closes.
    }

    /// Copy what the terminal has to the output, until it would block.
    fn drain(&mut self, buf: &mut [u8]) -> Drained {
        loop {
            match self.master.read(buf) {
                Ok(0) => return Drained::Closed,
                Ok(n) => {
                    if self.streams.stdout.write_all(&buf[..n]).is_err() {
                        return Drained::Closed;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::More,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EIO: every holder of the terminal is gone.
                Err(_) => return Drained::Closed,
            }
        }
    }

    /// Give up the resize handle, so that the copy's own master is the last one.
    fn hang_up(&self) {
        self.resize.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

enum Drained {
    More,
    Closed,
}

#[cfg(test)]
mod tests {
    use nix::pty::openpty;

    use super::*;

    /// A console on a fresh pty, its output in a pipe; returns the console, the slave, the
    /// output's read end and stdin's write end.
    fn console() -> (Console, File, File, File) {
        let pty = openpty(None, None).unwrap();
        let (out_r, out_w) = std::io::pipe().unwrap();
        let (in_r, in_w) = std::io::pipe().unwrap();
        let streams = Streams {
            stdout: File::from(OwnedFd::from(out_w)),
            held: Vec::new(),
            stdin: Some(File::from(OwnedFd::from(in_r))),
        };
        let c = Console::start(pty.master, streams).unwrap();
        (
            c,
            File::from(pty.slave),
            File::from(OwnedFd::from(out_r)),
            File::from(OwnedFd::from(in_w)),
        )
    }

    #[test]
    fn output_and_input_cross_the_terminal_and_output_ends_when_the_slave_closes() {
        let (c, mut slave, mut out, mut input) = console();
        slave.write_all(b"hello\n").unwrap();
        input.write_all(b"typed\n").unwrap();
        let mut line = [0u8; 6];
        slave.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"typed\n");
        drop(slave);
        let mut all = String::new();
        out.read_to_string(&mut all).unwrap();
        // The terminal's echo of the input comes too, and its newline translation.
        assert!(all.starts_with("hello\r\n"), "{all:?}");
        assert!(c.wait(Duration::from_secs(5)));
    }

    #[test]
    fn exit_drains_and_ends_the_output_even_with_the_slave_still_open() {
        let (c, mut slave, mut out, _input) = console();
        slave.write_all(b"last words\n").unwrap();
        c.exited();
        let mut all = String::new();
        out.read_to_string(&mut all).unwrap();
        assert_eq!(all, "last words\r\n");
        drop(slave);
    }

    #[test]
    fn resize_reaches_the_terminal() {
        let (c, slave, _out, _input) = console();
        c.resize(120, 40).unwrap();
        assert_eq!(crate::sys::window_size(&slave).unwrap(), (40, 120));
        drop(c);
        drop(slave);
    }

    #[test]
    fn end_of_stdin_hangs_up() {
        let (c, slave, mut out, input) = console();
        drop(input);
        let mut all = Vec::new();
        out.read_to_end(&mut all).unwrap();
        assert!(c.wait(Duration::from_secs(5)));
        // The master is gone: the slave sees the hang-up.
        let mut slave = slave;
        let mut byte = [0u8; 1];
        assert!(matches!(slave.read(&mut byte), Ok(0) | Err(_)));
        // Resizing a hung-up terminal is no error.
        c.resize(80, 24).unwrap();
    }
}
