//! The task service: containerd's Task API as plain functions over a registry of tasks.
//!
//! Every RPC of the ttrpc adapter ([`crate::service`]) calls one method here. Exits reach the
//! service through [`TaskService::on_exit`]; lifecycle events go to an [`EventSink`]. Events
//! are published while the registry lock is held, so they reach the sink in lifecycle order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, KillRequest, ShutdownRequest, StartRequest, StartResponse,
    StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::instance::{Instance, LaunchRequest, Launcher, RootfsMount, StdioPaths};
use crate::state::{Op, Status};

/// How long Delete of a created (never started) task waits for its killed process.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long an exit of an unknown pid is remembered (a workload may exit before Create
/// has registered it).
const UNCLAIMED_TTL: Duration = Duration::from_secs(60);

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: u32,
    pub at: SystemTime,
}

/// One process of a task: its init, or one started by Exec.
struct Proc {
    status: Status,
    pid: u32,
    stdio: StdioPaths,
    exit: Option<ExitInfo>,
    instance: Arc<dyn Instance>,
}

struct Task {
    bundle: String,
    init: Proc,
    /// Processes started by Exec, by exec id, until their Delete.
    execs: HashMap<String, Proc>,
}

#[derive(Default)]
struct Registry {
    tasks: HashMap<String, Task>,
    unclaimed: HashMap<u32, ExitInfo>,
    /// Launch helpers whose exit is still to come and must not be taken for a task's.
    helpers: std::collections::HashSet<u32>,
}

/// The task service of one shim process.
pub struct TaskService<L, S> {
    launcher: L,
    events: S,
    namespace: String,
    registry: Mutex<Registry>,
    exited: Condvar,
    on_shutdown: Box<dyn Fn() + Send + Sync>,
}

fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

/// How a process is named in errors: the task id, and the exec id for an exec.
fn label(id: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        id.to_string()
    } else {
        format!("{id} (exec {exec_id})")
    }
}

impl<L: Launcher, S: EventSink> TaskService<L, S> {
    /// A service that launches with `launcher`, publishes to `events`, and calls
    /// `on_shutdown` when containerd asks it to shut down with no task left.
    pub fn new(
        launcher: L,
        events: S,
        namespace: &str,
        on_shutdown: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        TaskService {
            launcher,
            events,
            namespace: namespace.to_string(),
            registry: Mutex::new(Registry::default()),
            exited: Condvar::new(),
            on_shutdown: Box::new(on_shutdown),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task<'a>(reg: &'a mut Registry, id: &str) -> Result<&'a mut Task> {
        reg.tasks
            .get_mut(id)
            .ok_or_else(|| Error::TaskNotFound { id: id.to_string() })
    }

