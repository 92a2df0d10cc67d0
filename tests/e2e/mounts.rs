//! Mounts and devices with the options kubelet and users give: a read-only bind leaves the
//! mounts below it writable (as the kernel does), a recursive read-only one (`rro`, what CRI
//! asks for `recursiveReadOnly`) makes them read-only too; a privileged container gets the
//! host's devices, every capability and a writable `/sys`, with `/dev/ptmx` its own.

use wasmlet_tests::containerd::Containerd;

use crate::isolation::{busybox_rootfs, default_spec};
use crate::support::{assert_clean, ns, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    ("mounts::read_only_and_recursive_read_only_binds", rro),
    (
        "mounts::privileged_gets_host_devices_all_caps_and_writable_sys",
        privileged,
    ),
    (
        "mounts::rshared_bind_propagates_both_ways",
        rshared_propagates,
    ),
];

/// A host directory with a tmpfs mounted at `sub/`, unmounted on drop.
struct HostTree {
    dir: tempfile::TempDir,
}

impl HostTree {
    fn new() -> HostTree {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &dir.path().join("sub"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mounting a tmpfs");
        HostTree { dir }
    }
}

impl Drop for HostTree {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(
            &self.dir.path().join("sub"),
            nix::mount::MntFlags::MNT_DETACH,
        );
    }
}

fn rro(ctd: &Containerd) {
    let tree = HostTree::new();
    let rootfs = busybox_rootfs(&[]);
    let script = "touch /mnt/top 2>/dev/null && echo top=rw || echo top=ro; \
                  touch /mnt/sub/below 2>/dev/null && echo below=rw || echo below=ro";
    let run = |id: &str, options: &str| {
        let mount = format!(
            "type=bind,src={},dst=/mnt,options={options}",
            tree.dir.path().display()
        );
        let out = run_rootfs(
            ctd,
            id,
            rootfs.path(),
            &["--mount", &mount],
            &["/bin/sh", "-c", script],
        )
        .ok("ctr run --mount");
        assert_clean(ctd, id);
        out.stdout_str()
    };
    let below = tree.dir.path().join("sub/below");
    assert_eq!(run("ro-bind", "rbind:ro"), "top=ro\nbelow=rw\n");
    assert!(below.exists(), "written through the plain read-only bind");
    std::fs::remove_file(&below).unwrap();
    assert_eq!(run("rro-bind", "rbind:rro"), "top=ro\nbelow=ro\n");
    assert!(!below.exists() && !tree.dir.path().join("top").exists());
    assert_eq!(run("rw-bind", "rbind:rw"), "top=rw\nbelow=rw\n");
}

fn privileged(ctd: &Containerd) {
    let rootfs = busybox_rootfs(&[]);
    let script = "echo ptmx=$(readlink /dev/ptmx); echo devices=$(ls /dev | wc -l); \
                  grep CapEff /proc/self/status; \
                  grep ' /sys ' /proc/self/mountinfo | grep -q ' rw,' && echo sys=rw";
    let out = run_rootfs(
        ctd,
        "privileged",
        rootfs.path(),
        &["--privileged"],
        &["/bin/sh", "-c", script],
    )
    .ok("ctr run --privileged");
    let text = out.stdout_str();
    // The host's /dev/ptmx is in the spec's devices; the container's own devpts wins.
    assert!(text.contains("ptmx=pts/ptmx\n"), "{text}");
    let devices: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("devices="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(devices > 20, "the host's devices: {text}");
    let host_bounding = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    assert!(
        text.contains(&format!("CapEff:\t{host_bounding}\n")),
        "every capability ({host_bounding}): {text}"
    );
    assert!(text.contains("sys=rw\n"), "{text}");
    assert_clean(ctd, "privileged");
}

/// A host directory bound onto itself and made shared, as kubelet prepares a volume for
/// `mountPropagation: Bidirectional`; everything under it unmounted on drop.
struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    fn new() -> SharedDir {
        use nix::mount::{mount, MsFlags};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
        .unwrap();
        SharedDir { dir }
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        wasmlet_tests::leaks::unmount_under(self.dir.path());
    }
}

/// With `rootfsPropagation: rshared` and an `rshared` bind (what CRI makes of
/// Bidirectional), a mount made in the container appears on the host and one made on the
/// host appears in the container.
fn rshared_propagates(ctd: &Containerd) {
    let shared = SharedDir::new();
    let host = shared.dir.path().to_path_buf();
    std::fs::create_dir(host.join("fromhost")).unwrap();
    let rootfs = busybox_rootfs(&[]);
    let script = "mkdir -p /mnt/inner && mount --bind /bin /mnt/inner && \
                  while ! test -e /mnt/fromhost/marker; do sleep 0.1; done; echo seen";
    let mut spec = default_spec(ctd, "rshared", rootfs.path(), &["/bin/sh", "-c", script]);
    spec["linux"]["rootfsPropagation"] = "rshared".into();
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt", "type": "bind", "source": host,
            "options": ["rbind", "rshared", "rw"]
        }));
    for set in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_ADMIN".into());
    }
    crate::isolation::run_detached_config(ctd, "rshared", &spec, None);
    // Container to host.
    let inner = host.join("inner/busybox");
    let up = wasmlet_tests::cmd::eventually(std::time::Duration::from_secs(10), || inner.exists());
    assert!(up, "the container's mount did not reach the host");
    // Host to container.
    let fromhost = host.join("fromhost");
    nix::mount::mount(
        Some("tmpfs"),
        &fromhost,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(fromhost.join("marker"), b"").unwrap();
    crate::lifecycle::wait_stopped(ctd, "rshared");
    let out = ctd
        .ctr(ns(ctd), &["task", "delete", "rshared"])
        .ok("ctr task delete");
    assert!(!out.stderr.contains("exit code"), "exit 0: {out:?}");
    ctd.ctr(ns(ctd), &["container", "rm", "rshared"])
        .ok("ctr container rm");
    assert_clean(ctd, "rshared");
}
