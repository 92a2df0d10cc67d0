//! Workloads that exhaust what they are given: a fork bomb against `pids.max`, every file
//! descriptor, stdout and stderr flooded with nobody reading, arguments and environment
//! near the kernel's limits. Each ends as the limit says, with the node still running
//! other containers and nothing left behind.

use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};
use wasmlet_tests::leaks::rss_kib;

use super::engine::run_fixture;
use crate::isolation::{busybox_rootfs, controller_file, default_spec, run_detached_config};
use crate::lifecycle::{
    assert_sigterm_stops_within_a_second, remove, start_detached, task_status, wait_stopped,
};
use crate::support::{assert_clean, engine, ns, run_rootfs, Test};

pub const RESOURCES: &[(&str, Test)] = &[
    (
        "hostile::fork_bomb_stops_at_pids_max",
        fork_bomb_stops_at_pids_max,
    ),
    (
        "hostile::descriptors_run_out_as_an_error",
        descriptors_run_out_as_an_error,
    ),
    (
        "hostile::flooded_stdio_with_nobody_reading_blocks_the_writer",
        flooded_stdio_with_nobody_reading_blocks_the_writer,
    ),
    (
        "hostile::args_and_env_near_the_kernel_limit_arrive_whole",
        args_and_env_near_the_kernel_limit_arrive_whole,
    ),
];

/// A pids controller file of the container's cgroup (`/<namespace>/<id>`).
fn pids_file(ctd: &Containerd, id: &str, name: &str) -> String {
    controller_file("pids", &format!("{}/{id}", ns(ctd)), name)
}

