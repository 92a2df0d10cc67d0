//! The HTTP listen address, request timeout, header timeout and executor, from the
//! container's environment and from annotations (both untrusted: a pod's author writes
//! them). Must give a value or an error naming the setting, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::{http, spec};

const SPEC: &str = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/app.wasm"],"cwd":"/"},"root":{"path":"rootfs"}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = spec::parse(SPEC, Path::new("config.json")).expect("the fixed spec");
    let env = vec![
        (http::LISTEN_ENV.to_string(), text.to_string()),
        (http::TIMEOUT_ENV.to_string(), text.to_string()),
        (http::HEADER_TIMEOUT_ENV.to_string(), text.to_string()),
        (http::EXECUTOR_ENV.to_string(), text.to_string()),
    ];
    if let Err(e) = http::listen_address(&spec, &env) {
        assert!(e.to_string().contains(http::LISTEN_ENV), "{e}");
    }
    if let Err(e) = http::request_timeout(&spec, &env) {
        assert!(e.to_string().contains(http::TIMEOUT_ENV), "{e}");
    }
    if let Err(e) = http::header_timeout(&spec, &env) {
        assert!(e.to_string().contains(http::HEADER_TIMEOUT_ENV), "{e}");
    }
    if let Err(e) = http::executor(&spec, &env) {
        assert!(e.to_string().contains(http::EXECUTOR_ENV), "{e}");
    }
});
