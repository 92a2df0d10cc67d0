//! User namespaces and id-mapped mounts: the mappings a spec or containerd gives (the
//! spec's `linux.uidMappings`, a mount's `uidMappings`, the snapshotter's `uidmap=` mount
//! option), checked and written as `uid_map` text; a new user namespace with them, as a
//! descriptor (a short-lived child holds it while the maps are written, by this process,
//! privileged in the parent namespace); detached mounts, mapped through one or not, that a
//! container's setup attaches; and becoming a namespace's root.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxIdMapping;

use crate::error::{Error, Result};

/// One line of a `uid_map` or `gid_map`: `size` ids from `container` on, seen as `host` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// A user namespace's mappings: uid, then gid.
pub type IdMaps = (Vec<IdMapping>, Vec<IdMapping>);

/// The kernel's limit on lines in one map (Linux 4.15).
const MAX_LINES: usize = 340;

/// The mappings of a spec field (`field` names it in errors), checked.
pub fn from_spec(field: &str, maps: &[LinuxIdMapping]) -> Result<Vec<IdMapping>> {
    let out: Vec<IdMapping> = maps
        .iter()
        .map(|m| IdMapping {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        })
        .collect();
    check(field, &out)?;
    Ok(out)
}

/// containerd's mount option value (`uidmap=0:65536:65536[,N:M:L...]`), checked.
pub fn parse_option(field: &str, value: &str) -> Result<Vec<IdMapping>> {
    let invalid = |message: String| Error::SpecInvalid {
        field: field.to_string(),
        message,
    };
    let out = value
        .split(',')
        .map(|line| {
            let parts: Vec<&str> = line.split(':').collect();
            let [c, h, s] = parts[..] else {
                return Err(invalid(format!("{line:?} is not containerID:hostID:size")));
            };
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| invalid(format!("{v:?} in {line:?} is not an id")))
            };
            Ok(IdMapping {
                container: num(c)?,
                host: num(h)?,
                size: num(s)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    check(field, &out)?;
    Ok(out)
}

/// A map the kernel takes: some lines but not too many, no empty or wrapping range, and no
/// two ranges overlapping on either side.
fn check(field: &str, maps: &[IdMapping]) -> Result<()> {
    let invalid = |message: String| Error::SpecInvalid {
        field: field.to_string(),
        message,
    };
    if maps.is_empty() {
        return Err(invalid("no mapping given".into()));
    }
    if maps.len() > MAX_LINES {
        return Err(invalid(format!(
            "{} mappings; the kernel takes at most {MAX_LINES}",
            maps.len()
        )));
    }
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in maps.iter().enumerate() {
        if m.size == 0 {
            return Err(invalid(format!("mapping {i} has size 0")));
        }
        if end(m.container, m.size) > u64::from(u32::MAX)
            || end(m.host, m.size) > u64::from(u32::MAX)
        {
            return Err(invalid(format!("mapping {i} runs past the last id")));
        }
        for (j, o) in maps.iter().enumerate().skip(i + 1) {
            let overlap =
                |a: u32, b: u32| u64::from(a) < end(b, o.size) && u64::from(b) < end(a, m.size);
            if overlap(m.container, o.container) || overlap(m.host, o.host) {
                return Err(invalid(format!("mappings {i} and {j} overlap")));
            }
        }
    }
    Ok(())
}

/// Whether `id` inside the namespace is mapped.
pub fn maps(maps: &[IdMapping], id: u32) -> bool {
    maps.iter()
        .any(|m| id >= m.container && u64::from(id) < u64::from(m.container) + u64::from(m.size))
}

/// The text of a `uid_map` or `gid_map` file.
pub fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
        .collect()
}

/// A new user namespace with these mappings, as a descriptor (for setns(2) or an id-mapped
/// mount). This process must hold CAP_SETUID and CAP_SETGID where it runs, so that it may
/// map any id (and `setgroups` stays allowed inside).
pub fn create(uid: &[IdMapping], gid: &[IdMapping]) -> Result<OwnedFd> {
    let holder = crate::sys::hold_new_userns().map_err(Error::io(
        "starting a process in a new user namespace",
        "clone",
    ))?;
    let pid = holder.pid;
    let opened = write_map(pid, "uid_map", uid)
        .and_then(|()| write_map(pid, "gid_map", gid))
        .and_then(|()| {
            let ns = format!("/proc/{pid}/ns/user");
            File::open(&ns)
                .map(OwnedFd::from)
                .map_err(Error::io("opening", &ns))
        });
    drop(holder.release);
    // The shim's reaper may have collected it first (ECHILD): nothing is left either way.
    let _ = waitpid(Pid::from_raw(pid), None);
    opened
}

fn write_map(pid: libc::pid_t, file: &str, maps: &[IdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    // One write: the kernel takes a map only whole, once.
    std::fs::write(&path, map_text(maps)).map_err(Error::io("writing", &path))
}

/// A detached copy of the mount at `source` (with the mounts below it when `recursive`),
/// its files' owners mapped through the user namespace `userns`; mount it with
/// [`crate::sys::attach_tree`].
pub fn idmapped_tree(source: &Path, recursive: bool, userns: &OwnedFd) -> Result<OwnedFd> {
    let step = |what: &str| super::failed(what, source);
    let tree = crate::sys::clone_tree(source, recursive).map_err(step("cloning the mount of"))?;
    crate::sys::idmap_tree(&tree, userns, recursive).map_err(step("id-mapping the mount of"))?;
    Ok(tree)
}

/// The spec's bind mounts cloned from their sources from the host's view, by index in
/// `mounts`: the ones with `uidMappings` and `gidMappings`, mapped (mapping a mount needs the
/// host's privileges), and, when `all`, every other bind mount too (a container in a new
/// user namespace sets up its mounts as its own root, who may not reach the sources).
/// Mounts with the same mappings share one namespace.
pub fn detached_binds(spec: &oci_spec::runtime::Spec, all: bool) -> Result<Vec<(usize, OwnedFd)>> {
    let mut namespaces: Vec<(IdMaps, OwnedFd)> = Vec::new();
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = super::options::MountOptions::parse(
            m.typ().as_deref(),
            m.options().as_deref().unwrap_or_default(),
        );
        let maps = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(uid), Some(gid)) => {
                let field = format!("mounts[{i}].uidMappings");
                Some((from_spec(&field, uid)?, from_spec(&field, gid)?))
            }
            (None, None) => None,
            _ => {
                return Err(Error::SpecInvalid {
                    field: format!("mounts[{i}]"),
                    message: "uidMappings and gidMappings go together".into(),
                })
            }
        };
        if maps.is_some() && !opts.bind {
            return Err(Error::SpecUnsupported {
                what: format!(
                    "id-mapped mounts of type {:?} (mounts[{i}]; only bind mounts)",
                    m.typ().as_deref().unwrap_or("none")
                ),
            });
        }
        if !opts.bind || (maps.is_none() && !all) {
            continue;
        }
        let source = m.source().as_ref().ok_or_else(|| Error::SpecInvalid {
            field: "mounts".into(),
            message: format!("bind mount at {} has no source", m.destination().display()),
        })?;
        if !source.exists() {
            return Err(wasmlet_oci::Error::MountSourceMissing {
                destination: m.destination().to_string_lossy().into_owned(),
                source_path: source.clone(),
            }
            .into());
        }
        let tree = match maps {
            None => {
                crate::sys::clone_tree(source, opts.flags.contains(nix::mount::MsFlags::MS_REC))
                    .map_err(super::failed("cloning the mount of", source))?
            }
            Some((uid, gid)) => {
                let maps = (uid, gid);
                let ns = match namespaces.iter().position(|(m, _)| *m == maps) {
                    Some(n) => &namespaces[n].1,
                    None => {
                        let fd = create(&maps.0, &maps.1)?;
                        namespaces.push((maps, fd));
                        &namespaces[namespaces.len() - 1].1
                    }
                };
                idmapped_tree(source, opts.idmap_is_recursive(), ns)?
            }
        };
        out.push((i, tree));
    }
    Ok(out)
}