/// A shell that forks without end (`b() { b & b & }`) under `pids.max` 64: the cgroup
/// stays at the limit and counts the refused forks, another container starts and runs
/// meanwhile, `kill --all` (SIGTERM) ends every process of the bomb, and SIGKILL the rest.
fn fork_bomb_stops_at_pids_max(ctd: &Containerd) {
    let id = "forkbomb";
    let dir = busybox_rootfs(&[]);
    let script = "b() { b & b & }; b; exec sleep 300";
    let mut spec = default_spec(ctd, id, dir.path(), &["/bin/sh", "-c", script]);
    spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": 64});
    run_detached_config(ctd, id, &spec, None);
    let refused = |ctd: &Containerd| -> u64 {
        std::fs::read_to_string(pids_file(ctd, id, "pids.events"))
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(10), || refused(ctd) > 0),
        "the bomb reaches pids.max: {:?}",
        std::fs::read_to_string(pids_file(ctd, id, "pids.events"))
    );
    let pids_current = || -> u64 {
        std::fs::read_to_string(pids_file(ctd, id, "pids.current"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let current = pids_current();
    assert!((1..=64).contains(&current), "pids.current {current}");
    // The node is unharmed: another container runs while the bomb goes on.
    let other = run_fixture(ctd, "beside-forkbomb", "hello", &[]);
    assert_eq!(other.stdout_str(), "hello from wasm\n", "{other:?}");
    // SIGTERM to every process ends the bomb (the shim freezes the cgroup while it lists
    // and signals, so a child forked after the listing is not missed). The init (`sleep`,
    // pid 1 of its namespace, with no handler) ignores it and is left alone.
    ctd.ctr(ns(ctd), &["task", "kill", "--all", id])
        .ok("ctr task kill --all");
    // Live processes: `cgroup.procs` (`pids.current` also counts the bomb's zombies, which
    // the init, `sleep`, never reaps).
    let live = || -> Vec<String> {
        std::fs::read_to_string(pids_file(ctd, id, "cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || live().len() == 1),
        "the bomb outlived kill --all: {} processes left",
        live().len()
    );
    ctd.ctr(ns(ctd), &["task", "kill", "--all", "-s", "SIGKILL", id])
        .ok("ctr task kill --all");
    wait_stopped(ctd, id);
    remove(ctd, id, 137);
}

/// A module that opens a file again and again, keeping every descriptor. Where the
/// engine's WASI files are host descriptors, it refuses at the container's
/// `RLIMIT_NOFILE` (1024 in containerd's default spec), with WASI's `mfile` (33) or, from
/// Wasmtime, `io` (29: wasi:filesystem has no code for it); the module prints how far it
/// got and exits 0. Wasmer's WASI files are its own objects, not descriptors: the limit
/// does not bound them, and the module reaches its own bound of 100000 (the README says
/// so). Either way the next container runs.
fn descriptors_run_out_as_an_error(ctd: &Containerd) {
    let dir = rootfs(&[("/openmany.wasm", wat("openmany")), ("/f", b"x".to_vec())]);
    let out = run_rootfs(ctd, "openmany", dir.path(), &[], &["/openmany.wasm"]).ok("ctr run");
    let engine = engine(ctd).name;
    let text = out.stdout_str();
    let words: Vec<&str> = text.split_whitespace().collect();
    let (opened, errno): (u32, u32) = match words[..] {
        ["opened", n, "errno", e] => (n.parse().unwrap(), e.parse().unwrap()),
        _ => panic!("{engine}: {text:?}"),
    };
    if engine == "wasmer" {
        assert_eq!((opened, errno), (100_000, 0), "{engine}: {text}");
    } else {
        let want = if engine == "wasmtime" { 29 } else { 33 };
        assert_eq!(errno, want, "{engine}: {text}");
        assert!(
            (900..1024).contains(&opened),
            "{engine}: stopped near the limit of 1024: {text}"
        );
    }
    assert_clean(ctd, "openmany");
    let next = run_fixture(ctd, "after-openmany", "hello", &[]);
    assert_eq!(next.stdout_str(), "hello from wasm\n", "{engine}: {next:?}");
}

/// A module that writes to stdout and stderr without end, detached with nobody reading
/// (`ctr run -d` and no log): the shim holds the FIFOs' read ends, so the writes block once
/// the pipes are full. Nothing buffers the flood (the workload and the shim stay small),
/// the task stays running, and SIGTERM ends it within a second (exit 143).
fn flooded_stdio_with_nobody_reading_blocks_the_writer(ctd: &Containerd) {
    let id = "flood";
    let (_dir, pid) = start_detached(ctd, id, "flood");
    let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap_or_default();
    assert!(
        !stdout.to_string_lossy().contains("/dev/null"),
        "stdout is a FIFO nobody reads, not {}",
        stdout.display()
    );
    std::thread::sleep(Duration::from_secs(1));
    let shim = wasmlet_tests::leaks::processes_with(&[
        "containerd-shim-",
        &format!("-id {id} "),
        &ctd.address.to_string_lossy(),
    ]);
    assert_eq!(shim.len(), 1, "{shim:?}");
    let engine = engine(ctd).name;
    let (workload, shim) = (rss_kib(pid), rss_kib(shim[0].0));
    assert!(
        workload < 200 << 10 && shim < 100 << 10,
        "{engine}: workload {workload} KiB, shim {shim} KiB"
    );
    assert_eq!(
        task_status(ctd, id).map(|s| s.0).as_deref(),
        Some("RUNNING")
    );
    assert_sigterm_stops_within_a_second(ctd, id);
}

/// Eight arguments and one environment variable of 128000 bytes each (one argument may
/// not exceed 128 KiB; all of them together stay under the 2 MiB `ARG_MAX` of an 8 MiB
/// stack): a module sees each one whole, and so does a native program in the same image.
fn args_and_env_near_the_kernel_limit_arrive_whole(ctd: &Containerd) {
    let args: Vec<String> = (0..8)
        .map(|i| char::from(b'a' + i).to_string().repeat(128_000))
        .collect();
    let value = "v".repeat(128_000);
    let env = format!("BIG={value}");
    let dir = busybox_rootfs(&[("/argsenv.wasm", wat("argsenv"))]);
    let mut argv = vec!["/argsenv.wasm"];
    argv.extend(args.iter().map(String::as_str));
    let out = run_rootfs(ctd, "bigargs", dir.path(), &["--env", &env], &argv).ok("ctr run");
    let text = out.stdout_str();
    let seen: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("arg:"))
        .collect();
    assert_eq!(seen.len(), 9, "{}", engine(ctd).name);
    assert!(
        seen[1..] == argv[1..],
        "{}: arguments differ",
        engine(ctd).name
    );
    assert!(
        text.contains(&format!("env:{env}\n")),
        "{}",
        engine(ctd).name
    );
    assert_clean(ctd, "bigargs");
    let script = "for a; do echo ${#a}; done; echo ${#BIG}";
    let mut argv = vec!["/bin/sh", "-c", script, "sh"];
    argv.extend(args.iter().map(String::as_str));
    let out = run_rootfs(ctd, "bigargs-native", dir.path(), &["--env", &env], &argv).ok("ctr run");
    assert_eq!(out.stdout_str(), "128000\n".repeat(9));
    assert_clean(ctd, "bigargs-native");
}
