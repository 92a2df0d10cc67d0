//! The container's filesystem view, built in the workload's private mount namespace: the
//! rootfs bound onto itself, the spec's mounts inside it, the default and listed devices,
//! pivot_root, then masked and read-only paths and a read-only root.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, chown, pivot_root, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use wasmlet_oci::rootfs::resolve;

use super::namespaces::Entered;
use super::options::{rootfs_propagation, MountOptions};
use super::{cgroupfs, failed};
use crate::error::{Error, Result};

/// Devices every container gets when its `/dev` is not the host's (runc's list).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Build the container's filesystem from `spec` at `rootfs` and pivot into it. Afterwards
/// `/` is the container's root; [`finish`] completes it.
pub fn setup(spec: &Spec, rootfs: &Path, entered: &Entered) -> Result<()> {
    let linux = spec.linux().as_ref();
    let propagation = rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
        .map_err(failed("setting propagation of", "/"))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed("binding the rootfs", rootfs))?;
    if propagation.contains(MsFlags::MS_SHARED) {
        make_parent_private(rootfs)?;
    }

    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut own_dev = false;
    for m in &mounts {
        mount_one(rootfs, m, entered)?;
        let dest = m.destination().to_string_lossy();
        if dest.trim_end_matches('/') == "/dev" {
            own_dev = !MountOptions::parse(
                m.typ().as_deref(),
                m.options().as_deref().unwrap_or_default(),
            )
            .bind;
        }
    }
    if own_dev {
        for (path, major, minor) in DEFAULT_DEVICES {
            make_device(rootfs, path, SFlag::S_IFCHR, major, minor, 0o666, 0, 0)?;
        }
        dev_symlinks(rootfs)?;
    }
    for dev in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        spec_device(rootfs, dev)?;
    }

    pivot(rootfs)
}

/// After the system settings (sysctls write /proc/sys): masked paths, read-only paths and a
/// read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for path in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask(path)?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        make_readonly(path)?;
    }
    if wasmlet_oci::spec::root_readonly(spec) {
        remount("/", MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// pivot_root requires the parent mount of the new root not to be shared: walk up from the
/// rootfs to the nearest mount point and make it private.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mut dir = rootfs.parent();
    while let Some(d) = dir {
        match mount(
            None::<&str>,
            d,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::Error::EINVAL) => dir = d.parent(),
            Err(e) => return Err(failed("making private", d)(e)),
        }
    }
    Ok(())
}

/// Where `destination` lands inside `rootfs`, symlinks resolved without leaving it.
fn inside(rootfs: &Path, destination: &str) -> Result<PathBuf> {
    Ok(resolve(rootfs, destination)?)
}

fn mount_one(rootfs: &Path, m: &Mount, entered: &Entered) -> Result<()> {
    let destination = m.destination().to_string_lossy().into_owned();
    if !destination.starts_with('/') || destination == "/" {
        return Err(Error::SpecInvalid {
            field: "mounts".into(),
            message: format!("destination {destination:?} must be an absolute path below /"),
        });
    }
    let typ = m.typ().as_deref();
    let opts = MountOptions::parse(typ, m.options().as_deref().unwrap_or_default());
    let dest = inside(rootfs, &destination)?;
    if matches!(typ, Some("cgroup") | Some("cgroup2")) && !opts.bind {
        return cgroupfs::mount_cgroups(&dest, &opts, entered.new_cgroup_ns);
    }
    if opts.bind {
        let source = m.source().as_ref().ok_or_else(|| Error::SpecInvalid {
            field: "mounts".into(),
            message: format!("bind mount at {destination} has no source"),
        })?;
        let meta = fs::metadata(source).map_err(|_| wasmlet_oci::Error::MountSourceMissing {
            destination: destination.clone(),
            source_path: source.clone(),
        })?;
        create_target(&dest, meta.is_dir())?;
        mount(
            Some(source.as_path()),
            &dest,
            None::<&str>,
            opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
            None::<&str>,
        )
        .map_err(failed("bind-mounting", &destination))?;
        let extra = opts.remount_flags();
        if !extra.is_empty() {
            remount(&dest, extra)?;
        }
    } else {
        create_target(&dest, true)?;
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.unwrap_or("none").to_string());
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        let result = mount(Some(source.as_str()), &dest, typ, opts.flags, data);
        match result {
            Ok(()) => {}
            // sysfs belongs to a network namespace: sharing the host's (or a pod's), bind the
            // host's /sys read-only as runc does.
            Err(nix::Error::EPERM) if typ == Some("sysfs") && !entered.new_net_ns => {
                mount(
                    Some("/sys"),
                    &dest,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(failed("bind-mounting /sys at", &destination))?;
                remount(
                    &dest,
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                )?;
            }
            Err(e) => {
                return Err(failed(
                    &format!("mounting {} ({})", source, typ.unwrap_or("none")),
                    &destination,
                )(e))
            }
        }
    }
    if !opts.propagation.is_empty() {
        mount(
            None::<&str>,
            &dest,
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .map_err(failed("setting propagation of", &destination))?;
    }
    Ok(())
}

/// Create a mount target: a directory, or an empty file for a file bind mount.
fn create_target(dest: &Path, dir: bool) -> Result<()> {
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
pub(super) fn remount(path: impl AsRef<Path>, flags: MsFlags) -> Result<()> {
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
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("/proc/kcore", "/dev/core"),
    ];
    if inside(rootfs, "/dev/pts")?.is_dir() {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (target, link) in links {
        let at = inside(rootfs, link)?;
        if fs::symlink_metadata(&at).is_ok() {
            continue;
        }
        symlink(target, &at).map_err(Error::io("creating symlink", &at))?;
    }
    Ok(())
}

/// Make `rootfs` the root: the old root is detached, never visible to the workload.
fn pivot(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(failed("entering", rootfs))?;
    pivot_root(".", ".").map_err(failed("pivot_root into", rootfs))?;
    // The old root is now stacked under "."; keep its unmount from propagating anywhere.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed("setting propagation of", "the old root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(failed("detaching", "the old root"))?;
    chdir("/").map_err(failed("entering", "/"))
}

fn mask(path: &str) -> Result<()> {
    match fs::metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(failed("masking", path)),
        Ok(_) => mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(failed("masking", path)),
    }
}

fn make_readonly(path: &str) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed("binding read-only path", path))?;
    remount(path, MsFlags::MS_RDONLY)
}
