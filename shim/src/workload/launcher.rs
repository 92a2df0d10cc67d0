//! The real [`Launcher`]: validates the bundle, mounts the rootfs, opens stdio and starts the
//! workload process ([`crate::workload`]), then waits for it to report the module ready.
//! Every failure path unwinds what was done: no process, mount or descriptor is left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::protocol::WorkloadRequest;
use super::rootfs_mount::{unmount, Mounted};
use super::spawn::{signal_pids, spawn, Control, Unwind};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::image::layers::{choose, ImageLayers};
use crate::task::instance::{ExecRequest, Instance, LaunchRequest, Launcher};

/// File in the bundle that lets the `delete` subcommand clean up after a dead shim.
pub const STATE_FILE: &str = "wasmlet-state.json";
/// File in the bundle the workload creates when it is stopped for exceeding its memory
/// limit.
pub const OOM_MARKER: &str = "wasmlet-oom";

/// What `delete` needs to find a workload again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadState {
    pub pid: u32,
    /// Start time from `/proc/<pid>/stat`, so a reused pid is never killed.
    pub start_time: u64,
    /// The rootfs the shim mounted, if it mounted one.
    pub mounted_rootfs: Option<PathBuf>,
    /// The container's cgroup.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
}

/// The start time (field 22 of `/proc/<pid>/stat`) of a live process.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Starts workload processes from this very binary.
pub struct ProcessLauncher {
    pub cache_root: PathBuf,
    pub cache_max_bytes: u64,
    /// containerd's gRPC address, for images whose modules are wasm layers.
    pub containerd_address: PathBuf,
}

impl Launcher for ProcessLauncher {
    fn launch(&self, req: &LaunchRequest) -> Result<Box<dyn Instance>> {
        let spec = wasmlet_oci::spec::load(&req.bundle)?;
        let rootfs = wasmlet_oci::spec::rootfs(&req.bundle, &spec)?;
        let cgroup_path = crate::cgroups::path_for(&spec, &req.namespace, &req.id)?;
        let mounted = Mounted::mount(&req.rootfs, &rootfs)?;
        let mut plan = match wasmlet_oci::wasi::plan(&spec, &rootfs) {
            Err(not_found @ wasmlet_oci::Error::ModuleNotFound { .. }) => {
                match self.layer_module(req, &spec) {
                    // A layer was chosen: what is wrong with it (not WebAssembly, say) is
                    // the whole story.
                    Ok(Some((path, name))) => {
                        wasmlet_oci::wasi::plan_with_module(&spec, &rootfs, &path, &name)?
                    }
                    Ok(None) => return Err(not_found.into()),
                    Err(e) => {
                        return Err(Error::Prepare {
                            message: format!(
                                "{not_found}; reading the image's wasm layers from containerd failed: {e}"
                            ),
                            invalid_input: false,
                        })
                    }
                }
            }
            other => other?,
        };
        // The workload opens its preopens inside the container, where each one is mounted
        // at its guest path.
        for p in &mut plan.preopens {
            p.host = PathBuf::from(&p.guest);
        }
        let cgroup = Arc::new(Cgroup::open(&cgroup_path)?);
        let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
        let shares_pid_namespace = !crate::isolation::namespaces::has_own_pid_namespace(&spec);
        // The request decides whether the process has a terminal, as for runc's shim.
        let mut spec = spec;
        if let Some(process) = spec.process_mut() {
            process.set_terminal(Some(req.stdio.terminal));
        }
        let request = WorkloadRequest {
            id: req.id.clone(),
            plan,
            spec,
            rootfs: rootfs.clone(),
            cache_root: self.cache_root.clone(),
            cache_max_bytes: self.cache_max_bytes,
            oom_marker: Some(req.bundle.join(OOM_MARKER)),
            join: None,
        };
        // Removes the cgroup again if anything below fails (spawn kills its processes).
        let mut unwind = Unwind {
            pids: Vec::new(),
            cgroup: Some(&cgroup),
        };
        let names = [req.id.as_ref(), req.bundle.as_os_str()];
        let control = spawn(&request, &names, &req.stdio, &cgroup, resources.as_ref())?;
        let pid = control.pid;
        unwind.pids = vec![control.helper, pid];

        let state_path = req.bundle.join(STATE_FILE);
        let state = WorkloadState {
            pid,
            start_time: proc_start_time(pid).unwrap_or_default(),
            mounted_rootfs: mounted.keep(),
            cgroup: Some(cgroup_path),
        };
        let write_state = serde_json::to_vec(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::File::create(&state_path)?.write_all(&bytes));
        if let Err(e) = write_state {
            if let Some(root) = &state.mounted_rootfs {
                let _ = unmount(root);
            }
            return Err(Error::io("writing", &state_path)(e));
        }
        unwind.pids.clear();
        unwind.cgroup = None;
        drop(unwind);
        Ok(Box::new(ProcessInstance {
            control,
            shares_pid_namespace,
            oom: Arc::default(),
            cgroup,
            state,
            state_path,
            cache_root: self.cache_root.clone(),
            cache_max_bytes: self.cache_max_bytes,
        }))
    }
}

