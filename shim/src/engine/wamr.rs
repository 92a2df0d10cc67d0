//! The WAMR engine (cargo feature `wamr`): WASI preview 1 core modules in the WebAssembly
//! Micro Runtime's fast interpreter, through the raw C API of `wamrx-sys` (WAMR 2.4.3, built
//! from source with cmake; no crate wraps the official SDK). This is the only file that
//! imports `wamrx-sys`, and every call into it is here.
//!
//! - An interpreter has no compiled code to keep: the compile cache says `NotUsed`.
//! - The WASI plan maps onto WAMR's WASI arguments: args, env, each preopen as
//!   `guest::host`, stdio as the process's own descriptors (containerd's FIFOs). WAMR has
//!   no read-only preopen: read-only preopens rely on the read-only mount the kernel
//!   already enforces (`root.readonly`, `ro` bind mounts).
//! - The memory limit caps linear memory (`max_memory_pages`); WAMR reports a refused grow
//!   to a callback, so the run ends as Wasmtime's does (137, `/tasks/oom`).
//! - Components (WASI p2, `wasi:http`) are refused at Create.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use wamrx_sys as sys;
use wasmlet_oci::{WasiPlan, WasmKind};

use super::{Engine, Exit, Loaded, Prepared};
use crate::error::{Error, Result};
use crate::image::cache::ModuleCache;

/// The interpreter's stack for the module's calls (allocated, touched only as used).
const STACK_SIZE: u32 = 8 << 20;

/// Set by [`on_grow_refused`] when a grow went past the plan's memory limit.
static EXCEEDED: AtomicBool = AtomicBool::new(false);
/// The plan's memory limit in bytes (0: none), for [`on_grow_refused`].
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// WAMR's fast interpreter.
pub struct Wamr;

/// A loaded (validated) module and the bytes WAMR keeps pointing into.
pub struct WamrLoaded {
    module: sys::wasm_module_t,
    // WAMR's module refers to its binary until it is unloaded: kept, never read.
    _bytes: Vec<u8>,
}

/// A module with its WASI context, ready to instantiate and call. Instantiation waits for
/// `run` (after Start): it runs the module's start function, which is the module's own
/// code and may never return.
pub struct WamrPrepared {
    export: CString,
    limit: Option<u64>,
    max_memory_pages: u32,
    guest_path: String,
    // The WASI strings WAMR was given; kept for the instance's lifetime.
    _wasi: WasiArgs,
    loaded: WamrLoaded,
}

/// A live instance, deinstantiated on drop.
struct Instance(sys::wasm_module_inst_t);

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the instance was created by `wasm_runtime_instantiate_ex` and is not used
        // after this.
        unsafe { sys::wasm_runtime_deinstantiate(self.0) }
    }
}

/// C strings for `wasm_runtime_set_wasi_args_ex` and the pointer arrays over them.
struct WasiArgs {
    _owned: Vec<CString>,
    dirs: Vec<*const c_char>,
    map_dirs: Vec<*const c_char>,
    env: Vec<*const c_char>,
    argv: Vec<*mut c_char>,
}

fn invalid(plan: &WasiPlan, message: impl std::fmt::Display) -> Error {
    Error::ModuleInvalid {
        module: plan.entrypoint.guest_path.clone(),
        message: message.to_string(),
    }
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Engine(format!("{what} {s:?} contains a NUL byte")))
}

/// The text of a NUL-terminated error buffer.
fn message(buf: &[u8]) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Called by WAMR when `memory.grow` fails; only a grow past our limit counts.
extern "C" fn on_grow_refused(
    inc_page_count: u32,
    current_memory_size: u64,
    _memory_index: u32,
    _reason: sys::enlarge_memory_error_reason_t,
    _instance: sys::wasm_module_inst_t,
    _exec_env: sys::wasm_exec_env_t,
    _user_data: *mut c_void,
) {
    let limit = LIMIT.load(Ordering::SeqCst);
    let desired = current_memory_size.saturating_add(u64::from(inc_page_count) * 65536);
    if limit != 0 && desired > limit {
        EXCEEDED.store(true, Ordering::SeqCst);
    }
}

