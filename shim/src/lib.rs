//! wasmlet: a containerd shim v2 that runs WebAssembly (WASI) workloads.
//!
//! The folders follow what each part owns:
//! - [`shim`]: the binary's containerd-facing entry: its command line, `start`, `delete`,
//!   `-info`, and the daemon's wiring.
//! - [`task`]: the Task API as plain functions ([`task::TaskService`]) behind a thin ttrpc
//!   adapter, with its state machine and event sink.
//! - [`workload`]: the process of each container's init or exec, started from this very
//!   binary, with its standard streams and rootfs mount.
//! - [`isolation`] and [`cgroups`]: the Linux container around each workload.
//! - [`engine`]: the WebAssembly engines behind one trait.
//! - [`image`]: wasm layers from containerd's content store and the compile cache.
//! - [`http`]: HTTP applications served inside the container.
//!
//! `unsafe` is denied crate-wide; [`sys`] and the engine files (for loading compiled
//! artifacts from the cache) are the only exceptions, each block with a `SAFETY:` comment.
#![deny(unsafe_code)]

pub mod cgroups;
#[allow(unsafe_code)]
pub mod engine;
pub mod error;
pub mod http;
pub mod image;
pub mod isolation;
pub mod shim;
#[allow(unsafe_code)]
pub mod sys;
pub mod task;
pub mod workload;

pub use error::{Error, Result};