impl ProcessLauncher {
    /// The module of a container whose image carries it as a wasm layer (the layer file and
    /// the name errors give it); `None` when the image is not such an image.
    fn layer_module(
        &self,
        req: &LaunchRequest,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<Option<(PathBuf, String)>> {
        let layers = ImageLayers {
            address: self.containerd_address.clone(),
            namespace: req.namespace.clone(),
            dir: self.cache_root.join("layers"),
        };
        let Some(modules) = layers.modules(&req.id)? else {
            return Ok(None);
        };
        let arg0 = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_default();
        let Some(module) = choose(&modules, &arg0) else {
            return Ok(None);
        };
        let name = format!(
            "layer {} ({})",
            module.title.as_deref().unwrap_or("untitled"),
            module.digest
        );
        log::info!("{}: running {name}", req.id);
        Ok(Some((module.path.clone(), name)))
    }
}

/// OOM kills already reported while the workload ran, and whether its exit was seen.
#[derive(Default)]
struct OomState {
    reported: u64,
    exited: bool,
}

/// A workload process created by [`ProcessLauncher`].
pub struct ProcessInstance {
    control: Control,
    shares_pid_namespace: bool,
    oom: Arc<Mutex<OomState>>,
    cgroup: Arc<Cgroup>,
    state: WorkloadState,
    state_path: PathBuf,
    /// For Exec's workload processes.
    cache_root: PathBuf,
    cache_max_bytes: u64,
}

impl Instance for ProcessInstance {
    fn pid(&self) -> u32 {
        self.control.pid
    }

    fn helper_pid(&self) -> Option<u32> {
        Some(self.control.helper)
    }

    fn shares_pid_namespace(&self) -> bool {
        self.shares_pid_namespace
    }

    fn start(&self) -> Result<()> {
        self.control.start()
    }

