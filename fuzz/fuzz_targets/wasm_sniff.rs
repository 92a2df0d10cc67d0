//! What the shim decides from a file's bytes before any engine sees them: native, core
//! module or component (the header), and whether a component is an HTTP handler (a parse
//! of its outer sections). Must answer or err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::wasm;

fuzz_target!(|data: &[u8]| {
    let header = &data[..data.len().min(wasm::HEADER_LEN)];
    let _ = wasm::classify(header, "/fuzz.wasm");
    if let Ok(wasm::WasmKind::Component) = wasm::sniff(header, "/fuzz.wasm") {
        let _ = wasm::exports_http_handler(data);
    }
});
