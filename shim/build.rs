//! With the `wasmedge` feature, embed an rpath to the libwasmedge that wasmedge-sys links
//! against (found the way wasmedge-sys looks for it), so the installed
//! `containerd-shim-wasmedge-v1` finds the library without LD_LIBRARY_PATH.

use std::path::PathBuf;

fn main() {
    for var in ["WASMEDGE_DIR", "WASMEDGE_LIB_DIR", "DOCS_RS", "HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_WASMEDGE").is_none() || std::env::var_os("DOCS_RS").is_some()
    {
        return;
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("WASMEDGE_LIB_DIR") {
        candidates.push(dir.into());
    }
    if let Some(dir) = std::env::var_os("WASMEDGE_DIR") {
        let dir = PathBuf::from(dir);
        candidates.push(dir.join("lib64"));
        candidates.push(dir.join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".wasmedge/lib"));
    }
    candidates.push("/usr/local/lib".into());
    if let Some(dir) = candidates
        .iter()
        .find(|d| d.join("libwasmedge.so").exists())
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", dir.display());
    }
}
