//! A terminal for a process that asks for one (`process.terminal`), made inside the
//! container: a pty from the container's own devpts (`/dev/ptmx`, a link to `pts/ptmx`), so
//! that `tty` names it there. The slave becomes the process's stdin, stdout, stderr and
//! controlling terminal in a session of its own; a container's init also finds it at
//! `/dev/console`. The master goes back to the shim (the way runc's console socket hands it
//! to containerd's shim), which copies between it and containerd's FIFOs; no copy of it
//! stays in the container.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use super::failed;
use crate::error::{Error, Result};

const CONSOLE: &str = "/dev/console";

fn needs_devpts(e: impl std::fmt::Display) -> Error {
    Error::SpecInvalid {
        field: "process.terminal".into(),
        message: format!(
            "a terminal needs the container's own devpts (a `devpts` mount at /dev/pts): {e}"
        ),
    }
}

/// In the container, after pivot_root and before privileges are dropped: open a pty, make
/// its slave this process's stdio and controlling terminal (and `/dev/console` for an
/// init, `console`), and return the master for the shim.
pub fn attach(console: bool) -> Result<OwnedFd> {
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(needs_devpts)?;
    grantpt(&master).map_err(failed("granting the pty of", "/dev/ptmx"))?;
    unlockpt(&master).map_err(failed("unlocking the pty of", "/dev/ptmx"))?;
    let slave_path = ptsname_r(&master).map_err(failed("naming the pty of", "/dev/ptmx"))?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .map_err(Error::io("opening the terminal", &slave_path))?;
    if console {
        bind_console(&slave_path)?;
    }
    nix::unistd::setsid().map_err(failed("starting a session for", &slave_path))?;
    let onto = failed("making the terminal a standard stream", &slave_path);
    nix::unistd::dup2_stdin(&slave)
        .and_then(|()| nix::unistd::dup2_stdout(&slave))
        .and_then(|()| nix::unistd::dup2_stderr(&slave))
        .map_err(onto)?;
    drop(slave);
    crate::sys::set_controlling_terminal(&std::io::stdin())
        .map_err(failed("making the controlling terminal", &slave_path))?;
    Ok(master.into())
}

/// The container's `/dev/console`: the terminal's slave bound over it (an empty file is made
/// to mount on when there is none).
fn bind_console(slave_path: &str) -> Result<()> {
    if std::fs::symlink_metadata(CONSOLE).is_err() {
        File::create(CONSOLE).map_err(Error::io("creating", CONSOLE))?;
    }
    mount(
        Some(Path::new(slave_path)),
        CONSOLE,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(failed("binding the terminal at", CONSOLE))
}
