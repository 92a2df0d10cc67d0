//! Joining a running container for Exec: the new process enters the namespaces of the
//! container's init (read from `/proc/<pid>/ns`), the way `runc exec` and `nsenter` do, instead
//! of creating its own. Namespaces it already shares are left alone.
//!
//! The files are opened in the host view, before anything is joined. The PID namespace is
//! joined first, by the (possibly multithreaded) workload process, so that its next child is
//! in it; the child, single-threaded, joins the others, the mount namespace last (setns(2)
//! refuses it to a process that shares its filesystem context with threads).

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// The namespaces a joiner enters, in the order it enters them after the fork: a user
/// namespace owns what follows, and the mount namespace changes the root, so it comes last.
const AFTER_FORK: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The namespaces of a container's init still to be entered by the child.
#[derive(Debug)]
pub struct Joined {
    init: u32,
    files: Vec<(&'static str, CloneFlags, File)>,
}

/// The namespace file `name` of `pid`, or `None` when this process is in it already.
fn differing(pid: u32, name: &str) -> Result<Option<File>> {
    let path = format!("/proc/{pid}/ns/{name}");
    let theirs = std::fs::metadata(&path).map_err(Error::io("reading namespace", &path))?;
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).map_err(Error::io(
        "reading namespace",
        format!("/proc/self/ns/{name}"),
    ))?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(None);
    }
    File::open(&path)
        .map(Some)
        .map_err(Error::io("opening namespace", &path))
}

fn enter(init: u32, name: &str, flag: CloneFlags, file: &File) -> Result<()> {
    setns(file, flag).map_err(|source| Error::Isolation {
        step: "joining namespace".into(),
        target: format!("/proc/{init}/ns/{name}"),
        source,
    })
}

/// Open the namespaces of `init` that differ from this process's and join its PID
/// namespace (for the next child only).
pub fn prepare(init: u32) -> Result<Joined> {
    if let Some(pid_ns) = differing(init, "pid")? {
        enter(init, "pid", CloneFlags::CLONE_NEWPID, &pid_ns)?;
    }
    let mut files = Vec::new();
    for (name, flag) in AFTER_FORK {
        if let Some(file) = differing(init, name)? {
            files.push((name, flag, file));
        }
    }
    Ok(Joined { init, files })
}

/// In the child: join the remaining namespaces. Afterwards the root and working directory
/// are the container's.
pub fn finish(joined: Joined) -> Result<()> {
    for (name, flag, file) in &joined.files {
        enter(joined.init, name, *flag, file)?;
    }
    Ok(())
}
