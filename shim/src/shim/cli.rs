//! What the binary does with its command line: be a workload process, print its version,
//! answer `-info` (containerd 2.x), or hand over to containerd-shim's `start` / `delete` /
//! daemon handling.

use super::WasmletShim;
use crate::engine::Engine;
use crate::workload::{self, WORKLOAD_ARG};

/// `main` of a shim binary for engine `E`, serving runtime `runtime_id`.
pub fn main<E: Engine>(runtime_id: &str) {
    let first = std::env::args_os().nth(1);
    match first.as_ref().and_then(|a| a.to_str()) {
        Some(WORKLOAD_ARG) => workload::main::<E>(),
        Some("-v" | "-version" | "--version") => {
            println!(
                "{runtime_id}\n  Version: {}\n  Engine: {}",
                env!("CARGO_PKG_VERSION"),
                E::NAME
            );
        }
        _ if wants_info() => {
            if let Err(e) = super::info::run(runtime_id, E::NAME) {
                eprintln!("{runtime_id}: -info: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            // The shim logs into a FIFO that containerd reads. While containerd is away (a
            // restart) a write to it raises SIGPIPE, and containerd-shim's signal thread, at
            // debug level, logs each signal it receives: another write, another SIGPIPE, at
            // 100% CPU, and no child reaped meanwhile. Blocked in every thread (they inherit
            // this mask), SIGPIPE is never delivered; the write just fails with EPIPE.
            // Workload processes start with an empty mask (std's spawn resets it).
            crate::sys::block_signals(&[libc::SIGPIPE]);
            // The daemon (neither `start` nor `delete`) logs one write per record (see
            // [`super::fifo_log`]); containerd-shim's logger is left unset.
            let args: Vec<_> = std::env::args_os().skip(1).collect();
            let flags = containerd_shim::parse(&args).ok();
            let daemon = flags.as_ref().is_some_and(|f| f.action.is_empty());
            if daemon {
                let debug = flags.as_ref().is_some_and(|f| f.debug);
                if let Err(e) = super::fifo_log::init(debug, log::LevelFilter::Warn) {
                    eprintln!("{runtime_id}: cannot open the log FIFO: {e}");
                }
            }
            let config = containerd_shim::Config {
                default_log_level: "warn".to_string(),
                no_setup_logger: daemon,
                ..Default::default()
            };
            containerd_shim::run::<WasmletShim>(runtime_id, Some(config));
        }
    }
}

/// Whether containerd asks for the runtime info (`-info`, Go flag syntax).
fn wants_info() -> bool {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    containerd_shim::parse(&args).is_ok_and(|flags| flags.info)
}
