//! The cgroup-backed Task API through the shim (root, as the whole suite): Pause/Resume of a
//! ticking module, Stats and Update, Kill --all, and OOM kills of native workloads reported
//! as `/tasks/oom`.

use std::path::Path;
use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::isolation::{busybox_rootfs, kill_and_remove, memory_limit_file, run_detached};
use crate::lifecycle::{remove, task_status, wait_stopped};
use crate::support::{assert_clean, ns, run_rootfs, Events, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "cgroups::pause_and_resume_stop_and_restart_ticking",
        pause_resume,
    ),
    ("cgroups::stats_and_update_use_the_cgroup", stats_and_update),
    ("cgroups::kill_all_reaches_every_process", kill_all),
    ("cgroups::native_oom_exits_137_with_oom_event", native_oom),
    (
        "cgroups::oom_kill_while_running_is_reported_once",
        oom_while_running,
    ),
];

fn ticks(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("tick")
        .count()
}

fn pause_resume(ctd: &Containerd) {
    let events = Events::start(ctd);
    let dir = rootfs(&[("/sleep.wasm", wat("sleep"))]);
    let log = dir.path().join("ticks.log");
    run_detached(ctd, "ticker", dir.path(), &log, &[], &["/sleep.wasm"]);
    assert!(
        eventually(Duration::from_secs(10), || ticks(&log) >= 1),
        "no tick"
    );
    ctd.ctr(ns(ctd), &["task", "pause", "ticker"])
        .ok("ctr task pause");
    assert_eq!(task_status(ctd, "ticker").unwrap().0, "PAUSED");
    let frozen = ticks(&log);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ticks(&log), frozen, "a paused module stopped ticking");
    ctd.ctr(ns(ctd), &["task", "resume", "ticker"])
        .ok("ctr task resume");
    assert!(
        eventually(Duration::from_secs(10), || ticks(&log) > frozen),
        "a resumed module ticks again"
    );
    let lines = events.wait_for("ticker", "/tasks/resumed");
    let pos = |t: &str| lines.iter().position(|l| l.contains(t));
    assert!(
        pos("/tasks/paused").is_some() && pos("/tasks/paused") < pos("/tasks/resumed"),
        "{lines:?}"
    );
    kill_and_remove(ctd, "ticker");
}

fn stats_and_update(ctd: &Containerd) {
    let dir = rootfs(&[("/sleep.wasm", wat("sleep"))]);
    let log = dir.path().join("out.log");
    run_detached(
        ctd,
        "stats",
        dir.path(),
        &log,
        &["--memory-limit", "67108864"],
        &["/sleep.wasm"],
    );
    let metrics = ctd
        .ctr(ns(ctd), &["task", "metrics", "stats"])
        .ok("ctr task metrics")
        .stdout_str();
    let usage = metrics
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next()?;
            (name == "memory.usage_in_bytes" || name == "memory.usage").then(|| cols.next())?
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no memory usage in:\n{metrics}"));
    assert!(usage > 0, "{metrics}");
    let file = memory_limit_file(&format!("{}/stats", ns(ctd)));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "67108864");
    wasmlet_tests::api::update_task(
        ctd,
        ns(ctd),
        "stats",
        &serde_json::json!({"memory": {"limit": 33554432}}),
    )
    .expect("Update through the API");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "33554432");
    kill_and_remove(ctd, "stats");
}

fn kill_all(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let log = dir.path().join("..").join("killall.log");
    run_detached(
        ctd,
        "killall",
        dir.path(),
        &log,
        &[],
        &[
            "/bin/sh",
            "-c",
            "sleep 300 & sleep 300 & sleep 301; echo never",
        ],
    );
    let mut pids = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let ps = ctd
                .ctr(ns(ctd), &["task", "ps", "killall"])
                .ok("ctr task ps")
                .stdout_str();
            pids = ps
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok())
                .collect();
            pids.len() >= 4
        }),
        "sh and three sleeps listed: {pids:?}"
    );
    ctd.ctr(
        ns(ctd),
        &["task", "kill", "--all", "-s", "SIGKILL", "killall"],
    )
    .ok("ctr task kill --all");
    wait_stopped(ctd, "killall");
    let gone = eventually(Duration::from_secs(10), || {
        pids.iter().all(|p| crate::lifecycle::is_zombie(*p))
    });
    assert!(gone, "every process of {pids:?} is gone");
    remove(ctd, "killall", 137);
    let _ = std::fs::remove_file(&log);
}

fn native_oom(ctd: &Containerd) {
    let events = Events::start(ctd);
    let dir = busybox_rootfs(&[]);
    let out = run_rootfs(
        ctd,
        "native-oom",
        dir.path(),
        &["--memory-limit", "16777216"],
        &[
            "/bin/dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ],
    );
    assert_eq!(out.code, Some(137), "{out:?}");
    let lines = events.wait_for("native-oom", "/tasks/exit");
    let pos = |t: &str| lines.iter().position(|l| l.contains(t));
    assert!(
        pos("/tasks/oom").is_some() && pos("/tasks/oom") < pos("/tasks/exit"),
        "{lines:?}"
    );
    assert_clean(ctd, "native-oom");
}

fn oom_while_running(ctd: &Containerd) {
    let events = Events::start(ctd);
    let dir = busybox_rootfs(&[]);
    let log = dir.path().join("..").join("oom-running.log");
    run_detached(
        ctd,
        "oom-running",
        dir.path(),
        &log,
        &["--memory-limit", "16777216"],
        &[
            "/bin/sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived; sleep 300",
        ],
    );
    let lines = events.wait_for("oom-running", "/tasks/oom");
    assert!(lines.iter().any(|l| l.contains("/tasks/oom")), "{lines:?}");
    assert_eq!(task_status(ctd, "oom-running").unwrap().0, "RUNNING");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("survived")),
        "the shell outlived its OOM-killed child"
    );
    kill_and_remove(ctd, "oom-running");
    let lines = events.wait_for("oom-running", "/tasks/delete");
    let ooms = lines.iter().filter(|l| l.contains("/tasks/oom")).count();
    assert_eq!(ooms, 1, "one OOM kill, one event: {lines:?}");
    let _ = std::fs::remove_file(&log);
}
