//! How processes end, driven with the stub workload of [`super::super::tests`]: Wait,
//! exits before registration and of launch helpers, OOM, what an init's exit takes with it,
//! and what a stopped task still answers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use containerd_shim::api::{PidsRequest, Status as ApiStatus, WaitRequest};

use super::super::tests::{create, fixture, start_req, state};

#[test]
fn wait_blocks_until_exit() {
    let f = fixture();
    let pid = create(&f.svc, "w").unwrap();
    f.svc.start(start_req("w")).unwrap();
    let svc = f.svc.clone();
    let waiter = std::thread::spawn(move || {
        svc.wait(WaitRequest {
            id: "w".into(),
            ..Default::default()
        })
        .unwrap()
        .exit_status
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished(), "Wait returned before the exit");
    f.svc.on_exit(pid, 137);
    assert_eq!(waiter.join().unwrap(), 137);
}

#[test]
fn exit_before_registration_is_not_lost() {
    let f = fixture();
    // The first stub pid is 1000: its exit arrives while Create is still running.
    f.svc.on_exit(1000, 0);
    let pid = create(&f.svc, "fast").unwrap();
    assert_eq!(pid, 1000);
    let st = state(&f.svc, "fast");
    assert_eq!(st.status.enum_value(), Ok(ApiStatus::STOPPED));
}

#[test]
fn out_of_memory_exit_publishes_oom_before_exit() {
    let f = fixture();
    f.launcher.oom.store(true, Ordering::SeqCst);
    let pid = create(&f.svc, "oom").unwrap();
    f.svc.start(start_req("oom")).unwrap();
    f.svc.on_exit(pid, 137);
    assert_eq!(
        f.sink.topics(),
        ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit"]
    );
}

#[test]
fn the_launch_helpers_exit_is_not_the_tasks() {
    let f = fixture();
    let pid = create(&f.svc, "h").unwrap();
    f.svc.start(start_req("h")).unwrap();
    // The helper (pid + 500 in the stub) exits after Create: the task keeps running.
    f.svc.on_exit(pid + 500, 0);
    assert_eq!(state(&f.svc, "h").status, ApiStatus::RUNNING.into());
    f.svc.on_exit(pid, 3);
    assert_eq!(state(&f.svc, "h").exit_status, 3);
}

#[test]
fn init_exit_kills_what_it_left_only_in_a_shared_pid_namespace() {
    let f = fixture();
    let own = create(&f.svc, "own").unwrap();
    f.svc.start(start_req("own")).unwrap();
    f.svc.on_exit(own, 0);
    f.launcher
        .shares_pid_namespace
        .store(true, Ordering::SeqCst);
    let shared = create(&f.svc, "shared").unwrap();
    f.svc.start(start_req("shared")).unwrap();
    f.svc.on_exit(shared, 0);
    let calls = f.launcher.journal.calls();
    let kill_all = |pid: u32| format!("signal {pid} {} all=true", libc::SIGKILL);
    assert!(!calls.contains(&kill_all(own)), "{calls:?}");
    assert!(calls.contains(&kill_all(shared)), "{calls:?}");
    assert_eq!(state(&f.svc, "shared").exit_status, 0);
}

#[test]
fn a_stopped_task_lists_its_init_until_delete() {
    let f = fixture();
    let pid = create(&f.svc, "s").unwrap();
    f.svc.start(start_req("s")).unwrap();
    f.svc.on_exit(pid, 7);
    let pids = f
        .svc
        .pids(PidsRequest {
            id: "s".into(),
            ..Default::default()
        })
        .unwrap();
    // Not empty: containerd 2.x, reconnecting after a restart, takes an empty list for a
    // leaked shim and deletes the task with its exit code.
    assert_eq!(
        pids.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [pid]
    );
}
