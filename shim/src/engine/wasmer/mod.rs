//! The Wasmer engine (cargo feature `wasmer`): WASI preview 1 core modules (and WASIX
//! modules) through `wasmer-wasix`, compiled by Wasmer's singlepass compiler. This folder is
//! the only place that imports `wasmer` and `wasmer-wasix`.
//!
//! Singlepass, not Cranelift: Wasmer 7.4's Cranelift pins a `cranelift-codegen` that
//! Wasmtime 48 cannot share (the lockfile would not resolve), and an older Wasmer with its
//! own Cranelift builds a second copy of it. Singlepass compiles in linear time (a short
//! first start) and its code is slower than Cranelift's: see `make bench`.
//!
//! - The WASI plan maps onto a `WasiEnv` over the container's own filesystem (the process
//!   is already inside it): each preopen at its guest path, read-only ones without write
//!   rights (the kernel's read-only mount enforces it too). As under `wasmer run`, fd 3 is
//!   Wasmer's virtual root (no rights to open paths) and the plan's preopens follow it;
//!   wasi-libc resolves paths with the last matching preopen, so programs see `/` as the
//!   container's root.
//! - Compiled modules go through the compile cache (`Module::serialize`).
//! - The memory limit caps linear memory ([`memory`]); a refused grow ends the run as the
//!   OOM killer would (137, `/tasks/oom`), as with Wasmtime.
//! - Components (WASI p2, `wasi:http`) are refused at Create.

mod memory;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wasmer::sys::NativeEngineExt;
use wasmer::sys::Singlepass;
use wasmer::{Engine as WrEngine, ExternType, Module, RuntimeError, Store};
use wasmer_wasix::virtual_fs::host_fs;
use wasmer_wasix::{WasiEnv, WasiError};
use wasmlet_oci::{Preopen, WasiPlan, WasmKind};

use super::{Engine, Exit, Loaded, Prepared};
use crate::error::{Error, Result};
use crate::image::cache::ModuleCache;
use memory::CapTunables;

/// Wasmer with the singlepass compiler.
pub struct Wasmer;

/// A compiled module, its engine, and the flag its memory cap raises.
pub struct WasmerLoaded {
    engine: WrEngine,
    module: Module,
    exceeded: Arc<AtomicBool>,
    plan: WasiPlan,
}

fn invalid(plan: &WasiPlan, message: impl std::fmt::Display) -> Error {
    Error::ModuleInvalid {
        module: plan.entrypoint.guest_path.clone(),
        message: message.to_string(),
    }
}

fn engine_err(e: impl std::fmt::Display) -> Error {
    Error::Engine(format!("wasmer: {e}"))
}

// Deserialising a compiled artifact is `unsafe` in Wasmer because a forged artifact is
// arbitrary machine code. These two functions are the only callers. Their inputs are an
// entry of the compile cache, handed out only when its checksum matches what
// `ModuleCache::store` wrote from an artifact of this very Wasmer build and target (both are
// in the entry's key), or the bytes `Module::serialize` returned a moment earlier; Wasmer
// also checks each artifact's header and version. The cache directory is root's, like the
// shim binary itself.

fn module_from_file(engine: &WrEngine, path: &Path) -> Result<Module> {
    // SAFETY: see the contract above.
    unsafe { Module::deserialize_from_file(engine, path) }.map_err(engine_err)
}

fn module_from_bytes(engine: &WrEngine, bytes: &[u8]) -> Result<Module> {
    // SAFETY: see the contract above.
    unsafe { Module::deserialize(engine, bytes.to_vec()) }.map_err(engine_err)
}

/// What keys compiled code: the Wasmer version, the compiler and the host target (its CPU
/// features decide the instructions singlepass emits).
fn fingerprint(engine: &WrEngine) -> String {
    format!(
        "wasmer {} singlepass {:?}",
        env!("CARGO_PKG_VERSION"),
        engine.target()
    )
}

impl Engine for Wasmer {
    const NAME: &'static str = "wasmer";
    type Loaded = WasmerLoaded;

    fn new() -> Result<Self> {
        Ok(Wasmer)
    }

