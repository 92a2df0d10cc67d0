//! How processes end: exits reported by the shim's reaper reach [`TaskService::on_exit`],
//! which records them through the state machine and publishes `/tasks/exit`; an exit that
//! comes before Create (or Exec) has registered its process is kept until claimed; Wait and
//! Delete block on the recorded exit.

use std::sync::MutexGuard;
use std::time::{Duration, SystemTime};

use containerd_shim::protos::events::task::{TaskExit, TaskOOM};

use super::instance::{Instance, Launcher};
use super::state::Op;
use super::{label, timestamp, ExitInfo, Proc, Registry, Task, TaskService, UNCLAIMED_TTL};
use crate::error::Result;
use crate::task::events::EventSink;

impl<L: Launcher, S: EventSink> TaskService<L, S> {
    /// The exit of `instance`'s process if it came before the instance was registered;
    /// otherwise its launch helper is noted, so that the helper's exit is not taken for it.
    pub(super) fn claim(reg: &mut Registry, instance: &dyn Instance) -> Option<ExitInfo> {
        if let Some(helper) = instance.helper_pid() {
            if reg.unclaimed.remove(&helper).is_none() {
                reg.helpers.insert(helper);
            }
        }
        reg.unclaimed.remove(&instance.pid())
    }

    pub(super) fn wait_exit<'a>(
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
                self.init_exited(id, task, exit);
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

    /// Task `id`'s init has exited: what is left of the container goes with it, then the
    /// exit is recorded and published. Its execs die with the container's PID namespace; a
    /// container without a PID namespace of its own (a pod's shared one, the host's) keeps
    /// the processes its init started, and they would hold its output open: containerd 2.x
    /// waits for that output to end before it deletes the task (a pod stuck terminating).
    /// As runc's shim does, everything left in its cgroup is killed.
    pub(super) fn init_exited(&self, id: &str, task: &mut Task, exit: ExitInfo) {
        for exec in task.execs.values().filter(|e| e.status.is_live()) {
            let _ = exec.instance.signal(libc::SIGKILL, false);
        }
        if task.init.instance.shares_pid_namespace() {
            if let Err(e) = task.init.instance.signal(libc::SIGKILL, true) {
                log::warn!("{id}: killing what its init left: {e}");
            }
        }
        self.record_exit(id, "", &mut task.init, exit);
    }

    /// Record the exit of task `id`'s init (`exec_id` empty) or exec, and publish it.
    pub(super) fn record_exit(&self, id: &str, exec_id: &str, proc: &mut Proc, exit: ExitInfo) {
        match proc.status.apply(Op::Exit, &label(id, exec_id)) {
            Ok(next) => proc.status = next,
            Err(e) => {
                log::warn!("{e}");
                return;
            }
        }
        proc.exit = Some(exit);
        // A terminal's output is drained and ended now, so that containerd sees its end.
        proc.instance.exited();
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

#[cfg(test)]
#[path = "exits_tests.rs"]
mod tests;
