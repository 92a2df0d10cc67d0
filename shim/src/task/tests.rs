//! Task RPCs driven with a stub workload and an in-memory event sink: no root, no containerd.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, CreateTaskRequest, DeleteRequest, KillRequest, PauseRequest,
    PidsRequest, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest, StateRequest,
    StateResponse, StatsRequest, Status as ApiStatus, UpdateTaskRequest,
};
use containerd_shim::protos::events::task::{TaskDelete, TaskExit};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::Code;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use oci_spec::runtime::LinuxResources;

use super::instance::LaunchRequest;
use super::*;
use crate::error::Error;
use crate::task::events::MemorySink;

/// Records what the service asked of its workloads.
#[derive(Default)]
pub(super) struct Journal {
    pub(super) calls: Mutex<Vec<String>>,
    next_exec: AtomicU32,
}

impl Journal {
    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

struct StubInstance {
    pid: u32,
    journal: Arc<Journal>,
    oom: bool,
    shares_pid_namespace: bool,
}

impl Instance for StubInstance {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn start(&self) -> Result<()> {
        self.journal
            .calls
            .lock()
            .unwrap()
            .push(format!("start {}", self.pid));
        Ok(())
    }
    fn signal(&self, signal: i32, all: bool) -> Result<()> {
        let msg = format!("signal {} {signal} all={all}", self.pid);
        self.journal.calls.lock().unwrap().push(msg);
        Ok(())
    }
    fn close_stdin(&self) {
        self.journal
            .calls
            .lock()
            .unwrap()
            .push(format!("close_stdin {}", self.pid));
    }
    fn resize_pty(&self, cols: u32, rows: u32) -> Result<()> {
        let msg = format!("resize {} {cols}x{rows}", self.pid);
        self.journal.calls.lock().unwrap().push(msg);
        Ok(())
    }
    fn out_of_memory(&self) -> bool {
        self.oom
    }
    fn helper_pid(&self) -> Option<u32> {
        Some(self.pid + 500)
    }
    fn shares_pid_namespace(&self) -> bool {
        self.shares_pid_namespace
    }
    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![self.pid, self.pid + 1])
    }
    fn freeze(&self, frozen: bool) -> Result<()> {
        let msg = format!("freeze {} {frozen}", self.pid);
        self.journal.calls.lock().unwrap().push(msg);
        Ok(())
    }
    fn stats(&self) -> Result<Any> {
        Ok(Any {
            type_url: "io.containerd.cgroups.v1.Metrics".into(),
            ..Default::default()
        })
    }
    fn update(&self, resources: &LinuxResources) -> Result<()> {
        let limit = resources.memory().as_ref().and_then(|m| m.limit());
        let msg = format!("update {} memory={limit:?}", self.pid);
        self.journal.calls.lock().unwrap().push(msg);
        Ok(())
    }
    fn exec(&self, req: &crate::task::instance::ExecRequest) -> Result<Box<dyn Instance>> {
        let pid = 2000 + self.journal.next_exec.fetch_add(1, Ordering::SeqCst);
        let args = req.process.args().clone().unwrap_or_default().join(" ");
        let tty = match req.process.terminal() {
            Some(true) => " (tty)",
            _ => "",
        };
        let msg = format!("exec {} {} as {pid}: {args}{tty}", self.pid, req.exec_id);
        self.journal.calls.lock().unwrap().push(msg);
        Ok(Box::new(StubInstance {
            pid,
            journal: self.journal.clone(),
            oom: false,
            shares_pid_namespace: false,
        }))
    }
    fn cleanup(&self) -> Result<()> {
        self.journal
            .calls
            .lock()
            .unwrap()
            .push(format!("cleanup {}", self.pid));
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct StubLauncher {
    next_pid: AtomicU32,
    fail: Mutex<Option<String>>,
    pub(super) oom: AtomicBool,
    pub(super) shares_pid_namespace: AtomicBool,
    pub(super) journal: Arc<Journal>,
}

impl Launcher for Arc<StubLauncher> {
    fn launch(&self, _req: &LaunchRequest) -> Result<Box<dyn Instance>> {
        if let Some(message) = self.fail.lock().unwrap().clone() {
            return Err(Error::ModuleInvalid {
                module: "/bad.wasm".into(),
                message,
            });
        }
        let pid = 1000 + self.next_pid.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(StubInstance {
            pid,
            journal: self.journal.clone(),
            oom: self.oom.load(Ordering::SeqCst),
            shares_pid_namespace: self.shares_pid_namespace.load(Ordering::SeqCst),
        }))
    }
}

