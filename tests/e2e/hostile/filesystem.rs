//! Ways out of the container's filesystem: a secret file on the host, outside every
//! container, and a rootfs that points at it every way it can (absolute and relative
//! symlinks, a symlinked directory, `..` chains, `/proc/self/root`, `/proc/1/root`,
//! `/proc/self/cwd`), and hard links through them. A module and a native program each try
//! them all; none reads the secret. Device nodes a container makes for itself stay closed.

use std::path::Path;

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::isolation::busybox_rootfs;
use crate::support::{assert_clean, engine, run_rootfs, Test};

pub const FILESYSTEM: &[(&str, Test)] = &[
    (
        "hostile::module_cannot_leave_its_root",
        module_cannot_leave_its_root,
    ),
    (
        "hostile::native_program_cannot_leave_its_root",
        native_program_cannot_leave_its_root,
    ),
    (
        "hostile::device_nodes_it_makes_stay_closed",
        device_nodes_it_makes_stay_closed,
    ),
];

/// A file outside every container, with a content of its own.
struct Secret {
    _dir: tempfile::TempDir,
    path: String,
    content: String,
}

fn secret() -> Secret {
    let dir = tempfile::Builder::new()
        .prefix("wasmlet-secret-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("secret");
    let content = format!("host secret {}\n", std::process::id());
    std::fs::write(&path, &content).unwrap();
    Secret {
        path: path.to_string_lossy().into_owned(),
        _dir: dir,
        content,
    }
}

/// Make the rootfs at `root` point at `secret` every way it can; the paths to try,
/// relative to the container's root.
fn ways_out(root: &Path, secret: &Secret) -> Vec<String> {
    let host = &secret.path;
    let parent = Path::new(host).parent().unwrap();
    let up = "../".repeat(16);
    let inner = host.trim_start_matches('/');
    std::os::unix::fs::symlink(host, root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink(format!("{up}{inner}"), root.join("rel-link")).unwrap();
    std::os::unix::fs::symlink(parent, root.join("dir-link")).unwrap();
    vec![
        "abs-link".into(),
        "rel-link".into(),
        "dir-link/secret".into(),
        format!("{up}{inner}"),
        format!("proc/self/root/{inner}"),
        format!("proc/1/root/{inner}"),
        format!("proc/self/cwd/{up}{inner}"),
    ]
}

/// `readfile.wasm` (which prints a file relative to the root preopen, following symlinks)
/// tries each way out: each run ends with the module's "cannot open" (exit 1), never the
/// secret.
fn module_cannot_leave_its_root(ctd: &Containerd) {
    let secret = secret();
    let dir = rootfs(&[("/readfile.wasm", wat("readfile"))]);
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    let engine = engine(ctd).name;
    for (i, path) in ways_out(dir.path(), &secret).iter().enumerate() {
        let id = format!("escape-{i}");
        let out = run_rootfs(ctd, &id, dir.path(), &[], &["/readfile.wasm", path]);
        assert!(
            !out.stdout_str().contains(&secret.content),
            "{engine}: {path} reached the host's file: {out:?}"
        );
        assert_eq!(out.code, Some(1), "{engine}: {path}: {out:?}");
        assert_clean(ctd, &id);
    }
}

/// busybox `cat` tries each way out from inside the container, and `ln` makes a hard link
/// through each: every one fails, none prints the secret.
fn native_program_cannot_leave_its_root(ctd: &Containerd) {
    let secret = secret();
    let dir = busybox_rootfs(&[]);
    let paths = ways_out(dir.path(), &secret);
    let mut script: String = paths
        .iter()
        .map(|p| format!("cat /{p} 2>/dev/null || echo refused /{p}; "))
        .collect();
    // A hard link can only name what the container sees: each way out fails here too.
    for p in &paths {
        script.push_str(&format!(
            "ln /{p} /hardlink 2>/dev/null && cat /hardlink; rm -f /hardlink; "
        ));
    }
    let out = run_rootfs(
        ctd,
        "escape-native",
        dir.path(),
        &[],
        &["/bin/sh", "-c", &script],
    )
    .ok("ctr run");
    let text = out.stdout_str();
    assert!(!text.contains(&secret.content), "{text}");
    for p in &paths {
        assert!(text.contains(&format!("refused /{p}\n")), "{p}: {text}");
    }
    assert_clean(ctd, "escape-native");
}

/// A container with CAP_MKNOD (containerd's default set) makes nodes for the host's memory
/// (`c 1:1`) and, where the host has one, its first block device: it may create them,
/// but opening either is refused (the device rules of the spec, `deny all` then the
/// default devices).
fn device_nodes_it_makes_stay_closed(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let block = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|mut d| d.find_map(|e| std::fs::read_to_string(e.ok()?.path().join("dev")).ok()))
        .map(|d| d.trim().replace(':', " "));
    let mut script = String::from(
        "mknod /mem c 1 1 && (head -c 1 /mem >/dev/null 2>&1 && echo read mem || echo refused mem); ",
    );
    if let Some(b) = &block {
        script.push_str(&format!(
            "mknod /disk b {b} && (head -c 1 /disk >/dev/null 2>&1 && echo read disk || echo refused disk); "
        ));
    }
    let out = run_rootfs(
        ctd,
        "devnodes",
        dir.path(),
        &[],
        &["/bin/sh", "-c", &script],
    )
    .ok("ctr run");
    let text = out.stdout_str();
    assert!(text.contains("refused mem\n"), "{text}");
    if block.is_some() {
        assert!(text.contains("refused disk\n"), "{block:?}: {text}");
    }
    assert!(!text.contains("read "), "{text}");
    assert_clean(ctd, "devnodes");
}
