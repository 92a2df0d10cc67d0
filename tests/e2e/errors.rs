//! Bad input: every mistake gives `ctr` a clear message and leaves nothing behind.

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::support::{assert_clean, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    ("errors::missing_module", missing_module),
    ("errors::text_file_named_wasm", text_file_named_wasm),
    ("errors::invalid_wasm", invalid_wasm),
    ("errors::unknown_export", unknown_export),
    (
        "errors::native_without_exec_permission",
        native_without_exec_permission,
    ),
    ("errors::unsupported_log_uri", unsupported_log_uri),
    (
        "errors::wasix_runs_on_wasmer_only",
        wasix_runs_on_wasmer_only,
    ),
];

/// Run `args` in a rootfs of `files`; assert failure with `message` in ctr's stderr.
fn refused(
    ctd: &Containerd,
    id: &str,
    files: &[(&str, Vec<u8>)],
    flags: &[&str],
    args: &[&str],
    message: &str,
) {
    let dir = rootfs(files);
    let out = run_rootfs(ctd, id, dir.path(), flags, args);
    assert!(!out.timed_out, "ctr hung: {out:?}");
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains(message),
        "want {message:?} in ctr's error: {}",
        out.stderr
    );
    // ctr run --rm removes the container on failure only partly: clean it as a user would.
    let _ = ctd.ctr(crate::support::ns(ctd), &["container", "rm", id]);
    assert_clean(ctd, id);
}

/// A WASIX module runs on the Wasmer shim; every other engine refuses it at Create, naming
/// WASIX and the shim that runs it.
fn wasix_runs_on_wasmer_only(ctd: &Containerd) {
    if crate::support::engine(ctd).name == "wasmer" {
        let dir = rootfs(&[("/wasix.wasm", wat("wasix"))]);
        let out = run_rootfs(ctd, "wasix", dir.path(), &[], &["/wasix.wasm"]);
        assert_eq!(out.code, Some(0), "{out:?}");
        let text = out.stdout_str();
        assert!(text.starts_with("wasix thread "), "{text}");
        assert_clean(ctd, "wasix");
        // A thread of its own (`thread_spawn_v2`, joined) writes a file that the main
        // thread reads back: exit 0 and the file's text, not a refusal or a hang.
        let dir = rootfs(&[("/thread.wasm", wat("wasixthread"))]);
        let out = run_rootfs(ctd, "wasixthread", dir.path(), &[], &["/thread.wasm"]);
        assert!(!out.timed_out, "{out:?}");
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout_str(), "from thread\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("thread.txt")).unwrap(),
            "from thread\n"
        );
        assert_clean(ctd, "wasixthread");
        return;
    }
    refused(
        ctd,
        "wasix",
        &[("/wasix.wasm", wat("wasix"))],
        &[],
        &["/wasix.wasm"],
        "the module imports WASIX (`wasix_32v1`), which",
    );
    refused(
        ctd,
        "wasixthread",
        &[("/thread.wasm", wat("wasixthread"))],
        &[],
        &["/thread.wasm"],
        "the module imports WASIX (`wasix_32v1`), which",
    );
    refused(
        ctd,
        "wasix2",
        &[("/wasix.wasm", wat("wasix"))],
        &[],
        &["/wasix.wasm"],
        "use the Wasmer shim (runtime io.containerd.wasmer.v1, containerd-shim-wasmer-v1)",
    );
}

fn missing_module(ctd: &Containerd) {
    refused(
        ctd,
        "missing",
        &[("/hello.wasm", wat("hello"))],
        &[],
        &["/nope.wasm"],
        "entrypoint \"/nope.wasm\" not found in the rootfs",
    );
}

fn text_file_named_wasm(ctd: &Containerd) {
    refused(
        ctd,
        "textfile",
        &[("/app.wasm", b"plain text, not a module\n".to_vec())],
        &[],
        &["/app.wasm"],
        "is not a WebAssembly file: missing the \\0asm magic",
    );
}

fn invalid_wasm(ctd: &Containerd) {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    refused(
        ctd,
        "invalid",
        &[("/bad.wasm", bytes)],
        &[],
        &["/bad.wasm"],
        "module \"/bad.wasm\" failed to load",
    );
}

fn unknown_export(ctd: &Containerd) {
    refused(
        ctd,
        "noexport",
        &[("/m.wasm", wat("exports"))],
        &[],
        &["/m.wasm#nope"],
        "unknown export `nope`: the module exports functions [_start, greet]",
    );
}

/// A native executable runs natively (see `isolation::`), so it must be executable: the
/// fixture writes files with mode 0644.
fn native_without_exec_permission(ctd: &Containerd) {
    let elf = std::fs::read("/bin/true").expect("/bin/true");
    refused(
        ctd,
        "native",
        &[("/bin/true", elf)],
        &[],
        &["/bin/true"],
        "entrypoint \"/bin/true\" is a native executable without execute permission (mode 644)",
    );
}

fn unsupported_log_uri(ctd: &Containerd) {
    refused(
        ctd,
        "loguri",
        &[("/hello.wasm", wat("hello"))],
        &["--log-uri", "binary:///bin/true"],
        &["/hello.wasm"],
        "unsupported stdio URI",
    );
}
