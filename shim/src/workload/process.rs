//! The workload process: the shim binary re-executed with [`WORKLOAD_ARG`]. It receives its
//! [`WorkloadRequest`] over the control socket, prepares the module with the engine, answers
//! [`Ready`], waits for the start byte, then runs the module and exits with its code.
//!
//! Running each workload in its own process gives Create a real pid, lets Kill use real
//! signals, and means a crashing module never takes the shim down.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::Mutex;

use containerd_shim::protos::ttrpc::Code;
use wasmlet_oci::WasmKind;

use super::protocol::{
    recv, send, send_with_fd, Ready, Spawned, WorkloadRequest, START, WORKLOAD_ARG,
};
use crate::engine::{Engine, Loaded, Prepared};
use crate::error::{Error, Result};
use crate::image::cache::ModuleCache;

/// How the workload is isolated: as a new container, or inside a running one (Exec).
enum Isolation {
    Own(crate::isolation::Entered),
    Join(crate::isolation::Joined),
}

/// Collects log records while the module is prepared; they travel back in [`Ready`].
struct Notes(Mutex<Vec<String>>);

impl log::Log for Notes {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let mut notes = self.0.lock().unwrap_or_else(|p| p.into_inner());
            notes.push(format!("{}: {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

static NOTES: Notes = Notes(Mutex::new(Vec::new()));

/// Entry point of the workload process; never returns.
pub fn main<E: Engine>() -> ! {
    let code = match serve::<E>() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmlet: {e}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // No exit handlers: the container's init is a fork of a process whose other threads
    // (an engine's compiler pool) are gone in it, and a library's handler that waits on
    // them never returns (LLVM's thread pool, in WasmEdge's AOT compiler: the init hung in
    // exit after the module had finished). Everything to keep is written by now.
    crate::sys::exit_now(code)
}

/// What the container's init runs after Start.
enum Runnable<P> {
    Wasm(P),
    Native {
        path: CString,
        args: Vec<CString>,
        env: Vec<CString>,
    },
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::SpecInvalid {
        field: what.to_string(),
        message: format!("{s:?} contains a NUL byte"),
    })
}

fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.0.lock().unwrap_or_else(|p| p.into_inner()))
}

fn refusal(e: &Error) -> Ready {
    Ready {
        error: Some(e.to_string()),
        invalid_input: e.code() == Code::INVALID_ARGUMENT,
        notes: take_notes(),
        console: false,
    }
}