/// Start the runtime once per process, with WAMR's own log reduced to errors (it prints to
/// stdout, which is the container's).
fn init() -> Result<()> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    // SAFETY: runs once, before any other WAMR call; the callback is a plain `extern "C"`
    // function that only touches atomics.
    let started = *STARTED.get_or_init(|| unsafe {
        let ok = sys::wasm_runtime_init();
        if ok {
            sys::wasm_runtime_set_log_level(sys::WASM_LOG_LEVEL_ERROR);
            sys::wasm_runtime_set_enlarge_mem_error_callback(
                Some(on_grow_refused),
                ptr::null_mut(),
            );
        }
        ok
    });
    match started {
        true => Ok(()),
        false => Err(Error::Engine("WAMR: the runtime failed to start".into())),
    }
}

impl Engine for Wamr {
    const NAME: &'static str = "wamr";
    type Loaded = WamrLoaded;

    fn new() -> Result<Self> {
        init()?;
        Ok(Wamr)
    }

    fn load(&self, plan: &WasiPlan, _cache: &ModuleCache) -> Result<WamrLoaded> {
        super::refuse_wagi("WAMR", plan)?;
        match plan.entrypoint.kind {
            WasmKind::Module => {}
            WasmKind::Component => {
                return Err(invalid(
                    plan,
                    "WAMR does not run WebAssembly components (WASI p2); use the wasmtime runtime",
                ))
            }
            WasmKind::Native => {
                return Err(invalid(plan, "a native executable is not WebAssembly"))
            }
        }
        log::info!("compile cache: NotUsed (WAMR interprets)");
        let path = &plan.entrypoint.host_path;
        let mut bytes = std::fs::read(path).map_err(Error::io("reading module", path))?;
        super::refuse_wasix("WAMR", plan, &bytes)?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| invalid(plan, "the module is larger than 4 GiB"))?;
        let mut err = [0u8; 256];
        // SAFETY: `bytes` outlives the module (both live in `WamrLoaded`, and the module is
        // unloaded in its `Drop`); the error buffer's size is passed with it.
        let module = unsafe {
            sys::wasm_runtime_load(
                bytes.as_mut_ptr(),
                len,
                err.as_mut_ptr().cast(),
                err.len() as u32,
            )
        };
        if module.is_null() {
            return Err(invalid(plan, message(&err)));
        }
        let loaded = WamrLoaded {
            module,
            _bytes: bytes,
        };
        loaded.check_export(plan)?;
        Ok(loaded)
    }
}

impl WamrLoaded {
    /// The entrypoint's export must be a function of no parameters and no results.
    fn check_export(&self, plan: &WasiPlan) -> Result<()> {
        let wanted = &plan.entrypoint.export;
        let mut funcs = Vec::new();
        // SAFETY: `self.module` is a loaded module; indices stay below its export count.
        let count = unsafe { sys::wasm_runtime_get_export_count(self.module) };
        for i in 0..count {
            let mut export = sys::wasm_export_t::default();
            // SAFETY: as above; `export` is a valid place for WAMR to write to, and its
            // name points into the module, alive while we read it.
            let (name, params, results) = unsafe {
                sys::wasm_runtime_get_export_type(self.module, i, &mut export);
                if export.kind != sys::WASM_IMPORT_EXPORT_KIND_FUNC || export.name.is_null() {
                    continue;
                }
                let ty = export.u.func_type;
                (
                    CStr::from_ptr(export.name).to_string_lossy().into_owned(),
                    sys::wasm_func_type_get_param_count(ty),
                    sys::wasm_func_type_get_result_count(ty),
                )
            };
            if &name == wanted {
                return match (params, results) {
                    (0, 0) => Ok(()),
                    _ => Err(invalid(
                        plan,
                        format!("export `{wanted}` must take no parameters and return nothing"),
                    )),
                };
            }
            funcs.push(name);
        }
        Err(invalid(
            plan,
            format!(
                "unknown export `{wanted}`: the module exports functions [{}]",
                funcs.join(", ")
            ),
        ))
    }
}

