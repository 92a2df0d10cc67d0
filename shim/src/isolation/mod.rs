//! Linux isolation of every workload, done by the workload process itself between receiving
//! its request and reporting ready: namespaces (new, and joined by path; a new user
//! namespace with the spec's mappings, and id-mapped bind mounts), the rootfs with
//! the spec's mounts and devices behind pivot_root, masked and read-only paths, hostname,
//! sysctls, oom_score_adj, rlimits, user and groups, capabilities, no_new_privileges and
//! seccomp; or, for Exec, joining the namespaces of a running container. The cgroup is the
//! shim's side ([`crate::cgroups`]): the workload is already in it when it starts.

pub mod cgroupfs;
mod console;
mod devices;
mod join;
mod mountpoint;
pub mod namespaces;
pub mod options;
mod process;
mod rootfs;
pub mod seccomp;
pub mod userns;

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::Spec;

pub use join::Joined;
pub use namespaces::Entered;

use crate::error::{Error, Result};

/// The error of a failed setup step on `target` (a path, or a value named like one).
fn failed(step: &str, target: impl AsRef<Path>) -> impl FnOnce(nix::Error) -> Error {
    let step = step.to_string();
    let target = target.as_ref().display().to_string();
    move |source| Error::Isolation {
        step,
        target,
        source,
    }
}

/// Join and create the spec's namespaces, but for PID and time (which forbid threads).
pub fn enter_namespaces(spec: &Spec) -> Result<Entered> {
    namespaces::enter(spec)
}

/// Join or create the PID and time namespaces, right before the fork into the init.
pub fn enter_pid_namespace(entered: &Entered) -> Result<()> {
    namespaces::enter_pid(entered)
}

/// Whether `spec`'s process asks for a terminal.
pub fn wants_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// In the container's init: become the root of its user namespace if it has one,
/// build its filesystem at `rootfs` and pivot into it, set the
/// system attributes (sysctls before `/proc/sys` turns read-only), make its terminal if the
/// spec asks for one (returning the master for the shim), mask and protect paths, then drop
/// privileges as the spec says.
pub fn setup(spec: &Spec, rootfs: &Path, entered: &Entered) -> Result<Option<OwnedFd>> {
    process::oom_score_adj(spec)?;
    if entered.in_userns {
        userns::become_root()?;
    }
    rootfs::setup(spec, rootfs, entered)?;
    process::system(spec, entered)?;
    let console = wants_terminal(spec)
        .then(|| console::attach(true))
        .transpose()?;
    rootfs::finish(spec)?;
    process::drop_privileges(spec)?;
    Ok(console)
}

/// Exec, before the fork: open the namespaces of the container's `init` and join its PID
/// namespace.
pub fn prepare_join(init: u32) -> Result<Joined> {
    join::prepare(init)
}

/// Exec, in the new process: join the container's other namespaces (its root and mounts
/// last), make its terminal if asked (returning the master), then drop privileges as
/// `spec`'s process (the exec's) says. The container's filesystem and system attributes are
/// its init's, set up already.
pub fn finish_join(joined: Joined, spec: &Spec) -> Result<Option<OwnedFd>> {
    join::finish(joined)?;
    let console = wants_terminal(spec)
        .then(|| console::attach(false))
        .transpose()?;
    process::drop_privileges(spec)?;
    Ok(console)
}