    /// Task `id`'s init (`exec_id` empty) or one of its execs.
    fn process<'a>(reg: &'a mut Registry, id: &str, exec_id: &str) -> Result<&'a mut Proc> {
        let task = Self::task(reg, id)?;
        if exec_id.is_empty() {
            return Ok(&mut task.init);
        }
        task.execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::ExecNotFound {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
            })
    }

    /// The exit of `instance`'s process if it came before the instance was registered;
    /// otherwise its launch helper is noted, so that the helper's exit is not taken for it.
    fn claim(reg: &mut Registry, instance: &dyn Instance) -> Option<ExitInfo> {
        if let Some(helper) = instance.helper_pid() {
            if reg.unclaimed.remove(&helper).is_none() {
                reg.helpers.insert(helper);
            }
        }
        reg.unclaimed.remove(&instance.pid())
    }

    /// Create: launch the workload up to Start.
    pub fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if req.terminal {
            return Err(Error::TerminalUnsupported);
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented {
                method: "Create from a checkpoint",
            });
        }
        if self.lock().tasks.contains_key(&req.id) {
            return Err(Error::TaskExists { id: req.id });
        }
        let launch = LaunchRequest {
            id: req.id.clone(),
            namespace: self.namespace.clone(),
            bundle: PathBuf::from(&req.bundle),
            rootfs: req
                .rootfs
                .iter()
                .map(|m| RootfsMount {
                    typ: m.type_.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            stdio: StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
            },
        };
        let instance: Arc<dyn Instance> = self.launcher.launch(&launch)?.into();
        let pid = instance.pid();

        let mut reg = self.lock();
        if reg.tasks.contains_key(&req.id) {
            drop(reg);
            let _ = instance.signal(libc::SIGKILL, true);
            let _ = instance.cleanup();
            return Err(Error::TaskExists { id: req.id });
        }
        let exit = Self::claim(&mut reg, instance.as_ref());
        self.events.publish(Box::new(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: false,
                ..Default::default()
            }),
            pid,
            ..Default::default()
        }));
        let mut task = Task {
            bundle: req.bundle,
            init: Proc {
                status: Status::Created,
                pid,
                stdio: launch.stdio,
                exit: None,
                instance,
            },
            execs: HashMap::new(),
        };
        if let Some(exit) = exit {
            self.record_exit(&req.id, "", &mut task.init, exit);
        }
        let sink = self.events.clone();
        let id = req.id.clone();
        task.init.instance.watch_oom(Box::new(move || {
            sink.publish(Box::new(TaskOOM {
                container_id: id.clone(),
                ..Default::default()
            }))
        }));
        reg.tasks.insert(req.id, task);
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    /// Start: let a created workload (or exec) run.
    pub fn start(&self, req: StartRequest) -> Result<StartResponse> {
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        let next = proc
            .status
            .apply(Op::Start, &label(&req.id, &req.exec_id))?;
        proc.instance.start()?;
        proc.status = next;
        let pid = proc.pid;
        if req.exec_id.is_empty() {
            self.events.publish(Box::new(TaskStart {
                container_id: req.id.clone(),
                pid,
                ..Default::default()
            }));
        } else {
            self.events.publish(Box::new(TaskExecStarted {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                pid,
                ..Default::default()
            }));
        }
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    /// Kill: signal the workload.
    pub fn kill(&self, req: KillRequest) -> Result<()> {
        let signal = i32::try_from(req.signal)
            .ok()
            .filter(|s| (1..=64).contains(s))
            .ok_or(Error::InvalidSignal { signal: req.signal })?;
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        if !proc.status.is_live() {
            return Err(Error::ProcessFinished {
                id: label(&req.id, &req.exec_id),
            });
        }
        proc.instance.signal(signal, req.all)?;
        // A frozen workload cannot act on SIGKILL: thaw it so that it dies now.
        let init = &Self::task(&mut reg, &req.id)?.init;
        if req.exec_id.is_empty() && signal == libc::SIGKILL && init.status == Status::Paused {
            init.instance.freeze(false)?;
        }
        Ok(())
    }

    /// Delete: forget a task whose workload has exited (or was never started), or one of
    /// its execs.
    pub fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let name = label(&req.id, &req.exec_id);
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        proc.status.apply(Op::Delete, &name)?;
        if proc.status == Status::Created {
            proc.instance.signal(libc::SIGKILL, true)?;
            reg = self.wait_exit(reg, &req.id, &req.exec_id, Some(KILL_WAIT))?;
        }
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        let Some(exit) = proc.exit else {
            return Err(Error::WorkloadDied {
                id: name,
                detail: ": its exit was not observed after SIGKILL".into(),
            });
        };
        let pid = proc.pid;
        let task = Self::task(&mut reg, &req.id)?;
        if !req.exec_id.is_empty() {
            let exec = task.execs.remove(&req.exec_id).expect("looked up above");
            if let Err(e) = exec.instance.cleanup() {
                log::warn!("cleaning up {name}: {e}");
            }
        } else {
            let task = reg.tasks.remove(&req.id).expect("task looked up above");
            // Execs not deleted yet: their processes are gone with the container.
            for (exec_id, exec) in task.execs {
                if exec.status.is_live() {
                    let _ = exec.instance.signal(libc::SIGKILL, false);
                }
                if let Err(e) = exec.instance.cleanup() {
                    log::warn!("cleaning up {}: {e}", label(&req.id, &exec_id));
                }
            }
            if let Err(e) = task.init.instance.cleanup() {
                log::warn!("cleaning up task {}: {e}", req.id);
            }
            self.events.publish(Box::new(TaskDelete {
                container_id: req.id.clone(),
                pid,
                exit_status: exit.code,
                exited_at: timestamp(exit.at),
                ..Default::default()
            }));
        }
        Ok(DeleteResponse {
            pid,
            exit_status: exit.code,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    /// State: what containerd shows in `ctr task ls` (or of one exec).
    pub fn state(&self, req: StateRequest) -> Result<StateResponse> {
        let mut reg = self.lock();
        let bundle = Self::task(&mut reg, &req.id)?.bundle.clone();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        Ok(StateResponse {
            id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            bundle,
            pid: proc.pid,
            status: proc.status.to_api().into(),
            stdin: proc.stdio.stdin.clone(),
            stdout: proc.stdio.stdout.clone(),
            stderr: proc.stdio.stderr.clone(),
            terminal: false,
            exit_status: proc.exit.map(|e| e.code).unwrap_or_default(),
            exited_at: proc.exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            ..Default::default()
        })
    }

    /// Wait: block until the workload (or exec) exits.
    pub fn wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let mut reg = self.wait_exit(self.lock(), &req.id, &req.exec_id, None)?;
        let exit = Self::process(&mut reg, &req.id, &req.exec_id)?
            .exit
            .expect("wait_exit returns once the exit is known");
        Ok(WaitResponse {
            exit_status: exit.code,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    fn wait_exit<'a>(
        &'a self,
        mut reg: MutexGuard<'a, Registry>,
        id: &str,
        exec_id: &str,
        timeout: Option<Duration>,
    ) -> Result<MutexGuard<'a, Registry>> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if Self::process(&mut reg, id, exec_id)?.exit.is_some() {
                return Ok(reg);
            }
            reg = match deadline {
                None => self.exited.wait(reg).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(reg);
                    }
                    self.exited
                        .wait_timeout(reg, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// CloseIO: the client closed its end of stdin.
    pub fn close_io(&self, req: CloseIORequest) -> Result<()> {
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        if req.stdin {
            proc.instance.close_stdin();
        }
        Ok(())
    }

    /// Connect: the shim's and the task's pids.
    pub fn connect(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let mut reg = self.lock();
        let task_pid = Self::task(&mut reg, &req.id)
            .map(|t| t.init.pid)
            .unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: concat!("wasmlet ", env!("CARGO_PKG_VERSION")).to_string(),
            ..Default::default()
        })
    }

    /// Shutdown: exit the shim, but only once no task remains (a pod's shim serves several).
    pub fn shutdown(&self, _req: ShutdownRequest) -> Result<()> {
        if self.lock().tasks.is_empty() {
            (self.on_shutdown)();
        }
        Ok(())
    }

    /// Methods a later version implements.
    pub fn unimplemented<T>(&self, method: &'static str) -> Result<T> {
        Err(Error::Unimplemented { method })
    }

    /// A process of ours exited with `code` (already 128+n for a signal).
    pub fn on_exit(&self, pid: u32, code: i32) {
        let exit = ExitInfo {
            code: code as u32,
            at: SystemTime::now(),
        };
        let mut reg = self.lock();
        if reg.helpers.remove(&pid) {
            return;
        }
        let mut found = false;
        for (id, task) in reg.tasks.iter_mut() {
            if task.init.pid == pid && task.init.status.is_live() {
                self.record_exit(id, "", &mut task.init, exit);
                // Execs die with the container's PID namespace; when it shares one, runc's
                // shim kills them too.
                for exec in task.execs.values().filter(|e| e.status.is_live()) {
                    let _ = exec.instance.signal(libc::SIGKILL, false);
                }
                found = true;
                break;
            }
            let exec = task
                .execs
                .iter_mut()
                .find(|(_, e)| e.pid == pid && e.status.is_live());
            if let Some((exec_id, exec)) = exec {
                self.record_exit(id, exec_id, exec, exit);
                found = true;
                break;
            }
        }
        if !found {
            let now = SystemTime::now();
            reg.unclaimed
                .retain(|_, e| now.duration_since(e.at).unwrap_or_default() < UNCLAIMED_TTL);
            reg.unclaimed.insert(pid, exit);
        }
        self.exited.notify_all();
    }

    /// Record the exit of task `id`'s init (`exec_id` empty) or exec, and publish it.
    fn record_exit(&self, id: &str, exec_id: &str, proc: &mut Proc, exit: ExitInfo) {
        match proc.status.apply(Op::Exit, &label(id, exec_id)) {
            Ok(next) => proc.status = next,
            Err(e) => {
                log::warn!("{e}");
                return;
            }
        }
        proc.exit = Some(exit);
        if exec_id.is_empty() && proc.instance.out_of_memory() {
            self.events.publish(Box::new(TaskOOM {
                container_id: id.to_string(),
                ..Default::default()
            }));
        }
        self.events.publish(Box::new(TaskExit {
            container_id: id.to_string(),
            id: if exec_id.is_empty() { id } else { exec_id }.to_string(),
            pid: proc.pid,
            exit_status: exit.code,
            exited_at: timestamp(exit.at),
            ..Default::default()
        }));
    }
}

#[path = "task_exec.rs"]
mod exec;
#[path = "task_resources.rs"]
mod resources;

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
