//! Shared state and helpers of the e2e tests: the one private containerd, the runtime under
//! test, and the leak check every test ends with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmlet_tests::cmd::{eventually, Output};
use wasmlet_tests::containerd::{Containerd, Options};
use wasmlet_tests::leaks;

/// A test: gets the shared containerd, panics on failure.
pub type Test = fn(&Containerd);

/// Namespace the tests run in.
pub const NS: &str = "wasmlet-e2e";
/// Runtime under test.
pub const RUNTIME: &str = "io.containerd.wasmtime.v1";

static CONTAINERD: Mutex<Option<Arc<Containerd>>> = Mutex::new(None);

/// The shared containerd, started on first use.
pub fn containerd() -> Arc<Containerd> {
    let mut slot = CONTAINERD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.as_ref() {
        return c.clone();
    }
    let ctd = Arc::new(Containerd::start(&Options::from_env()).unwrap_or_else(|e| panic!("{e}")));
    *slot = Some(ctd.clone());
    ctd
}

/// Stop the shared containerd (after all tests) and clean what it left.
pub fn shutdown() {
    let taken = CONTAINERD.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(taken);
}

/// `ctr run --rm --runtime <RUNTIME> <flags> --rootfs <dir> <id> <args>` with a deadline.
pub fn run_rootfs(
    ctd: &Containerd,
    id: &str,
    dir: &std::path::Path,
    flags: &[&str],
    args: &[&str],
) -> Output {
    let dir = dir.to_string_lossy();
    let mut all = vec!["run", "--rm", "--runtime", RUNTIME];
    all.extend_from_slice(flags);
    all.extend_from_slice(&["--rootfs", &dir, id]);
    all.extend_from_slice(args);
    ctd.ctr_timeout(NS, &all, Some(b""), Duration::from_secs(60))
}

/// Assert that container `id` left nothing behind: no workload or shim process, no mount
/// or bundle directory, no shim socket.
pub fn assert_clean(ctd: &Containerd, id: &str) {
    let bundle = ctd.bundle_dir(NS, id);
    let socket = ctd.shim_socket(NS, id);
    let shim_arg = format!("-id {id} ");
    let clean = eventually(Duration::from_secs(10), || {
        leaks::workload_processes(id).is_empty()
            && leaks::processes_with(&[
                "containerd-shim-",
                &shim_arg,
                &ctd.address.to_string_lossy(),
            ])
            .is_empty()
            && leaks::mounts_under(&bundle).is_empty()
            && !bundle.exists()
            && !socket.exists()
    });
    assert!(
        clean,
        "container {id} left: workloads {:?}, shims {:?}, mounts {:?}, bundle exists {}, socket exists {}",
        leaks::workload_processes(id),
        leaks::processes_with(&["containerd-shim-", &shim_arg]),
        leaks::mounts_under(&bundle),
        bundle.exists(),
        socket.exists()
    );
}
