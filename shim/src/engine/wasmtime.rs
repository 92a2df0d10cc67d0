//! The Wasmtime engine: WASI preview 1 core modules, preview 2 components
//! (`wasi:cli/run`), and `wasi:http/proxy` components, served by [`crate::http_server`]
//! with one fresh instance per request from Wasmtime's pooling allocator. This is the only
//! file that imports `wasmtime`, `wasmtime-wasi` and `wasmtime-wasi-http`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmlet_oci::{WasiPlan, WasmKind};
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{
    Config, Engine as WtEngine, ExternType, InstanceAllocationStrategy, InstancePre, Linker,
    Module, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{
    FsPerms, I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{Engine, Exit, Loaded, Prepared, TRAP_EXIT_CODE};
use crate::cache::{FingerprintHasher, ModuleCache};
use crate::error::{Error, Result};

/// Wasmtime with its default (Cranelift) configuration; a second engine, with the pooling
/// allocator, is made only for `wasi:http/proxy` components.
pub struct Wasmtime {
    sync: Flavour,
    http: OnceLock<Flavour>,
}

/// A Wasmtime engine and its compile-cache fingerprint.
struct Flavour {
    engine: WtEngine,
    fingerprint: String,
}

impl Flavour {
    fn new(config: &Config) -> wasmtime::Result<Flavour> {
        let engine = WtEngine::new(config)?;
        let mut h = FingerprintHasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        Ok(Flavour {
            engine,
            fingerprint: h.hex(),
        })
    }

    /// The engine for HTTP components: instances from a pool (falling back to on-demand
    /// allocation where the pool's address space cannot be reserved), and epoch
    /// interruption, so that a busy instance yields to the others every [`YIELD_EVERY`].
    fn http() -> Result<Flavour> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(crate::http_server::MAX_CONCURRENT_REQUESTS as u32);
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Flavour::new(&pooled).or_else(|e| {
            log::warn!("pooling allocator unavailable ({e:#}): allocating instances on demand");
            Flavour::new(&config).map_err(engine_err)
        })
    }
}

/// A compiled module or component, linked to WASI but without its context yet.
pub enum WasmtimeLoaded {
    Core {
        engine: WtEngine,
        pre: InstancePre<CoreData>,
        export: String,
    },
    Component {
        engine: WtEngine,
        pre: CommandPre<P2Ctx>,
    },
    Http {
        pre: ProxyPre<P2Ctx>,
    },
}

/// A module or component, linked and with its WASI context, ready to instantiate.
pub enum WasmtimePrepared {
    Core {
        engine: WtEngine,
        pre: InstancePre<CoreData>,
        data: CoreData,
        export: String,
    },
    Component {
        engine: WtEngine,
        pre: CommandPre<P2Ctx>,
        ctx: P2Ctx,
    },
    Http {
        handler: ProxyHandler,
        listener: TcpListener,
    },
}

/// How often an HTTP instance that computes without waiting yields its thread to other
/// requests (and notices that its request was dropped).
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Serves requests with a fresh instance of a `wasi:http/proxy` component each.
pub struct ProxyHandler {
    pre: ProxyPre<P2Ctx>,
    plan: Arc<WasiPlan>,
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

impl WasiHttpView for P2Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
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
        let module: Module = load(
            &self.sync,
            &read_module(plan)?,
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
        let mut linker: Linker<CoreData> = Linker::new(&self.sync.engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |d: &mut CoreData| &mut d.wasi)
            .map_err(engine_err)?;
        let pre = linker.instantiate_pre(&module).map_err(invalid(plan))?;
        Ok(WasmtimeLoaded::Core {
            engine: self.sync.engine.clone(),
            pre,
            export,
        })
    }

    fn load_component(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmtimeLoaded> {
        if plan.entrypoint.export != wasmlet_oci::entrypoint::DEFAULT_EXPORT {
            return Err(Error::ModuleInvalid {
                module: plan.entrypoint.guest_path.clone(),
                message: "components run `wasi:cli/run` or serve `wasi:http/incoming-handler`; `#export` selects functions of core modules only".into(),
            });
        }
        let bytes = read_module(plan)?;
        let http = wasmlet_oci::wasm::exports_http_handler(&bytes);
        let flavour = match http {
            true => match self.http.get() {
                Some(f) => f,
                None => {
                    let f = Flavour::http()?;
                    self.http.get_or_init(|| f)
                }
            },
            false => &self.sync,
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
        Ok(WasmtimeLoaded::Component {
            engine: self.sync.engine.clone(),
            pre,
        })
    }
}

impl Engine for Wasmtime {
    const NAME: &'static str = "wasmtime";
    type Loaded = WasmtimeLoaded;

    fn new() -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        Ok(Wasmtime {
            sync: Flavour::new(&config).map_err(engine_err)?,
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
            WasmtimeLoaded::Core {
                engine,
                pre,
                export,
            } => WasmtimePrepared::Core {
                engine,
                pre,
                data: CoreData {
                    wasi: Wasmtime::wasi_builder(plan)?.build_p1(),
                    cap: MemoryCap::new(plan),
                },
                export,
            },
            WasmtimeLoaded::Component { engine, pre } => WasmtimePrepared::Component {
                engine,
                pre,
                ctx: P2Ctx::new(plan)?,
            },
            WasmtimeLoaded::Http { pre } => {
                // Each request gets a context of its own; building one now fails Create,
                // not every request, when a preopen cannot be opened.
                P2Ctx::new(plan)?;
                WasmtimePrepared::Http {
                    listener: crate::http_server::bind(plan.http_listen)?,
                    handler: ProxyHandler {
                        pre,
                        plan: Arc::new(plan.clone()),
                    },
                }
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
            WasmtimePrepared::Core {
                engine,
                pre,
                data,
                export,
            } => {
                let mut store = Store::new(&engine, data);
                store.limiter(|d| &mut d.cap);
                let result = pre.instantiate(&mut store).and_then(|instance| {
                    let f = instance.get_typed_func::<(), ()>(&mut store, &export)?;
                    f.call(&mut store, ())
                });
                exit(result, &store.data().cap)
            }
            WasmtimePrepared::Component { engine, pre, ctx } => {
                let mut store = Store::new(&engine, ctx);
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
            WasmtimePrepared::Http { handler, listener } => {
                let engine = handler.pre.engine().clone();
                std::thread::spawn(move || loop {
                    std::thread::sleep(YIELD_EVERY);
                    engine.increment_epoch();
                });
                Exit::code(crate::http_server::serve(listener, handler))
            }
        }
    }
}

impl crate::http_server::Handler for ProxyHandler {
    type Body = HyperOutgoingBody;

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> std::result::Result<hyper::Response<HyperOutgoingBody>, String> {
        let ctx = P2Ctx::new(&self.plan).map_err(|e| e.to_string())?;
        let mut store = Store::new(self.pre.engine(), ctx);
        store.limiter(|d| &mut d.cap);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let req = http
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| format!("{e:#}"))?;
        let out = http
            .new_response_outparam(tx)
            .map_err(|e| format!("{e:#}"))?;
        let pre = self.pre.clone();
        // The instance runs on its own task: it may keep streaming the body after it has
        // set the response.
        let task = tokio::spawn(async move {
            let result = match pre.instantiate_async(&mut store).await {
                Ok(proxy) => {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                }
                Err(e) => Err(e),
            };
            result.map_err(|e| {
                let cap = &store.data().cap;
                match cap.limit {
                    Some(limit) if cap.exceeded => {
                        format!("the instance exceeded its memory limit of {limit} bytes")
                    }
                    _ => format!("WebAssembly trap: {e:?}"),
                }
            })
        });
        // A request dropped before its response (the client went away) stops its instance
        // at its next yield; once the response is out, the instance streams the body on.
        let abort = AbortUnlessAnswered(Some(task.abort_handle()));
        let answer = rx.await;
        abort.answered();
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(format!("the component answered with error {code:?}")),
            Err(_) => Err(match task.await {
                Ok(Ok(())) => "the component never set a response".to_string(),
                Ok(Err(e)) => e,
                Err(e) => format!("the request's task failed: {e}"),
            }),
        }
    }
}

/// Aborts a request's instance task when dropped, unless [`answered`](Self::answered).
struct AbortUnlessAnswered(Option<tokio::task::AbortHandle>);

impl AbortUnlessAnswered {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortUnlessAnswered {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
