//! The engine seam: a small trait that each WebAssembly engine implements in its own file,
//! the only file that imports that engine's crate.
//!
//! An engine is used inside the workload process only: [`Engine::prepare`] runs during
//! Create (compile or load from the cache, link WASI, check the export, open preopens) and
//! [`Prepared::run`] during Start.

use wasmlet_oci::WasiPlan;

use crate::cache::ModuleCache;
use crate::error::Result;

#[cfg(feature = "wasmedge")]
pub mod wasmedge;
pub mod wasmtime;

/// Exit code of a workload whose module trapped (128 + SIGABRT, as `wasmtime run` uses).
/// The trap message goes to the workload's stderr.
pub const TRAP_EXIT_CODE: i32 = 134;
/// Exit code of a workload that hit its memory limit: the OOM killer's 128 + SIGKILL.
pub const OOM_EXIT_CODE: i32 = 137;

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
    /// A module ready to run.
    type Prepared: Prepared;

    /// Create the engine (once per workload process).
    fn new() -> Result<Self>;

    /// Everything that can fail before the module runs: compile or load the module, link
    /// WASI, check the export, build the WASI context from `plan`.
    fn prepare(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<Self::Prepared>;
}

/// A prepared module.
pub trait Prepared {
    /// Instantiate and call the export: `exit(n)` gives `n`, a trap [`TRAP_EXIT_CODE`],
    /// growing linear memory past the plan's `memory_limit` [`OOM_EXIT_CODE`].
    fn run(self) -> Exit;
}