pub(super) type Service = TaskService<Arc<StubLauncher>, MemorySink>;

pub(super) struct Fixture {
    pub(super) svc: Arc<Service>,
    pub(super) launcher: Arc<StubLauncher>,
    pub(super) sink: MemorySink,
    shut_down: Arc<AtomicBool>,
}

pub(super) fn fixture() -> Fixture {
    let launcher = Arc::new(StubLauncher::default());
    let sink = MemorySink::default();
    let shut_down = Arc::new(AtomicBool::new(false));
    let flag = shut_down.clone();
    let svc = TaskService::new(launcher.clone(), sink.clone(), "default", move || {
        flag.store(true, Ordering::SeqCst)
    });
    Fixture {
        svc: Arc::new(svc),
        launcher,
        sink,
        shut_down,
    }
}

pub(super) fn create(svc: &Service, id: &str) -> Result<u32> {
    svc.create(CreateTaskRequest {
        id: id.into(),
        bundle: format!("/run/bundles/{id}"),
        stdout: "/fifo/out".into(),
        ..Default::default()
    })
    .map(|r| r.pid)
}

pub(super) fn as_message(e: &crate::task::events::BoxedEvent) -> &dyn MessageDyn {
    &**e
}

pub(super) fn start_req(id: &str) -> StartRequest {
    StartRequest {
        id: id.into(),
        ..Default::default()
    }
}

pub(super) fn delete_req(id: &str) -> DeleteRequest {
    DeleteRequest {
        id: id.into(),
        ..Default::default()
    }
}

