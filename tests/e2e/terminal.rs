//! Terminals: `ctr run -t` and `ctr task exec -t`, for native and wasm processes, driven
//! from a real terminal (`script` gives ctr one, as a user's shell would). The terminal is
//! the container's own (`tty` names `/dev/pts/0` of its devpts), sized by ResizePty from
//! ctr's terminal, and what is typed reaches the process.

use std::process::Command;
use std::time::Duration;

use wasmlet_tests::cmd::{run, Output};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::wat;

use crate::isolation::busybox_rootfs;
use crate::lifecycle::{remove, task_status, wait_stopped};
use crate::support::{assert_clean, ns, rt, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    ("terminal::ctr_run_t_gives_a_shell_its_terminal", run_t),
    ("terminal::a_module_writes_to_a_terminal", module_tty),
    ("terminal::ctr_task_exec_t_into_a_running_container", exec_t),
];

/// Run `ctr <args>` inside a terminal of `rows`x`cols` (made by `script`), typing `input`.
fn in_terminal(ctd: &Containerd, rows: u16, cols: u16, args: &[String], input: &[u8]) -> Output {
    let ctr = ctd.ctr_command(ns(ctd));
    let mut line = format!("stty rows {rows} cols {cols}; exec");
    line.push_str(&format!(" {}", ctr.get_program().to_string_lossy()));
    for arg in ctr
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
    {
        line.push_str(&format!(" '{arg}'"));
    }
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let mut out = run(&mut script, Some(input), Duration::from_secs(60));
    // Two terminals (script's and the container's) each turn "\n" into "\r\n".
    out.stdout.retain(|b| *b != b'\r');
    out
}

fn run_t(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let args: Vec<String> = ["run", "-t", "--rm", "--runtime", rt(ctd), "--rootfs"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            dir.path().to_string_lossy().into_owned(),
            "tty1".into(),
            "/bin/sh".into(),
        ])
        .collect();
    let out = in_terminal(
        ctd,
        33,
        77,
        &args,
        // ctr sizes the terminal right after Start: let that happen before `stty`.
        b"sleep 1; tty; stty size; readlink /proc/self/fd/0; echo $((6*7)); exit 3\n",
    );
    let text = out.stdout_str();
    assert_eq!(out.code, Some(3), "{out:?}");
    // Its own devpts: the first terminal there, on stdin too.
    assert!(text.contains("/dev/pts/0\n"), "{text:?}");
    assert!(
        text.contains("33 77\n"),
        "ResizePty from ctr's terminal: {text:?}"
    );
    assert!(text.contains("42\n"), "{text:?}");
    assert_clean(ctd, "tty1");
}

fn module_tty(ctd: &Containerd) {
    let dir = wasmlet_tests::fixtures::rootfs(&[("/isatty.wasm", wat("isatty"))]);
    let d = dir.path().to_string_lossy().into_owned();
    let args: Vec<String> = [
        "run",
        "-t",
        "--rm",
        "--runtime",
        rt(ctd),
        "--rootfs",
        &d,
        "tty2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["/isatty.wasm".into()])
    .collect();
    let out = in_terminal(ctd, 24, 80, &args, b"");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout_str().contains("tty\n"), "{out:?}");
    assert_clean(ctd, "tty2");
    // Without -t its stdout is containerd's FIFO.
    let out = run_rootfs(ctd, "notty", dir.path(), &[], &["/isatty.wasm"]).ok("ctr run");
    match crate::support::engine(ctd).stdio_always_a_tty {
        false => assert_eq!(out.stdout_str(), "notty\n"),
        // Wasmer's WASI says so for any stdio, as `wasmer run` does (README, engines).
        true => assert_eq!(out.stdout_str(), "tty\n"),
    }
    assert_clean(ctd, "notty");
}

fn exec_t(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let d = dir.path().to_string_lossy().into_owned();
    ctd.ctr(
        ns(ctd),
        &[
            "run",
            "-d",
            "--runtime",
            rt(ctd),
            "--rootfs",
            &d,
            "ttyx",
            "/bin/sleep",
            "300",
        ],
    )
    .ok("ctr run -d");
    let args: Vec<String> = ["task", "exec", "-t", "--exec-id", "sh1", "ttyx", "/bin/sh"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = in_terminal(ctd, 20, 50, &args, b"sleep 1; tty; stty size; exit 5\n");
    let text = out.stdout_str();
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(text.contains("/dev/pts/0\n"), "{text:?}");
    assert!(text.contains("20 50\n"), "{text:?}");
    // The container goes on; its init had no terminal.
    assert_eq!(
        task_status(ctd, "ttyx").map(|(s, _)| s),
        Some("RUNNING".into())
    );
    ctd.ctr(ns(ctd), &["task", "kill", "-s", "SIGKILL", "ttyx"])
        .ok("ctr task kill");
    wait_stopped(ctd, "ttyx");
    remove(ctd, "ttyx", 137);
}
