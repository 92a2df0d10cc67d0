//! Workloads: everything between the task service and a running container process.
//!
//! [`launcher`] is the real [`crate::task::instance::Launcher`]: it mounts the rootfs
//! ([`rootfs_mount`]), opens the standard streams ([`stdio`]) and starts a workload process
//! through [`spawn`], the one path for a container's init and for each Exec. The workload
//! process ([`process`]) is this very binary re-executed; [`protocol`] is what the shim and
//! it say to each other on the control socket. A process with a terminal hands its master
//! back on that socket, and [`console`] copies it to and from containerd's FIFOs.

pub mod console;
pub mod launcher;
pub mod process;
pub mod protocol;
pub mod rootfs_mount;
pub mod spawn;
pub mod stdio;

pub use process::main;
pub use protocol::WORKLOAD_ARG;
