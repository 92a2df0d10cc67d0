//! The workload process's own attributes from the spec, applied inside the container after
//! pivot_root: hostname, sysctls, oom_score_adj, rlimits, user and groups, capabilities,
//! no_new_privileges, seccomp, umask and working directory.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::resource::setrlimit;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, setgroups, sethostname, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, Spec};

use super::namespaces::Entered;
use super::options::rlimit_resource;
use super::{failed, seccomp};
use crate::error::{Error, Result};

/// The process's oom_score_adj: set first, while its `/proc/self` files are still its own
/// (becoming a user namespace's root makes the process non-dumpable, and they turn the
/// host root's).
pub fn oom_score_adj(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(score) = process.and_then(|p| p.oom_score_adj()) {
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", score.to_string()) {
            // Lowering the score needs CAP_SYS_RESOURCE, which some hosts do not grant even to
            // root (containerd's restrict_oom_score_adj exists for them): keep going.
            if score < 0 && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                log::warn!(
                    "cannot lower oom_score_adj to {score} ({e}); keeping the inherited score"
                );
            } else {
                return Err(Error::io("writing", "/proc/self/oom_score_adj")(e));
            }
        }
    }
    Ok(())
}

/// Hostname, domainname and sysctls: things set while still fully privileged.
pub fn system(spec: &Spec, entered: &Entered) -> Result<()> {
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !entered.uts {
            return Err(Error::SpecInvalid {
                field: "hostname".into(),
                message: "setting a hostname needs a UTS namespace in linux.namespaces".into(),
            });
        }
        sethostname(hostname).map_err(failed("setting hostname", hostname))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        std::fs::write("/proc/sys/kernel/domainname", domain).map_err(Error::io(
            "setting domainname via",
            "/proc/sys/kernel/domainname",
        ))?;
    }
    let linux = spec.linux().as_ref();
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(Error::io("setting sysctl", &path))?;
    }
    Ok(())
}

fn cap_set(names: Option<&HashSet<oci_spec::runtime::Capability>>) -> CapsHashSet {
    let mut set = CapsHashSet::new();
    for cap in names.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        match Capability::from_str(&name) {
            // Capabilities this kernel does not have cannot be granted; runc skips them too.
            Ok(c) if caps::runtime::thread_all_supported().contains(&c) => {
                set.insert(c);
            }
            _ => log::warn!("skipping capability {name}, unknown to this kernel"),
        }
    }
    set
}

/// Give the process's user its terminal (the slave on stdio, opened as root), as runc does:
/// a filesystem that refuses (read-only, no such owner) is no error.
fn own_terminal(uid: Uid) {
    use std::os::fd::AsFd;
    if uid.is_root() {
        return;
    }
    let stdin = std::io::stdin();
    if let Err(e) = nix::unistd::fchown(stdin.as_fd(), Some(uid), None) {
        log::warn!("giving the terminal to uid {uid}: {e}");
    }
}

/// Everything that drops privilege, in the order that keeps each step possible: rlimits,
/// seccomp (before losing CAP_SYS_ADMIN unless no_new_privileges is set), the bounding set,
/// the user switch, the remaining capability sets, no_new_privileges, then seccomp if it
/// was not loaded yet; last the umask and the working directory.
pub fn drop_privileges(spec: &Spec) -> Result<()> {
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    for rl in process.rlimits().as_deref().unwrap_or_default() {
        let name = serde_json::to_value(rl.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let resource = rlimit_resource(&name)?;
        setrlimit(resource, rl.soft(), rl.hard()).map_err(failed("setting rlimit", &name))?;
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::filter(s, nnp)?),
        None => None,
    };
    let load = |f: &libseccomp::ScmpFilterContext| {
        f.load().map_err(|e| Error::SpecInvalid {
            field: "linux.seccomp".into(),
            message: format!("loading the filter: {e}"),
        })
    };
    if !nnp {
        if let Some(f) = &filter {
            load(f)?;
        }
    }
    let capabilities: Option<&LinuxCapabilities> = process.capabilities().as_ref();
    if let Some(c) = capabilities {
        let keep = cap_set(c.bounding().as_ref());
        for cap in caps::runtime::thread_all_supported() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| Error::Capabilities {
                    message: format!("dropping {cap} from the bounding set: {e}"),
                })?;
            }
        }
    }

    let user = process.user();
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    if process.terminal().unwrap_or(false) {
        own_terminal(uid);
    }
    nix::sys::prctl::set_keepcaps(true).map_err(failed("keeping capabilities across", "setuid"))?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).map_err(failed(
        "setting supplementary groups",
        format!("{groups:?}"),
    ))?;
    setresgid(gid, gid, gid).map_err(failed("setting gid", gid.to_string()))?;
    setresuid(uid, uid, uid).map_err(failed("setting uid", uid.to_string()))?;
    nix::sys::prctl::set_keepcaps(false).map_err(failed("resetting keepcaps after", "setuid"))?;

    if let Some(c) = capabilities {
        let set = |which: CapSet, names| {
            caps::set(None, which, &cap_set(names)).map_err(|e| Error::Capabilities {
                message: format!("setting the {which:?} set: {e}"),
            })
        };
        // Each step must stay a subset of what the previous one left: effective and
        // inheritable within the current permitted set, then permitted shrinks to the spec's.
        set(CapSet::Effective, c.effective().as_ref())?;
        set(CapSet::Inheritable, c.inheritable().as_ref())?;
        set(CapSet::Permitted, c.permitted().as_ref())?;
        set(CapSet::Ambient, c.ambient().as_ref())?;
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(failed("setting", "no_new_privileges"))?;
        if let Some(f) = &filter {
            load(f)?;
        }
    }
    if let Some(mask) = user.umask() {
        umask(Mode::from_bits_truncate(mask));
    }
    let cwd = process.cwd();
    let cwd = if cwd.as_os_str().is_empty() {
        std::path::Path::new("/")
    } else {
        cwd.as_path()
    };
    chdir(cwd).map_err(failed("entering the working directory", cwd))
}
