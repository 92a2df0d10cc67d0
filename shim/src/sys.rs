//! Every `unsafe` block of the shim outside the engine files lives here, each with its
//! `SAFETY:` argument: the pre-exec hook of the workload process and the adoption of its
//! control socket.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The descriptor number of the control socket inside the workload process.
pub const CONTROL_FD: RawFd = 3;

/// Make `ctl` the child's descriptor [`CONTROL_FD`] and put the child in a session of its
/// own (so `Kill` with `all` can signal its whole process group, and signals aimed at the
/// shim's group never reach it).
pub fn workload_pre_exec(cmd: &mut Command, ctl: RawFd) {
    // SAFETY: the closure runs in the forked child before exec and only calls dup2, fcntl
    // and setsid, which are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            if ctl == CONTROL_FD {
                if libc::fcntl(ctl, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(ctl, CONTROL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Adopt the control socket the shim passed as [`CONTROL_FD`], if there is one.
pub fn control_socket() -> Option<UnixStream> {
    // F_GETFD only reads flags; it tells whether the descriptor exists.
    // SAFETY: fcntl(F_GETFD) has no side effects.
    let open = unsafe { libc::fcntl(CONTROL_FD, libc::F_GETFD) } >= 0;
    if !open {
        return None;
    }
    // SAFETY: the descriptor exists (checked above) and was opened for this process by the
    // shim; nothing else in this process refers to it, so taking ownership is sound.
    let sock = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    let _ = nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Some(sock)
}
