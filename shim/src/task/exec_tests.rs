//! Exec driven with the stub workload of [`super::super::tests`]: the exec's own lifecycle
//! and events, what it refuses, and how it ends with its container.

use containerd_shim::api::{
    DeleteRequest, ExecProcessRequest, KillRequest, StartRequest, StateRequest,
    Status as ApiStatus, WaitRequest,
};
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted, TaskExit};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::ttrpc::Code;

use super::super::tests::{as_message, create, delete_req, fixture, start_req, state, Service};

fn exec_req(id: &str, exec_id: &str, args: &[&str]) -> ExecProcessRequest {
    let process = serde_json::json!({
        "args": args, "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]
    });
    ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        stdout: format!("/fifo/{exec_id}-out"),
        spec: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: serde_json::to_vec(&process).unwrap(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Start exec `exec_id` of task "a".
fn exec_start(exec_id: &str) -> StartRequest {
    StartRequest {
        id: "a".into(),
        exec_id: exec_id.into(),
        ..Default::default()
    }
}

fn exec_state(svc: &Service, id: &str, exec_id: &str) -> crate::error::Result<(ApiStatus, u32)> {
    svc.state(StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    })
    .map(|s| (s.status.enum_value().unwrap(), s.exit_status))
}

fn started(svc: &Service, id: &str) -> u32 {
    let pid = create(svc, id).unwrap();
    svc.start(start_req(id)).unwrap();
    pid
}

#[test]
fn an_exec_runs_its_own_lifecycle_beside_the_init() {
    let f = fixture();
    let init = started(&f.svc, "a");
    f.svc.exec(exec_req("a", "e1", &["ls", "-l"])).unwrap();
    assert_eq!(exec_state(&f.svc, "a", "e1").unwrap().0, ApiStatus::CREATED);
    let pid = f.svc.start(exec_start("e1")).unwrap().pid;
    assert_eq!(pid, 2000);
    assert_eq!(exec_state(&f.svc, "a", "e1").unwrap().0, ApiStatus::RUNNING);

    let svc = f.svc.clone();
    let waiter = std::thread::spawn(move || {
        svc.wait(WaitRequest {
            id: "a".into(),
            exec_id: "e1".into(),
            ..Default::default()
        })
        .map(|w| w.exit_status)
    });
    f.svc.on_exit(pid, 7);
    assert_eq!(waiter.join().unwrap().unwrap(), 7);
    assert_eq!(
        exec_state(&f.svc, "a", "e1").unwrap(),
        (ApiStatus::STOPPED, 7)
    );
    // The container goes on.
    assert_eq!(
        state(&f.svc, "a").status.enum_value(),
        Ok(ApiStatus::RUNNING)
    );
    let del = f
        .svc
        .delete(DeleteRequest {
            id: "a".into(),
            exec_id: "e1".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((del.pid, del.exit_status), (pid, 7));
    assert_eq!(
        exec_state(&f.svc, "a", "e1").unwrap_err().code(),
        Code::NOT_FOUND
    );

    // Only the init's Delete publishes /tasks/delete; an exec's exit names the exec.
    assert_eq!(
        f.sink.topics(),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit"
        ]
    );
    let events = f.sink.events.lock().unwrap();
    let added = as_message(&events[2])
        .downcast_ref::<TaskExecAdded>()
        .unwrap();
    assert_eq!(
        (added.container_id.as_str(), added.exec_id.as_str()),
        ("a", "e1")
    );
    let start = as_message(&events[3])
        .downcast_ref::<TaskExecStarted>()
        .unwrap();
    assert_eq!((start.exec_id.as_str(), start.pid), ("e1", pid));
    let exit = as_message(&events[4]).downcast_ref::<TaskExit>().unwrap();
    assert_eq!(
        (
            exit.container_id.as_str(),
            exit.id.as_str(),
            exit.pid,
            exit.exit_status
        ),
        ("a", "e1", pid, 7)
    );
    drop(events);
    assert_eq!(
        f.launcher.journal.calls(),
        [
            format!("start {init}"),
            format!("exec {init} e1 as {pid}: ls -l"),
            format!("start {pid}"),
            format!("cleanup {pid}"),
        ]
    );
}

#[test]
fn exec_refusals_name_their_cause() {
    let f = fixture();
    assert_eq!(
        f.svc
            .exec(exec_req("none", "e", &["ls"]))
            .unwrap_err()
            .code(),
        Code::NOT_FOUND
    );
    let init = started(&f.svc, "a");
    // A terminal is the request's to ask for, whatever the process spec says.
    let mut terminal = exec_req("a", "t", &["sh"]);
    terminal.terminal = true;
    f.svc.exec(terminal).unwrap();
    assert!(f
        .launcher
        .journal
        .calls()
        .iter()
        .any(|c| c.starts_with(&format!("exec {init} t as")) && c.ends_with("sh (tty)")));

    let mut garbage = exec_req("a", "g", &["sh"]);
    garbage.spec.as_mut().unwrap().value = b"{not json".to_vec();
    let err = f.svc.exec(garbage).unwrap_err();
    assert_eq!(err.code(), Code::INVALID_ARGUMENT);
    assert!(err.to_string().contains("process of exec g"), "{err}");

    let err = f.svc.exec(exec_req("a", "", &["sh"])).unwrap_err();
    assert_eq!(err.code(), Code::INVALID_ARGUMENT);

    f.svc.exec(exec_req("a", "e", &["ls"])).unwrap();
    let err = f.svc.exec(exec_req("a", "e", &["ls"])).unwrap_err();
    assert_eq!(err.code(), Code::ALREADY_EXISTS);
    assert!(err.to_string().contains("\"e\""), "{err}");

    f.svc
        .pause(containerd_shim::api::PauseRequest {
            id: "a".into(),
            ..Default::default()
        })
        .unwrap();
    let err = f.svc.exec(exec_req("a", "p", &["ls"])).unwrap_err();
    assert_eq!(err.code(), Code::FAILED_PRECONDITION);
    assert_eq!(err.to_string(), "cannot exec in task \"a\": it is paused");
    f.svc
        .resume(containerd_shim::api::ResumeRequest {
            id: "a".into(),
            ..Default::default()
        })
        .unwrap();

    f.svc.on_exit(init, 0);
    let err = f.svc.exec(exec_req("a", "late", &["ls"])).unwrap_err();
    assert_eq!(err.code(), Code::FAILED_PRECONDITION);
    assert_eq!(err.to_string(), "cannot exec in task \"a\": it is stopped");
    // Starting an exec twice names the exec.
    let err = f
        .svc
        .start(exec_start("e"))
        .and_then(|_| f.svc.start(exec_start("e")))
        .unwrap_err();
    assert_eq!(err.code(), Code::FAILED_PRECONDITION);
    assert!(err.to_string().contains("\"a (exec e)\""), "{err}");
}

#[test]
fn kill_reaches_only_the_exec_and_the_init_exit_ends_execs() {
    let f = fixture();
    let init = started(&f.svc, "a");
    f.svc.exec(exec_req("a", "e1", &["sleep", "9"])).unwrap();
    f.svc.start(exec_start("e1")).unwrap();
    f.svc
        .kill(KillRequest {
            id: "a".into(),
            exec_id: "e1".into(),
            signal: 15,
            ..Default::default()
        })
        .unwrap();
    assert!(f
        .launcher
        .journal
        .calls()
        .contains(&"signal 2000 15 all=false".to_string()));

    // A second exec never started; the init exits: both are killed, the live one's exit
    // is still reported for it, and the init's Delete cleans them up.
    f.svc.exec(exec_req("a", "e2", &["true"])).unwrap();
    f.svc.on_exit(init, 0);
    let calls = f.launcher.journal.calls();
    for pid in [2000, 2001] {
        assert!(
            calls.contains(&format!("signal {pid} 9 all=false")),
            "{calls:?}"
        );
    }
    f.svc.on_exit(2000, 137);
    assert_eq!(
        exec_state(&f.svc, "a", "e1").unwrap(),
        (ApiStatus::STOPPED, 137)
    );
    f.svc.on_exit(2001, 137);
    f.svc.delete(delete_req("a")).unwrap();
    let calls = f.launcher.journal.calls();
    for pid in [init, 2000, 2001] {
        assert!(calls.contains(&format!("cleanup {pid}")), "{calls:?}");
    }
    assert_eq!(f.sink.topics().last().unwrap(), "/tasks/delete");
}

#[test]
fn an_exec_that_exits_before_it_is_registered_is_not_lost() {
    let f = fixture();
    started(&f.svc, "a");
    f.svc.on_exit(2000, 3);
    f.svc.exec(exec_req("a", "quick", &["true"])).unwrap();
    assert_eq!(
        exec_state(&f.svc, "a", "quick").unwrap(),
        (ApiStatus::STOPPED, 3)
    );
}
