//! Entering the namespaces `linux.namespaces` asks for, in the workload process: joining
//! the ones given by `path` (CRI's pod network, IPC and UTS namespaces) with setns(2), then
//! unsharing the new ones. A new or joined PID (or time) namespace only applies to children
//! and forbids new threads, so it is entered last ([`enter_pid`], after the module is
//! compiled), and the caller forks once more.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::options::clone_flag;
use crate::error::{Error, Result};

/// What [`enter`] did, and what [`enter_pid`] still has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entered {
    /// PID and time namespaces: joined (flag, path) or created (flags) by [`enter_pid`].
    pub pid_joins: Joins,
    pub pid_new: CloneFlags,
    /// The workload has a UTS namespace of its own or its pod's (so it may set a hostname).
    pub uts: bool,
    /// The workload has a new cgroup namespace.
    pub new_cgroup_ns: bool,
    /// The workload has a new network namespace (sysfs can be mounted fresh).
    pub new_net_ns: bool,
}

/// Namespaces to join: the clone flag naming the type and the namespace file.
pub type Joins = Vec<(CloneFlags, PathBuf)>;

/// The namespaces of `spec`: the ones to join (flag, path) and the flags to unshare.
/// A private mount namespace is always created: the workload's mounts must never reach
/// the host.
pub fn plan(spec: &Spec) -> Result<(Joins, CloneFlags, Entered)> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut joins = Vec::new();
    let mut new = CloneFlags::empty();
    let mut entered = Entered {
        pid_joins: Vec::new(),
        pid_new: CloneFlags::empty(),
        uts: false,
        new_cgroup_ns: false,
        new_net_ns: false,
    };
    let mut mount = false;
    for ns in &namespaces {
        let typ = ns.typ();
        let path = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty());
        match typ {
            LinuxNamespaceType::User if path.is_none() => {
                return Err(Error::SpecUnsupported {
                    what: "new user namespaces (linux.namespaces type \"user\" without a path)"
                        .into(),
                })
            }
            LinuxNamespaceType::Uts => entered.uts = true,
            LinuxNamespaceType::Mount => mount = true,
            LinuxNamespaceType::Cgroup if path.is_none() => entered.new_cgroup_ns = true,
            LinuxNamespaceType::Network if path.is_none() => entered.new_net_ns = true,
            _ => {}
        }
        match path {
            Some(p) => joins.push((clone_flag(typ), p.clone())),
            None => new |= clone_flag(typ),
        }
    }
    if !mount {
        new |= CloneFlags::CLONE_NEWNS;
    }
    // A joined user namespace first (it owns what follows), a joined mount namespace last
    // (the other paths are resolved in the current one).
    joins.sort_by_key(|(flag, _)| match *flag {
        CloneFlags::CLONE_NEWUSER => 0,
        CloneFlags::CLONE_NEWNS => 2,
        _ => 1,
    });
    Ok((joins, new, entered))
}

/// Whether `spec` gives the container a new PID namespace of its own (a `pid` entry without
/// a path). Without one, the processes its init starts outlive the init.
pub fn has_own_pid_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|ns| {
            ns.typ() == LinuxNamespaceType::Pid
                && ns.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
        })
}

/// Flags that only apply to children.
fn for_children() -> CloneFlags {
    CloneFlags::CLONE_NEWPID | CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)
}

fn join_and_create(joins: &[(CloneFlags, PathBuf)], new: CloneFlags) -> Result<()> {
    let mut files = Vec::with_capacity(joins.len());
    for (flag, path) in joins {
        let file = File::open(path).map_err(Error::io("opening namespace", path))?;
        files.push((*flag, path, file));
    }
    for (flag, path, file) in &files {
        setns(file, *flag).map_err(|e| Error::Isolation {
            step: "joining namespace".into(),
            target: path.display().to_string(),
            source: e,
        })?;
    }
    if !new.is_empty() {
        unshare(new).map_err(|e| Error::Isolation {
            step: "creating namespaces".into(),
            target: format!("{new:?}"),
            source: e,
        })?;
    }
    Ok(())
}

/// Join and create the namespaces of `spec` for this (single-threaded) process, all but
/// the PID and time namespaces.
pub fn enter(spec: &Spec) -> Result<Entered> {
    let (joins, new, mut entered) = plan(spec)?;
    let (pid_joins, joins): (Joins, Joins) = joins
        .into_iter()
        .partition(|(flag, _)| for_children().contains(*flag));
    join_and_create(&joins, new - for_children())?;
    entered.pid_joins = pid_joins;
    entered.pid_new = new & for_children();
    Ok(entered)
}

/// Join or create the PID and time namespaces: the next child is in them. No thread can
/// be created afterwards.
pub fn enter_pid(entered: &Entered) -> Result<()> {
    join_and_create(&entered.pid_joins, entered.pid_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": { "namespaces": namespaces }
        }))
        .unwrap()
    }

    #[test]
    fn cri_style_namespaces_join_and_create() {
        let s = spec(serde_json::json!([
            {"type": "pid"},
            {"type": "ipc", "path": "/proc/42/ns/ipc"},
            {"type": "uts", "path": "/proc/42/ns/uts"},
            {"type": "mount"},
            {"type": "network", "path": "/var/run/netns/cni-1"}
        ]));
        let (joins, new, entered) = plan(&s).unwrap();
        assert_eq!(new, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS);
        assert_eq!(joins.len(), 3);
        assert!(joins.iter().any(|(f, p)| *f == CloneFlags::CLONE_NEWNET
            && p == std::path::Path::new("/var/run/netns/cni-1")));
        assert!(entered.uts && !entered.new_net_ns);
        assert!(for_children().contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn own_pid_namespace_only_when_new() {
        assert!(has_own_pid_namespace(&spec(
            serde_json::json!([{"type": "pid"}])
        )));
        assert!(!has_own_pid_namespace(&spec(
            serde_json::json!([{"type": "pid", "path": "/proc/42/ns/pid"}])
        )));
        assert!(!has_own_pid_namespace(&spec(
            serde_json::json!([{"type": "network"}])
        )));
    }

    #[test]
    fn a_mount_namespace_is_always_private() {
        let (_, new, entered) = plan(&spec(serde_json::json!([]))).unwrap();
        assert_eq!(new, CloneFlags::CLONE_NEWNS);
        assert!(!entered.uts);
    }

    #[test]
    fn new_user_namespaces_are_refused_by_name() {
        let e = plan(&spec(serde_json::json!([{"type": "user"}])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("user namespaces"), "{e}");
    }
}
