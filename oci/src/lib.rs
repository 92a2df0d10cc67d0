//! Pure OCI logic for wasmlet.
//!
//! This crate knows nothing of containerd, ttrpc or root: it turns an OCI bundle
//! (`config.json` plus a rootfs directory) into a [`WasiPlan`], the exact, deny-by-default
//! description of what a WebAssembly workload may see (args, env, cwd, preopened directories),
//! and it writes OCI image layouts that `ctr image import` accepts.
//!
//! Modules:
//! - [`spec`]: load and validate `config.json`.
//! - [`rootfs`]: resolve guest paths inside a rootfs without ever leaving it.
//! - [`entrypoint`]: find the module named by `process.args[0]` (with an optional `#export`).
//! - [`wasm`]: recognise WebAssembly modules, components and the usual non-wasm files.
//! - [`wasi`]: compute the [`WasiPlan`] from a spec.
//! - [`http`]: how a `wasi:http/proxy` workload is served (listen address, timeout).
//! - [`image`]: build OCI image layout tarballs.
//! - `registry` (feature `registry`): push them to an OCI distribution registry.
//! - [`media`]: media types, manifests and indexes of the image forms wasmlet runs.

pub mod entrypoint;
pub mod error;
pub mod http;
pub mod image;
pub mod media;
#[cfg(feature = "registry")]
pub mod registry;
pub mod rootfs;
pub mod spec;
pub mod wagi;
pub mod wasi;
pub mod wasm;

pub use entrypoint::Entrypoint;
pub use error::{Error, Result};
pub use wasi::{Preopen, WasiPlan};
pub use wasm::WasmKind;
