//! wasmlet: a containerd shim v2 that runs WebAssembly (WASI) workloads.
//!
//! containerd starts the shim binary for a task; the daemon serves the Task API over ttrpc
//! ([`service`] -> [`task`]), and each workload runs in a process of its own ([`workload`])
//! started by [`launcher`] (through [`spawn`]) from the same binary, isolated as a Linux container
//! ([`isolation`], [`cgroups`]), with an [`engine`] behind a small trait.
//!
//! `unsafe` is denied crate-wide; [`sys`] and the engine files (for loading compiled
//! artifacts from the cache) are the only exceptions, each block with a `SAFETY:` comment.
#![deny(unsafe_code)]

pub mod cache;
pub mod cgroups;
pub mod cli;
#[allow(unsafe_code)]
pub mod engine;
pub mod error;
pub mod events;
pub mod http_server;
pub mod instance;
pub mod isolation;
pub mod launcher;
pub mod layers;
pub mod mount;
pub mod service;
pub mod shim;
pub mod spawn;
pub mod state;
pub mod stdio;
#[allow(unsafe_code)]
pub mod sys;
pub mod task;
pub mod workload;

pub use error::{Error, Result};
