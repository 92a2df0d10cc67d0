//! Exec: another process in a task's container (`ctr task exec`, `kubectl exec`, CRI's
//! ExecSync behind exec probes). The instance starts it joined to the container; from then
//! on it is driven like the init, by Start, Kill, Wait, State, CloseIO and Delete with its
//! exec id (see [`super::TaskService::process`]).

use std::collections::hash_map::Entry;
use std::sync::Arc;

use containerd_shim::api::ExecProcessRequest;
use containerd_shim::protos::events::task::TaskExecAdded;
use oci_spec::runtime::Process;

use super::{label, Proc, TaskService};
use crate::error::{Error, Result};
use crate::task::events::EventSink;
use crate::task::instance::{ExecRequest, Instance, Launcher, StdioPaths};
use crate::task::state::{Op, Status};

/// The exec's process from containerd's request: the runtime spec's `process` as JSON.
pub fn parse_process(req: &ExecProcessRequest) -> Result<Process> {
    let value = req
        .spec
        .as_ref()
        .map(|a| a.value.as_slice())
        .unwrap_or_default();
    serde_json::from_slice(value).map_err(|e| Error::SpecInvalid {
        field: format!("process of exec {}", req.exec_id),
        message: e.to_string(),
    })
}

impl<L: Launcher, S: EventSink> TaskService<L, S> {
    /// Exec: create process `exec_id` in task `id`'s container, up to Start.
    pub fn exec(&self, req: ExecProcessRequest) -> Result<()> {
        if req.exec_id.is_empty() {
            return Err(Error::SpecInvalid {
                field: "exec_id".into(),
                message: "an exec needs an id".into(),
            });
        }
        let mut process = parse_process(&req)?;
        // The request decides, as for runc's shim.
        process.set_terminal(Some(req.terminal));
        let name = label(&req.id, &req.exec_id);
        let init = {
            let mut reg = self.lock();
            let task = Self::task(&mut reg, &req.id)?;
            task.init.status.apply(Op::Exec, &req.id)?;
            if task.execs.contains_key(&req.exec_id) {
                return Err(Error::ExecExists {
                    id: req.id,
                    exec_id: req.exec_id,
                });
            }
            Arc::clone(&task.init.instance)
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        // Outside the registry lock: preparing a module can take a while.
        let instance: Arc<dyn Instance> = init
            .exec(&ExecRequest {
                id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                process,
                stdio: stdio.clone(),
            })?
            .into();
        let abandon = |e: Error| {
            let _ = instance.signal(libc::SIGKILL, false);
            let _ = instance.cleanup();
            Err(e)
        };

        let mut reg = self.lock();
        let exit = Self::claim(&mut reg, instance.as_ref());
        let task = match Self::task(&mut reg, &req.id) {
            Ok(task) => task,
            Err(e) => return abandon(e),
        };
        // The container may have stopped meanwhile; its exit killed nothing of this one yet.
        if let Err(e) = task.init.status.apply(Op::Exec, &req.id) {
            return abandon(e.into());
        }
        let Entry::Vacant(slot) = task.execs.entry(req.exec_id.clone()) else {
            return abandon(Error::ExecExists {
                id: req.id,
                exec_id: req.exec_id,
            });
        };
        self.events.publish(Box::new(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        }));
        let exec = slot.insert(Proc {
            status: Status::Created,
            pid: instance.pid(),
            stdio,
            exit: None,
            instance,
        });
        if let Some(exit) = exit {
            self.record_exit(&req.id, &req.exec_id, exec, exit);
        }
        log::info!("{name}: created, pid {}", exec.pid);
        Ok(())
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
