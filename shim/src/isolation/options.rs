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
    /// Recursive attributes (`rro`, `rnosuid`...): `MOUNT_ATTR_*` bits set and cleared on
    /// the mount and every mount below it, with mount_setattr(2).
    pub recursive: RecursiveAttrs,
    /// `idmap` (false) or `ridmap` (true): how far the mount's `uidMappings` reach.
    pub idmap_recursive: Option<bool>,
}

/// `MOUNT_ATTR_*` bits for mount_setattr(2) with `AT_RECURSIVE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

/// Not following symlinks on a mount (Linux 5.10; not in nix's flags).
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// mount_setattr(2)'s attribute bits (linux/mount.h).
pub mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    /// The access-time mode: one of the three values below, cleared as a whole to change it.
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// The recursive options (runc's names): the attribute, and whether the option sets it
/// (`rro`) or clears it (`rrw`).
const RECURSIVE: [(&str, u64, bool); 18] = [
    ("rro", attr::RDONLY, true),
    ("rrw", attr::RDONLY, false),
    ("rnosuid", attr::NOSUID, true),
    ("rsuid", attr::NOSUID, false),
    ("rnodev", attr::NODEV, true),
    ("rdev", attr::NODEV, false),
    ("rnoexec", attr::NOEXEC, true),
    ("rexec", attr::NOEXEC, false),
    ("rnodiratime", attr::NODIRATIME, true),
    ("rdiratime", attr::NODIRATIME, false),
    ("rrelatime", attr::RELATIME, true),
    ("rnorelatime", attr::RELATIME, false),
    ("rnoatime", attr::NOATIME, true),
    ("ratime", attr::NOATIME, false),
    ("rstrictatime", attr::STRICTATIME, true),
    ("rnostrictatime", attr::STRICTATIME, false),
    ("rnosymfollow", attr::NOSYMFOLLOW, true),
    ("rsymfollow", attr::NOSYMFOLLOW, false),
];

/// The flag options [`MountOptions::parse`] knows: what `-info` lists as mount options.
const FLAGS: [&str; 24] = [
    "defaults",
    "rw",
    "ro",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "mand",
    "nomand",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nosymfollow",
    "symfollow",
    "bind",
];

/// Every mount option wasmlet acts on (not filesystem data): flags, `rbind`, propagation
/// and the recursive attributes.
pub static KNOWN_MOUNT_OPTIONS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| {
        FLAGS
            .iter()
            .copied()
            .chain(["rbind", "idmap", "ridmap"])
            .chain(PROPAGATION.iter().map(|(name, _)| *name))
            .chain(RECURSIVE.iter().map(|(name, _, _)| *name))
            .collect()
    });

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
            bind: false,
            recursive: RecursiveAttrs::default(),
            idmap_recursive: None,
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
                "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
                "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
                "bind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND, MsFlags::empty())
                }
                "rbind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
                }
                "idmap" | "ridmap" => {
                    out.idmap_recursive = Some(opt == "ridmap");
                    continue;
                }
                other => {
                    if let Some(p) = propagation(other) {
                        out.propagation |= p;
                    } else if let Some((_, bit, set)) =
                        RECURSIVE.iter().find(|(name, _, _)| *name == other)
                    {
                        out.recursive.add(*bit, *set);
                    } else {
                        data.push(other.to_string());
                    }
                    continue;
                }
            };
            // union and difference keep bits nix has no name for (MS_NOSYMFOLLOW).
            out.flags = out.flags.union(set).difference(clear);
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
                | MsFlags::MS_STRICTATIME
                | MS_NOSYMFOLLOW)
    }
}

impl MountOptions {
    /// Whether the id mapping of a bind mount reaches the mounts below it: as `ridmap` or
    /// `idmap` say, else as the bind does (`rbind`).
    pub fn idmap_is_recursive(&self) -> bool {
        self.idmap_recursive
            .unwrap_or(self.flags.contains(MsFlags::MS_REC))
    }
}

impl RecursiveAttrs {
    /// Set (or clear) `bit`; a later option wins over an earlier one, as with flags. An
    /// access-time mode replaces the whole mode.
    fn add(&mut self, bit: u64, set: bool) {
        let atime = bit == attr::RELATIME || bit & attr::ATIME_MASK != 0;
        match (atime, set) {
            (true, true) => {
                self.set = (self.set & !attr::ATIME_MASK) | bit;
                self.clear |= attr::ATIME_MASK;
            }
            (true, false) => {
                self.set &= !bit;
                self.clear |= bit;
            }
            (false, true) => {
                self.set |= bit;
                self.clear &= !bit;
            }
            (false, false) => {
                self.set &= !bit;
                self.clear |= bit;
            }
        }
    }
}

/// The propagation options and what mount(2) takes for each.
const PROPAGATION: [(&str, MsFlags); 8] = [
    ("private", MsFlags::MS_PRIVATE),
    (
        "rprivate",
        MsFlags::from_bits_truncate(MsFlags::MS_PRIVATE.bits() | MsFlags::MS_REC.bits()),
    ),
    ("shared", MsFlags::MS_SHARED),
    (
        "rshared",
        MsFlags::from_bits_truncate(MsFlags::MS_SHARED.bits() | MsFlags::MS_REC.bits()),
    ),
    ("slave", MsFlags::MS_SLAVE),
    (
        "rslave",
        MsFlags::from_bits_truncate(MsFlags::MS_SLAVE.bits() | MsFlags::MS_REC.bits()),
    ),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    (
        "runbindable",
        MsFlags::from_bits_truncate(MsFlags::MS_UNBINDABLE.bits() | MsFlags::MS_REC.bits()),
    ),
];

/// The propagation a mount option or `linux.rootfsPropagation` names (`rslave`...).
fn propagation(name: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, flags)| *flags)
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
    fn idmap_options_say_how_far_the_mapping_reaches() {
        assert!(!opts("bind", &["rbind", "idmap"]).idmap_is_recursive());
        assert!(opts("bind", &["bind", "ridmap"]).idmap_is_recursive());
        assert!(opts("bind", &["rbind"]).idmap_is_recursive());
        assert!(!opts("bind", &["bind"]).idmap_is_recursive());
        assert_eq!(opts("bind", &["rbind", "ridmap"]).data, "");
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
    fn recursive_attributes() {
        let m = opts("bind", &["rbind", "rro", "nosuid"]);
        assert!(m.bind);
        assert_eq!(m.recursive.set, attr::RDONLY);
        assert_eq!(m.recursive.clear, 0);
        assert!(!m.flags.contains(MsFlags::MS_RDONLY), "rro is not plain ro");
        assert_eq!(m.data, "");
        // A later option wins; an access-time mode replaces the mode.
        let m = opts(
            "bind",
            &["rro", "rrw", "rnoatime", "rstrictatime", "rnosymfollow"],
        );
        assert_eq!(m.recursive.set, attr::STRICTATIME | attr::NOSYMFOLLOW);
        assert_eq!(m.recursive.clear, attr::RDONLY | attr::ATIME_MASK);
        assert!(opts("bind", &["rbind"]).recursive.is_empty());
        let m = opts("tmpfs", &["nosymfollow"]);
        assert!(m.flags.contains(MS_NOSYMFOLLOW));
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
