//! The task service: containerd's Task API as plain functions over a registry of tasks.
//!
//! Every RPC of the ttrpc adapter ([`adapter`]) calls one method of [`TaskService`]: the
//! lifecycle (`lifecycle`, with exits in `exits`), Exec (`exec`) and the cgroup-backed
//! calls (`resources`). Every status change goes through the state machine ([`state`]).
//! The service talks to workloads only through the [`instance`] seam, so a stub drives it in
//! tests; lifecycle events go to an [`events::EventSink`], published while the registry
//! lock is held, so they reach the sink in lifecycle order.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim::api::{ConnectRequest, ConnectResponse, ShutdownRequest};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;

use crate::error::{Error, Result};
use events::EventSink;
use instance::{Instance, Launcher, StdioPaths};
use state::Status;

pub mod adapter;
pub mod events;
mod exec;
mod exits;
pub mod instance;
mod lifecycle;
mod resources;
pub mod state;

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
}

#[cfg(test)]
mod tests;
