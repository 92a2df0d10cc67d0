//! Modules that abuse the engine: unbounded recursion, a start function that never returns,
//! data segments past memory, huge tables, a memory limit below what loading needs, a
//! module of 50 MB.

use std::time::Duration;

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::lifecycle::sigterm_stops_within_a_second;
use crate::support::{assert_clean, engine, run_rootfs, Test};

pub const ENGINE: &[(&str, Test)] = &[
    (
        "hostile::unbounded_recursion_traps",
        unbounded_recursion_traps,
    ),
    (
        "hostile::endless_start_function_ends_on_sigterm",
        endless_start_function_ends_on_sigterm,
    ),
    (
        "hostile::data_segment_past_memory_fails_to_instantiate",
        data_segment_past_memory_fails_to_instantiate,
    ),
    ("hostile::huge_table_is_bounded", huge_table_is_bounded),
    (
        "hostile::memory_limit_below_loading_is_reported",
        memory_limit_below_loading_is_reported,
    ),
    ("hostile::module_of_50_mb", module_of_50_mb),
    (
        "hostile::a_million_functions_or_globals",
        a_million_functions_or_globals,
    ),
];

/// Run fixture `name` to its end (`ctr run --rm`, with `flags`): its output.
pub(super) fn run_fixture(
    ctd: &Containerd,
    id: &str,
    name: &str,
    flags: &[&str],
) -> wasmlet_tests::cmd::Output {
    let module = format!("/{name}.wasm");
    let dir = rootfs(&[(module.as_str(), wat(name))]);
    let out = run_rootfs(ctd, id, dir.path(), flags, &[&module]);
    assert_clean(ctd, id);
    out
}

/// A module that recurses without end, under a 256 MiB memory limit: the engine traps at
/// its stack limit (exit 134, the reason naming the stack), or, for an engine whose stack
/// grows on the heap without a bound of its own (WasmEdge), the memory limit stops it
/// (137, `/tasks/oom`). Without a memory limit such an engine would take the node's memory:
/// the README says so.
fn unbounded_recursion_traps(ctd: &Containerd) {
    let limit = (256 << 20).to_string();
    let out = run_fixture(ctd, "recurse", "recurse", &["--memory-limit", &limit]);
    let engine = engine(ctd);
    if engine.bounds_recursion {
        assert_eq!(out.code, Some(134), "{}: {out:?}", engine.name);
        assert!(
            out.stderr.contains("stack"),
            "{}: the reason names the stack: {}",
            engine.name,
            out.stderr
        );
    } else {
        assert_eq!(out.code, Some(137), "{}: {out:?}", engine.name);
    }
}

/// A start function that never returns keeps the module in instantiation, before
/// `_start`: SIGTERM still ends it within a second (exit 143), as for a busy `_start`.
fn endless_start_function_ends_on_sigterm(ctd: &Containerd) {
    // 300 ms to get into the start function.
    sigterm_stops_within_a_second(ctd, "startloop", Duration::from_millis(300));
}

/// A data segment far past its memory: instantiation fails with the engine's
/// out-of-bounds reason on stderr and a failing exit (134, a trap while instantiating).
fn data_segment_past_memory_fails_to_instantiate(ctd: &Containerd) {
    let out = run_fixture(ctd, "dataoob", "dataoob", &[]);
    let engine = engine(ctd).name;
    assert_eq!(out.code, Some(134), "{engine}: {out:?}");
    assert!(
        out.stderr.contains("out of bounds"),
        "{engine}: {}",
        out.stderr
    );
}

/// A table of 100 million entries under a 64 MiB memory limit: the engine allocates it
/// lazily and runs the module (Wasmtime), or allocates it up front and the limit stops it
/// (137); the next container runs.
fn huge_table_is_bounded(ctd: &Containerd) {
    let limit = (64 << 20).to_string();
    let out = run_fixture(ctd, "hugetable", "hugetable", &["--memory-limit", &limit]);
    let engine = engine(ctd).name;
    let want = if engine == "wasmtime" { 0 } else { 137 };
    assert_eq!(out.code, Some(want), "{engine}: {out:?}");
    let next = run_fixture(ctd, "after-hugetable", "hello", &[]);
    assert_eq!(next.stdout_str(), "hello from wasm\n", "{engine}: {next:?}");
}

