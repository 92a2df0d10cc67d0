//! The end-to-end harness: a private containerd (Debian's package) on its own root, state,
//! sockets and config, with the freshly built shims on its `PATH`, driven through `ctr`.
//! It never touches a system containerd. The e2e tests, `wasmlet-demo` and `wasmlet-bench`
//! all use it.
//!
//! - [`api`]: containerd's gRPC API, for what `ctr` 1.6 cannot do.
//! - [`cmd`]: running commands with a deadline.
//! - [`containerd`]: starting, driving and stopping the private containerd.
//! - [`cri`]: the CRI calls kubelet makes, for the pod tests.
//! - [`critest`]: cri-tools' CRI validation suite, run and read back.
//! - [`fixtures`]: the `.wat` fixtures, rootfs directories and images built from them.
//! - [`http`]: a small HTTP/1.1 client for the HTTP tests and bench.
//! - [`leaks`]: finding processes, mounts, sockets and state a container left behind.
//! - [`registry`]: a private OCI registry (Debian's `docker-registry`) for the pull tests.

pub mod api;
pub mod cmd;
pub mod containerd;
pub mod cri;
pub mod critest;
pub mod fixtures;
pub mod http;
pub mod leaks;
pub mod registry;

/// The workspace root (where `target/` is).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace if relative),
/// else `target/` of the workspace.
pub fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}
