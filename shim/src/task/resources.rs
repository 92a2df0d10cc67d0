//! The cgroup-backed part of the Task API: Pids, Pause and Resume (with their events),
//! Stats and Update. Each goes through the task's [`crate::task::instance::Instance`].

use containerd_shim::api::{
    PauseRequest, PidsRequest, PidsResponse, ResumeRequest, StatsRequest, StatsResponse,
    UpdateTaskRequest,
};
use containerd_shim::protos::events::task::{TaskPaused, TaskResumed};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::task::ProcessInfo;
use oci_spec::runtime::LinuxResources;

use super::TaskService;
use crate::error::{Error, Result};
use crate::task::events::{BoxedEvent, EventSink};
use crate::task::instance::Launcher;
use crate::task::state::{Op, Status};

impl<L: Launcher, S: EventSink> TaskService<L, S> {
    /// Pids: every process of the workload (its init once it has stopped).
    pub fn pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let mut reg = self.lock();
        let task = Self::task(&mut reg, &req.id)?;
        // A stopped task, until its Delete, is its init as State shows it: containerd 2.x
        // asks every shim for Pids when it starts again, and takes an empty answer from a
        // shim that is not a sandbox for a leaked shim, deleting the task and its exit code.
        let pids = if task.init.status.is_live() {
            task.init.instance.pids()?
        } else {
            vec![task.init.pid]
        };
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    /// Pause: freeze every process of a running workload.
    pub fn pause(&self, req: PauseRequest) -> Result<()> {
        let event = TaskPaused {
            container_id: req.id.clone(),
            ..Default::default()
        };
        self.freeze(&req.id, Op::Pause, Box::new(event))
    }

    /// Resume: thaw a paused workload.
    pub fn resume(&self, req: ResumeRequest) -> Result<()> {
        let event = TaskResumed {
            container_id: req.id.clone(),
            ..Default::default()
        };
        self.freeze(&req.id, Op::Resume, Box::new(event))
    }

    /// Apply `op` (Pause or Resume) to task `id` through the freezer, then publish `event`
    /// (under the registry lock, so events stay in lifecycle order).
    fn freeze(&self, id: &str, op: Op, event: BoxedEvent) -> Result<()> {
        let mut reg = self.lock();
        let task = Self::task(&mut reg, id)?;
        let next = task.init.status.apply(op, id)?;
        task.init.instance.freeze(op == Op::Pause)?;
        task.init.status = next;
        self.events.publish(event);
        Ok(())
    }

    /// Stats: the workload's cgroup metrics.
    pub fn stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let mut reg = self.lock();
        let task = Self::task(&mut reg, &req.id)?;
        if !task.init.status.is_live() {
            return Err(Error::ProcessFinished { id: req.id });
        }
        Ok(StatsResponse {
            stats: MessageField::some(task.init.instance.stats()?),
            ..Default::default()
        })
    }

    /// Update: apply new `linux.resources` (containerd sends the runtime-spec JSON).
    pub fn update(&self, req: UpdateTaskRequest) -> Result<()> {
        let mut reg = self.lock();
        let task = Self::task(&mut reg, &req.id)?;
        if !matches!(
            task.init.status,
            Status::Created | Status::Running | Status::Paused
        ) {
            return Err(Error::ProcessFinished { id: req.id });
        }
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or_default();
        let resources: LinuxResources =
            serde_json::from_slice(value).map_err(|e| Error::SpecInvalid {
                field: "resources of Update".into(),
                message: e.to_string(),
            })?;
        task.init.instance.update(&resources)
    }
}
