//! The WasmEdge engine (cargo feature `wasmedge`): WASI preview 1 core modules through
//! `wasmedge-sdk`. This is the only file that imports `wasmedge-sdk`.
//!
//! WasmEdge runs core modules only; components are refused at Create with a clear error.
//! When the installed library has WasmEdge's AOT compiler (built with LLVM), modules are
//! compiled ahead of time into the compile cache (universal-wasm artifacts, keyed by the
//! library version); an interpreter-only library is detected once per workload and the
//! module is interpreted (`compile cache: NotUsed`).
//! The memory limit caps linear memory (`max_memory_pages`): a module sees its grow fail,
//! as the WASI contract says, and exits as its own code decides (commonly a trap).

use std::collections::HashMap;

use wasmedge_sdk::config::{CommonConfigOptions, Config, ConfigBuilder, RuntimeConfigOptions};
use wasmedge_sdk::error::{CoreCommonError, CoreError, WasmEdgeError};
use wasmedge_sdk::vm::SyncInst;
use wasmedge_sdk::wasi::WasiModule;
use wasmedge_sdk::{Compiler, ExternalInstanceType, Module, Store, Vm};
use wasmlet_oci::{WasiPlan, WasmKind};

use super::{Engine, Exit, Loaded, Prepared};
use crate::error::{Error, Result};
use crate::image::cache::ModuleCache;

/// WasmEdge, interpreter or AOT as the installed library allows.
pub struct WasmEdge {
    /// The library's AOT compiler, when it has one.
    compiler: Option<Compiler>,
}

/// A validated module with the plan it runs under.
pub struct WasmEdgePrepared {
    module: Module,
    plan: WasiPlan,
    config: Option<Config>,
}

/// The engine configuration for `plan`: a page cap when the plan has a memory limit.
fn config(plan: &WasiPlan) -> Result<Option<Config>> {
    let Some(limit) = plan.memory_limit else {
        return Ok(None);
    };
    let pages = u32::try_from(limit / 65536).unwrap_or(u32::MAX).max(1);
    ConfigBuilder::new(CommonConfigOptions::default())
        .with_runtime_config(RuntimeConfigOptions::default().max_memory_pages(pages))
        .build()
        .map(Some)
        .map_err(|e| Error::Engine(format!("configuring WasmEdge: {e}")))
}

fn invalid(plan: &WasiPlan, message: impl std::fmt::Display) -> Error {
    Error::ModuleInvalid {
        module: plan.entrypoint.guest_path.clone(),
        message: message.to_string(),
    }
}

impl Engine for WasmEdge {
    const NAME: &'static str = "wasmedge";
    type Loaded = WasmEdgePrepared;

    fn new() -> Result<Self> {
        // WasmEdge logs to the process's stdout, which is the container's: only errors (a
        // trap's message), never the AOT compiler's progress lines.
        wasmedge_sdk::LogManager::log_error_info();
        // An interpreter-only library (built without LLVM) has the compiler's entry points
        // but cannot create one: that is the detection.
        Ok(WasmEdge {
            compiler: Compiler::new(None).ok(),
        })
    }

    fn load(&self, plan: &WasiPlan, cache: &ModuleCache) -> Result<WasmEdgePrepared> {
        super::refuse_wagi("WasmEdge", plan)?;
        match plan.entrypoint.kind {
            WasmKind::Module => {}
            WasmKind::Component => return Err(invalid(
                plan,
                "WasmEdge does not run WebAssembly components (WASI p2); use the wasmtime runtime",
            )),
            WasmKind::Native => {
                return Err(invalid(plan, "a native executable is not WebAssembly"))
            }
        }
        let path = &plan.entrypoint.host_path;
        let bytes = std::fs::read(path).map_err(Error::io("reading module", path))?;
        super::refuse_wasix("WasmEdge", plan, &bytes)?;
        let config = config(plan)?;
        let module = match &self.compiler {
            Some(compiler) => self.load_aot(compiler, plan, &bytes, cache, config.as_ref())?,
            None => {
                log::info!(
                    "compile cache: NotUsed (this libwasmedge has no AOT compiler: interpreting)"
                );
                Module::from_bytes(config.as_ref(), &bytes).map_err(|e| invalid(plan, e))?
            }
        };
        let export = &plan.entrypoint.export;
        match module.get_export(export) {
            Some(ExternalInstanceType::Func(f)) if f.args_len() == 0 && f.returns_len() == 0 => {}
            _ => {
                let funcs: Vec<String> = module
                    .exports()
                    .iter()
                    .filter(|e| matches!(e.ty(), Ok(ExternalInstanceType::Func(_))))
                    .map(|e| e.name().into_owned())
                    .collect();
                return Err(invalid(
                    plan,
                    format!(
                        "unknown export `{export}`: the module exports functions [{}]",
                        funcs.join(", ")
                    ),
                ));
            }
        }
        Ok(WasmEdgePrepared {
            module,
            plan: plan.clone(),
            config,
        })
    }
}

