//! Watching a cgroup for the kernel's OOM kills while the container runs: an eventfd on
//! `memory.oom_control` (cgroup v1) or inotify on `memory.events` (v2), one thread per
//! container, ending when the cgroup is removed.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Error, Result};

/// How the kernel tells about OOM kills in one cgroup.
pub enum Watch {
    V1 { dir: PathBuf },
    V2 { dir: PathBuf },
}

/// The count of OOM kills in a `memory.oom_control` or `memory.events` text.
pub fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(what, path.to_path_buf())
}

impl Watch {
    /// Start watching; `on_oom` runs on the watcher thread after each new OOM kill.
    pub fn spawn(self, on_oom: Box<dyn Fn() + Send>) -> Result<()> {
        match self {
            Watch::V1 { dir } => {
                let control = dir.join("memory.oom_control");
                let file = File::open(&control).map_err(io("opening", &control))?;
                let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
                    .map_err(Error::sys("creating an eventfd for OOM events"))?;
                let register = dir.join("cgroup.event_control");
                std::fs::write(
                    &register,
                    format!("{} {}", efd.as_raw_fd(), file.as_raw_fd()),
                )
                .map_err(io("registering for OOM events at", &register))?;
                spawn_thread(move || {
                    let _keep = file;
                    // Each wake is an OOM event (signalled as the OOM starts, before the kill
                    // is counted), or the cgroup going away.
                    while efd.read().is_ok() {
                        if !dir.exists() {
                            break;
                        }
                        on_oom();
                    }
                })
            }
            Watch::V2 { dir } => {
                let events = dir.join("memory.events");
                let inotify = Inotify::init(InitFlags::IN_CLOEXEC)
                    .map_err(Error::sys("creating an inotify for OOM events"))?;
                inotify
                    .add_watch(&events, AddWatchFlags::IN_MODIFY)
                    .map_err(Error::sys(format!("watching {}", events.display())))?;
                let mut seen = read_count(&events);
                spawn_thread(move || {
                    while let Ok(batch) = inotify.read_events() {
                        let gone = batch
                            .iter()
                            .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED));
                        if gone || !dir.exists() {
                            break;
                        }
                        let now = read_count(&events);
                        if now > seen {
                            seen = now;
                            on_oom();
                        }
                    }
                })
            }
        }
    }
}

fn read_count(path: &Path) -> u64 {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map(|_| oom_kill_count(&text))
        .unwrap_or(0)
}

fn spawn_thread(f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name("oom-watch".into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| Error::io("starting the OOM watcher", "thread")(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_both_versions() {
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            3
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(oom_kill_count(""), 0);
    }
}