impl Drop for WamrLoaded {
    fn drop(&mut self) {
        // SAFETY: the module was loaded by `wasm_runtime_load` and its only instance (an
        // `Instance` within `WamrPrepared::try_run`, which owns this value) is gone.
        unsafe { sys::wasm_runtime_unload(self.module) }
    }
}

impl WasiArgs {
    fn new(plan: &WasiPlan) -> Result<WasiArgs> {
        let mut owned = Vec::new();
        let mut keep = |s: CString| {
            let p = s.as_ptr();
            owned.push(s);
            p
        };
        // WAMR preopens each entry of the directory list and each of the mapped list: the
        // plan's preopens go in the mapped list alone (`guest::host`), once each.
        let dirs = Vec::new();
        let mut map_dirs = Vec::new();
        for p in &plan.preopens {
            let host = p.host.to_string_lossy();
            map_dirs.push(keep(cstring(&format!("{}::{host}", p.guest), "preopen")?));
        }
        let mut env = Vec::new();
        for (k, v) in &plan.env {
            env.push(keep(cstring(&format!("{k}={v}"), "process.env")?));
        }
        let mut argv = Vec::new();
        for a in &plan.args {
            argv.push(keep(cstring(a, "process.args")?).cast_mut());
        }
        Ok(WasiArgs {
            _owned: owned,
            dirs,
            map_dirs,
            env,
            argv,
        })
    }
}

impl Loaded for WamrLoaded {
    type Prepared = WamrPrepared;

    /// Inside the container: the WASI arguments; WAMR opens the preopens when it
    /// instantiates, in `run`.
    fn link(self, plan: &WasiPlan) -> Result<WamrPrepared> {
        let mut wasi = WasiArgs::new(plan)?;
        let max_memory_pages = plan
            .memory_limit
            .map(|l| u32::try_from(l / 65536).unwrap_or(u32::MAX).max(1))
            .unwrap_or(0);
        LIMIT.store(plan.memory_limit.unwrap_or(0), Ordering::SeqCst);
        // SAFETY: every pointer array (and the strings it points to) lives in `wasi`, which
        // the returned value keeps beside the module; the counts are the arrays' lengths;
        // stdio are this process's descriptors 0-2.
        unsafe {
            sys::wasm_runtime_set_wasi_args_ex(
                self.module,
                wasi.dirs.as_mut_ptr(),
                wasi.dirs.len() as u32,
                wasi.map_dirs.as_mut_ptr(),
                wasi.map_dirs.len() as u32,
                wasi.env.as_mut_ptr(),
                wasi.env.len() as u32,
                wasi.argv.as_mut_ptr(),
                wasi.argv.len() as i32,
                0,
                1,
                2,
            );
        }
        Ok(WamrPrepared {
            export: cstring(&plan.entrypoint.export, "export")?,
            limit: plan.memory_limit,
            max_memory_pages,
            guest_path: plan.entrypoint.guest_path.clone(),
            _wasi: wasi,
            loaded: self,
        })
    }
}

