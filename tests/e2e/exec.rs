//! Exec (`ctr task exec`): another process in a running container, native or wasm. It must
//! join the container (namespaces, cgroup, root), run as its process spec says (args, user,
//! cwd), carry its own stdio and exit code, and end with the container, leaving nothing.

use std::path::Path;
use std::time::Duration;

use wasmlet_tests::cmd::{eventually, Output};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::isolation::{busybox_rootfs, kill_and_remove, run_detached};
use crate::lifecycle::{task_status, wait_stopped};
use crate::support::{assert_clean, ns, rt, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "exec::native_exec_joins_the_container",
        native_exec_joins_the_container,
    ),
    (
        "exec::wasm_exec_runs_a_module_in_the_container",
        wasm_exec_runs_a_module_in_the_container,
    ),
    (
        "exec::execs_end_with_their_container",
        execs_end_with_their_container,
    ),
];

const KINDS: [&str; 5] = ["pid", "net", "mnt", "uts", "ipc"];

/// `ctr task exec --exec-id <exec_id> <flags> <id> <args>`, with `stdin`.
fn exec(
    ctd: &Containerd,
    id: &str,
    exec_id: &str,
    flags: &[&str],
    args: &[&str],
    stdin: &[u8],
) -> Output {
    let mut all = vec!["task", "exec", "--exec-id", exec_id];
    all.extend_from_slice(flags);
    all.push(id);
    all.extend_from_slice(args);
    ctd.ctr_timeout(ns(ctd), &all, Some(stdin), Duration::from_secs(60))
}

/// The namespace links of host pid `pid`, one line per kind.
fn namespaces_of(pid: u32) -> String {
    KINDS
        .iter()
        .map(|k| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
            format!("{}\n", link.display())
        })
        .collect()
}

/// The pids `ctr task ps` lists for `id`.
fn task_pids(ctd: &Containerd, id: &str) -> Vec<u32> {
    let out = ctd.ctr(ns(ctd), &["task", "ps", id]).ok("ctr task ps");
    out.stdout_str()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The execs' processes are gone (their launch helpers exit on their own, soon).
fn only_the_init_is_left(ctd: &Containerd, id: &str, init: u32) {
    let mut pids = Vec::new();
    let alone = eventually(Duration::from_secs(10), || {
        pids = task_pids(ctd, id);
        pids == [init]
    });
    assert!(alone, "{id}: want only the init {init}: {pids:?}");
}

fn native_exec_joins_the_container(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let log = dir.path().join("init.log");
    let init = run_detached(ctd, "nexec", dir.path(), &log, &[], &["/bin/sleep", "300"]);

    // Same namespaces and cgroup as the init, the user and cwd it was given.
    let script = "for n in pid net mnt uts ipc; do readlink /proc/self/ns/$n; done; \
                  echo pid=$$; id -u; pwd; cat /proc/self/cgroup";
    let out = exec(
        ctd,
        "nexec",
        "e1",
        &["--user", "65534:65534", "--cwd", "/bin"],
        &["/bin/sh", "-c", script],
        b"",
    )
    .ok("ctr task exec");
    let text = out.stdout_str();
    assert!(text.starts_with(&namespaces_of(init)), "{text}");
    let host_cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(text.ends_with(&host_cgroup), "{text} vs {host_cgroup}");
    assert!(text.contains("\n65534\n/bin\n"), "{text}");
    assert!(!text.contains("pid=1\n"), "the init is pid 1: {text}");

    // Its own exit code, stdin and stderr; a bare name is found in PATH.
    let out = exec(
        ctd,
        "nexec",
        "e2",
        &[],
        &["sh", "-c", "cat; echo oops >&2; exit 3"],
        b"hello exec\n",
    );
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout_str(), "hello exec\n", "{out:?}");
    assert!(out.stderr.contains("oops"), "{out:?}");

    // A program the container does not have is an error naming it, and leaves nothing.
    let out = exec(ctd, "nexec", "e3", &[], &["/no/such/tool"], b"");
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("/no/such/tool"), "{out:?}");
    only_the_init_is_left(ctd, "nexec", init);

    let (status, _) = task_status(ctd, "nexec").expect("task listed");
    assert_eq!(status, "RUNNING", "the container goes on");
    kill_and_remove(ctd, "nexec");
}