pub(super) fn state(svc: &Service, id: &str) -> StateResponse {
    svc.state(StateRequest {
        id: id.into(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn full_lifecycle_publishes_events_in_order() {
    let f = fixture();
    let pid = create(&f.svc, "a").unwrap();
    assert_eq!(
        state(&f.svc, "a").status.enum_value(),
        Ok(ApiStatus::CREATED)
    );
    assert_eq!(f.svc.start(start_req("a")).unwrap().pid, pid);
    assert_eq!(
        state(&f.svc, "a").status.enum_value(),
        Ok(ApiStatus::RUNNING)
    );
    f.svc.on_exit(pid, 3);
    let st = state(&f.svc, "a");
    assert_eq!(
        (st.status.enum_value(), st.exit_status),
        (Ok(ApiStatus::STOPPED), 3)
    );
    let del = f.svc.delete(delete_req("a")).unwrap();
    assert_eq!((del.pid, del.exit_status), (pid, 3));
    assert_eq!(
        f.sink.topics(),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    let events = f.sink.events.lock().unwrap();
    let exit = as_message(&events[2]).downcast_ref::<TaskExit>().unwrap();
    assert_eq!(
        (exit.pid, exit.exit_status, exit.container_id.as_str()),
        (pid, 3, "a")
    );
    let delete = as_message(&events[3]).downcast_ref::<TaskDelete>().unwrap();
    assert_eq!(delete.exit_status, 3);
    let calls = f.launcher.journal.calls.lock().unwrap().clone();
    assert_eq!(calls, [format!("start {pid}"), format!("cleanup {pid}")]);
}

#[test]
fn illegal_transitions_are_failed_precondition_naming_states() {
    let f = fixture();
    create(&f.svc, "x").unwrap();
    f.svc.start(start_req("x")).unwrap();
    let err = f.svc.start(start_req("x")).unwrap_err();
    assert_eq!(err.code(), Code::FAILED_PRECONDITION);
    assert_eq!(err.to_string(), "cannot start task \"x\": it is running");
    let err = f.svc.delete(delete_req("x")).unwrap_err();
    assert_eq!(err.to_string(), "cannot delete task \"x\": it is running");
}

#[test]
fn kill_signals_live_tasks_and_refuses_finished_ones() {
    let f = fixture();
    let pid = create(&f.svc, "k").unwrap();
    f.svc.start(start_req("k")).unwrap();
    let kill = |signal, all| {
        f.svc.kill(KillRequest {
            id: "k".into(),
            signal,
            all,
            ..Default::default()
        })
    };
    kill(15, false).unwrap();
    kill(9, true).unwrap();
    assert_eq!(kill(0, false).unwrap_err().code(), Code::INVALID_ARGUMENT);
    f.svc.on_exit(pid, 143);
    let err = kill(15, false).unwrap_err();
    assert_eq!(err.code(), Code::NOT_FOUND);
    let calls = f.launcher.journal.calls.lock().unwrap().clone();
    assert!(calls.contains(&format!("signal {pid} 15 all=false")));
    assert!(calls.contains(&format!("signal {pid} 9 all=true")));
}

#[test]
fn delete_of_created_task_kills_and_waits() {
    let f = fixture();
    let pid = create(&f.svc, "c").unwrap();
    let svc = f.svc.clone();
    let deleter = std::thread::spawn(move || svc.delete(delete_req("c")));
    // The stub does not exit by itself: deliver the SIGKILL's exit once it was sent.
    for _ in 0..200 {
        if f.launcher
            .journal
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("signal"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f.svc.on_exit(pid, 137);
    let resp = deleter.join().unwrap().unwrap();
    assert_eq!(resp.exit_status, 137);
    assert_eq!(
        f.svc
            .state(StateRequest {
                id: "c".into(),
                ..Default::default()
            })
            .unwrap_err()
            .code(),
        Code::NOT_FOUND
    );
}

#[test]
fn unknown_ids_and_duplicates() {
    let f = fixture();
    assert_eq!(
        f.svc.start(start_req("nope")).unwrap_err().code(),
        Code::NOT_FOUND
    );
    create(&f.svc, "e").unwrap();
    let err = f
        .svc
        .start(StartRequest {
            id: "e".into(),
            exec_id: "x1".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), Code::NOT_FOUND);
    assert_eq!(
        create(&f.svc, "e").unwrap_err().code(),
        Code::ALREADY_EXISTS
    );
}

#[test]
fn terminals_are_reported_and_resized() {
    let f = fixture();
    let pid = f
        .svc
        .create(CreateTaskRequest {
            id: "t".into(),
            terminal: true,
            stdin: "/fifo/in".into(),
            stdout: "/fifo/out".into(),
            ..Default::default()
        })
        .unwrap()
        .pid;
    assert!(state(&f.svc, "t").terminal);
    f.svc
        .resize_pty(ResizePtyRequest {
            id: "t".into(),
            width: 80,
            height: 24,
            ..Default::default()
        })
        .unwrap();
    assert!(f
        .launcher
        .journal
        .calls()
        .contains(&format!("resize {pid} 80x24")));
    let err = f
        .svc
        .resize_pty(ResizePtyRequest {
            id: "none".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), Code::NOT_FOUND);
}

#[test]
fn launch_errors_reach_the_caller_and_register_nothing() {
    let f = fixture();
    *f.launcher.fail.lock().unwrap() = Some("unknown export `nope`".into());
    let err = create(&f.svc, "bad").unwrap_err();
    assert_eq!(err.code(), Code::INVALID_ARGUMENT);
    assert!(err.to_string().contains("unknown export `nope`"), "{err}");
    assert!(f.sink.topics().is_empty());
    f.svc.shutdown(ShutdownRequest::default()).unwrap();
    assert!(f.shut_down.load(Ordering::SeqCst));
}

#[test]
fn shutdown_waits_for_the_last_task() {
    let f = fixture();
    let pid = create(&f.svc, "s").unwrap();
    f.svc.shutdown(ShutdownRequest::default()).unwrap();
    assert!(
        !f.shut_down.load(Ordering::SeqCst),
        "shut down with a task left"
    );
    f.svc.on_exit(pid, 0);
    f.svc.delete(delete_req("s")).unwrap();
    f.svc.shutdown(ShutdownRequest::default()).unwrap();
    assert!(f.shut_down.load(Ordering::SeqCst));
}

#[test]
fn pids_close_io_connect_and_unimplemented() {
    let f = fixture();
    let pid = create(&f.svc, "p").unwrap();
    let pids = f
        .svc
        .pids(PidsRequest {
            id: "p".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        pids.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [pid, pid + 1]
    );
    f.svc
        .close_io(CloseIORequest {
            id: "p".into(),
            stdin: true,
            ..Default::default()
        })
        .unwrap();
    assert!(f
        .launcher
        .journal
        .calls
        .lock()
        .unwrap()
        .contains(&format!("close_stdin {pid}")));
    let c = f
        .svc
        .connect(ConnectRequest {
            id: "p".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((c.task_pid, c.shim_pid), (pid, std::process::id()));
    let err = f.svc.unimplemented::<()>("Checkpoint").unwrap_err();
    assert_eq!(err.code(), Code::UNIMPLEMENTED);
    assert_eq!(
        err.to_string(),
        "Checkpoint is not implemented by wasmlet yet"
    );
}

#[test]
fn pause_and_resume_freeze_and_publish_in_order() {
    let f = fixture();
    let pid = create(&f.svc, "z").unwrap();
    let pause = || {
        f.svc.pause(PauseRequest {
            id: "z".into(),
            ..Default::default()
        })
    };
    let resume = || {
        f.svc.resume(ResumeRequest {
            id: "z".into(),
            ..Default::default()
        })
    };
    let err = pause().unwrap_err();
    assert_eq!(err.code(), Code::FAILED_PRECONDITION);
    assert_eq!(err.to_string(), "cannot pause task \"z\": it is created");
    f.svc.start(start_req("z")).unwrap();
    pause().unwrap();
    assert_eq!(state(&f.svc, "z").status, ApiStatus::PAUSED.into());
    resume().unwrap();
    assert_eq!(resume().unwrap_err().code(), Code::FAILED_PRECONDITION);
    assert_eq!(
        f.sink.topics(),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/paused",
            "/tasks/resumed"
        ]
    );
    let calls = f.launcher.journal.calls.lock().unwrap().clone();
    assert!(calls.contains(&format!("freeze {pid} true")));
    assert!(calls.contains(&format!("freeze {pid} false")));
}

#[test]
fn sigkill_to_a_paused_task_thaws_it() {
    let f = fixture();
    let pid = create(&f.svc, "k").unwrap();
    f.svc.start(start_req("k")).unwrap();
    f.svc
        .pause(PauseRequest {
            id: "k".into(),
            ..Default::default()
        })
        .unwrap();
    f.svc
        .kill(KillRequest {
            id: "k".into(),
            signal: 9,
            all: true,
            ..Default::default()
        })
        .unwrap();
    let calls = f.launcher.journal.calls.lock().unwrap().clone();
    let kill = calls
        .iter()
        .position(|c| c == &format!("signal {pid} 9 all=true"));
    let thaw = calls
        .iter()
        .position(|c| c == &format!("freeze {pid} false"));
    assert!(kill.is_some() && thaw > kill, "{calls:?}");
}

#[test]
fn stats_and_update_reach_the_instance() {
    let f = fixture();
    let pid = create(&f.svc, "s").unwrap();
    let stats = f
        .svc
        .stats(StatsRequest {
            id: "s".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(stats.stats.type_url, "io.containerd.cgroups.v1.Metrics");
    let update = |json: &str| {
        f.svc.update(UpdateTaskRequest {
            id: "s".into(),
            resources: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: json.as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    update(r#"{"memory":{"limit":33554432}}"#).unwrap();
    assert!(f
        .launcher
        .journal
        .calls
        .lock()
        .unwrap()
        .contains(&format!("update {pid} memory=Some(33554432)")));
    let err = update("not json").unwrap_err();
    assert_eq!(err.code(), Code::INVALID_ARGUMENT);
    assert!(err.to_string().contains("resources of Update"), "{err}");
}