/// A 1 MiB memory limit, below what some engines need to load a module: whichever point
/// the limit hits, the user is told. The module runs (Wasmtime and Wasmer load the small
/// module within it), the run ends at the limit (137: WAMR), or the create fails saying
/// the limit killed the workload (WasmEdge, whose library maps LLVM) or, when the library's
/// loading charged more than the limit before it was set, with the cgroup's refusal (as
/// runc's create does); never a bare "exited before it was ready".
fn memory_limit_below_loading_is_reported(ctd: &Containerd) {
    let limit = (1 << 20).to_string();
    let out = run_fixture(ctd, "tinylimit", "hello", &["--memory-limit", &limit]);
    let engine = engine(ctd).name;
    let told =
        format!("killed at the container's memory limit ({limit} bytes) while loading /hello.wasm");
    let refused = format!("unable to set memory limit to {limit} (current usage: ");
    match out.code {
        Some(0) => assert_eq!(out.stdout_str(), "hello from wasm\n", "{engine}"),
        Some(137) => {}
        _ => assert!(
            out.code == Some(1) && (out.stderr.contains(&told) || out.stderr.contains(&refused)),
            "{engine}: {out:?}"
        ),
    }
}

/// A module of about `bytes` bytes (one data segment of filler) that prints "big".
fn big_module(bytes: usize) -> Vec<u8> {
    let pages = bytes / 65536 + 2;
    let text = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (data (i32.const 0) "\08\00\00\00\04\00\00\00big\n")
  (data (i32.const 65536) "{filler}")
  (func (export "_start")
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 100)))))"#,
        filler = "a".repeat(bytes)
    );
    wat::parse_str(&text).expect("the big module")
}

/// A 50 MB module runs, twice (the second start from the compile cache where the engine
/// has one); under a 32 MiB memory limit, below what holding it takes, the create fails
/// saying the limit killed the workload while loading (every engine), and the next
/// container runs.
fn module_of_50_mb(ctd: &Containerd) {
    let engine = engine(ctd).name;
    let dir = rootfs(&[("/big.wasm", big_module(50 << 20))]);
    for id in ["big-1", "big-2"] {
        let out = run_rootfs(ctd, id, dir.path(), &[], &["/big.wasm"]);
        assert_eq!(
            (out.code, out.stdout_str().as_str()),
            (Some(0), "big\n"),
            "{engine}: {out:?}"
        );
        assert_clean(ctd, id);
    }
    let limit = (32 << 20).to_string();
    let out = run_rootfs(
        ctd,
        "big-limited",
        dir.path(),
        &["--memory-limit", &limit],
        &["/big.wasm"],
    );
    let told =
        format!("killed at the container's memory limit ({limit} bytes) while loading /big.wasm");
    assert!(
        out.code == Some(1) && out.stderr.contains(&told),
        "{engine}: {out:?}"
    );
    assert_clean(ctd, "big-limited");
    let next = run_fixture(ctd, "after-big", "hello", &[]);
    assert_eq!(next.stdout_str(), "hello from wasm\n", "{engine}: {next:?}");
}

/// A module that prints "many" with `count` more of `item` (`(func)`, or a global).
fn many(count: usize, item: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\08\00\00\00\05\00\00\00many\n")
  (func (export "_start")
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 100))))
  {items})"#,
        items = item.repeat(count)
    );
    wat::parse_str(&text).expect("the module of many items")
}

/// A million functions, and a million globals, one past what wasmparser takes, with the
/// time to get ready lowered to 5 s for the container: Wasmtime and Wasmer refuse the
/// module at create (the validator's limit, named), WAMR runs it, and WasmEdge, whose AOT
/// compiler would take minutes over a million functions, is stopped at the bound with the
/// error saying so. The next container runs.
fn a_million_functions_or_globals(ctd: &Containerd) {
    let engine = engine(ctd).name;
    let bound = format!("{}=5s", wasmlet_oci::spec::PREPARE_TIMEOUT_ANNOTATION);
    for (what, item) in [
        ("functions", "(func)"),
        ("globals", "(global i32 (i32.const 7))"),
    ] {
        let id = format!("many-{what}");
        let dir = rootfs(&[("/many.wasm", many(1_000_001, item))]);
        let out = run_rootfs(
            ctd,
            &id,
            dir.path(),
            &["--annotation", &bound],
            &["/many.wasm"],
        );
        let limit = format!("{what} count exceeds limit of 1000000");
        let stopped = "was not ready within 5s (loading /many.wasm), and was stopped";
        match engine {
            "wasmtime" | "wasmer" => assert!(
                out.code == Some(1) && out.stderr.contains(&limit),
                "{engine}: {out:?}"
            ),
            "wamr" => assert_eq!(out.stdout_str(), "many\n", "{engine}: {out:?}"),
            // Its loader takes a million globals; the functions go to its compiler.
            _ => assert!(
                out.stdout_str() == "many\n"
                    || (out.code == Some(1) && out.stderr.contains(stopped)),
                "{engine} ({what}): {out:?}"
            ),
        }
        assert_clean(ctd, &id);
    }
    let next = run_fixture(ctd, "after-many", "hello", &[]);
    assert_eq!(next.stdout_str(), "hello from wasm\n", "{engine}: {next:?}");
}
