//! The container's filesystem view, built in the workload's private mount namespace: the
//! rootfs bound onto itself, the spec's mounts inside it, the default and listed devices,
//! pivot_root, then masked and read-only paths and a read-only root.

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, fchdir, pivot_root};
use oci_spec::runtime::{Mount, Spec};

use super::mountpoint::{create_target, inside, remount};
use super::namespaces::Entered;
use super::options::{rootfs_propagation, MountOptions};
use super::{cgroupfs, devices, failed};
use crate::error::{Error, Result};

/// Build the container's filesystem from `spec` at `rootfs` and pivot into it. Afterwards
/// `/` is the container's root; [`finish`] completes it.
pub fn setup(spec: &Spec, rootfs: &Path, entered: &Entered) -> Result<()> {
    let linux = spec.linux().as_ref();
    let propagation = rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
        .map_err(failed("setting propagation of", "/"))?;
    if propagation.contains(MsFlags::MS_SHARED) {
        make_private(rootfs)?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed("binding the rootfs", rootfs))?;

    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut own_dev = false;
    for (i, m) in mounts.iter().enumerate() {
        let detached = entered
            .detached
            .iter()
            .find(|(at, _)| *at == i)
            .map(|(_, tree)| tree);
        mount_one(rootfs, m, entered, detached)?;
        let dest = m.destination().to_string_lossy();
        if dest.trim_end_matches('/') == "/dev" {
            own_dev = !MountOptions::parse(
                m.typ().as_deref(),
                m.options().as_deref().unwrap_or_default(),
            )
            .bind;
        }
    }
    devices::populate(spec, rootfs, own_dev)?;

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

/// pivot_root refuses a new root that is shared or whose parent mount is: before the
/// rootfs is bound onto itself (the bind would join a shared mount's peers), make the mount
/// it is on (the rootfs itself when containerd mounted it) private, in this mount namespace
/// only. Only needed when `rootfsPropagation` made everything shared (`rshared`).
fn make_private(rootfs: &Path) -> Result<()> {
    let mut dir = Some(rootfs);
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

fn mount_one(
    rootfs: &Path,
    m: &Mount,
    entered: &Entered,
    detached: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
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
        let is_dir = match detached {
            Some(tree) => nix::sys::stat::fstat(tree)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .map_err(failed("inspecting the cloned mount of", source))?,
            None => fs::metadata(source)
                .map_err(|_| wasmlet_oci::Error::MountSourceMissing {
                    destination: destination.clone(),
                    source_path: source.clone(),
                })?
                .is_dir(),
        };
        create_target(&dest, is_dir)?;
        match detached {
            Some(tree) => crate::sys::attach_tree(tree, &dest),
            None => mount(
                Some(source.as_path()),
                &dest,
                None::<&str>,
                opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                None::<&str>,
            ),
        }
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
            // sysfs belongs to a network namespace: where a fresh one is refused (a namespace
            // shared with the host or a pod), bind the host's /sys with the mount's own flags
            // (read-only as specs ask; writable for a privileged container), as crun does.
            Err(nix::Error::EPERM) if typ == Some("sysfs") && !entered.new_net_ns => {
                mount(
                    Some("/sys"),
                    &dest,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(failed("bind-mounting /sys at", &destination))?;
                let flags = opts.remount_flags();
                if !flags.is_empty() {
                    remount(&dest, flags)?;
                }
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
    if !opts.recursive.is_empty() {
        crate::sys::mount_setattr_recursive(&dest, opts.recursive.set, opts.recursive.clear)
            .map_err(failed(
                "setting recursive mount attributes of",
                &destination,
            ))?;
    }
    Ok(())
}

/// Make `rootfs` the root: the old root is detached, never visible to the workload.
fn pivot(rootfs: &Path) -> Result<()> {
    // The old root, to act on it after the pivot: "." then names the new root, whose mounts
    // must keep the propagation the spec gave them.
    let old_root = fs::File::open("/").map_err(Error::io("opening", "/"))?;
    chdir(rootfs).map_err(failed("entering", rootfs))?;
    pivot_root(".", ".").map_err(failed("pivot_root into", rootfs))?;
    fchdir(&old_root).map_err(failed("entering", "the old root"))?;
    // Keep the old root's unmount from propagating anywhere, then detach it.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed("setting propagation of", "the old root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(failed("detaching", "the old root"))?;
    drop(old_root);
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
