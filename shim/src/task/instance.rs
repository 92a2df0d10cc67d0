//! The seam between the task service and a running workload. The service only ever talks
//! to a [`Launcher`] and the [`Instance`]s it returns, so its logic can be tested with a stub;
//! [`crate::workload::launcher::ProcessLauncher`] is the real one.

use std::path::PathBuf;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use oci_spec::runtime::LinuxResources;

use crate::error::Result;

/// A mount containerd asks the shim to make at the bundle's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Where the workload's standard streams go, as containerd names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    /// The process has a terminal (stdout carries it; stderr is not used).
    pub terminal: bool,
}

/// What a launcher needs to create one workload.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub rootfs: Vec<RootfsMount>,
    pub stdio: StdioPaths,
}

/// What an instance needs to start another process in its container (containerd's Exec).
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub id: String,
    pub exec_id: String,
    /// The process to run, as the OCI spec's `process` section describes it.
    pub process: oci_spec::runtime::Process,
    pub stdio: StdioPaths,
}

/// Creates workloads.
pub trait Launcher: Send + Sync + 'static {
    /// Prepare the workload up to the point where only Start remains: the process exists,
    /// the module is compiled and checked. Errors here are what `ctr run` prints.
    fn launch(&self, req: &LaunchRequest) -> Result<Box<dyn Instance>>;
}

/// One created workload.
pub trait Instance: Send + Sync {
    /// The workload's process id.
    fn pid(&self) -> u32;
    /// Let the workload run.
    fn start(&self) -> Result<()>;
    /// Send `signal` to the workload (to all of its processes with `all`).
    fn signal(&self, signal: i32, all: bool) -> Result<()>;
    /// Close the workload's stdin (containerd's CloseIO).
    fn close_stdin(&self);
    /// ResizePty: the size of the process's terminal; nothing without one.
    fn resize_pty(&self, _cols: u32, _rows: u32) -> Result<()> {
        Ok(())
    }
    /// The process has exited (its output may still be drained).
    fn exited(&self) {}
    /// Whether the workload, now exited, was stopped for exceeding its memory limit (by
    /// the engine's cap or by the kernel's OOM killer in its cgroup).
    fn out_of_memory(&self) -> bool;
    /// Call `on_oom` whenever the kernel's OOM killer kills a process of the workload
    /// while it runs. Kills that [`Instance::out_of_memory`] has already accounted for at
    /// exit are not reported again, and nothing is reported after it.
    fn watch_oom(&self, _on_oom: Box<dyn Fn() + Send>) {}
    /// Whether the workload has no PID namespace of its own (none in its spec, or one joined
    /// by path): then the processes its init started outlive it unless killed.
    fn shares_pid_namespace(&self) -> bool {
        false
    }
    /// A process that served the launch and exits on its own; its exit is not the task's.
    fn helper_pid(&self) -> Option<u32> {
        None
    }
    /// Every process of the workload.
    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![self.pid()])
    }
    /// Freeze (`true`) or thaw (`false`) every process of the workload.
    fn freeze(&self, _frozen: bool) -> Result<()> {
        Err(crate::Error::Unimplemented {
            method: "Pause and Resume without a cgroup",
        })
    }
    /// The workload's cgroup metrics, as containerd's Stats carries them.
    fn stats(&self) -> Result<Any> {
        Err(crate::Error::Unimplemented {
            method: "Stats without a cgroup",
        })
    }
    /// Apply new resources (containerd's Update).
    fn update(&self, _resources: &LinuxResources) -> Result<()> {
        Err(crate::Error::Unimplemented {
            method: "Update without a cgroup",
        })
    }
    /// Start another process in this workload's container, up to Start: it joins the
    /// container's namespaces and cgroup and runs `req.process` (a module or a native
    /// program from the container's filesystem).
    fn exec(&self, _req: &ExecRequest) -> Result<Box<dyn Instance>> {
        Err(crate::Error::Unimplemented {
            method: "Exec for this kind of workload",
        })
    }
    /// Release what the workload held: mounts, stdio, state files. Called once, after exit.
    fn cleanup(&self) -> Result<()>;
}
