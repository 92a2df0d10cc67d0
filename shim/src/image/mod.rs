//! Where modules come from and where their compiled form is kept: the wasm layers of an
//! image read from containerd's content store ([`layers`]), and the compile cache
//! ([`cache`]) that every engine loads its artifacts through.

pub mod cache;
pub mod layers;
