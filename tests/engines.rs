//! Each shim binary links only its own engine: Wasmer's VM and Wasmtime both install
//! crash-signal handlers, and WasmEdge's library brings LLVM, so no shim may carry another
//! engine's runtime. Checked on the release-built shims with `nm` (binutils, which gcc
//! brings), by a symbol that only each engine's runtime has.

use std::path::PathBuf;
use std::process::Command;

/// (engine, a symbol of its runtime that no other engine has).
const MARKERS: [(&str, &str); 4] = [
    // Wasmtime's signal handlers (its exported libcalls may stay in every binary).
    ("wasmtime", "wasmtime::runtime::vm::sys::unix::signals"),
    ("wasmer", "wasmer_vm::trap::traphandlers"),
    ("wamr", "wasm_runtime_instantiate_ex"),
    ("wasmedge", "WasmEdge_ASTModuleListExports"),
];

fn shim_dir() -> PathBuf {
    std::env::var_os("WASMLET_SHIM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| wasmlet_tests::target_dir().join("release"))
}

#[test]
fn each_shim_links_only_its_own_engine() {
    let mut checked = Vec::new();
    for (engine, own) in MARKERS {
        let shim = shim_dir().join(format!("containerd-shim-{engine}-v1"));
        if !shim.exists() {
            eprintln!("{} not built: not checked", shim.display());
            continue;
        }
        let out = Command::new("nm")
            .arg("-C")
            .arg(&shim)
            .output()
            .expect("nm (binutils) runs");
        assert!(out.status.success(), "nm {}: {:?}", shim.display(), out);
        let symbols = String::from_utf8_lossy(&out.stdout);
        assert!(
            symbols.contains(own),
            "{} lacks its own engine ({own})",
            shim.display()
        );
        for (other, marker) in MARKERS.iter().filter(|(e, _)| *e != engine) {
            assert!(
                !symbols.contains(marker),
                "{} carries {other}'s runtime ({marker})",
                shim.display()
            );
        }
        checked.push(engine);
    }
    assert!(
        checked.contains(&"wasmtime"),
        "the Wasmtime shim must be built (cargo build --release -p wasmlet-shim): {}",
        shim_dir().display()
    );
    eprintln!("checked: {checked:?}");
}
