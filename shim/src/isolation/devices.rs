//! Device nodes in the container's `/dev`: the default set when `/dev` is the container's
//! own (runc's list, with the usual `/proc/self/fd` links), and every `linux.devices`
//! entry; where the kernel refuses mknod, the host's node is bound instead. `/dev/ptmx` is
//! always the link to the container's own devpts (`pts/ptmx`), even when the spec lists
//! the host's (a privileged container's spec lists every host device).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::failed;
use super::mountpoint::{create_target, inside};
use crate::error::{Error, Result};

/// Create the devices of `spec` under `rootfs` (before pivot_root), in runc's order: the
/// defaults when `own_dev`, then `linux.devices`, then `/dev/ptmx` and the links.
pub fn populate(spec: &Spec, rootfs: &Path, own_dev: bool) -> Result<()> {
    if own_dev {
        for (path, major, minor) in DEFAULT_DEVICES {
            make_device(rootfs, path, SFlag::S_IFCHR, major, minor, 0o666, 0, 0)?;
        }
    }
    for dev in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|d| d.path() != Path::new(PTMX))
    {
        spec_device(rootfs, dev)?;
    }
    if own_dev {
        ptmx(rootfs)?;
        dev_symlinks(rootfs)?;
    }
    Ok(())
}

/// The pseudo-terminal multiplexer, a link into the container's devpts.
const PTMX: &str = "/dev/ptmx";

/// Make `/dev/ptmx` the link `pts/ptmx` when the container has its own devpts, replacing
/// whatever is there: a terminal opened in the container then comes from its own devpts.
fn ptmx(rootfs: &Path) -> Result<()> {
    let pts = inside(rootfs, "/dev/pts")?;
    if !pts.is_dir() {
        return Ok(());
    }
    // The link itself, not where an existing link points.
    let at = inside(rootfs, "/dev")?.join("ptmx");
    match fs::remove_file(&at) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("replacing", &at)(e)),
    }
    symlink("pts/ptmx", &at).map_err(Error::io("creating symlink", &at))
}

/// Devices every container gets when its `/dev` is not the host's (runc's list).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

#[allow(clippy::too_many_arguments)]
fn make_device(
    rootfs: &Path,
    path: &str,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let dest = inside(rootfs, path)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(Error::io("creating device directory", parent))?;
    }
    let _ = fs::remove_file(&dest);
    match mknod(
        &dest,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    ) {
        Ok(()) => {
            // mknod honours the umask; the spec's mode is exact.
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(Error::io("setting the mode of", &dest))?;
            chown(&dest, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(failed("chowning device", path))
        }
        // Not allowed to create device nodes: bind the host's, as runc does.
        Err(nix::Error::EPERM) if Path::new(path).exists() => {
            create_target(&dest, false)?;
            mount(
                Some(path),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(failed("binding device", path))
        }
        // Something that could not be removed is there already (a node bound by a mount):
        // keep it, as runc does.
        Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(failed("creating device", path)(e)),
    }
}

fn spec_device(rootfs: &Path, dev: &LinuxDevice) -> Result<()> {
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::SpecInvalid {
                field: "linux.devices".into(),
                message: format!(
                    "device {} has type \"a\", which only cgroup rules use",
                    dev.path().display()
                ),
            })
        }
    };
    make_device(
        rootfs,
        &dev.path().to_string_lossy(),
        kind,
        dev.major() as u64,
        dev.minor() as u64,
        dev.file_mode().unwrap_or(0o666),
        dev.uid().unwrap_or(0),
        dev.gid().unwrap_or(0),
    )
}

fn dev_symlinks(rootfs: &Path) -> Result<()> {
    let links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("/proc/kcore", "/dev/core"),
    ];
    for (target, link) in links {
        let at = inside(rootfs, link)?;
        if fs::symlink_metadata(&at).is_ok() {
            continue;
        }
        symlink(target, &at).map_err(Error::io("creating symlink", &at))?;
    }
    Ok(())
}
