//! The lifecycle RPCs of a task's processes: Create, Start, Kill, Delete, State, Wait,
//! CloseIO and ResizePty, each a plain function of the [`TaskService`], every status change through the
//! state machine ([`super::state`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use containerd_shim::api::{
    CloseIORequest, CreateTaskRequest, CreateTaskResponse, DeleteRequest, DeleteResponse,
    KillRequest, ResizePtyRequest, StartRequest, StartResponse, StateRequest, StateResponse,
    WaitRequest, WaitResponse,
};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecStarted, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::MessageField;

use super::instance::{Instance, LaunchRequest, Launcher, RootfsMount, StdioPaths};
use super::state::{Op, Status};
use super::{label, timestamp, Proc, Task, TaskService, KILL_WAIT};
use crate::error::{Error, Result};
use crate::task::events::EventSink;

impl<L: Launcher, S: EventSink> TaskService<L, S> {
    /// Create: launch the workload up to Start.
    pub fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
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
                terminal: req.terminal,
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
                terminal: req.terminal,
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
            self.init_exited(&req.id, &mut task, exit);
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
            terminal: proc.stdio.terminal,
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

    pub fn close_io(&self, req: CloseIORequest) -> Result<()> {
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        if req.stdin {
            proc.instance.close_stdin();
        }
        Ok(())
    }

    /// ResizePty: the new size of a process's terminal (nothing for one without).
    pub fn resize_pty(&self, req: ResizePtyRequest) -> Result<()> {
        let mut reg = self.lock();
        let proc = Self::process(&mut reg, &req.id, &req.exec_id)?;
        proc.instance.resize_pty(req.width, req.height)
    }
}
