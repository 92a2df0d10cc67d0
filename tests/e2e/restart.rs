//! containerd restarts (an upgrade, `systemctl restart containerd`) while tasks run: nothing
//! is lost. Each test has a containerd of its own, stopped with SIGTERM and started again on
//! the same config and state; the shims and their workloads go on meanwhile.

use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};
use wasmlet_tests::leaks;

use crate::lifecycle::{remove, start_detached, task_status, wait_stopped};
use crate::support::{assert_clean, ns, private_containerd, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "restart::exit_while_containerd_is_down_is_reported",
        exit_while_down,
    ),
    (
        "restart::running_task_survives_and_is_still_driven",
        running_task_survives,
    ),
    (
        "restart::shim_killed_while_containerd_is_down_is_cleaned_up",
        shim_killed_while_down,
    ),
];

/// A containerd of this version for the test alone, logging forwarded events (trace level
/// on 2.x, debug on 1.6: "event forwarded ... topic=...").
fn own(like: &Containerd) -> Containerd {
    private_containerd(like, |opts| opts.log_level = "trace".into())
}

/// Whether containerd's log since `from` shows `topic` forwarded by a shim.
fn forwarded_since(ctd: &Containerd, from: usize, topic: &str) -> bool {
    let log = ctd.log();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("event forwarded") && l.contains(&format!("topic={topic}")))
}

/// Whether `pid` has ended (a zombie whose parent has not reaped it yet counts).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn exit_while_down(like: &Containerd) {
    let ctd = own(like);
    let (_dir, pid) = start_detached(&ctd, "down-exit", "sleepexit");
    ctd.stop_daemon();
    // The module ends (exit 7) while nobody is there to hear it.
    assert!(
        eventually(Duration::from_secs(15), || gone(pid)),
        "the workload did not exit"
    );
    let mark = ctd.log().len();
    ctd.start_daemon().expect("containerd starts again");
    // The task is still there, stopped, with its pid and exit code; its exit event reaches
    // the new containerd.
    wait_stopped(&ctd, "down-exit");
    assert_eq!(task_status(&ctd, "down-exit").map(|(_, p)| p), Some(pid));
    assert!(
        eventually(Duration::from_secs(15), || forwarded_since(
            &ctd,
            mark,
            "/tasks/exit"
        )),
        "/tasks/exit never reached the restarted containerd:\n{}",
        ctd.log().get(mark..).unwrap_or_default()
    );
    assert!(
        !ctd.log()[mark..].contains("cleaning leaked shim"),
        "containerd took the shim for a leaked one"
    );
    remove(&ctd, "down-exit", 7);
}

fn running_task_survives(like: &Containerd) {
    let ctd = own(like);
    let files: Vec<(String, Vec<u8>)> = ["sleep", "exit42"]
        .iter()
        .map(|n| (format!("/{n}.wasm"), wat(n)))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let dir = rootfs(&files);
    let d = dir.path().to_string_lossy().into_owned();
    let rt = crate::support::rt(&ctd);
    ctd.ctr(
        ns(&ctd),
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            "--rootfs",
            &d,
            "alive",
            "/sleep.wasm",
        ],
    )
    .ok("ctr run -d");
    let (_, pid) = task_status(&ctd, "alive").expect("listed");
    ctd.stop_daemon();
    ctd.start_daemon().expect("containerd starts again");
    assert_eq!(
        task_status(&ctd, "alive"),
        Some(("RUNNING".to_string(), pid)),
        "same task, same pid, still running"
    );
    // Still exec'd into, killed and deleted through the new containerd.
    let out = ctd.ctr_timeout(
        ns(&ctd),
        &[
            "task",
            "exec",
            "--exec-id",
            "after",
            "alive",
            "/exit42.wasm",
        ],
        Some(b""),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(42), "{out:?}");
    ctd.ctr(ns(&ctd), &["task", "kill", "-s", "SIGKILL", "alive"])
        .ok("ctr task kill");
    wait_stopped(&ctd, "alive");
    remove(&ctd, "alive", 137);
}

fn shim_killed_while_down(like: &Containerd) {
    let ctd = own(like);
    let (_dir, pid) = start_detached(&ctd, "orphan", "sleep");
    let shims = leaks::processes_with(&[
        "containerd-shim-",
        "-id orphan ",
        &ctd.address.to_string_lossy(),
    ]);
    assert_eq!(shims.len(), 1, "{shims:?}");
    ctd.stop_daemon();
    // The shim alone: its workload is left orphaned, for containerd's cleanup to find.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0].0 as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    ctd.start_daemon().expect("containerd starts again");
    // containerd finds the shim dead and runs its `delete`: the task goes, nothing stays.
    assert!(
        eventually(Duration::from_secs(20), || task_status(&ctd, "orphan")
            .is_none()),
        "the dead shim's task is still listed: {:?}",
        task_status(&ctd, "orphan")
    );
    assert!(
        eventually(Duration::from_secs(10), || gone(pid)),
        "the workload outlived its shim"
    );
    ctd.ctr(ns(&ctd), &["container", "rm", "orphan"])
        .ok("ctr container rm");
    assert_clean(&ctd, "orphan");
}
