//! Running modules: output, exit codes, args, env, cwd, stdin, exports, traps, big output.

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::support::{assert_clean, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    ("run::hello_from_rootfs_dir", hello_from_rootfs_dir),
    ("run::exit_code_and_stderr", exit_code_and_stderr),
    (
        "run::args_and_env_reach_the_module",
        args_and_env_reach_the_module,
    ),
    (
        "run::cwd_resolves_relative_entrypoint_without_adding_pwd",
        cwd_resolves_relative_entrypoint,
    ),
    ("run::stdin_reaches_the_module", stdin_reaches_the_module),
    (
        "run::one_mib_of_stdout_arrives_complete",
        one_mib_of_stdout_arrives_complete,
    ),
    (
        "run::export_suffix_selects_the_function",
        export_suffix_selects_the_function,
    ),
    (
        "run::trap_exits_134_with_message",
        trap_exits_134_with_message,
    ),
    (
        "run::memory_limit_caps_linear_memory",
        memory_limit_caps_linear_memory,
    ),
    (
        "run::socket_call_on_a_directory_fails_as_the_engine_says",
        socket_call_on_a_directory_fails_as_the_engine_says,
    ),
];

/// `sock_shutdown` on fd 3 (a directory) fails with the errno the engine's own CLI gives for
/// it: `ENOTSOCK` (57) under `wasmtime run` and `wasmedge` (both CLIs checked by hand,
/// 2026-11-29). Wasmer's and WAMR's WASI give the same (their CLIs were not at hand).
fn socket_call_on_a_directory_fails_as_the_engine_says(ctd: &Containerd) {
    let dir = rootfs(&[("/sockshut.wasm", wat("sockshut"))]);
    let out = run_rootfs(ctd, "sockshut", dir.path(), &[], &["/sockshut.wasm"]).ok("ctr run");
    let engine = crate::support::engine(ctd).name;
    assert_eq!(out.stdout_str(), "shutdown: 57\n", "{engine}");
    assert_clean(ctd, "sockshut");
}

fn hello_from_rootfs_dir(ctd: &Containerd) {
    let dir = rootfs(&[("/hello.wasm", wat("hello"))]);
    let out = run_rootfs(ctd, "hello", dir.path(), &[], &["/hello.wasm"]).ok("ctr run");
    assert_eq!(out.stdout_str(), "hello from wasm\n");
    assert_clean(ctd, "hello");
}

fn exit_code_and_stderr(ctd: &Containerd) {
    let dir = rootfs(&[("/exit.wasm", wat("exit42"))]);
    let out = run_rootfs(ctd, "exit42", dir.path(), &[], &["/exit.wasm"]);
    assert_eq!(out.code, Some(42), "{out:?}");
    assert!(out.stderr.contains("exiting with 42"), "{out:?}");
    assert_clean(ctd, "exit42");
}

fn args_and_env_reach_the_module(ctd: &Containerd) {
    let dir = rootfs(&[("/bin/argsenv.wasm", wat("argsenv"))]);
    let out = run_rootfs(
        ctd,
        "argsenv",
        dir.path(),
        &["--env", "GREETING=hi there", "--env", "EMPTY="],
        &["/bin/argsenv.wasm", "a", "b c"],
    )
    .ok("ctr run");
    let text = out.stdout_str();
    let args: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("arg:"))
        .collect();
    assert_eq!(args, ["/bin/argsenv.wasm", "a", "b c"]);
    assert!(text.contains("env:GREETING=hi there\n"), "{text}");
    assert!(text.contains("env:EMPTY=\n"), "{text}");
    // Nothing of the shim's own environment leaks in.
    assert!(
        !text.contains("TTRPC_ADDRESS") && !text.contains("WASMLET_CACHE_DIR"),
        "{text}"
    );
    assert_clean(ctd, "argsenv");
}

fn cwd_resolves_relative_entrypoint(ctd: &Containerd) {
    let dir = rootfs(&[("/app/bin/argsenv.wasm", wat("argsenv"))]);
    let out = run_rootfs(
        ctd,
        "cwd",
        dir.path(),
        &["--cwd", "/app"],
        &["bin/argsenv.wasm"],
    )
    .ok("ctr run");
    let text = out.stdout_str();
    assert!(text.contains("arg:bin/argsenv.wasm\n"), "{text}");
    // The cwd locates the module; the env is the spec's alone (no PWD added).
    assert!(!text.contains("env:PWD="), "{text}");
    assert_clean(ctd, "cwd");
}

fn stdin_reaches_the_module(ctd: &Containerd) {
    let dir = rootfs(&[("/cat.wasm", wat("cat"))]);
    let input = b"line one\nline two\n";
    let out = ctd
        .ctr_timeout(
            crate::support::ns(ctd),
            &[
                "run",
                "--rm",
                "--runtime",
                crate::support::rt(ctd),
                "--rootfs",
                &dir.path().to_string_lossy(),
                "cat",
                "/cat.wasm",
            ],
            Some(input),
            std::time::Duration::from_secs(60),
        )
        .ok("ctr run");
    assert_eq!(out.stdout, input);
    assert_clean(ctd, "cat");
}

fn one_mib_of_stdout_arrives_complete(ctd: &Containerd) {
    let dir = rootfs(&[("/big.wasm", wat("bigout"))]);
    let out = run_rootfs(ctd, "bigout", dir.path(), &[], &["/big.wasm"]).ok("ctr run");
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
    assert_clean(ctd, "bigout");
}

fn export_suffix_selects_the_function(ctd: &Containerd) {
    let dir = rootfs(&[("/m.wasm", wat("exports"))]);
    let out = run_rootfs(ctd, "export", dir.path(), &[], &["/m.wasm#greet"]).ok("ctr run");
    assert_eq!(out.stdout_str(), "greet\n");
    assert_clean(ctd, "export");
}

fn trap_exits_134_with_message(ctd: &Containerd) {
    let dir = rootfs(&[("/trap.wasm", wat("trap"))]);
    let out = run_rootfs(ctd, "trap", dir.path(), &[], &["/trap.wasm"]);
    assert_eq!(out.code, Some(134), "{out:?}");
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
    assert_clean(ctd, "trap");
}

fn memory_limit_caps_linear_memory(ctd: &Containerd) {
    let dir = rootfs(&[("/grow.wasm", wat("grow"))]);
    let limit = (32 << 20).to_string();
    let out = run_rootfs(
        ctd,
        "oom",
        dir.path(),
        &["--memory-limit", &limit],
        &["/grow.wasm"],
    );
    if crate::support::engine(ctd).reports_oom {
        assert_eq!(out.code, Some(137), "{out:?}");
        let want = format!("exceeded its memory limit of {limit} bytes");
        assert!(out.stderr.contains(&want), "{}", out.stderr);
    } else {
        // The engine refuses the grow at the cap; this module then traps by design.
        assert_eq!(out.code, Some(134), "{out:?}");
    }
    assert_clean(ctd, "oom");
}
