//! The shim's one error type and the one table that maps it to ttrpc status codes.
//! What containerd (and so `ctr`) prints is this error's `Display`.

use std::path::PathBuf;

use containerd_shim::protos::ttrpc::{self, Code};

use crate::task::state::IllegalTransition;

/// Everything that can go wrong in the shim or its workload process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle, spec or module is unusable.
    #[error(transparent)]
    Oci(#[from] wasmlet_oci::Error),
    #[error("task {id:?} not found")]
    TaskNotFound { id: String },
    #[error("exec {exec_id:?} not found in task {id:?}")]
    ExecNotFound { id: String, exec_id: String },
    #[error("task {id:?} already has an exec {exec_id:?}")]
    ExecExists { id: String, exec_id: String },
    #[error("task {id:?} already exists")]
    TaskExists { id: String },
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error("process already finished")]
    ProcessFinished { id: String },
    #[error("{method} is not implemented by wasmlet yet")]
    Unimplemented { method: &'static str },
    #[error("unsupported stdio URI {uri:?}: only FIFOs, file:// and empty paths are supported")]
    UnsupportedStdio { uri: String },
    #[error("invalid signal {signal}")]
    InvalidSignal { signal: u32 },
    #[error("module {module:?} failed to load: {message}")]
    ModuleInvalid { module: String, message: String },
    #[error("engine error: {0}")]
    Engine(String),
    /// The workload process refused the module; `message` is its error, already worded.
    #[error("{message}")]
    Prepare {
        message: String,
        invalid_input: bool,
    },
    #[error("workload process for {id:?} exited before it was ready{detail}")]
    WorkloadDied { id: String, detail: String },
    #[error("workload for {id:?} was not ready within {limit:?} (loading {module}), and was stopped: the shim's WASMLET_PREPARE_TIMEOUT (default 2m) or the annotation wasmlet.dev/prepare-timeout bounds it")]
    PrepareTimeout {
        id: String,
        module: String,
        limit: std::time::Duration,
    },
    #[error("cannot mount rootfs {target}: {message}")]
    Mount { target: PathBuf, message: String },
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
    #[error("invalid {field} in the OCI spec: {message}")]
    SpecInvalid { field: String, message: String },
    #[error("the OCI spec asks for {what}, which wasmlet does not support")]
    SpecUnsupported { what: String },
    #[error("setting up the container: {step} {target}: {source}")]
    Isolation {
        step: String,
        target: String,
        source: nix::Error,
    },
    #[error("cgroup {path}: {message}", path = path.display())]
    Cgroup { path: PathBuf, message: String },
    #[error("setting capabilities: {message}")]
    Capabilities { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with what was being done and to which path.
    pub fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }

    /// A system call error with its context.
    pub fn sys(context: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let context = context.into();
        move |source| Error::Sys { context, source }
    }

    /// The ttrpc code containerd receives for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Oci(e) if e.is_invalid_input() => Code::INVALID_ARGUMENT,
            Error::Oci(_) => Code::INTERNAL,
            Error::TaskNotFound { .. } | Error::ExecNotFound { .. } => Code::NOT_FOUND,
            // containerd (CRI's StopContainer included) treats NotFound from Kill as "already
            // stopped", exactly as runc's shim answers.
            Error::ProcessFinished { .. } => Code::NOT_FOUND,
            Error::TaskExists { .. } | Error::ExecExists { .. } => Code::ALREADY_EXISTS,
            Error::IllegalTransition(_) => Code::FAILED_PRECONDITION,
            Error::PrepareTimeout { .. } => Code::DEADLINE_EXCEEDED,
            Error::Unimplemented { .. } => Code::UNIMPLEMENTED,
            Error::UnsupportedStdio { .. }
            | Error::InvalidSignal { .. }
            | Error::ModuleInvalid { .. }
            | Error::SpecInvalid { .. }
            | Error::SpecUnsupported { .. }
            | Error::Listen { .. } => Code::INVALID_ARGUMENT,
            Error::Prepare {
                invalid_input: true,
                ..
            } => Code::INVALID_ARGUMENT,
            Error::Prepare { .. }
            | Error::Engine(_)
            | Error::WorkloadDied { .. }
            | Error::Mount { .. }
            | Error::Io { .. }
            | Error::Sys { .. }
            | Error::Isolation { .. }
            | Error::Cgroup { .. }
            | Error::Capabilities { .. } => Code::INTERNAL,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::state::{Op, Status};

    fn code_of(e: Error) -> Code {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => s.code(),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn table_maps_causes_to_codes() {
        let id = || "c1".to_string();
        let cases = [
            (Error::TaskNotFound { id: id() }, Code::NOT_FOUND),
            (
                Error::ExecNotFound {
                    id: id(),
                    exec_id: "e".into(),
                },
                Code::NOT_FOUND,
            ),
            (Error::ProcessFinished { id: id() }, Code::NOT_FOUND),
            (Error::TaskExists { id: id() }, Code::ALREADY_EXISTS),
            (
                Error::ExecExists {
                    id: id(),
                    exec_id: "e".into(),
                },
                Code::ALREADY_EXISTS,
            ),
            (
                Error::IllegalTransition(IllegalTransition {
                    id: id(),
                    from: Status::Running,
                    op: Op::Delete,
                }),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::Unimplemented { method: "Pause" },
                Code::UNIMPLEMENTED,
            ),
            (
                Error::UnsupportedStdio {
                    uri: "binary:///x".into(),
                },
                Code::INVALID_ARGUMENT,
            ),
            (Error::InvalidSignal { signal: 99 }, Code::INVALID_ARGUMENT),
            (
                Error::ModuleInvalid {
                    module: "/a".into(),
                    message: "m".into(),
                },
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Oci(wasmlet_oci::Error::EmptyArgs),
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Oci(wasmlet_oci::Error::Io {
                    path: "/x".into(),
                    source: std::io::Error::other("disk"),
                }),
                Code::INTERNAL,
            ),
            (Error::Engine("boom".into()), Code::INTERNAL),
            (
                Error::Listen {
                    addr: "127.0.0.1:80".parse().unwrap(),
                    source: std::io::ErrorKind::AddrInUse.into(),
                },
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Prepare {
                    message: "bad".into(),
                    invalid_input: true,
                },
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Prepare {
                    message: "oom".into(),
                    invalid_input: false,
                },
                Code::INTERNAL,
            ),
            (
                Error::WorkloadDied {
                    id: id(),
                    detail: String::new(),
                },
                Code::INTERNAL,
            ),
            (
                Error::PrepareTimeout {
                    id: id(),
                    module: "/m.wasm".into(),
                    limit: std::time::Duration::from_secs(5),
                },
                Code::DEADLINE_EXCEEDED,
            ),
            (
                Error::Mount {
                    target: "/r".into(),
                    message: "m".into(),
                },
                Code::INTERNAL,
            ),
            (
                Error::Sys {
                    context: "kill".into(),
                    source: nix::Error::EPERM,
                },
                Code::INTERNAL,
            ),
            (
                Error::SpecInvalid {
                    field: "hostname".into(),
                    message: "m".into(),
                },
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::SpecUnsupported {
                    what: "user namespaces".into(),
                },
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::Isolation {
                    step: "mounting".into(),
                    target: "/proc".into(),
                    source: nix::Error::EPERM,
                },
                Code::INTERNAL,
            ),
            (
                Error::Cgroup {
                    path: "/default/c1".into(),
                    message: "m".into(),
                },
                Code::INTERNAL,
            ),
            (
                Error::Capabilities {
                    message: "m".into(),
                },
                Code::INTERNAL,
            ),
        ];
        for (err, want) in cases {
            let shown = err.to_string();
            assert_eq!(code_of(err), want, "{shown}");
        }
    }

    #[test]
    fn status_message_is_the_display_text() {
        let e = Error::IllegalTransition(IllegalTransition {
            id: "c1".into(),
            from: Status::Running,
            op: Op::Delete,
        });
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.message(), "cannot delete task \"c1\": it is running")
            }
            other => panic!("{other:?}"),
        }
    }
}
