//! The Wasmtime engine: WASI preview 1 core modules, preview 2 components
//! (`wasi:cli/run`), `wasi:http/proxy` components (`http`) and WAGI modules (`wagi`). This
//! module (this file and its `http` and `wagi` children) is the only place that imports
//! `wasmtime`, `wasmtime-wasi` and `wasmtime-wasi-http`.

mod http;
mod wagi;

use std::net::TcpListener;
use std::path::Path;
use std::sync::OnceLock;

use wasmlet_oci::http::Executor;
use wasmlet_oci::{WasiPlan, WasmKind};
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{
    Config, Engine as WtEngine, ExternType, InstancePre, Linker, Module, ResourceLimiter, Store,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{
    FsPerms, I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::WasiHttpCtx;

use http::ProxyHandler;

use super::{Engine, Exit, Loaded, Prepared, TRAP_EXIT_CODE};
use crate::error::{Error, Result};
use crate::image::cache::{FingerprintHasher, ModuleCache};

/// Wasmtime: the default (Cranelift) configuration for modules and commands, a second one
/// with the pooling allocator for `wasi:http/proxy` components; each engine is created on
/// first use, so a workload creates only the one its module needs.
pub struct Wasmtime {
    sync: OnceLock<Flavour>,
    http: OnceLock<Flavour>,
}

/// A Wasmtime engine and its compile-cache fingerprint.
struct Flavour {
    engine: WtEngine,
    fingerprint: String,
}

impl Flavour {
    /// The flavour in `cell`, made by `make` on first use.
    fn get(cell: &OnceLock<Flavour>, make: impl FnOnce() -> Result<Flavour>) -> Result<&Flavour> {
        if let Some(f) = cell.get() {
            return Ok(f);
        }
        let f = make()?;
        Ok(cell.get_or_init(|| f))
    }

    /// The engine for core modules and commands.
    fn sync() -> Result<Flavour> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        Flavour::new(&config).map_err(engine_err)
    }

    fn new(config: &Config) -> wasmtime::Result<Flavour> {
        let engine = WtEngine::new(config)?;
        let mut h = FingerprintHasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        Ok(Flavour {
            engine,
            fingerprint: h.hex(),
        })
    }
}

/// A compiled module or component, linked to WASI but without its context yet.
pub enum WasmtimeLoaded {
    Core {
        pre: InstancePre<CoreData>,
        export: String,
    },
    Component {
        pre: CommandPre<P2Ctx>,
    },
    Http {
        pre: ProxyPre<P2Ctx>,
    },
    Wagi {
        pre: InstancePre<CoreData>,
        export: String,
    },
}

/// A module or component, linked and with its WASI context, ready to instantiate.
pub enum WasmtimePrepared {
    Core {
        pre: InstancePre<CoreData>,
        data: CoreData,
        export: String,
    },
    Component {
        pre: CommandPre<P2Ctx>,
        ctx: P2Ctx,
    },
    Http {
        handler: ProxyHandler,
        listener: TcpListener,
    },
    Wagi {
        handler: wagi::WagiHandler,
        listener: TcpListener,
    },
}

/// Caps linear memory at the spec's memory limit; growing past it traps and is remembered.
pub struct MemoryCap {
    limit: Option<u64>,
    exceeded: bool,
}

impl MemoryCap {
    fn new(plan: &WasiPlan) -> MemoryCap {
        MemoryCap {
            limit: plan.memory_limit,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired as u64 > limit => {
                self.exceeded = true;
                Err(wasmtime::Error::msg(format!(
                    "memory limit of {limit} bytes exceeded (growing to {desired} bytes)"
                )))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Store data for core modules.
pub struct CoreData {
    wasi: WasiP1Ctx,
    cap: MemoryCap,
}

/// Store data for components.
pub struct P2Ctx {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    cap: MemoryCap,
}

impl P2Ctx {
    fn new(plan: &WasiPlan) -> Result<P2Ctx> {
        Ok(P2Ctx {
            wasi: Wasmtime::wasi_builder(plan)?.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            cap: MemoryCap::new(plan),
        })
    }
}

impl WasiView for P2Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn invalid(plan: &WasiPlan) -> impl FnOnce(wasmtime::Error) -> Error + '_ {
    move |e| Error::ModuleInvalid {
        module: plan.entrypoint.guest_path.clone(),
        message: format!("{e:#}"),
    }
}

fn engine_err(e: wasmtime::Error) -> Error {
    Error::Engine(format!("{e:#}"))
}

// Deserialising a compiled artifact is `unsafe` in Wasmtime because a forged artifact is
// arbitrary machine code. These four functions are the only callers. Their inputs are
// either an entry of the compile cache, handed out only when its checksum matches what
// `ModuleCache::store` wrote from an artifact of this very engine build (the engine's
// compatibility fingerprint is part of the entry's key), or the bytes `precompile_*`
// returned a moment earlier; Wasmtime also checks each artifact's header. The cache
// directory is root's, like the shim binary itself.

fn module_from_file(e: &WtEngine, p: &Path) -> wasmtime::Result<Module> {
    // SAFETY: see the contract above.
    unsafe { Module::deserialize_file(e, p) }
}

fn module_from_bytes(e: &WtEngine, b: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: see the contract above.
    unsafe { Module::deserialize(e, b) }
}

fn component_from_file(e: &WtEngine, p: &Path) -> wasmtime::Result<Component> {
    // SAFETY: see the contract above.
    unsafe { Component::deserialize_file(e, p) }
}

fn component_from_bytes(e: &WtEngine, b: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see the contract above.
    unsafe { Component::deserialize(e, b) }
}

/// Load a compiled artifact of `bytes` through the cache, compiling it on a miss.
fn load<T>(
    flavour: &Flavour,
    bytes: &[u8],
    plan: &WasiPlan,
    cache: &ModuleCache,
    precompile: impl FnOnce(&WtEngine, &[u8]) -> wasmtime::Result<Vec<u8>>,
    from_file: fn(&WtEngine, &Path) -> wasmtime::Result<T>,
    from_bytes: fn(&WtEngine, &[u8]) -> wasmtime::Result<T>,
) -> Result<T> {
    let engine = &flavour.engine;
    let (loaded, _) = cache.load_or_compile(
        bytes,
        &flavour.fingerprint,
        |b| precompile(engine, b).map_err(invalid(plan)),
        |p| from_file(engine, p).map_err(engine_err),
        |b| from_bytes(engine, b).map_err(engine_err),
    )?;
    Ok(loaded)
}

fn read_module(plan: &WasiPlan) -> Result<Vec<u8>> {
    let path = &plan.entrypoint.host_path;
    std::fs::read(path).map_err(Error::io("reading module", path))
}

impl Wasmtime {
    fn wasi_builder(plan: &WasiPlan) -> Result<WasiCtxBuilder> {
        let mut b = WasiCtxBuilder::new();
        b.allow_blocking_current_thread(true)
            .args(&plan.args)
            .envs(&plan.env)
            .initial_cwd(&plan.cwd)
            .inherit_stdio();
        for p in &plan.preopens {
            let perms = if p.readonly {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                Error::Engine(format!(
                    "preopening {} as {}: {e:#}",
                    p.host.display(),
                    p.guest
                ))
            })?;
        }
        Ok(b)
    }

    fn load_core(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmtimeLoaded> {
        let bytes = read_module(plan)?;
        super::refuse_wasix("Wasmtime", plan, &bytes)?;
        // A WAGI module serves requests: the HTTP engine's pool and epoch yields.
        let wagi = plan.http_executor == Executor::Wagi;
        let flavour = match wagi {
            true => Flavour::get(&self.http, http::flavour)?,
            false => Flavour::get(&self.sync, Flavour::sync)?,
        };
        let module: Module = load(
            flavour,
            &bytes,
            plan,
            cache,
            |e, b| e.precompile_module(b),
            module_from_file,
            module_from_bytes,
        )?;
        let export = plan.entrypoint.export.clone();
        match module.get_export(&export) {
            Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
            Some(ExternType::Func(_)) => {
                return Err(Error::ModuleInvalid {
                    module: plan.entrypoint.guest_path.clone(),
                    message: format!(
                        "export `{export}` must take no parameters and return nothing"
                    ),
                })
            }
            _ => {
                let funcs: Vec<String> = module
                    .exports()
                    .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                    .map(|e| e.name().to_string())
                    .collect();
                return Err(Error::ModuleInvalid {
                    module: plan.entrypoint.guest_path.clone(),
                    message: format!(
                        "unknown export `{export}`: the module exports functions [{}]",
                        funcs.join(", ")
                    ),
                });
            }
        }
        let mut linker: Linker<CoreData> = Linker::new(&flavour.engine);
        if wagi {
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |d: &mut CoreData| &mut d.wasi)
                .map_err(engine_err)?;
            let pre = linker.instantiate_pre(&module).map_err(invalid(plan))?;
            return Ok(WasmtimeLoaded::Wagi { pre, export });
        }
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |d: &mut CoreData| &mut d.wasi)
            .map_err(engine_err)?;
        let pre = linker.instantiate_pre(&module).map_err(invalid(plan))?;
        Ok(WasmtimeLoaded::Core { pre, export })
    }

    fn load_component(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmtimeLoaded> {
        if plan.entrypoint.export != wasmlet_oci::entrypoint::DEFAULT_EXPORT {
            return Err(Error::ModuleInvalid {
                module: plan.entrypoint.guest_path.clone(),
                message: "components run `wasi:cli/run` or serve `wasi:http/incoming-handler`; `#export` selects functions of core modules only".into(),
            });
        }
        if plan.http_executor == Executor::Wagi {
            return Err(Error::ModuleInvalid {
                module: plan.entrypoint.guest_path.clone(),
                message: "the WAGI executor runs WASI preview 1 modules; this is a component (serve it as wasi:http without WASMLET_HTTP_EXECUTOR)".into(),
            });
        }
        let bytes = read_module(plan)?;
        let http = wasmlet_oci::wasm::exports_http_handler(&bytes);
        let flavour = match http {
            true => Flavour::get(&self.http, http::flavour)?,
            false => Flavour::get(&self.sync, Flavour::sync)?,
        };
        let component: Component = load(
            flavour,
            &bytes,
            plan,
            cache,
            |e, b| e.precompile_component(b),
            component_from_file,
            component_from_bytes,
        )?;
        let mut linker: ComponentLinker<P2Ctx> = ComponentLinker::new(&flavour.engine);
        if http {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
                .map_err(engine_err)?;
            let pre = linker.instantiate_pre(&component).map_err(invalid(plan))?;
            let pre = ProxyPre::new(pre).map_err(invalid(plan))?;
            return Ok(WasmtimeLoaded::Http { pre });
        }
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        let pre = linker.instantiate_pre(&component).map_err(invalid(plan))?;
        let pre = CommandPre::new(pre).map_err(invalid(plan))?;
        Ok(WasmtimeLoaded::Component { pre })
    }
}

impl Engine for Wasmtime {
    const NAME: &'static str = "wasmtime";
    type Loaded = WasmtimeLoaded;

    fn new() -> Result<Self> {
        Ok(Wasmtime {
            sync: OnceLock::new(),
            http: OnceLock::new(),
        })
    }

    fn load(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmtimeLoaded> {
        match plan.entrypoint.kind {
            WasmKind::Module => self.load_core(plan, cache),
            WasmKind::Component => self.load_component(plan, cache),
            WasmKind::Native => Err(Error::Engine(format!(
                "{} is a native executable, not WebAssembly",
                plan.entrypoint.guest_path
            ))),
        }
    }
}

impl Loaded for WasmtimeLoaded {
    type Prepared = WasmtimePrepared;

    fn link(self, plan: &WasiPlan) -> Result<WasmtimePrepared> {
        Ok(match self {
            WasmtimeLoaded::Core { pre, export } => WasmtimePrepared::Core {
                pre,
                data: CoreData {
                    wasi: Wasmtime::wasi_builder(plan)?.build_p1(),
                    cap: MemoryCap::new(plan),
                },
                export,
            },
            WasmtimeLoaded::Component { pre } => WasmtimePrepared::Component {
                pre,
                ctx: P2Ctx::new(plan)?,
            },
            WasmtimeLoaded::Http { pre } => {
                let (handler, listener) = http::prepare(pre, plan)?;
                WasmtimePrepared::Http { handler, listener }
            }
            WasmtimeLoaded::Wagi { pre, export } => {
                let (handler, listener) = wagi::prepare(pre, export, plan)?;
                WasmtimePrepared::Wagi { handler, listener }
            }
        })
    }
}

/// The exit for the outcome of running a module under `cap`.
fn exit(result: wasmtime::Result<()>, cap: &MemoryCap) -> Exit {
    match result {
        Ok(()) => Exit::code(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => Exit::code(*code),
            None if cap.exceeded => Exit::out_of_memory(cap.limit.unwrap_or_default()),
            None => {
                eprintln!("wasmlet: WebAssembly trap: {e:?}");
                Exit::code(TRAP_EXIT_CODE)
            }
        },
    }
}

impl Prepared for WasmtimePrepared {
    fn run(self) -> Exit {
        match self {
            WasmtimePrepared::Core { pre, data, export } => {
                let mut store = Store::new(pre.module().engine(), data);
                store.limiter(|d| &mut d.cap);
                let result = pre.instantiate(&mut store).and_then(|instance| {
                    let f = instance.get_typed_func::<(), ()>(&mut store, &export)?;
                    f.call(&mut store, ())
                });
                exit(result, &store.data().cap)
            }
            WasmtimePrepared::Http { handler, listener } => http::serve(handler, listener),
            WasmtimePrepared::Wagi { handler, listener } => wagi::serve(handler, listener),
            WasmtimePrepared::Component { pre, ctx } => {
                let mut store = Store::new(pre.engine(), ctx);
                store.limiter(|d| &mut d.cap);
                let result = pre
                    .instantiate(&mut store)
                    .and_then(|cmd| cmd.wasi_cli_run().call_run(&mut store));
                match result {
                    Ok(Ok(())) => Exit::code(0),
                    Ok(Err(())) => Exit::code(1),
                    Err(e) => exit(Err(e), &store.data().cap),
                }
            }
        }
    }
}
