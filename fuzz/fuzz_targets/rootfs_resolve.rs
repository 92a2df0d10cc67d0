//! Chroot-style path resolution of guest paths (entrypoints, cwd, mount targets) in a small
//! rootfs full of hostile symlinks (absolute and relative ones out of the root, loops,
//! chains, links to `/proc/self/root`): whatever the path, the result stays under the
//! rootfs, or is an error. Also `name#export` splitting and guest path joining.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::{entrypoint, rootfs};

/// The rootfs, made once per process under the temp directory.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("wasmlet-fuzz-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["bin", "app/sub", "etc", "deep/a/b/c"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("app/hello.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let links = [
            ("abs-out", "/../../../../etc"),
            ("rel-out", "../../../../../../etc"),
            ("app/up", "../../../.."),
            ("app/sub/to-root", "/"),
            ("loop-a", "loop-b"),
            ("loop-b", "/loop-a"),
            ("self", "."),
            ("proc-root", "/proc/self/root"),
            ("bin/sh", "/deep/a/b/c/../../../../app/hello.wasm"),
            ("deep/a/b/c/chain", "../../../../abs-out/passwd"),
            ("dangling", "/no/such/file"),
        ];
        for (link, target) in links {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        root
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cwd, guest) = text.split_once('\n').unwrap_or(("/", text));
    let joined = rootfs::guest_join(cwd, guest);
    for path in [guest, joined.as_str()] {
        if path.contains('\0') {
            continue;
        }
        if let Ok(host) = rootfs::resolve(root(), path) {
            assert!(
                host.starts_with(root()),
                "{path:?} resolved outside the rootfs: {}",
                host.display()
            );
            assert!(
                !host
                    .components()
                    .any(|c| c == std::path::Component::ParentDir),
                "{path:?} resolved to a path with '..': {}",
                host.display()
            );
        }
    }
    if let Ok((name, export)) = entrypoint::split_export(guest) {
        assert!(!name.is_empty() || export.is_none());
    }
});
