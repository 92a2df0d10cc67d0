//! `containerd-shim-wasmtime-v1`: runtime `io.containerd.wasmtime.v1`, engine Wasmtime.

fn main() {
    wasmlet_shim::shim::cli::main::<wasmlet_shim::engine::wasmtime::Wasmtime>(
        "io.containerd.wasmtime.v1",
    );
}
