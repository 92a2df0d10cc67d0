//! The conversation between the shim and a workload process on its control socket: the
//! [`WorkloadRequest`] the shim sends, the `Spawned` and [`Ready`] answers (one JSON line
//! each), and the start byte.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
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
    /// The process has a terminal: the pty's master comes with this message.
    #[serde(default)]
    pub console: bool,
}

/// Send one JSON line, with `fd` attached (SCM_RIGHTS) if given.
pub fn send<T: serde::Serialize>(sock: &mut UnixStream, msg: &T) -> std::io::Result<()> {
    send_with_fd(sock, msg, None)
}

/// Send one JSON line with a descriptor attached to it (the terminal's master).
pub fn send_with_fd<T: serde::Serialize>(
    sock: &mut UnixStream,
    msg: &T,
    fd: Option<BorrowedFd<'_>>,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let Some(fd) = fd else {
        return sock.write_all(&line);
    };
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&line)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    // The descriptor went with the first byte; the rest of the line follows plainly.
    sock.write_all(&line[sent..])
}

/// Receive one JSON line; `Ok(None)` at end of stream. Reads byte by byte so that nothing
/// after the line is consumed (two processes answer on the same socket).
pub fn recv<T: serde::de::DeserializeOwned>(sock: &UnixStream) -> std::io::Result<Option<T>> {
    recv_with_fd(sock).map(|(msg, _)| msg)
}

/// Receive one JSON line and the descriptor that came with it, if any.
pub fn recv_with_fd<T: serde::de::DeserializeOwned>(
    sock: &UnixStream,
) -> std::io::Result<(Option<T>, Option<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    loop {
        match crate::sys::recv_byte(sock, &mut fds) {
            Ok(None) if line.is_empty() => return Ok((None, None)),
            Ok(None) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Some(b'\n')) => break,
            Ok(Some(byte)) => line.push(byte),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let msg = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
    Ok((Some(msg), fds.into_iter().next()))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_descriptor_travels_with_its_line_and_lines_stay_apart() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (r, w) = std::io::pipe().unwrap();
        let ready = Ready {
            console: true,
            ..Ready::default()
        };
        send_with_fd(&mut a, &ready, Some(w.as_fd())).unwrap();
        send(&mut a, &Spawned { pid: 7 }).unwrap();
        drop(w);
        let (got, fd): (Option<Ready>, _) = recv_with_fd(&b).unwrap();
        assert!(got.unwrap().console);
        // The received descriptor is the pipe's write end: what is written there arrives.
        let mut w = std::fs::File::from(fd.expect("a descriptor"));
        w.write_all(b"through").unwrap();
        drop(w);
        let mut text = String::new();
        let mut r = r;
        r.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through");
        let next: Option<Spawned> = recv(&b).unwrap();
        assert_eq!(next.unwrap().pid, 7);
        drop(a);
        assert!(recv::<Spawned>(&b).unwrap().is_none());
    }
}
