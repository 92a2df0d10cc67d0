//! The containerd side of the binary: its command line ([`cli`]), `-info` ([`info`]),
//! `start` (spawn or reuse the shim daemon for a pod), `delete` (clean up after a shim that
//! died), and the daemon's task service wiring.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::api::DeleteResponse;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::synchronous::util::write_address;
use containerd_shim::{ExitSignal, Flags, StartOpts};

pub mod cli;
mod fifo_log;
pub mod info;

use crate::image::cache::ModuleCache;
use crate::task::adapter::TaskAdapter;
use crate::task::events::RemoteSink;
use crate::task::TaskService;
use crate::workload::launcher::{cleanup_state, WorkloadState, STATE_FILE};

/// Annotation CRI puts on every container of a pod: the pod's shim is shared.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// The containerd `Shim` implementation.
pub struct WasmletShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    bundle: PathBuf,
    socket: String,
    address: String,
}

fn shim_err(e: impl std::fmt::Display) -> containerd_shim::Error {
    containerd_shim::Error::Other(e.to_string())
}

/// The id that decides which shim process serves a container: the pod's sandbox id for CRI
/// containers, else the container's own id.
pub fn grouping_id(bundle: &Path, id: &str) -> String {
    wasmlet_oci::spec::load(bundle)
        .ok()
        .and_then(|spec| {
            wasmlet_oci::spec::annotation(&spec, SANDBOX_ID_ANNOTATION).map(str::to_string)
        })
        .unwrap_or_else(|| id.to_string())
}

impl containerd_shim::Shim for WasmletShim {
    type T = TaskAdapter;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut containerd_shim::Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        WasmletShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            bundle,
            socket: args.socket.clone(),
            address: args.address.clone(),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = grouping_id(&self.bundle, &opts.id);
        let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        // containerd-shim's `start` registers signal-hook handlers (SIGCHLD and SIGPIPE
        // among them) whose self-pipe it drops on return, read end first. When the child
        // exits at that moment (a pod's later containers: the pod's shim already serves the
        // socket), SIGCHLD writes to the closed pipe, which raises SIGPIPE, whose handler
        // writes to it again, forever: `start` spun at 100% CPU and containerd waited on it
        // (seen in CI). The child was spawned with the mask unchanged; from here on, block
        // both in this short-lived process so that neither is handled.
        crate::sys::block_signals(&[libc::SIGCHLD, libc::SIGPIPE]);
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // Every step is attempted even when an earlier one fails; the first error is returned.
        remove_stale_socket(&self.bundle);
        let mut first_error = None;
        let state_path = self.bundle.join(STATE_FILE);
        let mut response = DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: containerd_shim::protos::protobuf::MessageField::some(
                containerd_shim::util::timestamp()?,
            ),
            ..Default::default()
        };
        if let Ok(bytes) = std::fs::read(&state_path) {
            if let Ok(state) = serde_json::from_slice::<WorkloadState>(&bytes) {
                response.pid = state.pid;
                if let Err(e) = cleanup_state(&state, &state_path, None) {
                    log::error!("delete: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        // A rootfs the shim mounted but had not yet recorded (it died inside Create).
        let rootfs = self.bundle.join("rootfs");
        if crate::workload::rootfs_mount::is_mount_point(&rootfs) {
            if let Err(e) = crate::workload::rootfs_mount::unmount(&rootfs) {
                log::error!("delete: {e}");
                first_error.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(&state_path);
        match first_error {
            Some(e) => Err(shim_err(e)),
            None => Ok(response),
        }
    }

    fn wait(&mut self) {
        self.exit.wait();
        // containerd-shim removes the socket only if the bundle's `address` file still
        // exists, and containerd may already have removed the bundle: remove it here.
        let path = self.socket.trim_start_matches("unix://");
        if !path.is_empty() {
            let _ = std::fs::remove_file(path);
        }
        // Every task is deleted and its events are flushed: only the ttrpc server's
        // teardown remains, which joins its connection threads. Never let a stuck
        // connection keep the shim alive (once seen under load in CI).
        std::thread::spawn(|| {
            std::thread::sleep(SHUTDOWN_GRACE);
            log::warn!("ttrpc server teardown took over {SHUTDOWN_GRACE:?}; exiting");
            std::process::exit(0);
        });
    }

    fn create_task_service(&self, _publisher: RemotePublisher) -> TaskAdapter {
        let exit = self.exit.clone();
        // containerd-shim's publisher keeps the one connection it was made with; events must
        // outlive a containerd restart, so the sink connects (and reconnects) itself.
        let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let sink = RemoteSink::new(
            crate::task::events::Containerd::new(ttrpc_address),
            self.namespace.clone(),
            crate::task::events::Backoff::default(),
        );
        let flusher = sink.clone();
        let service = Arc::new(TaskService::new(
            crate::workload::launcher::ProcessLauncher {
                cache_root: ModuleCache::root_from_env(),
                cache_max_bytes: ModuleCache::max_bytes_from_env(),
                containerd_address: PathBuf::from(self.address.trim_start_matches("unix://")),
            },
            sink,
            &self.namespace,
            move || {
                // The last /tasks/delete must reach containerd before the process ends.
                flusher.flush();
                exit.signal();
            },
        ));
        match monitor_subscribe(Topic::All) {
            Ok(sub) => {
                let svc = service.clone();
                std::thread::Builder::new()
                    .name("exits".into())
                    .spawn(move || {
                        for ev in sub.rx.iter() {
                            if let Subject::Pid(pid) = ev.subject {
                                svc.on_exit(pid as u32, ev.exit_code);
                            }
                        }
                    })
                    .expect("spawning the exit thread");
            }
            Err(e) => log::error!("cannot watch workload exits: {e}"),
        }
        TaskAdapter::new(service)
    }
}

/// How long the ttrpc server's teardown may take once the shim is done.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Remove the shim socket named in the bundle's `address` file if no shim answers on it
/// (the shim was killed); a live pod shim keeps its socket.
fn remove_stale_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim().trim_start_matches("unix://");
    if path.is_empty() {
        return;
    }
    // A shim being killed may still hold its listener for a moment: ask a few times.
    for _ in 0..10 {
        if std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    log::info!("delete: {path} is served by a live shim; kept");
}
