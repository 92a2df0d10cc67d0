//! A bundle's `config.json`: parsing and validation, then everything the shim derives from
//! a valid spec without touching the filesystem (env, memory limit, HTTP settings,
//! annotations). Must return an error, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::{http, spec, wasi};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = spec::parse(text, Path::new("config.json")) else {
        return;
    };
    let _ = spec::root_readonly(&spec);
    let _ = spec::annotation(&spec, http::LISTEN_ANNOTATION);
    let _ = wasi::memory_limit(&spec);
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    if let Ok(env) = wasi::parse_env(&env) {
        let _ = http::listen_address(&spec, &env);
        let _ = http::request_timeout(&spec, &env);
    }
});
