//! Pure translation of OCI spec fields into what the system calls take: mount options into
//! flags, propagation and data; rlimit names into resources; namespace types into clone
//! flags. Everything here is tested without root.

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{Error, Result};

/// A mount's options, split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (and for the read-only/nosuid/... remount of a bind).
    pub flags: MsFlags,
    /// Propagation changes applied after mounting (`MS_SHARED`, `MS_SLAVE`, ...).
    pub propagation: MsFlags,
    /// Filesystem-specific options, comma-joined (`mode=755`, `size=65536k`).
    pub data: String,
    /// A bind mount (`bind` or `rbind`, or type `bind`).
    pub bind: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
            bind: false,
        }
    }
}

impl MountOptions {
    /// Parse `options` of a mount of type `typ`.
    pub fn parse(typ: Option<&str>, options: &[String]) -> MountOptions {
        let mut out = MountOptions {
            bind: typ == Some("bind"),
            ..MountOptions::default()
        };
        let mut data = Vec::new();
        for opt in options {
            let (set, clear) = match opt.as_str() {
                "defaults" | "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "bind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND, MsFlags::empty())
                }
                "rbind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
                }
                other => {
                    match propagation(other) {
                        Some(p) => out.propagation |= p,
                        None => data.push(other.to_string()),
                    }
                    continue;
                }
            };
            out.flags = (out.flags | set) & !clear;
        }
        if out.bind {
            out.flags |= MsFlags::MS_BIND;
        }
        out.data = data.join(",");
        out
    }

    /// The flags that need a remount after a bind mount (a bind ignores them on the first
    /// mount).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags
            & (MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
                | MsFlags::MS_STRICTATIME)
    }
}

/// The propagation a mount option or `linux.rootfsPropagation` names (`rslave`...).
fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The propagation named by `linux.rootfsPropagation` (runc's default is `rslave`).
pub fn rootfs_propagation(value: Option<&str>) -> Result<MsFlags> {
    match value.unwrap_or("") {
        "" => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        other => propagation(other).ok_or_else(|| Error::SpecInvalid {
            field: "linux.rootfsPropagation".into(),
            message: format!("unknown propagation {other:?}"),
        }),
    }
}

/// The clone flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The resource named by an OCI rlimit type (`RLIMIT_NOFILE`).
pub fn rlimit_resource(name: &str) -> Result<Resource> {
    Ok(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        other => {
            return Err(Error::SpecInvalid {
                field: "process.rlimits".into(),
                message: format!("unknown rlimit type {other:?}"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(typ: &str, o: &[&str]) -> MountOptions {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        MountOptions::parse(Some(typ), &o)
    }

    #[test]
    fn proc_style_options_become_flags() {
        let m = opts("proc", &["nosuid", "noexec", "nodev"]);
        assert_eq!(
            m.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert!(!m.bind);
        assert_eq!(m.data, "");
    }

    #[test]
    fn unknown_options_are_filesystem_data() {
        let m = opts(
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        );
        assert_eq!(m.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(m.data, "mode=755,size=65536k");
    }

    #[test]
    fn binds_and_propagation() {
        let m = opts("none", &["rbind", "ro", "rprivate"]);
        assert!(m.bind);
        assert!(m
            .flags
            .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(m.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(m.remount_flags(), MsFlags::MS_RDONLY);
        // A later option wins: rw after ro clears it.
        let m = opts("bind", &["ro", "rw"]);
        assert!(m.bind && m.flags.contains(MsFlags::MS_BIND));
        assert!(!m.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn rootfs_propagation_defaults_to_rslave() {
        assert_eq!(
            rootfs_propagation(None).unwrap(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(
            rootfs_propagation(Some("private")).unwrap(),
            MsFlags::MS_PRIVATE
        );
        let e = rootfs_propagation(Some("sideways"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rootfsPropagation") && e.contains("sideways"),
            "{e}"
        );
    }

    #[test]
    fn rlimit_names() {
        assert_eq!(
            rlimit_resource("RLIMIT_NOFILE").unwrap(),
            Resource::RLIMIT_NOFILE
        );
        let e = rlimit_resource("RLIMIT_BOGUS").unwrap_err().to_string();
        assert!(e.contains("RLIMIT_BOGUS"), "{e}");
    }

    #[test]
    fn namespace_flags() {
        assert_eq!(
            clone_flag(LinuxNamespaceType::Network),
            CloneFlags::CLONE_NEWNET
        );
        assert_eq!(
            clone_flag(LinuxNamespaceType::Pid),
            CloneFlags::CLONE_NEWPID
        );
    }
}
