//! Entering the namespaces `linux.namespaces` asks for, in the workload process: joining
//! the ones given by `path` (CRI's pod network, IPC and UTS namespaces) with setns(2), then
//! unsharing the new ones. A new user namespace is made with the spec's mappings
//! ([`super::userns::create`]) and entered after the joins (which may need the host's
//! privileges) and before the other new namespaces, so that it owns them. A new or joined
//! PID (or time) namespace only applies to children and forbids new threads, so it is
//! entered last ([`enter_pid`], after the module is compiled), and the caller forks once
//! more.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::options::clone_flag;
use super::userns::{self, IdMaps};
use crate::error::{Error, Result};

/// What [`enter`] did, and what [`enter_pid`] still has to do.
#[derive(Debug)]
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
    /// The mappings of a new user namespace (uid, gid), checked.
    pub new_userns: Option<IdMaps>,
    /// The workload is in a user namespace of its own or its pod's (new, or joined by
    /// path): its setup runs as that namespace's root.
    pub in_userns: bool,
    /// Bind mounts cloned from the host's view (by index in `mounts`), attached by the
    /// rootfs setup: see [`userns::detached_binds`].
    pub detached: Vec<(usize, OwnedFd)>,
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
        new_userns: None,
        in_userns: false,
        detached: Vec::new(),
    };
    let mut mount = false;
    for ns in &namespaces {
        let typ = ns.typ();
        let path = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty());
        match typ {
            LinuxNamespaceType::User if path.is_none() => {
                entered.new_userns = Some(new_userns_maps(spec)?);
                entered.in_userns = true;
                continue;
            }
            LinuxNamespaceType::User => entered.in_userns = true,
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

/// The mappings of `spec`'s new user namespace: both given, and the process's user and
/// groups mapped (else setting them fails with a bare EINVAL).
fn new_userns_maps(spec: &Spec) -> Result<IdMaps> {
    let linux = spec.linux().as_ref();
    let field = |name: &str, maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        let maps = maps
            .filter(|m| !m.is_empty())
            .ok_or_else(|| Error::SpecInvalid {
                field: name.to_string(),
                message: "a new user namespace needs mappings (linux.uidMappings and \
                      linux.gidMappings)"
                    .into(),
            })?;
        userns::from_spec(name, maps)
    };
    let uid = field(
        "linux.uidMappings",
        linux.and_then(|l| l.uid_mappings().as_ref()),
    )?;
    let gid = field(
        "linux.gidMappings",
        linux.and_then(|l| l.gid_mappings().as_ref()),
    )?;
    // The container's setup runs as the namespace's root, as runc's does.
    for (what, maps) in [("uid", &uid), ("gid", &gid)] {
        if !userns::maps(maps, 0) {
            return Err(Error::SpecInvalid {
                field: format!("linux.{what}Mappings"),
                message: format!("{what} 0 (the container's root) is not mapped"),
            });
        }
    }
    if let Some(user) = spec.process().as_ref().map(|p| p.user()) {
        let unmapped = |what: &str, id: u32| Error::SpecInvalid {
            field: "process.user".into(),
            message: format!("{what} {id} is not mapped by the user namespace's mappings"),
        };
        if !userns::maps(&uid, user.uid()) {
            return Err(unmapped("uid", user.uid()));
        }
        let groups = user.additional_gids().clone().unwrap_or_default();
        if let Some(g) = std::iter::once(user.gid())
            .chain(groups)
            .find(|g| !userns::maps(&gid, *g))
        {
            return Err(unmapped("gid", g));
        }
    }
    Ok((uid, gid))
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

fn join_and_create(
    joins: &[(CloneFlags, PathBuf)],
    userns: Option<OwnedFd>,
    new: CloneFlags,
) -> Result<()> {
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
    // The new user namespace owns the namespaces created next; this process gets every
    // capability in it, and keeps its host uid (unmapped inside) until it drops privileges.
    if let Some(ns) = userns {
        setns(ns, CloneFlags::CLONE_NEWUSER).map_err(|e| Error::Isolation {
            step: "entering".into(),
            target: "the new user namespace".into(),
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
    entered.detached = userns::detached_binds(spec, entered.in_userns)?;
    let userns = entered
        .new_userns
        .as_ref()
        .map(|(uid, gid)| userns::create(uid, gid))
        .transpose()?;
    join_and_create(&joins, userns, new - for_children())?;
    entered.pid_joins = pid_joins;
    entered.pid_new = new & for_children();
    Ok(entered)
}

/// Join or create the PID and time namespaces: the next child is in them. No thread can
/// be created afterwards.
pub fn enter_pid(entered: &Entered) -> Result<()> {
    join_and_create(&entered.pid_joins, None, entered.pid_new)
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
        assert!(entered.uts && !entered.new_net_ns && !entered.in_userns);
        assert!(for_children().contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn a_pods_user_namespace_is_joined_first() {
        let s = spec(serde_json::json!([
            {"type": "network", "path": "/proc/42/ns/net"},
            {"type": "user", "path": "/proc/42/ns/user"}
        ]));
        let (joins, _, entered) = plan(&s).unwrap();
        assert_eq!(joins[0].0, CloneFlags::CLONE_NEWUSER);
        assert!(entered.in_userns && entered.new_userns.is_none());
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

    fn userns_spec(uid: serde_json::Value, user: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": user, "args": ["/a.wasm"], "cwd": "/"},
            "linux": {
                "namespaces": [{"type": "user"}, {"type": "network"}],
                "uidMappings": uid,
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_new_user_namespace_is_planned_with_its_mappings() {
        let s = userns_spec(
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [5]}),
        );
        let (joins, new, entered) = plan(&s).unwrap();
        assert!(joins.is_empty());
        // Created by setns into the mapped namespace, not by unshare.
        assert!(!new.contains(CloneFlags::CLONE_NEWUSER));
        assert!(new.contains(CloneFlags::CLONE_NEWNET));
        assert!(entered.in_userns);
        let (uid, gid) = entered.new_userns.unwrap();
        assert_eq!((uid[0].host, gid[0].size), (100000, 65536));
    }

    #[test]
    fn a_new_user_namespace_needs_mappings_that_cover_the_user() {
        let e = plan(&spec(serde_json::json!([{"type": "user"}])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.uidMappings"), "{e}");
        let root_unmapped = userns_spec(
            serde_json::json!([{"containerID": 1, "hostID": 1000, "size": 100000}]),
            serde_json::json!({"uid": 0, "gid": 0}),
        );
        let e = plan(&root_unmapped).unwrap_err().to_string();
        assert!(
            e.contains("uid 0 (the container's root) is not mapped"),
            "{e}"
        );
        let user_unmapped = userns_spec(
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1000}]),
            serde_json::json!({"uid": 1000, "gid": 0}),
        );
        let e = plan(&user_unmapped).unwrap_err().to_string();
        assert!(
            e.contains("process.user in the OCI spec: uid 1000 is not mapped"),
            "{e}"
        );
        let group_unmapped = userns_spec(
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            serde_json::json!({"uid": 0, "gid": 0, "additionalGids": [70000]}),
        );
        let e = plan(&group_unmapped).unwrap_err().to_string();
        assert!(e.contains("gid 70000 is not mapped"), "{e}");
    }
}