    fn load(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmerLoaded> {
        super::refuse_wagi("Wasmer", plan)?;
        match plan.entrypoint.kind {
            WasmKind::Module => {}
            WasmKind::Component => return Err(invalid(
                plan,
                "Wasmer does not run WebAssembly components (WASI p2); use the wasmtime runtime",
            )),
            WasmKind::Native => {
                return Err(invalid(plan, "a native executable is not WebAssembly"))
            }
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut engine = WrEngine::from(Singlepass::default());
        engine.set_tunables(CapTunables::new(plan.memory_limit, exceeded.clone()));
        let path = &plan.entrypoint.host_path;
        let bytes = std::fs::read(path).map_err(Error::io("reading module", path))?;
        let (module, _) = cache.load_or_compile(
            &bytes,
            &fingerprint(&engine),
            |b| {
                let module = Module::new(&engine, b).map_err(|e| invalid(plan, e))?;
                module.serialize().map(|b| b.to_vec()).map_err(engine_err)
            },
            |p| module_from_file(&engine, p),
            |b| module_from_bytes(&engine, b),
        )?;
        check_export(&module, plan)?;
        Ok(WasmerLoaded {
            engine,
            module,
            exceeded,
            plan: plan.clone(),
        })
    }
}

/// The entrypoint's export must be a function of no parameters and no results.
fn check_export(module: &Module, plan: &WasiPlan) -> Result<()> {
    let export = &plan.entrypoint.export;
    let found = module.exports().find(|e| e.name() == export);
    match found.as_ref().map(|e| e.ty()) {
        Some(ExternType::Function(f)) if f.params().is_empty() && f.results().is_empty() => Ok(()),
        Some(ExternType::Function(_)) => Err(invalid(
            plan,
            format!("export `{export}` must take no parameters and return nothing"),
        )),
        _ => {
            let funcs: Vec<String> = module
                .exports()
                .filter(|e| matches!(e.ty(), ExternType::Function(_)))
                .map(|e| e.name().to_string())
                .collect();
            Err(invalid(
                plan,
                format!(
                    "unknown export `{export}`: the module exports functions [{}]",
                    funcs.join(", ")
                ),
            ))
        }
    }
}

impl Loaded for WasmerLoaded {
    type Prepared = WasmerLoaded;

    /// Wasmer's WASI environment needs its runtime's threads, which a fork does not keep:
    /// it is built when the module runs; the plan (with the container's paths) is kept.
    fn link(mut self, plan: &WasiPlan) -> Result<WasmerLoaded> {
        self.plan = plan.clone();
        Ok(self)
    }
}

impl WasmerLoaded {
    /// Instantiate with WASI and call the export: the exit code, or the trap's message.
    fn try_run(self) -> std::result::Result<i32, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("starting Wasmer's WASI runtime: {e}"))?;
        let _guard = runtime.enter();
        let plan = &self.plan;
        let root = host_fs::FileSystem::new(runtime.handle().clone(), "/")
            .map_err(|e| format!("opening the container's filesystem: {e}"))?;
        let mut builder = WasiEnv::builder(plan.args.first().cloned().unwrap_or_default())
            .args(plan.args.iter().skip(1))
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .engine(self.engine.clone())
            .fs(Arc::new(root)
                as Arc<
                    dyn wasmer_wasix::virtual_fs::FileSystem + Send + Sync,
                >);
        for p in &plan.preopens {
            // Wasmer grants a preopen the right to open paths only with `create`; read-only
            // preopens keep it and are refused writes by the read-only mount beneath them.
            // An alias loses its leading `/` in Wasmer: a preopen whose path in the
            // container is its guest path (all of them, inside the container) takes none, so
            // the guest sees the names `/`, `/data`, as with the other engines.
            let alias = alias(p);
            builder = builder
                .preopen_build(|d| {
                    d.directory(&p.host)
                        .read(true)
                        .write(!p.readonly)
                        .create(true);
                    match alias {
                        Some(alias) => d.alias(alias),
                        None => d,
                    }
                })
                .map_err(|e| format!("preopening {} as {}: {e}", p.host.display(), p.guest))?;
        }
        let mut store = Store::new(self.engine.clone());
        let (instance, env) = builder
            .instantiate(self.module, &mut store)
            .map_err(|e| format!("instantiating: {e}"))?;
        let result = instance
            .exports
            .get_function(&plan.entrypoint.export)
            .map_err(|e| e.to_string())
            .and_then(|f| match f.call(&mut store, &[]) {
                Ok(_) => Ok(0),
                Err(e) => exit_code(e),
            });
        // Flush and close what the module left open (its stdout and stderr first).
        env.on_exit(&mut store, None);
        result
    }
}

/// The alias a preopen needs in Wasmer: none when its path in the container is its guest
/// path (every preopen, inside the container), so that its name keeps its leading `/`.
fn alias(p: &Preopen) -> Option<&str> {
    (p.host != Path::new(&p.guest)).then_some(p.guest.as_str())
}

/// The exit code a WASI `proc_exit` asked for, else the trap as a message.
fn exit_code(e: RuntimeError) -> std::result::Result<i32, String> {
    match e.downcast::<WasiError>() {
        Ok(WasiError::Exit(code)) => Ok(code.raw()),
        Ok(other) => Err(other.to_string()),
        Err(e) => Err(format!("WebAssembly trap: {e}")),
    }
}

impl Prepared for WasmerLoaded {
    fn run(self) -> Exit {
        let exceeded = self.exceeded.clone();
        let limit = self.plan.memory_limit.unwrap_or_default();
        let result = self.try_run();
        Exit::from_run(result, exceeded.load(Ordering::SeqCst).then_some(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preopens_keep_their_guest_name() {
        let same = Preopen {
            host: "/data".into(),
            guest: "/data".into(),
            readonly: false,
        };
        assert_eq!(alias(&same), None);
        let moved = Preopen {
            host: "/run/x".into(),
            guest: "/data".into(),
            readonly: true,
        };
        assert_eq!(alias(&moved), Some("/data"));
    }
}
