//! The workload process: the shim binary re-executed with [`WORKLOAD_ARG`]. It receives its
//! [`WorkloadRequest`] over the control socket, prepares the module with the engine, answers
//! [`Ready`], waits for the start byte, then runs the module and exits with its code.
//!
//! Running each workload in its own process gives Create a real pid, lets Kill use real
//! signals, and means a crashing module never takes the shim down.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use containerd_shim::protos::ttrpc::Code;
use wasmlet_oci::WasiPlan;

use crate::cache::ModuleCache;
use crate::engine::{Engine, Prepared};
use crate::error::{Error, Result};

/// First argument that turns the shim binary into a workload process.
pub const WORKLOAD_ARG: &str = "--wasmlet-workload";
/// The byte the shim sends on Start.
pub const START: u8 = b's';

/// What the shim sends to a new workload process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct WorkloadRequest {
    pub id: String,
    pub plan: WasiPlan,
    pub cache_root: PathBuf,
    pub cache_max_bytes: u64,
    /// Created when the module is stopped for exceeding its memory limit.
    pub oom_marker: PathBuf,
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

/// Receive one JSON line; `Ok(None)` at end of stream.
pub fn recv<T: serde::de::DeserializeOwned>(sock: &UnixStream) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    if BufReader::new(sock).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(std::io::Error::other)
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
    std::process::exit(code)
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
    let cache = ModuleCache::new(&req.cache_root, E::NAME, req.cache_max_bytes);
    let prepared = E::new().and_then(|engine| engine.prepare(&req.plan, &cache));
    let notes = std::mem::take(&mut *NOTES.0.lock().unwrap_or_else(|p| p.into_inner()));
    let ready = match &prepared {
        Ok(_) => Ready {
            notes,
            ..Ready::default()
        },
        Err(e) => Ready {
            error: Some(e.to_string()),
            invalid_input: e.code() == Code::INVALID_ARGUMENT,
            notes,
        },
    };
    send(&mut ctl, &ready).map_err(io)?;
    let Ok(prepared) = prepared else {
        return Ok(1);
    };
    let mut byte = [0u8; 1];
    match ctl.read(&mut byte) {
        Ok(1) if byte[0] == START => {}
        // The shim went away or deleted the task before Start: run nothing.
        _ => return Ok(0),
    }
    drop(ctl);
    let exit = prepared.run();
    if exit.out_of_memory {
        if let Err(e) = std::fs::write(&req.oom_marker, b"") {
            eprintln!("wasmlet: recording the out-of-memory exit: {e}");
        }
    }
    Ok(exit.code)
}
