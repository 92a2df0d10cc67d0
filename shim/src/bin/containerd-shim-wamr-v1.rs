//! `containerd-shim-wamr-v1`: runtime `io.containerd.wamr.v1`, engine WAMR (fast interpreter) (built with
//! the `wamr` cargo feature).

fn main() {
    wasmlet_shim::shim::cli::main::<wasmlet_shim::engine::wamr::Wamr>("io.containerd.wamr.v1");
}