/// In a user namespace other than the host's, become its root (the ids 0 map to), with
/// every capability kept: what the container's setup creates then belongs to its root, and
/// filesystems mounted in the namespace accept it (they refuse an unmapped owner).
pub fn become_root() -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let step = |what: &'static str| move |e| super::failed(what, "0")(e);
    nix::sys::prctl::set_keepcaps(true).map_err(step("keeping capabilities across setuid"))?;
    setgroups(&[]).map_err(step("clearing groups for"))?;
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(step("setting gid"))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(step("setting uid"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(step("resetting keepcaps after setuid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(container: u32, host: u32, size: u32) -> IdMapping {
        IdMapping {
            container,
            host,
            size,
        }
    }

    #[test]
    fn containerd_options_parse_into_map_text() {
        let maps = parse_option("uidmap", "0:65536:65536,65536:200000:10").unwrap();
        assert_eq!(maps, vec![m(0, 65536, 65536), m(65536, 200000, 10)]);
        assert_eq!(map_text(&maps), "0 65536 65536\n65536 200000 10\n");
    }

    #[test]
    fn malformed_options_are_refused_by_value() {
        for (value, says) in [
            ("0:65536", "is not containerID:hostID:size"),
            ("0:x:5", "\"x\" in \"0:x:5\" is not an id"),
            ("", "is not containerID:hostID:size"),
            ("0:1:0", "size 0"),
            ("0:4294967295:2", "runs past the last id"),
        ] {
            let e = parse_option("uidmap", value).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("uidmap"), "{value}: {e}");
        }
    }

    #[test]
    fn overlapping_ranges_are_refused_on_either_side() {
        let e = from_spec(
            "linux.uidMappings",
            &serde_json::from_str::<Vec<LinuxIdMapping>>(
                r#"[{"containerID":0,"hostID":1000,"size":100000},
                    {"containerID":0,"hostID":2000,"size":100000}]"#,
            )
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mappings 0 and 1 overlap"), "{e}");
        let hosts = [m(0, 1000, 10), m(10, 1005, 10)];
        assert!(check("x", &hosts).is_err());
        let apart = [m(0, 1000, 10), m(10, 1010, 10)];
        assert!(check("x", &apart).is_ok());
        assert!(check("x", &[]).is_err());
    }

    #[test]
    fn mapped_ids_are_inside_a_range() {
        let maps_ = [m(0, 1000, 10), m(100, 5000, 1)];
        assert!(maps(&maps_, 0) && maps(&maps_, 9) && maps(&maps_, 100));
        assert!(!maps(&maps_, 10) && !maps(&maps_, 101));
    }
}
