//! Mounting the rootfs containerd hands over in CreateTaskRequest (an overlay of the image's
//! snapshot) at the bundle's rootfs, and taking it down again on Delete. For a container in
//! a user namespace, containerd 2.x's snapshotter asks for id-mapped layers with the options
//! `uidmap=` and `gidmap=`: each lower layer (or the bound directory) is then mapped through
//! a user namespace with those mappings, and the overlay is made of the mapped layers.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::isolation::userns::{self, IdMapping, IdMaps};
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
            let (options, idmap) = split_idmap(&m.options)?;
            match idmap {
                None => mount_plain(m, &options, target)?,
                Some((uid, gid)) => mount_idmapped(m, &options, &uid, &gid, target)?,
            }
            mounted.target = Some(target.to_path_buf());
        }
        Ok(mounted)
    }

    /// Stop unmounting on drop; returns the mount point, if anything was mounted.
    pub fn keep(mut self) -> Option<PathBuf> {
        self.target.take()
    }
}

fn mount_plain(m: &RootfsMount, options: &[String], target: &Path) -> Result<()> {
    containerd_shim::mount_linux::mount_rootfs(Some(&m.typ), Some(&m.source), options, target)
        .map_err(|e| Error::Mount {
            target: target.to_path_buf(),
            message: format!("{} mount of {}: {e}", m.typ, m.source),
        })
}

/// The options without `uidmap=` and `gidmap=`, and the mappings these give (both or none).
fn split_idmap(options: &[String]) -> Result<(Vec<String>, Option<IdMaps>)> {
    let (mut uid, mut gid, mut rest) = (None, None, Vec::new());
    for o in options {
        if let Some(v) = o.strip_prefix("uidmap=") {
            uid = Some(userns::parse_option("rootfs mount option uidmap", v)?);
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            gid = Some(userns::parse_option("rootfs mount option gidmap", v)?);
        } else {
            rest.push(o.clone());
        }
    }
    match (uid, gid) {
        (Some(u), Some(g)) => Ok((rest, Some((u, g)))),
        (None, None) => Ok((rest, None)),
        _ => Err(Error::SpecInvalid {
            field: "rootfs mount options".into(),
            message: "uidmap= and gidmap= go together".into(),
        }),
    }
}

/// Mount `m` at `target` with its files' owners mapped: a bound directory is mapped itself;
/// an overlay gets its lower layers mapped (at temporary mount points beside `target`,
/// detached once the overlay holds them) and its upper layer as it is (the snapshotter
/// gave it the mapped owner).
fn mount_idmapped(
    m: &RootfsMount,
    options: &[String],
    uid: &[IdMapping],
    gid: &[IdMapping],
    target: &Path,
) -> Result<()> {
    let err = |message: String| Error::Mount {
        target: target.to_path_buf(),
        message: format!("id-mapped {} mount of {}: {message}", m.typ, m.source),
    };
    let ns = userns::create(uid, gid)?;
    match m.typ.as_str() {
        "bind" => {
            let recursive = options.iter().any(|o| o == "rbind");
            let tree = userns::idmapped_tree(Path::new(&m.source), recursive, &ns)?;
            crate::sys::attach_tree(&tree, target).map_err(|e| err(e.to_string()))?;
            if options.iter().any(|o| o == "ro") {
                mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(|e| err(format!("making it read-only: {e}")))?;
            }
            Ok(())
        }
        "overlay" => {
            let lower = options
                .iter()
                .position(|o| o.starts_with("lowerdir="))
                .ok_or_else(|| err("no lowerdir= option".into()))?;
            let layers = target.with_file_name("idmapped-layers");
            let mut attached = Vec::new();
            let result = (|| {
                let mut mapped = Vec::new();
                for (k, dir) in options[lower]["lowerdir=".len()..].split(':').enumerate() {
                    let at = layers.join(k.to_string());
                    std::fs::create_dir_all(&at).map_err(Error::io("creating", &at))?;
                    let tree = userns::idmapped_tree(Path::new(dir), false, &ns)?;
                    crate::sys::attach_tree(&tree, &at).map_err(|e| err(e.to_string()))?;
                    attached.push(at.clone());
                    mapped.push(at.display().to_string());
                }
                let mut options = options.to_vec();
                options[lower] = format!("lowerdir={}", mapped.join(":"));
                mount_plain(m, &options, target)
            })();
            // The overlay holds the mapped layers; their mount points are not needed.
            for at in &attached {
                let _ = umount2(at, MntFlags::MNT_DETACH);
            }
            let _ = std::fs::remove_dir_all(&layers);
            result
        }
        other => Err(err(format!("uidmap= on a {other} mount is not supported"))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn idmap_options_are_taken_out_of_the_mount_options() {
        let (rest, maps) = split_idmap(&strings(&[
            "index=off",
            "lowerdir=/a:/b",
            "uidmap=0:65536:65536",
            "gidmap=0:65536:65536",
        ]))
        .unwrap();
        assert_eq!(rest, strings(&["index=off", "lowerdir=/a:/b"]));
        let (uid, gid) = maps.unwrap();
        assert_eq!((uid[0].host, gid[0].size), (65536, 65536));
        let (rest, maps) = split_idmap(&strings(&["ro", "rbind"])).unwrap();
        assert!(maps.is_none() && rest.len() == 2);
    }

    #[test]
    fn half_an_idmap_or_a_bad_one_is_refused() {
        let e = split_idmap(&strings(&["uidmap=0:65536:65536"])).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = split_idmap(&strings(&["uidmap=0:x:1", "gidmap=0:1:1"])).unwrap_err();
        assert!(e.to_string().contains("uidmap"), "{e}");
    }
}
