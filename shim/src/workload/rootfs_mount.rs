//! Mounting the rootfs containerd hands over in CreateTaskRequest (an overlay of the image's
//! snapshot) at the bundle's rootfs, and taking it down again on Delete.

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

use crate::error::{Error, Result};
use crate::task::instance::RootfsMount;

/// A mounted rootfs; unmounted on drop unless [`Mounted::keep`] hands it on.
pub struct Mounted {
    target: Option<PathBuf>,
}

impl Mounted {
    /// Mount `mounts` in order at `target`. Nothing is mounted when `mounts` is empty
    /// (`ctr run --rootfs DIR`: the spec's root already is the directory).
    pub fn mount(mounts: &[RootfsMount], target: &Path) -> Result<Mounted> {
        let mut mounted = Mounted { target: None };
        for m in mounts {
            containerd_shim::mount_linux::mount_rootfs(
                Some(&m.typ),
                Some(&m.source),
                &m.options,
                target,
            )
            .map_err(|e| Error::Mount {
                target: target.to_path_buf(),
                message: format!("{} mount of {}: {e}", m.typ, m.source),
            })?;
            mounted.target = Some(target.to_path_buf());
        }
        Ok(mounted)
    }

    /// Stop unmounting on drop; returns the mount point, if anything was mounted.
    pub fn keep(mut self) -> Option<PathBuf> {
        self.target.take()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            if let Err(e) = unmount(&t) {
                log::warn!("{e}");
            }
        }
    }
}

/// Unmount everything stacked at `target`; not being a mount point is not an error.
pub fn unmount(target: &Path) -> Result<()> {
    for _ in 0..16 {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::sys(format!("unmounting {}", target.display()))(e)),
        }
    }
    Ok(())
}

/// Whether `path` is a mount point, from `/proc/self/mountinfo`.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp.replace("\\040", " ") == wanted)
}
