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
    /// Instantiate and call the export; the return value is the process exit code
    /// (`exit(n)` gives `n`, a trap gives [`TRAP_EXIT_CODE`]).
    fn run(self) -> i32;
}