impl WamrPrepared {
    /// Instantiate (running the start function), then call the export: the WASI exit
    /// code, or the exception as a message.
    fn try_run(&self) -> std::result::Result<i32, String> {
        let args = sys::InstantiationArgs {
            default_stack_size: STACK_SIZE,
            host_managed_heap_size: 0,
            max_memory_pages: self.max_memory_pages,
        };
        let mut err = [0u8; 256];
        // SAFETY: the module is loaded and its WASI arguments (kept in `self`) are set;
        // `err` is a writable buffer of the length given.
        let instance = unsafe {
            sys::wasm_runtime_instantiate_ex(
                self.loaded.module,
                &args,
                err.as_mut_ptr().cast(),
                err.len() as u32,
            )
        };
        if instance.is_null() {
            return Err(format!(
                "WAMR: instantiating {}: {}",
                self.guest_path,
                message(&err)
            ));
        }
        let instance = Instance(instance);
        // SAFETY: `instance` is live until the end of this function; the function and the
        // exec env belong to it and are used on this thread only; the env is destroyed here.
        unsafe {
            let func = sys::wasm_runtime_lookup_function(instance.0, self.export.as_ptr());
            if func.is_null() {
                return Err(format!("export {:?} not found", self.export));
            }
            let env = sys::wasm_runtime_create_exec_env(instance.0, STACK_SIZE);
            if env.is_null() {
                return Err("WAMR: creating the execution environment failed".into());
            }
            let ok = sys::wasm_runtime_call_wasm(env, func, 0, ptr::null_mut());
            sys::wasm_runtime_destroy_exec_env(env);
            let code = sys::wasm_runtime_get_wasi_exit_code(instance.0) as i32;
            if ok {
                return Ok(code);
            }
            let exception = sys::wasm_runtime_get_exception(instance.0);
            let exception = match exception.is_null() {
                true => String::from("unknown exception"),
                false => CStr::from_ptr(exception).to_string_lossy().into_owned(),
            };
            match exception.contains("wasi proc exit") {
                true => Ok(code),
                false => Err(format!("WebAssembly trap: {exception}")),
            }
        }
    }
}

impl Prepared for WamrPrepared {
    fn run(self) -> Exit {
        let result = self.try_run();
        let oom = EXCEEDED
            .load(Ordering::SeqCst)
            .then(|| self.limit.unwrap_or_default());
        Exit::from_run(result, oom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlet_oci::entrypoint::Entrypoint;
    use wasmlet_oci::Preopen;

    fn plan() -> WasiPlan {
        WasiPlan {
            entrypoint: Entrypoint {
                arg0: "/app.wasm".into(),
                guest_path: "/app.wasm".into(),
                host_path: "/app.wasm".into(),
                export: "_start".into(),
                kind: WasmKind::Module,
            },
            args: vec!["/app.wasm".into(), "a b".into()],
            env: vec![("A".into(), "1".into()), ("A".into(), "2".into())],
            cwd: "/".into(),
            preopens: vec![
                Preopen {
                    host: "/".into(),
                    guest: "/".into(),
                    readonly: true,
                },
                Preopen {
                    host: "/data".into(),
                    guest: "/data".into(),
                    readonly: false,
                },
            ],
            memory_limit: None,
            http_listen: wasmlet_oci::http::DEFAULT_LISTEN,
            http_timeout: None,
            http_header_timeout: wasmlet_oci::http::DEFAULT_HEADER_TIMEOUT,
            http_executor: Default::default(),
        }
    }

    fn strings(ptrs: &[*const c_char]) -> Vec<String> {
        // SAFETY: the pointers are into CStrings owned by the `WasiArgs` under test.
        ptrs.iter()
            .map(|p| unsafe { CStr::from_ptr(*p) }.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_plan_maps_onto_wasi_args_once_each() {
        let wasi = WasiArgs::new(&plan()).unwrap();
        assert!(wasi.dirs.is_empty());
        assert_eq!(strings(&wasi.map_dirs), ["/::/", "/data::/data"]);
        assert_eq!(strings(&wasi.env), ["A=1", "A=2"]);
        let argv: Vec<*const c_char> = wasi.argv.iter().map(|p| p.cast_const()).collect();
        assert_eq!(strings(&argv), ["/app.wasm", "a b"]);
    }

    #[test]
    fn a_nul_byte_is_an_error_not_a_truncation() {
        let mut p = plan();
        p.env.push(("B".into(), "x\0y".into()));
        assert!(WasiArgs::new(&p).is_err());
    }
}