fn serve<E: Engine>() -> Result<i32> {
    let Some(mut ctl) = crate::sys::control_socket() else {
        return Err(Error::Engine(format!(
            "{WORKLOAD_ARG} is internal to the shim and needs its control socket"
        )));
    };
    let _ = log::set_logger(&NOTES);
    log::set_max_level(log::LevelFilter::Info);
    let io = |e| Error::io("workload control socket", "fd 3")(e);
    let Some(req) = recv::<WorkloadRequest>(&ctl).map_err(io)? else {
        return Ok(1);
    };
    let own_pid = std::process::id();

    let load = || -> Result<Option<E::Loaded>> {
        Ok(match req.plan.entrypoint.kind {
            WasmKind::Native => None,
            _ => {
                let cache = ModuleCache::new(&req.cache_root, E::NAME, req.cache_max_bytes);
                Some(E::new().and_then(|engine| engine.load(&req.plan, &cache))?)
            }
        })
    };
    // Host view, still single-threaded: namespaces, then the module (which may start the
    // engine's compilation threads), then the PID namespace for the fork below. An Exec
    // joins the container's namespaces, all but the PID one after the fork.
    let loaded = match req.join {
        None => crate::isolation::enter_namespaces(&req.spec).and_then(|entered| {
            let loaded = load()?;
            crate::isolation::enter_pid_namespace(&entered)?;
            Ok((Isolation::Own(entered), loaded))
        }),
        Some(init) => load().and_then(|loaded| {
            Ok((
                Isolation::Join(crate::isolation::prepare_join(init)?),
                loaded,
            ))
        }),
    };
    let (isolation, loaded) = match loaded {
        Ok(l) => l,
        Err(e) => {
            send(&mut ctl, &Spawned { pid: own_pid }).map_err(io)?;
            send(&mut ctl, &refusal(&e)).map_err(io)?;
            return Ok(1);
        }
    };

    // Both processes answer on the control socket, the shim expecting `Spawned` first: the
    // init sends `Ready` only once this process has closed its end of `spawned` (after
    // sending, or by exiting). A quick init used to overtake it (a CI failure, `missing field
    // pid`).
    let (mut after_spawned, spawned) =
        std::io::pipe().map_err(Error::io("creating the spawn pipe for", "fd 3"))?;
    // The container's init is a fresh child: it is in the new PID namespace, and it is
    // single-threaded whatever the engine did, so dropping privileges covers all of it.
    match crate::sys::fork().map_err(Error::io("forking the container's init", "fd 3"))? {
        crate::sys::Forked::Parent(pid) => {
            drop(after_spawned);
            send(&mut ctl, &Spawned { pid }).map_err(io)?;
            drop(spawned);
            return Ok(0);
        }
        crate::sys::Forked::Child => drop(spawned),
    }

    // The OOM marker lives in the bundle, outside the container: open it before pivot_root.
    // It stays empty unless the module is stopped for its memory limit.
    let oom_file = req
        .oom_marker
        .as_ref()
        .map(|marker| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(marker)
                .map_err(Error::io("creating", marker))
        })
        .transpose();
    let runnable = oom_file.and_then(|oom_file| {
        match isolation {
            Isolation::Own(entered) => crate::isolation::setup(&req.spec, &req.rootfs, &entered),
            Isolation::Join(joined) => crate::isolation::finish_join(joined, &req.spec),
        }
        .and_then(|console| match loaded {
            Some(loaded) => loaded.link(&req.plan).map(|p| (Runnable::Wasm(p), console)),
            None => {
                let args = req
                    .plan
                    .args
                    .iter()
                    .map(|a| cstring(a, "process.args"))
                    .collect::<Result<Vec<_>>>()?;
                let env = req
                    .plan
                    .env
                    .iter()
                    .map(|(k, v)| cstring(&format!("{k}={v}"), "process.env"))
                    .collect::<Result<Vec<_>>>()?;
                let native = Runnable::Native {
                    path: cstring(&req.plan.entrypoint.guest_path, "process.args")?,
                    args,
                    env,
                };
                Ok((native, console))
            }
        })
        .map(|(r, console)| (r, console, oom_file))
    });
    let ready = match &runnable {
        Ok((_, console, _)) => Ready {
            notes: take_notes(),
            console: console.is_some(),
            ..Ready::default()
        },
        Err(e) => refusal(e),
    };
    // End of file once the parent has sent `Spawned`; nothing is ever written.
    let _ = after_spawned.read_to_end(&mut Vec::new());
    drop(after_spawned);
    // The terminal's master goes to the shim with `Ready`; none stays in the container.
    let master = runnable.as_ref().ok().and_then(|(_, c, _)| c.as_ref());
    send_with_fd(&mut ctl, &ready, master.map(|m| m.as_fd())).map_err(io)?;
    let Ok((runnable, console, mut oom_file)) = runnable else {
        return Ok(1);
    };
    drop(console);
    let mut byte = [0u8; 1];
    match ctl.read(&mut byte) {
        Ok(1) if byte[0] == START => {}
        // The shim went away or deleted the task before Start: run nothing.
        _ => return Ok(0),
    }
    drop(ctl);
    match runnable {
        Runnable::Wasm(prepared) => {
            crate::sys::exit_on_terminating_signals();
            let exit = prepared.run();
            if let (true, Some(oom_file)) = (exit.out_of_memory, oom_file.as_mut()) {
                if let Err(e) = oom_file.write_all(b"oom") {
                    eprintln!("wasmlet: recording the out-of-memory exit: {e}");
                }
            }
            Ok(exit.code)
        }
        Runnable::Native { path, args, env } => {
            crate::sys::reset_signals_for_exec();
            let e = nix::unistd::execve(&path, &args, &env).unwrap_err();
            eprintln!(
                "wasmlet: cannot execute {}: {e}",
                req.plan.entrypoint.guest_path
            );
            Ok(if e == nix::Error::ENOENT { 127 } else { 126 })
        }
    }
}
