//! Recognising WebAssembly binaries from their first bytes: core modules, components,
//! and the files people most often put where a module should be (ELF binaries, scripts).

use crate::error::{Error, Result};

/// The WebAssembly binary magic, `\0asm`.
pub const MAGIC: [u8; 4] = *b"\0asm";
/// Header bytes needed by [`sniff`].
pub const HEADER_LEN: usize = 8;

/// What kind of binary an entrypoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WasmKind {
    /// A core module (WASI preview 1 and plain modules).
    Module,
    /// A component (WASI preview 2, `wasi:cli/run`).
    Component,
    /// A native ELF executable or a `#!` script: run natively in the container's isolation
    /// (the pod's pause container, sidecars). Only [`classify`] returns it.
    Native,
}

/// Classify an entrypoint: WebAssembly as [`sniff`] sees it, or [`WasmKind::Native`] for an
/// ELF executable or a `#!` script.
pub fn classify(header: &[u8], path: &str) -> Result<WasmKind> {
    if header.starts_with(b"\x7fELF") || header.starts_with(b"#!") {
        return Ok(WasmKind::Native);
    }
    sniff(header, path)
}

/// Classify a binary from its first [`HEADER_LEN`] bytes (fewer if the file is shorter).
/// `path` only names the file in errors.
pub fn sniff(header: &[u8], path: &str) -> Result<WasmKind> {
    if header.len() < HEADER_LEN || header[..4] != MAGIC {
        return Err(Error::NotWasm {
            path: path.to_string(),
            detail: describe_non_wasm(header),
        });
    }
    // Core modules: version 1, layer 0. Components: version 0x0d (pre-1.0 encoding), layer 1.
    let version = u16::from_le_bytes([header[4], header[5]]);
    let layer = u16::from_le_bytes([header[6], header[7]]);
    match (layer, version) {
        (0, 1) => Ok(WasmKind::Module),
        (1, _) => Ok(WasmKind::Component),
        _ => Err(Error::UnsupportedWasmVersion {
            path: path.to_string(),
            version: u32::from_le_bytes([header[4], header[5], header[6], header[7]]),
        }),
    }
}

/// The interface a `wasi:http/proxy` component exports (any `0.2.x` version).
pub const HTTP_HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2.";

/// Whether the component `bytes` exports `wasi:http/incoming-handler@0.2.x`: such a
/// component is served over HTTP, one instance per request, instead of run once. Only the
/// outermost component's exports count; a malformed binary is "no" (the engine reports it).
pub fn exports_http_handler(bytes: &[u8]) -> bool {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentExportSection(exports)) if depth == 0 => {
                for export in exports.into_iter().flatten() {
                    if export.name.name.starts_with(HTTP_HANDLER_EXPORT) {
                        return true;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The WASIX import module (`wasix_32v1`, `wasix_64v1`) a core module imports from, if any:
/// only Wasmer runs WASIX. Reads up to the import section (the code is not parsed).
pub fn wasix_import(bytes: &[u8]) -> Option<String> {
    use wasmparser::{Parser, Payload};
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ImportSection(imports)) => {
                return imports
                    .into_imports()
                    .flatten()
                    .find(|i| i.module.starts_with("wasix_"))
                    .map(|i| i.module.to_string());
            }
            Ok(Payload::Version { .. } | Payload::TypeSection(_) | Payload::CustomSection(_)) => {}
            _ => return None,
        }
    }
    None
}

fn describe_non_wasm(header: &[u8]) -> String {
    if header.is_empty() {
        "the file is empty".into()
    } else if header.starts_with(b"\x7fELF") {
        "it is an ELF executable (native binaries are not WebAssembly)".into()
    } else if header.starts_with(b"#!") {
        "it is a script (starts with #!)".into()
    } else if header.starts_with(b"(module") || header.starts_with(b"(component") {
        "it is WebAssembly text (.wat); compile it to binary first".into()
    } else {
        format!(
            "missing the \\0asm magic (starts with {:02x?})",
            &header[..header.len().min(4)]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_handler_export_is_found_at_the_top_level_only() {
        let proxy = wat::parse_str(
            r#"(component
                (instance $h)
                (export "wasi:http/incoming-handler@0.2.6" (instance $h)))"#,
        )
        .unwrap();
        assert!(exports_http_handler(&proxy));
        let command = wat::parse_str(
            r#"(component
                (instance $r)
                (export "wasi:cli/run@0.2.6" (instance $r)))"#,
        )
        .unwrap();
        assert!(!exports_http_handler(&command));
        let nested = wat::parse_str(
            r#"(component
                (component $inner
                  (instance $h)
                  (export "wasi:http/incoming-handler@0.2.6" (instance $h))))"#,
        )
        .unwrap();
        assert!(!exports_http_handler(&nested));
        let core = wat::parse_str("(module)").unwrap();
        assert!(!exports_http_handler(&core));
    }

    #[test]
    fn wasix_modules_are_recognised_by_their_imports() {
        let wasix = wat::parse_str(
            r#"(module
                (type (func (param i32)))
                (import "wasi_snapshot_preview1" "proc_exit" (func (type 0)))
                (import "wasix_32v1" "thread_exit" (func (type 0))))"#,
        )
        .unwrap();
        assert_eq!(wasix_import(&wasix).as_deref(), Some("wasix_32v1"));
        let wasi = wat::parse_str(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#,
        )
        .unwrap();
        assert_eq!(wasix_import(&wasi), None);
        assert_eq!(wasix_import(&wat::parse_str("(module)").unwrap()), None);
        assert_eq!(wasix_import(b"\0asm garbage"), None);
        assert!(!exports_http_handler(b"\0asm garbage"));
    }

    #[test]
    fn classify_tells_native_from_wasm() {
        assert_eq!(
            classify(b"\x7fELF\x02\x01\x01\0", "/bin/sh").unwrap(),
            WasmKind::Native
        );
        assert_eq!(
            classify(b"#!/bin/sh\n", "/run.sh").unwrap(),
            WasmKind::Native
        );
        assert_eq!(
            classify(b"\0asm\x01\0\0\0", "/m.wasm").unwrap(),
            WasmKind::Module
        );
        assert!(matches!(
            classify(b"hello", "/x"),
            Err(Error::NotWasm { .. })
        ));
        // sniff itself still refuses native files: image layers must be WebAssembly.
        assert!(sniff(b"\x7fELF\x02\x01\x01\0", "/bin/sh").is_err());
    }

    #[test]
    fn core_module_and_component() {
        assert_eq!(sniff(b"\0asm\x01\0\0\0", "m").unwrap(), WasmKind::Module);
        assert_eq!(
            sniff(b"\0asm\x0d\0\x01\0", "c").unwrap(),
            WasmKind::Component
        );
    }

    #[test]
    fn non_wasm_files_are_described() {
        let elf = sniff(b"\x7fELF\x02\x01\x01\0", "/bin/sh")
            .unwrap_err()
            .to_string();
        assert!(elf.contains("ELF") && elf.contains("/bin/sh"), "{elf}");
        let script = sniff(b"#!/bin/sh\necho", "s").unwrap_err().to_string();
        assert!(script.contains("script"), "{script}");
        let empty = sniff(b"", "e").unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
        let text = sniff(b"hello world", "t").unwrap_err().to_string();
        assert!(text.contains("magic"), "{text}");
    }

    #[test]
    fn unknown_version_is_refused() {
        let err = sniff(b"\0asm\x02\0\0\0", "v").unwrap_err();
        assert!(matches!(err, Error::UnsupportedWasmVersion { .. }), "{err}");
    }
}
