//! The conversation between the shim and a workload process on its control socket: the
//! [`WorkloadRequest`] the shim sends, the `Spawned` and [`Ready`] answers (one JSON line
//! each), and the start byte.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use wasmlet_oci::WasiPlan;

/// First argument that turns the shim binary into a workload process.
pub const WORKLOAD_ARG: &str = "--wasmlet-workload";
/// The byte the shim sends on Start.
pub const START: u8 = b's';

/// What the shim sends to a new workload process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct WorkloadRequest {
    pub id: String,
    /// What to run and its WASI view. Preopen paths are the container's: the workload opens
    /// them after pivot_root. The entrypoint's `host_path` is read before.
    pub plan: WasiPlan,
    /// The OCI spec: the workload isolates itself as it says.
    pub spec: oci_spec::runtime::Spec,
    /// The rootfs on the host.
    pub rootfs: PathBuf,
    pub cache_root: PathBuf,
    pub cache_max_bytes: u64,
    /// Created when the module is stopped for exceeding its memory limit.
    pub oom_marker: Option<PathBuf>,
    /// Exec: the host pid of the container's init, whose namespaces the new process joins
    /// (instead of isolating itself); `spec.process` is then the exec's process.
    #[serde(default)]
    pub join: Option<u32>,
}

/// The workload's first answer: the host pid of the container's init process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Spawned {
    pub pid: u32,
}

/// The workload's answer once the module is prepared (or refused).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    /// Why the module cannot run, worded for the user.
    pub error: Option<String>,
    /// Whether `error` is the user's input (module, spec) rather than the host.
    pub invalid_input: bool,
    /// Log lines from preparing (cache hits, recompiles), for the shim's log.
    pub notes: Vec<String>,
}

/// Send one JSON line.
pub fn send<T: serde::Serialize>(sock: &mut UnixStream, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    sock.write_all(&line)
}

/// Receive one JSON line; `Ok(None)` at end of stream. Reads byte by byte so that nothing
/// after the line is consumed (two processes answer on the same socket).
pub fn recv<T: serde::de::DeserializeOwned>(mut sock: &UnixStream) -> std::io::Result<Option<T>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match sock.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(std::io::Error::other)
}
