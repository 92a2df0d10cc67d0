//! The ttrpc adapter: each Task RPC forwards to one plain function of [`TaskService`] and
//! converts its error through the one table in [`crate::error`]. Nothing else lives here.

use std::sync::Arc;

use containerd_shim::api::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest,
    CreateTaskResponse, DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest,
    PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest,
    StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::ttrpc;
use containerd_shim::{Task, TtrpcContext};

use crate::task::events::RemoteSink;
use crate::task::TaskService;
use crate::workload::launcher::ProcessLauncher;

type Service = TaskService<ProcessLauncher, RemoteSink>;
type Reply<T> = ttrpc::Result<T>;

/// The object registered with the ttrpc server.
pub struct TaskAdapter {
    svc: Arc<Service>,
}

impl TaskAdapter {
    pub fn new(svc: Arc<Service>) -> Self {
        TaskAdapter { svc }
    }
}

fn reply<T>(method: &str, id: &str, r: crate::error::Result<T>) -> Reply<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => {
            log::debug!("{method} {id}: {e}");
            Err(e.into())
        }
    }
}

fn empty(r: crate::error::Result<()>) -> crate::error::Result<Empty> {
    r.map(|()| Empty::default())
}

impl Task for TaskAdapter {
    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> Reply<CreateTaskResponse> {
        let id = req.id.clone();
        reply("Create", &id, self.svc.create(req))
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> Reply<StartResponse> {
        let id = req.id.clone();
        reply("Start", &id, self.svc.start(req))
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Kill", &id, empty(self.svc.kill(req)))
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> Reply<DeleteResponse> {
        let id = req.id.clone();
        reply("Delete", &id, self.svc.delete(req))
    }

    fn state(&self, _: &TtrpcContext, req: StateRequest) -> Reply<StateResponse> {
        let id = req.id.clone();
        reply("State", &id, self.svc.state(req))
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> Reply<WaitResponse> {
        let id = req.id.clone();
        reply("Wait", &id, self.svc.wait(req))
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> Reply<PidsResponse> {
        let id = req.id.clone();
        reply("Pids", &id, self.svc.pids(req))
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("CloseIO", &id, empty(self.svc.close_io(req)))
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> Reply<ConnectResponse> {
        let id = req.id.clone();
        reply("Connect", &id, self.svc.connect(req))
    }

    fn shutdown(&self, _: &TtrpcContext, req: ShutdownRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Shutdown", &id, empty(self.svc.shutdown(req)))
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Pause", &id, empty(self.svc.pause(req)))
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Resume", &id, empty(self.svc.resume(req)))
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Update", &id, empty(self.svc.update(req)))
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> Reply<StatsResponse> {
        let id = req.id.clone();
        reply("Stats", &id, self.svc.stats(req))
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("Exec", &id, empty(self.svc.exec(req)))
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> Reply<Empty> {
        let id = req.id.clone();
        reply("ResizePty", &id, empty(self.svc.resize_pty(req)))
    }

    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> Reply<Empty> {
        reply("Checkpoint", &req.id, self.svc.unimplemented("Checkpoint"))
    }
}
