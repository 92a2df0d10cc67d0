//! Starting a workload process from this very binary ([`crate::workload`]) and talking to
//! it until Start: the request, its `Spawned` and `Ready` answers, the start byte, and its
//! standard streams. Used for a container's init and for each Exec alike; a failure on the
//! way kills what was started.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::console::Console;
use super::protocol::{
    recv, recv_with_fd, send, Ready, Spawned, WorkloadRequest, START, WORKLOAD_ARG,
};
use super::stdio::{self, StdioGuard};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::task::instance::StdioPaths;

/// Undoes a half-created workload (processes, cgroup) unless disarmed.
pub struct Unwind<'a> {
    pub pids: Vec<u32>,
    pub cgroup: Option<&'a Cgroup>,
}

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        if let Some(cg) = self.cgroup {
            if let Err(e) = cg.remove() {
                log::warn!("{e}");
            }
        }
    }
}

/// Start a workload process from this binary in `cgroup` (after applying `resources` to
/// it), send it `request` and wait until its module is ready or refused. On error none of
/// its processes is left. `names` follow [`WORKLOAD_ARG`] on its command line, for `ps`
/// (the task id and bundle first, so that a leaked process is found by them).
pub fn spawn(
    request: &WorkloadRequest,
    names: &[&OsStr],
    stdio: &StdioPaths,
    cgroup: &Cgroup,
    resources: Option<&LinuxResources>,
) -> Result<Control> {
    let (child_io, mut io_guard) = stdio::open(stdio)?;
    let (mut ctl, theirs) =
        UnixStream::pair().map_err(Error::io("creating control socket for", &request.rootfs))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("wasmlet-workload")
        .arg(WORKLOAD_ARG)
        .args(names)
        .env_clear()
        .current_dir("/")
        .stdin(child_io.stdin)
        .stdout(child_io.stdout)
        .stderr(child_io.stderr);
    crate::sys::workload_pre_exec(&mut cmd, theirs.as_raw_fd());
    // The child is reaped by the shim's SIGCHLD handler, never through `Child`.
    let child = cmd
        .spawn()
        .map_err(Error::io("starting workload process", "/proc/self/exe"))?;
    drop(cmd);
    drop(theirs);
    let helper = child.id();
    let mut unwind = Unwind {
        pids: vec![helper],
        cgroup: None,
    };
    // Into the cgroup before it does anything: the workload waits for its request.
    cgroup.add(helper)?;
    if let Some(resources) = resources {
        cgroup.apply(resources)?;
    }
    let died = |detail: String| Error::WorkloadDied {
        id: request.id.clone(),
        detail,
    };
    // Gone while preparing (its socket closed or reset): say so when the memory limit's
    // OOM killer took it (a limit below what the engine needs to load the module).
    let gone = |detail: String| match cgroup.oom_kills() {
        0 => died(detail),
        _ => died(format!(
            ": killed at the container's memory limit ({} bytes) while loading {}",
            resources
                .and_then(|r| r.memory().as_ref())
                .and_then(|m| m.limit())
                .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
            request.plan.entrypoint.guest_path
        )),
    };
    // Loading (compiling) the module and setting up the container are bounded: a module
    // built to take an engine's compiler for ever is stopped, with a clear error.
    let limit = wasmlet_oci::spec::prepare_timeout(
        &request.spec,
        std::env::var(wasmlet_oci::spec::PREPARE_TIMEOUT_ENV)
            .ok()
            .as_deref(),
    )?;
    let deadline = std::time::Instant::now() + limit;
    let late = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
        .then(|| Error::PrepareTimeout {
            id: request.id.clone(),
            module: request.plan.entrypoint.guest_path.clone(),
            limit,
        })
    };
    let failed = |e: std::io::Error| late(&e).unwrap_or_else(|| gone(format!(": {e}")));
    let until_deadline = |ctl: &UnixStream| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        ctl.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .map_err(Error::io("bounding the wait for", &request.rootfs))
    };
    send(&mut ctl, request).map_err(|e| gone(format!(": {e}")))?;
    until_deadline(&ctl)?;
    let spawned: Spawned = recv(&ctl)
        .map_err(failed)?
        .ok_or_else(|| gone(String::new()))?;
    let pid = spawned.pid;
    unwind.pids.push(pid);
    until_deadline(&ctl)?;
    let (ready, master) = recv_with_fd::<Ready>(&ctl).map_err(failed)?;
    ctl.set_read_timeout(None).map_err(Error::io(
        "unbounding the control socket of",
        &request.rootfs,
    ))?;
    let ready = ready.ok_or_else(|| gone(String::new()))?;
    let module = &request.plan.entrypoint.guest_path;
    for note in &ready.notes {
        log::info!("{}: {module}: {note}", request.id);
    }
    if let Some(message) = ready.error {
        return Err(Error::Prepare {
            message,
            invalid_input: ready.invalid_input,
        });
    }
    let console = match (ready.console, master, io_guard.take_terminal()) {
        (true, Some(master), Some(streams)) => Some(Console::start(master, streams)?),
        (false, None, None) => None,
        (console, master, _) => {
            return Err(died(format!(
                ": terminal mismatch (asked: {}, reported: {console}, master received: {})",
                stdio.terminal,
                master.is_some()
            )))
        }
    };
    unwind.pids.clear();
    Ok(Control {
        pid,
        helper,
        ctl: Mutex::new(Some(ctl)),
        io: Mutex::new(Some(io_guard)),
        console: Mutex::new(console),
    })
}

/// A workload process that has reported ready: its pid, its control socket (Start) and
/// its standard streams.
pub struct Control {
    pub pid: u32,
    /// The process started from this binary; it forked `pid` and exits on its own (a
    /// refusal is an error, so on success the two always differ).
    pub helper: u32,
    ctl: Mutex<Option<UnixStream>>,
    io: Mutex<Option<StdioGuard>>,
    /// The copy of the process's terminal, if it has one.
    console: Mutex<Option<Console>>,
}

impl Control {
    pub fn start(&self) -> Result<()> {
        let mut ctl = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
        let sock = ctl.as_mut().ok_or_else(|| Error::WorkloadDied {
            id: self.pid.to_string(),
            detail: ": already started".into(),
        })?;
        sock.write_all(&[START])
            .map_err(Error::io("starting workload", format!("pid {}", self.pid)))?;
        ctl.take();
        Ok(())
    }

    pub fn close_stdin(&self) {
        if let Some(io) = self.io.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            io.close_stdin();
        }
    }

    /// ResizePty; nothing for a process without a terminal.
    pub fn resize(&self, cols: u32, rows: u32) -> Result<()> {
        match self
            .console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(console) => console.resize(cols, rows),
            None => Ok(()),
        }
    }

    /// The process has exited: its terminal's output is drained and ended.
    pub fn exited(&self) {
        if let Some(console) = self
            .console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            console.exited();
        }
    }

    /// Close the control socket (a workload not started yet then exits without running)
    /// and the standard streams (a terminal's copy drains first).
    pub fn release(&self) {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.io.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Send `signal` to each of `targets`; one already gone is no error.
pub fn signal_pids(targets: Vec<u32>, signal: i32) -> Result<()> {
    let sig = Signal::try_from(signal).map_err(|_| Error::InvalidSignal {
        signal: signal as u32,
    })?;
    for pid in targets {
        match kill(Pid::from_raw(pid as i32), sig) {
            // Gone already: its exit is on the way.
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => return Err(Error::sys(format!("sending {sig} to {pid}"))(e)),
        }
    }
    Ok(())
}
