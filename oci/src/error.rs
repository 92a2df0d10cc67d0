//! The crate's one error type: every variant is named by its cause and carries the
//! context (path, variable, mount) a user needs to fix the bundle.

use std::path::PathBuf;

/// Errors from reading a bundle, resolving its entrypoint or planning the WASI context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read OCI spec {path}: {source}")]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid OCI spec {path}: {reason}")]
    ParseSpec { path: PathBuf, reason: String },
    #[error("OCI spec has no `process` section")]
    MissingProcess,
    #[error("OCI spec has an empty `process.args`: nothing to run")]
    EmptyArgs,
    #[error("OCI spec has no `root` section")]
    MissingRoot,
    #[error("rootfs {path} is not a directory")]
    RootfsMissing { path: PathBuf },
    #[error("`process.cwd` must be an absolute path, got {cwd:?}")]
    CwdNotAbsolute { cwd: String },
    #[error("`process.cwd` {cwd:?} is not a directory in the rootfs")]
    CwdNotFound { cwd: String },
    #[error("invalid environment entry {entry:?}: expected KEY=VALUE")]
    InvalidEnv { entry: String },
    #[error("empty export name after '#' in entrypoint {arg0:?}")]
    EmptyExport { arg0: String },
    #[error("entrypoint {name:?} not found in the rootfs (searched {searched})")]
    ModuleNotFound { name: String, searched: String },
    #[error("entrypoint {path:?} is not a regular file")]
    ModuleNotFile { path: String },
    #[error("entrypoint {path:?} is not a WebAssembly file: {detail}")]
    NotWasm { path: String, detail: String },
    #[error(
        "entrypoint {path:?} is a native executable without execute permission (mode {mode:o})"
    )]
    NotExecutable { path: String, mode: u32 },
    #[error("entrypoint {path:?} has an unsupported WebAssembly version {version:#010x}")]
    UnsupportedWasmVersion { path: String, version: u32 },
    #[error("too many levels of symbolic links resolving {path:?} in the rootfs")]
    SymlinkLoop { path: String },
    #[error("mount source {source_path:?} for {destination:?} does not exist")]
    MountSourceMissing {
        destination: String,
        source_path: PathBuf,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid HTTP listen address {value:?} in {source_name}: expected ADDR:PORT, :PORT or PORT"
    )]
    InvalidListenAddress { source_name: String, value: String },
    #[error("invalid timeout {value:?} in {source_name}: expected a positive number with ms, s or m (seconds if none)")]
    InvalidTimeout { source_name: String, value: String },
    #[error("invalid HTTP executor {value:?} in {source_name}: expected \"wagi\" (or \"wasi-http\", the default)")]
    InvalidExecutor { source_name: String, value: String },
    #[error("malformed WAGI response: {reason}")]
    WagiResponse { reason: String },
    #[error("image: {0}")]
    Image(String),
    #[error("registry {reference}: {detail}")]
    Registry { reference: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// True when the error is the user's input (bundle, spec, module), not the host.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, Error::Io { .. })
    }
}
