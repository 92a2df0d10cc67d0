//! The container's `/sys/fs/cgroup`: the workload's own cgroups and nothing else.
//!
//! On cgroup v1 (and hybrid hosts) a tmpfs holds one directory per host hierarchy, each a
//! bind mount of the workload's cgroup in that hierarchy; on a pure v2 host it is a fresh
//! cgroup2 mount in a new cgroup namespace, or a bind of the workload's cgroup otherwise.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::failed;
use super::options::MountOptions;
use crate::error::{Error, Result};

/// One cgroup filesystem mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Its super options (controllers, `name=systemd`).
    pub options: Vec<String>,
}

/// The cgroup filesystems in a `/proc/self/mountinfo` text.
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Hierarchy {
                mount_point: PathBuf::from(mount_point.replace("\\040", " ")),
                fstype: fstype.to_string(),
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The workload's cgroup path in `h`, from a `/proc/self/cgroup` text.
pub fn own_path<'a>(h: &Hierarchy, proc_cgroup: &'a str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let matches = if h.fstype == "cgroup2" {
            controllers.is_empty()
        } else {
            !controllers.is_empty()
                && controllers
                    .split(',')
                    .all(|c| h.options.iter().any(|o| o == c))
        };
        matches.then_some(path)
    })
}

/// Mount the container's cgroups at `dest` (inside the rootfs, before pivot_root).
pub fn mount_cgroups(dest: &Path, opts: &MountOptions, new_cgroup_ns: bool) -> Result<()> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("reading", "/proc/self/mountinfo"))?;
    let proc_cgroup = fs::read_to_string("/proc/self/cgroup")
        .map_err(Error::io("reading", "/proc/self/cgroup"))?;
    let all = hierarchies(&mountinfo);
    let root = Path::new("/sys/fs/cgroup");
    fs::create_dir_all(dest).map_err(Error::io("creating mount point", dest))?;
    let flags = opts.flags & !MsFlags::MS_BIND;

    if let Some(unified) = all.iter().find(|h| h.mount_point == root) {
        // A pure v2 host.
        if new_cgroup_ns {
            return mount(Some("cgroup2"), dest, Some("cgroup2"), flags, None::<&str>)
                .map_err(failed("mounting cgroup2 at", dest));
        }
        let own = own_path(unified, &proc_cgroup).unwrap_or("/");
        return bind(&root.join(own.trim_start_matches('/')), dest, flags);
    }

    mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        (flags & !MsFlags::MS_RDONLY) | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(failed("mounting tmpfs at", dest))?;
    for h in all.iter().filter(|h| h.mount_point.starts_with(root)) {
        let Ok(name) = h.mount_point.strip_prefix(root) else {
            continue;
        };
        let Some(own) = own_path(h, &proc_cgroup) else {
            continue;
        };
        let target = dest.join(name);
        fs::create_dir_all(&target).map_err(Error::io("creating mount point", &target))?;
        bind(
            &h.mount_point.join(own.trim_start_matches('/')),
            &target,
            flags,
        )?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            dest,
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(failed("remounting read-only", dest))?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(failed("binding cgroup at", target))?;
    let keep =
        flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if keep.is_empty() {
        return Ok(());
    }
    super::mountpoint::remount(target, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:22 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const PROC_CGROUP: &str = "\
4:memory:/wasmlet-e2e/t1
3:cpu:/wasmlet-e2e/t1
1:name=systemd:/
0::/
";

    #[test]
    fn hybrid_layout_is_read_from_mountinfo() {
        let h = hierarchies(MOUNTINFO);
        assert_eq!(h.len(), 4);
        assert_eq!(h[1].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(own_path(&h[1], PROC_CGROUP), Some("/wasmlet-e2e/t1"));
        assert_eq!(own_path(&h[0], PROC_CGROUP), Some("/wasmlet-e2e/t1"));
        assert_eq!(own_path(&h[2], PROC_CGROUP), Some("/"));
        assert_eq!(own_path(&h[3], PROC_CGROUP), Some("/"));
    }

    #[test]
    fn combined_controllers_match_their_hierarchy() {
        let h = Hierarchy {
            mount_point: "/sys/fs/cgroup/cpu,cpuacct".into(),
            fstype: "cgroup".into(),
            options: vec!["rw".into(), "cpu".into(), "cpuacct".into()],
        };
        assert_eq!(
            own_path(&h, "5:cpu,cpuacct:/k8s.io/abc\n"),
            Some("/k8s.io/abc")
        );
        assert_eq!(own_path(&h, "5:memory:/k8s.io/abc\n"), None);
    }
}
