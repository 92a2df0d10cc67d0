//! Every `unsafe` block of the shim outside the engine files lives here, each with its
//! `SAFETY:` argument: the pre-exec hook of the workload process, the adoption of its
//! control socket, the fork into the container's init, exiting without exit handlers,
//! recursive mount attributes, detached and idmapped mounts, the holder of a new user
//! namespace, terminal ioctls, and signal dispositions and masks.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
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

/// Which side of [`fork`] this is.
pub enum Forked {
    /// The original process; the child's pid (as this process's namespace sees it).
    Parent(u32),
    /// The new process.
    Child,
}

/// Fork the workload process into the container's init.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: the workload process forks once, at a point where it holds no lock: its only
    // other threads, if any, are the engine's idle compilation workers, which the child does
    // not use (it never compiles; the module is compiled before the fork). The child then
    // runs ordinary code, which is sound because glibc's fork keeps malloc consistent.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent(child.as_raw() as u32)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(e.into()),
    }
}

/// End this process at once with `code`, running no exit handlers (see the caller for why).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process; skipping exit handlers and destructors is the
    // point, and the caller has flushed what it needs written.
    unsafe { libc::_exit(code) }
}

/// mount_setattr(2)'s argument (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set and clear `MOUNT_ATTR_*` bits on the mount at `path` and every mount below it
/// (mount_setattr(2) with `AT_RECURSIVE`, Linux 5.12).
pub fn mount_setattr_recursive(path: &std::path::Path, set: u64, clear: u64) -> nix::Result<()> {
    let path = c_path(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a mount_attr of the size passed,
    // both alive for the call; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    status(r)
}

/// A system call's result: negative is the error in `errno`.
fn status(r: impl Into<i64>) -> nix::Result<()> {
    if r.into() < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// `MOUNT_ATTR_IDMAP` (linux/mount.h).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: libc::c_uint = 0x8000;

fn c_path(path: &std::path::Path) -> nix::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| nix::Error::EINVAL)
}

/// A detached copy of the mount at `path` (open_tree(2) with `OPEN_TREE_CLONE`, Linux
/// 5.2), with the mounts below it when `recursive`. It is unmounted when the descriptor
/// closes, unless [`attach_tree`] mounted it somewhere.
pub fn clone_tree(path: &std::path::Path, recursive: bool) -> nix::Result<std::os::fd::OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let path = c_path(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `path` is a NUL-terminated string alive for the call; the kernel only reads it.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Map the detached mount `tree` (and, when `recursive`, every mount below it) through the
/// user namespace `userns` (mount_setattr(2) with `MOUNT_ATTR_IDMAP`, Linux 5.12): a file
/// owned by id N on disk shows as the id N maps to.
pub fn idmap_tree(tree: &impl AsRawFd, userns: &impl AsRawFd, recursive: bool) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: `empty` is a NUL-terminated string and `attr` a mount_attr of the size passed,
    // both alive for the call; the kernel only reads them. The descriptors are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    status(r)
}

/// Mount the detached tree `tree` at `target` (move_mount(2), Linux 5.2).
pub fn attach_tree(tree: &impl AsRawFd, target: &std::path::Path) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let target = c_path(target)?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and alive for the call; the kernel only reads
    // them. The descriptor is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    status(r)
}

/// A child process in a new user namespace of its own (no mappings yet), which does
/// nothing until `release` is closed, then exits. Its pid names the namespace in `/proc`.
pub struct UsernsHolder {
    pub pid: libc::pid_t,
    pub release: std::os::fd::OwnedFd,
}

/// Start a [`UsernsHolder`]. Safe in a multi-threaded process (the shim): the child only
/// makes raw system calls.
pub fn hold_new_userns() -> std::io::Result<UsernsHolder> {
    let (wait, release) = nix::unistd::pipe()?;
    let (wait_fd, release_fd) = (wait.as_raw_fd(), release.as_raw_fd());
    // SAFETY: a clone without CLONE_VM and without a new stack is a fork: the child gets a
    // copy of this thread's stack and memory. It then makes only raw system calls (close,
    // read, _exit), which take no lock and allocate nothing, so the other threads' locks it
    // inherited held do not matter.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: raw system calls on descriptors this child inherited; see above.
        unsafe {
            libc::close(release_fd);
            let mut byte = 0u8;
            loop {
                let n = libc::read(wait_fd, (&mut byte as *mut u8).cast(), 1);
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(wait);
    Ok(UsernsHolder {
        pid: pid as libc::pid_t,
        release,
    })
}

/// Make the terminal open on `tty` the calling process's controlling terminal (it must lead
/// a session without one).
pub fn set_controlling_terminal(tty: &impl std::os::fd::AsRawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session)
    // and reads no memory of ours.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) };
    status(r)
}

/// Set the window size of the terminal whose master (or slave) is `tty`.
pub fn set_window_size(tty: &impl std::os::fd::AsRawFd, rows: u16, cols: u16) -> nix::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize`, which lives on this stack frame for the call.
    let r = unsafe {
        libc::ioctl(
            tty.as_raw_fd(),
            libc::TIOCSWINSZ,
            &size as *const libc::winsize,
        )
    };
    status(r)
}

/// The window size (rows, columns) of the terminal `tty`.
pub fn window_size(tty: &impl std::os::fd::AsRawFd) -> nix::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the frame-local value passed.
    let r = unsafe {
        libc::ioctl(
            tty.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut size as *mut libc::winsize,
        )
    };
    status(r).map(|()| (size.ws_row, size.ws_col))
}

/// Read one byte from `sock` (`None` at end of stream), adding the descriptors that came
/// with it (SCM_RIGHTS, opened close-on-exec) to `fds`.
pub fn recv_byte(
    sock: &UnixStream,
    fds: &mut Vec<std::os::fd::OwnedFd>,
) -> std::io::Result<Option<u8>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel has just installed these descriptors in this process for
            // this message; nothing else refers to them, so each is owned exactly once.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes == 1).then_some(byte[0]))
}

/// Signals whose default action ends a process.
const TERMINATING: [libc::c_int; 11] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
];

extern "C" fn exit_on_signal(signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(128 + signal) }
}

/// Make every terminating signal end a WebAssembly workload at once with `128 + signal`,
/// whatever the module is doing. A PID namespace's init ignores signals it has no handler
/// for, and a module has no way to handle them, so the workload handles them for it.
pub fn exit_on_terminating_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(exit_on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in TERMINATING {
        if let Ok(sig) = Signal::try_from(sig) {
            // SAFETY: the handler only calls _exit, which is async-signal-safe.
            let _ = unsafe { sigaction(sig, &action) };
        }
    }
}

/// Restore the signal dispositions and mask a native program expects from a fresh
/// process (Rust's runtime ignores SIGPIPE; ignored signals survive exec).
pub fn reset_signals_for_exec() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    default_disposition(&[libc::SIGPIPE]);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Give `signals` their default disposition again (before a server installs its own
/// handlers, which would otherwise chain to [`exit_on_terminating_signals`]'s).
pub fn default_disposition(signals: &[libc::c_int]) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in signals {
        if let Ok(sig) = Signal::try_from(*sig) {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
}

/// Block `signals` for the calling thread: they stay pending and are never handled.
pub fn block_signals(signals: &[libc::c_int]) {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for sig in signals {
        if let Ok(sig) = Signal::try_from(*sig) {
            set.add(sig);
        }
    }
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}
