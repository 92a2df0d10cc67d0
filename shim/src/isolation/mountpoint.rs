//! Mount targets inside the container's rootfs: where a destination lands (symlinks
//! resolved without leaving the rootfs), creating the directory or file to mount on, and
//! remounting a mount point with flags added, keeping the per-mount flags it already has
//! (the kernel refuses a bind remount that would clear locked ones).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use wasmlet_oci::rootfs::resolve;

use super::failed;
use crate::error::{Error, Result};

/// Where `destination` lands inside `rootfs`, symlinks resolved without leaving it.
pub fn inside(rootfs: &Path, destination: &str) -> Result<PathBuf> {
    Ok(resolve(rootfs, destination)?)
}

/// Create a mount target: a directory, or an empty file for a file bind mount.
pub fn create_target(dest: &Path, dir: bool) -> Result<()> {
    if dir {
        fs::create_dir_all(dest).map_err(Error::io("creating mount point", dest))
    } else {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating mount point", parent))?;
        }
        if !dest.exists() {
            fs::File::create(dest).map_err(Error::io("creating mount point", dest))?;
        }
        Ok(())
    }
}

/// Remount `path` (already a mount) with `flags` added, keeping the flags it has.
pub fn remount(path: impl AsRef<Path>, flags: MsFlags) -> Result<()> {
    let path = path.as_ref();
    let current = nix::sys::statvfs::statvfs(path)
        .map(|s| statvfs_flags(s.flags()))
        .unwrap_or_else(|_| MsFlags::empty());
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | current | flags,
        None::<&str>,
    )
    .map_err(failed("remounting", path))
}

/// The per-mount flags that a bind remount must repeat (the kernel refuses to clear
/// locked ones).
fn statvfs_flags(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let mut out = MsFlags::empty();
    for (from, to) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(from) {
            out |= to;
        }
    }
    out
}