impl WasmEdge {
    /// The module compiled ahead of time, through the compile cache.
    fn load_aot(
        &self,
        compiler: &Compiler,
        plan: &WasiPlan,
        bytes: &[u8],
        cache: &ModuleCache,
        config: Option<&Config>,
    ) -> Result<Module> {
        let fingerprint = format!(
            "wasmedge {} aot",
            wasmedge_sdk::utils::CoreVersion::version_string()
        );
        let (module, _) = cache.load_or_compile(
            bytes,
            &fingerprint,
            |b| {
                let dir = tempfile::tempdir()
                    .map_err(Error::io("creating a directory for", "the AOT compiler"))?;
                let out = compiler
                    .compile_from_bytes(b, "module", dir.path())
                    .map_err(|e| invalid(plan, e))?;
                std::fs::read(&out).map_err(Error::io("reading the AOT artifact", out))
            },
            // The SDK's from_file insists on a `.wasm`/`.so` name; the entry is universal
            // wasm (the module with its native code in a custom section): read its bytes.
            |p| {
                let bytes = std::fs::read(p).map_err(Error::io("reading", p))?;
                Module::from_bytes(config, bytes).map_err(|e| Error::Engine(e.to_string()))
            },
            |b| Module::from_bytes(config, b).map_err(|e| Error::Engine(e.to_string())),
        )?;
        Ok(module)
    }
}

impl Loaded for WasmEdgePrepared {
    type Prepared = WasmEdgePrepared;

    /// WasmEdge builds its WASI module when it runs; the plan (with the container's paths)
    /// is kept for then.
    fn link(mut self, plan: &WasiPlan) -> Result<WasmEdgePrepared> {
        self.plan = plan.clone();
        Ok(self)
    }
}

impl WasmEdgePrepared {
    fn try_run(self) -> std::result::Result<i32, String> {
        let plan = &self.plan;
        let args: Vec<&str> = plan.args.iter().map(String::as_str).collect();
        let env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let preopens: Vec<String> = plan
            .preopens
            .iter()
            .map(|p| {
                let ro = if p.readonly { ":readonly" } else { "" };
                format!("{}:{}{ro}", p.guest, p.host.display())
            })
            .collect();
        let mut wasi = WasiModule::create(
            Some(args),
            Some(env.iter().map(String::as_str).collect()),
            Some(preopens.iter().map(String::as_str).collect()),
        )
        .map_err(|e| format!("creating the WASI module: {e}"))?;
        let mut instances: HashMap<String, &mut dyn SyncInst> = HashMap::new();
        instances.insert(wasi.name().to_string(), wasi.as_mut());
        let store = Store::new(self.config.as_ref(), instances).map_err(|e| e.to_string())?;
        let mut vm = Vm::new(store);
        vm.register_module(None, self.module)
            .map_err(|e| e.to_string())?;
        match vm.run_func(None, &plan.entrypoint.export, []) {
            Ok(_) => Ok(wasi.exit_code() as i32),
            Err(e)
                if matches!(
                    *e,
                    WasmEdgeError::Core(CoreError::Common(CoreCommonError::Terminated))
                ) =>
            {
                Ok(wasi.exit_code() as i32)
            }
            Err(e) => Err(format!("WebAssembly trap: {e}")),
        }
    }
}

impl Prepared for WasmEdgePrepared {
    fn run(self) -> Exit {
        Exit::from_run(self.try_run(), None)
    }
}
