//! HTTP applications served by the shim inside their container: the engine-agnostic
//! server ([`server`]) in front of an engine's per-request handler.

pub mod log;
pub mod server;
