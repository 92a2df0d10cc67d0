//! `containerd-shim-wasmedge-v1`: runtime `io.containerd.wasmedge.v1`, engine WasmEdge
//! (built with the `wasmedge` cargo feature).

fn main() {
    wasmlet_shim::shim::cli::main::<wasmlet_shim::engine::wasmedge::WasmEdge>(
        "io.containerd.wasmedge.v1",
    );
}
