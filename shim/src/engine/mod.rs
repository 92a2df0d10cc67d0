//! The engine seam: a small trait that each WebAssembly engine implements in a module of
//! its own (`wasmtime/`, whose `http` child serves `wasi:http/proxy`; `wasmedge.rs`;
//! `wasmer/`, whose `memory` child caps linear memory; `wamr.rs`), the only place that
//! imports that engine's crates. Each shim binary names one engine, so it links only that
//! one (Wasmer's VM and Wasmtime both install crash-signal handlers: they never share a
//! process).
//!
//! An engine is used inside the workload process only, during Create: [`Engine::load`]
//! before the workload enters its container (compile or load from the cache, check the
//! export), [`Loaded::link`] inside it (link WASI, open preopens); [`Prepared::run`] runs
//! during Start.

use wasmlet_oci::WasiPlan;

use crate::error::Result;
use crate::image::cache::ModuleCache;

#[cfg(feature = "wamr")]
pub mod wamr;
#[cfg(feature = "wasmedge")]
pub mod wasmedge;
#[cfg(feature = "wasmer")]
pub mod wasmer;
pub mod wasmtime;

/// Exit code of a workload whose module trapped (128 + SIGABRT, as `wasmtime run` uses).
/// The trap message goes to the workload's stderr.
pub const TRAP_EXIT_CODE: i32 = 134;
/// Exit code of a workload that hit its memory limit: the OOM killer's 128 + SIGKILL.
pub const OOM_EXIT_CODE: i32 = 137;

/// Refuse a WASIX module (it imports `wasix_32v1`, Wasmer's POSIX extension of WASI) on
/// `engine`, which does not run WASIX: the message names the shim that does.
pub(crate) fn refuse_wasix(engine: &str, plan: &WasiPlan, bytes: &[u8]) -> Result<()> {
    match wasmlet_oci::wasm::wasix_import(bytes) {
        None => Ok(()),
        Some(module) => Err(crate::error::Error::ModuleInvalid {
            module: plan.entrypoint.guest_path.clone(),
            message: format!(
                "the module imports WASIX (`{module}`), which {engine} does not run: use the \
                 Wasmer shim (runtime io.containerd.wasmer.v1, containerd-shim-wasmer-v1)"
            ),
        }),
    }
}

/// Refuse a WAGI container (`WASMLET_HTTP_EXECUTOR=wagi`) on `engine`, which does not
/// serve HTTP: the message names the shim that does.
#[cfg_attr(
    not(any(feature = "wasmer", feature = "wamr", feature = "wasmedge")),
    allow(dead_code)
)]
pub(crate) fn refuse_wagi(engine: &str, plan: &WasiPlan) -> Result<()> {
    match plan.http_executor {
        wasmlet_oci::http::Executor::WasiHttp => Ok(()),
        wasmlet_oci::http::Executor::Wagi => Err(crate::error::Error::ModuleInvalid {
            module: plan.entrypoint.guest_path.clone(),
            message: format!(
                "the container asks for the WAGI executor, which {engine} does not serve: use \
                 the Wasmtime shim (runtime io.containerd.wasmtime.v1, containerd-shim-wasmtime-v1)"
            ),
        }),
    }
}

/// How a module's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The process exit code.
    pub code: i32,
    /// Whether the module was stopped for growing past its memory limit.
    pub out_of_memory: bool,
}

impl Exit {
    pub fn code(code: i32) -> Self {
        Exit {
            code,
            out_of_memory: false,
        }
    }

    /// How a run that returned `result` (an exit code, or a trap's message) ended; `oom` is
    /// the memory limit when a grow past it was refused, which decides the exit.
    pub fn from_run(result: std::result::Result<i32, String>, oom: Option<u64>) -> Self {
        if let Some(limit) = oom {
            return Exit::out_of_memory(limit);
        }
        match result {
            Ok(code) => Exit::code(code),
            Err(message) => {
                eprintln!("wasmlet: {message}");
                Exit::code(TRAP_EXIT_CODE)
            }
        }
    }

    /// The module grew past `limit` bytes: say so on stderr, exit as the OOM killer would.
    pub fn out_of_memory(limit: u64) -> Self {
        eprintln!("wasmlet: the module exceeded its memory limit of {limit} bytes");
        Exit {
            code: OOM_EXIT_CODE,
            out_of_memory: true,
        }
    }
}

/// A WebAssembly engine.
pub trait Engine: Sized {
    /// Short name, used for the cache directory and in messages.
    const NAME: &'static str;
    /// A compiled module, not yet linked to WASI.
    type Loaded: Loaded;

    /// Create the engine (once per workload process).
    fn new() -> Result<Self>;

    /// Everything about the module itself, done with the host's view before the workload
    /// enters its container: compile or load from the cache, check the export.
    fn load(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<Self::Loaded>;
}

/// A compiled module.
pub trait Loaded {
    /// The module linked and ready to run.
    type Prepared: Prepared;

    /// Inside the container: link WASI and build its context from `plan` (preopens are
    /// opened here, with the container's view and user).
    fn link(self, plan: &WasiPlan) -> Result<Self::Prepared>;
}

/// A prepared module.
pub trait Prepared {
    /// Instantiate and call the export: `exit(n)` gives `n`, a trap [`TRAP_EXIT_CODE`],
    /// growing linear memory past the plan's `memory_limit` [`OOM_EXIT_CODE`].
    fn run(self) -> Exit;
}