    fn signal(&self, signal: i32, all: bool) -> Result<()> {
        if !all {
            return signal_pids(vec![self.control.pid], signal);
        }
        // The cgroup is frozen while its processes are listed and signalled, as runc does:
        // a process that forks (a fork bomb) would otherwise add children after the listing
        // that the signal never reaches. A paused container stays paused.
        let thaw = !self.cgroup.frozen()
            && match self.cgroup.freeze(true) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("signalling every process unfrozen: {e}");
                    false
                }
            };
        let mut targets = vec![self.control.pid];
        targets.extend(self.cgroup.pids().unwrap_or_default());
        let sent = signal_pids(targets, signal);
        if thaw {
            if let Err(e) = self.cgroup.freeze(false) {
                log::warn!("thawing after the signal: {e}");
            }
        }
        sent
    }

    fn close_stdin(&self) {
        self.control.close_stdin()
    }

    fn resize_pty(&self, cols: u32, rows: u32) -> Result<()> {
        self.control.resize(cols, rows)
    }

    fn exited(&self) {
        self.control.exited()
    }

    fn exec(&self, req: &ExecRequest) -> Result<Box<dyn Instance>> {
        let bundle = self.state_path.parent().unwrap_or(Path::new("/"));
        let mut spec = wasmlet_oci::spec::load(bundle)?;
        spec.set_process(Some(req.process.clone()));
        // The container as its init sees it, the spec's mounts included.
        let root = PathBuf::from(format!("/proc/{}/root", self.control.pid));
        let mut plan = wasmlet_oci::wasi::plan(&spec, &root)?;
        for p in &mut plan.preopens {
            p.host = PathBuf::from(&p.guest);
        }
        let request = WorkloadRequest {
            id: format!("{} exec {}", req.id, req.exec_id),
            plan,
            spec,
            rootfs: root,
            cache_root: self.cache_root.clone(),
            cache_max_bytes: self.cache_max_bytes,
            oom_marker: None,
            join: Some(self.control.pid),
        };
        let names = [
            req.id.as_ref(),
            bundle.as_os_str(),
            "exec".as_ref(),
            req.exec_id.as_ref(),
        ];
        let control = spawn(&request, &names, &req.stdio, &self.cgroup, None)?;
        Ok(Box::new(ExecInstance { control }))
    }

    fn out_of_memory(&self) -> bool {
        let marked = std::fs::metadata(self.state_path.with_file_name(OOM_MARKER))
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let mut oom = self.oom.lock().unwrap_or_else(|p| p.into_inner());
        oom.exited = true;
        marked || self.cgroup.oom_kills() > oom.reported
    }

    fn watch_oom(&self, on_oom: Box<dyn Fn() + Send>) {
        let oom = self.oom.clone();
        let counter = self.cgroup.clone();
        let report = Box::new(move || {
            // Under the lock: either this report comes first, or the exit accounts for it.
            let mut state = oom.lock().unwrap_or_else(|p| p.into_inner());
            // The kill may not be counted yet when the kernel signals the OOM: count this
            // one either way, so that the exit does not report it again.
            if !state.exited {
                state.reported = counter.oom_kills().max(state.reported + 1);
                on_oom();
            }
        });
        if let Err(e) = self.cgroup.watch_oom(report) {
            log::warn!("not watching for OOM kills: {e}");
        }
    }

    fn pids(&self) -> Result<Vec<u32>> {
        self.cgroup.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.cgroup.freeze(frozen)
    }

    fn stats(&self) -> Result<Any> {
        self.cgroup.metrics()
    }

    fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.cgroup.apply(resources)
    }

    fn cleanup(&self) -> Result<()> {
        self.control.release();
        cleanup_state(&self.state, &self.state_path, Some(&self.cgroup))
    }
}

/// Undo what a workload's state file records: kill a survivor and everything in its
/// cgroup, remove the cgroup (`cgroup` when the caller has it open), unmount, remove the
/// file.
pub fn cleanup_state(
    state: &WorkloadState,
    state_path: &Path,
    cgroup: Option<&Cgroup>,
) -> Result<()> {
    if state.start_time != 0 && proc_start_time(state.pid) == Some(state.start_time) {
        let _ = kill(Pid::from_raw(state.pid as i32), Signal::SIGKILL);
    }
    match (cgroup, &state.cgroup) {
        (Some(cg), _) => cg.remove()?,
        (None, Some(path)) => Cgroup::open(path)?.remove()?,
        (None, None) => {}
    }
    if let Some(root) = &state.mounted_rootfs {
        unmount(root)?;
    }
    let _ = std::fs::remove_file(state_path.with_file_name(OOM_MARKER));
    match std::fs::remove_file(state_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("removing", state_path)(e))
        }
        _ => Ok(()),
    }
}

/// A process started in a running container by Exec. The container's cgroup, mounts and
/// state belong to its init ([`ProcessInstance`]); this one owns only its process.
struct ExecInstance {
    control: Control,
}

impl Instance for ExecInstance {
    fn pid(&self) -> u32 {
        self.control.pid
    }

    fn helper_pid(&self) -> Option<u32> {
        Some(self.control.helper)
    }

    fn start(&self) -> Result<()> {
        self.control.start()
    }

    /// Only the exec's own process: `all` (the whole container) is its init's to ask for.
    fn signal(&self, signal: i32, _all: bool) -> Result<()> {
        signal_pids(vec![self.control.pid], signal)
    }

    fn close_stdin(&self) {
        self.control.close_stdin()
    }

    fn resize_pty(&self, cols: u32, rows: u32) -> Result<()> {
        self.control.resize(cols, rows)
    }

    fn exited(&self) {
        self.control.exited()
    }

    fn out_of_memory(&self) -> bool {
        false
    }

    fn cleanup(&self) -> Result<()> {
        self.control.release();
        Ok(())
    }
}
