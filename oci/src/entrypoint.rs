//! Finding the module named by `process.args[0]` inside the rootfs.
//!
//! Rules, in order: an absolute path is taken in the rootfs; a path with a `/` is taken
//! relative to `process.cwd`; a bare name is looked up in the spec's `PATH`, then in the
//! cwd. An optional `#name` suffix selects the exported function to call (default `_start`).

use std::io::Read;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::rootfs::{guest_join, resolve};
use crate::wasm::{classify, WasmKind, HEADER_LEN};

/// The function a WASI command exports.
pub const DEFAULT_EXPORT: &str = "_start";
/// `PATH` used when the spec's environment has none (the one runc and Docker use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resolved entrypoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entrypoint {
    /// `process.args[0]` without the `#export` suffix: the guest's argv[0].
    pub arg0: String,
    /// Absolute path of the module as the guest sees it.
    pub guest_path: String,
    /// Path of the module on the host.
    pub host_path: PathBuf,
    /// The function to call.
    pub export: String,
    /// Core module or component.
    pub kind: WasmKind,
}

/// Split `name#export` into the name and the export (`None` without a suffix).
pub fn split_export(arg0: &str) -> Result<(&str, Option<&str>)> {
    match arg0.rsplit_once('#') {
        Some((_, "")) => Err(Error::EmptyExport {
            arg0: arg0.to_string(),
        }),
        Some((name, export)) if !name.is_empty() && !export.contains('/') => {
            Ok((name, Some(export)))
        }
        _ => Ok((arg0, None)),
    }
}

/// Resolve `arg0` in `rootfs` for a process whose cwd is `cwd` and whose `PATH` is
/// `path_env`, and classify it: a WebAssembly file, or a native executable or script.
pub fn find(
    rootfs: &std::path::Path,
    arg0: &str,
    cwd: &str,
    path_env: Option<&str>,
) -> Result<Entrypoint> {
    let (name, export) = split_export(arg0)?;
    let candidates: Vec<String> = if name.starts_with('/') {
        vec![name.to_string()]
    } else if name.contains('/') {
        vec![guest_join(cwd, name)]
    } else {
        path_env
            .unwrap_or(DEFAULT_PATH)
            .split(':')
            .filter(|dir| dir.starts_with('/'))
            .map(|dir| guest_join(dir, name))
            .chain(std::iter::once(guest_join(cwd, name)))
            .collect()
    };
    for guest in &candidates {
        let host = resolve(rootfs, guest)?;
        let Ok(meta) = std::fs::metadata(&host) else {
            continue;
        };
        if !meta.is_file() {
            if candidates.len() == 1 {
                return Err(Error::ModuleNotFile {
                    path: guest.clone(),
                });
            }
            continue;
        }
        let kind = classify(&read_header(&host)?, guest)?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        if kind == WasmKind::Native && mode & 0o111 == 0 {
            return Err(Error::NotExecutable {
                path: guest.clone(),
                mode: mode & 0o7777,
            });
        }
        return Ok(Entrypoint {
            arg0: name.to_string(),
            guest_path: guest.clone(),
            host_path: host,
            export: export.unwrap_or(DEFAULT_EXPORT).to_string(),
            kind,
        });
    }
    Err(Error::ModuleNotFound {
        name: name.to_string(),
        searched: candidates.join(", "),
    })
}

/// The first bytes of a file, enough for [`sniff`].
pub fn read_header(path: &std::path::Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    file.take(HEADER_LEN as u64)
        .read_to_end(&mut header)
        .map_err(Error::io(path))?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["bin", "app/sub", "usr/local/bin"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(r.join("hello.wasm"), MODULE).unwrap();
        std::fs::write(r.join("app/sub/rel.wasm"), MODULE).unwrap();
        std::fs::write(r.join("app/local.wasm"), MODULE).unwrap();
        std::fs::write(r.join("usr/local/bin/tool"), MODULE).unwrap();
        std::fs::write(r.join("bin/sh"), b"\x7fELF\x02\x01\x01\0rest").unwrap();
        std::fs::set_permissions(
            r.join("bin/sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        d
    }

    #[test]
    fn absolute_path_with_default_export() {
        let r = rootfs();
        let e = find(r.path(), "/hello.wasm", "/app", None).unwrap();
        assert_eq!(e.guest_path, "/hello.wasm");
        assert_eq!(e.host_path, r.path().join("hello.wasm"));
        assert_eq!(e.export, "_start");
        assert_eq!(e.kind, WasmKind::Module);
    }

    #[test]
    fn export_suffix_is_split_off() {
        let r = rootfs();
        let e = find(r.path(), "/hello.wasm#run", "/", None).unwrap();
        assert_eq!((e.arg0.as_str(), e.export.as_str()), ("/hello.wasm", "run"));
        assert!(matches!(
            split_export("/a.wasm#"),
            Err(Error::EmptyExport { .. })
        ));
    }

    #[test]
    fn relative_path_uses_cwd() {
        let r = rootfs();
        let e = find(r.path(), "sub/rel.wasm", "/app", None).unwrap();
        assert_eq!(e.guest_path, "/app/sub/rel.wasm");
    }

    #[test]
    fn bare_name_uses_path_then_cwd() {
        let r = rootfs();
        let e = find(r.path(), "tool", "/", None).unwrap();
        assert_eq!(e.guest_path, "/usr/local/bin/tool");
        let e = find(r.path(), "local.wasm", "/app", Some("/bin")).unwrap();
        assert_eq!(e.guest_path, "/app/local.wasm");
    }

    #[test]
    fn missing_module_lists_where_it_looked() {
        let r = rootfs();
        let err = find(r.path(), "nope.wasm", "/app", Some("/bin:/sbin")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::ModuleNotFound { .. }));
        assert!(
            msg.contains("/bin/nope.wasm") && msg.contains("/app/nope.wasm"),
            "{msg}"
        );
    }

    #[test]
    fn directory_is_refused_and_elf_is_native() {
        let r = rootfs();
        assert!(matches!(
            find(r.path(), "/app", "/", None),
            Err(Error::ModuleNotFile { .. })
        ));
        let native = find(r.path(), "sh", "/", None).unwrap();
        assert_eq!(native.kind, WasmKind::Native);
        assert_eq!(native.guest_path, "/bin/sh");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            r.path().join("bin/sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = find(r.path(), "sh", "/", None).unwrap_err().to_string();
        assert!(e.contains("without execute permission (mode 644)"), "{e}");
        std::fs::write(r.path().join("bin/text"), b"plain text").unwrap();
        assert!(matches!(
            find(r.path(), "/bin/text", "/", None),
            Err(Error::NotWasm { .. })
        ));
    }

    #[test]
    fn symlinked_module_cannot_escape() {
        let r = rootfs();
        std::os::unix::fs::symlink("/etc/hostname", r.path().join("escape.wasm")).unwrap();
        let err = find(r.path(), "/escape.wasm", "/", None).unwrap_err();
        assert!(matches!(err, Error::ModuleNotFound { .. }), "{err}");
    }
}
