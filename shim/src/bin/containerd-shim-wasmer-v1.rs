//! `containerd-shim-wasmer-v1`: runtime `io.containerd.wasmer.v1`, engine Wasmer (singlepass) (built with
//! the `wasmer` cargo feature).

fn main() {
    wasmlet_shim::shim::cli::main::<wasmlet_shim::engine::wasmer::Wasmer>(
        "io.containerd.wasmer.v1",
    );
}