fn wasm_exec_runs_a_module_in_the_container(ctd: &Containerd) {
    let files: Vec<(String, Vec<u8>)> = ["sleep", "readfile", "argsenv", "exit42"]
        .iter()
        .map(|n| (format!("/{n}.wasm"), wat(n)))
        .chain([("/note.txt".to_string(), b"in the rootfs\n".to_vec())])
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let dir = rootfs(&files);
    let d = dir.path().to_string_lossy().into_owned();
    let args = ["run", "-d", "--runtime", rt(ctd), "--env", "FROM_SPEC=yes"];
    let args: Vec<&str> = args
        .into_iter()
        .chain(["--rootfs", &d, "wexec", "/sleep.wasm"])
        .collect();
    ctd.ctr(ns(ctd), &args).ok("ctr run -d");
    let (_, init) = task_status(ctd, "wexec").expect("task listed");

    // A module exec'd sees the container's root and /proc: it is not its pid 1.
    let out = exec(
        ctd,
        "wexec",
        "r1",
        &[],
        &["/readfile.wasm", "note.txt"],
        b"",
    )
    .ok("ctr task exec readfile");
    assert_eq!(out.stdout_str(), "in the rootfs\n");
    let out = exec(
        ctd,
        "wexec",
        "r2",
        &[],
        &["/readfile.wasm", "proc/self/stat"],
        b"",
    )
    .ok("ctr task exec readfile");
    let stat = out.stdout_str();
    assert!(!stat.starts_with("1 (") && !stat.is_empty(), "{stat}");

    // Its own args, the container's env; its own exit code.
    let out = exec(ctd, "wexec", "a1", &[], &["/argsenv.wasm", "x", "y z"], b"")
        .ok("ctr task exec argsenv");
    let text = out.stdout_str();
    assert!(text.contains("arg:x\narg:y z\n"), "{text}");
    assert!(text.contains("env:FROM_SPEC=yes\n"), "{text}");
    let out = exec(ctd, "wexec", "x1", &[], &["/exit42.wasm"], b"");
    assert_eq!(out.code, Some(42), "{out:?}");

    // A detached exec runs in the init's namespaces until it is killed by its exec id.
    exec(ctd, "wexec", "s1", &["--detach"], &["/sleep.wasm"], b"").ok("ctr task exec -d");
    let mut pids = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            pids = task_pids(ctd, "wexec");
            pids.len() == 2
        }),
        "{pids:?}"
    );
    let sleeper = *pids.iter().find(|p| **p != init).unwrap();
    assert_eq!(namespaces_of(sleeper), namespaces_of(init));
    ctd.ctr(ns(ctd), &["task", "kill", "--exec-id", "s1", "wexec"])
        .ok("ctr task kill --exec-id");
    assert!(
        eventually(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{sleeper}"
        ))
        .exists()),
        "the exec was not stopped"
    );
    only_the_init_is_left(ctd, "wexec", init);
    kill_and_remove(ctd, "wexec");
}

fn execs_end_with_their_container(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let log = dir.path().join("init.log");
    run_detached(ctd, "xend", dir.path(), &log, &[], &["/bin/sleep", "300"]);
    for exec_id in ["d1", "d2"] {
        exec(
            ctd,
            "xend",
            exec_id,
            &["--detach"],
            &["/bin/sleep", "300"],
            b"",
        )
        .ok("ctr task exec -d");
    }
    assert!(eventually(Duration::from_secs(10), || task_pids(
        ctd, "xend"
    )
    .len()
        == 3));
    // SIGKILL to the init only: its PID namespace takes the execs with it.
    ctd.ctr(ns(ctd), &["task", "kill", "-s", "SIGKILL", "xend"])
        .ok("ctr task kill");
    wait_stopped(ctd, "xend");
    let out = ctd
        .ctr(ns(ctd), &["task", "delete", "xend"])
        .ok("ctr task delete");
    assert!(out.stderr.contains("exit code 137"), "{out:?}");
    ctd.ctr(ns(ctd), &["container", "rm", "xend"])
        .ok("ctr container rm");
    assert_clean(ctd, "xend");
}
