//! Linux isolation through the shim (root, as the whole suite): native containers (busybox)
//! and modules see their own PID namespace, mounts and cgroup; the spec's hostname, user,
//! capabilities, masked paths, limits, sysctls and seccomp apply; namespaces are joined by
//! path; bad specs fail cleanly. The cgroup-backed Task API is tested in `cgroups.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::lifecycle::{remove, task_status, wait_stopped};
use crate::support::{assert_clean, ns, rt, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "isolation::native_busybox_is_pid1_in_its_cgroup",
        native_busybox,
    ),
    (
        "isolation::module_sees_its_own_proc_and_cgroup",
        module_sees_its_container,
    ),
    (
        "isolation::spec_hostname_user_caps_masks_and_pids_limit",
        spec_attributes,
    ),
    (
        "isolation::spec_rlimits_sysctls_nnp_and_readonly_root",
        spec_limits,
    ),
    ("isolation::systemd_cgroup_path_form", systemd_cgroup),
    ("isolation::bad_specs_fail_create_cleanly", bad_specs),
    ("isolation::joins_a_network_namespace_by_path", joins_netns),
    ("isolation::seccomp_profile_applies", seccomp),
];

const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "hostname", "id", "grep", "wc", "ls", "sleep", "readlink", "dd", "mkdir",
    "true", "tty", "stty", "mount", "test", "head", "mknod", "ln", "rm",
];

/// A rootfs with a static busybox and its applets, readable by any user.
pub(crate) fn busybox_rootfs(extra: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian's busybox-static)");
    let mut files = vec![("/bin/busybox", busybox)];
    files.extend(extra.iter().cloned());
    let dir = rootfs(&files);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.path().join("bin").join(applet)).unwrap();
    }
    dir
}

/// Whether the host has cgroup v1 controllers (this machine: v1 plus a v2 `unified` mount).
pub(crate) fn cgroup_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory").is_dir()
}

/// File `name` of cgroup `rel` (below the hierarchy root) in `controller`'s v1 hierarchy,
/// or in the unified one on a v2 host.
pub(crate) fn controller_file(controller: &str, rel: &str, name: &str) -> String {
    if cgroup_v1() {
        format!("/sys/fs/cgroup/{controller}/{rel}/{name}")
    } else {
        format!("/sys/fs/cgroup/{rel}/{name}")
    }
}

/// The memory limit file of a cgroup, `rel` below the hierarchy root.
pub(crate) fn memory_limit_file(rel: &str) -> String {
    let name = if cgroup_v1() {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    controller_file("memory", rel, name)
}

/// `ctr run -d` of `args` in `dir` with stdout to `log`.
pub(crate) fn run_detached(
    ctd: &Containerd,
    id: &str,
    dir: &Path,
    log: &Path,
    flags: &[&str],
    args: &[&str],
) -> u32 {
    let d = dir.to_string_lossy().into_owned();
    let uri = format!("file://{}", log.display());
    let mut all = vec!["run", "-d", "--runtime", rt(ctd), "--log-uri", &uri];
    all.extend_from_slice(flags);
    all.extend_from_slice(&["--rootfs", &d, id]);
    all.extend_from_slice(args);
    ctd.ctr(ns(ctd), &all).ok("ctr run -d");
    let (status, pid) = task_status(ctd, id).expect("task listed");
    assert_eq!(status, "RUNNING");
    pid
}

pub(crate) fn kill_and_remove(ctd: &Containerd, id: &str) {
    ctd.ctr(ns(ctd), &["task", "kill", "-s", "SIGKILL", id])
        .ok("ctr task kill");
    wait_stopped(ctd, id);
    remove(ctd, id, 137);
}

/// The line of `/proc/self/cgroup` that shows a process in cgroup `/<namespace>/<id>`.
fn own_cgroup_line(ctd: &Containerd, id: &str) -> String {
    let ns = ns(ctd);
    if cgroup_v1() {
        format!(":memory:/{ns}/{id}\n")
    } else {
        format!("0::/{ns}/{id}\n")
    }
}

fn native_busybox(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let out = run_rootfs(
        ctd,
        "native",
        dir.path(),
        &[],
        &[
            "/bin/sh",
            "-c",
            "echo pid=$$; cat /proc/self/cgroup; ls /proc/1/ns >/dev/null && echo proc-ok",
        ],
    )
    .ok("ctr run busybox");
    let text = out.stdout_str();
    assert!(text.contains("pid=1\n"), "{out:?}");
    assert!(text.contains(&own_cgroup_line(ctd, "native")), "{out:?}");
    assert!(text.contains("proc-ok\n"), "{out:?}");
    assert_clean(ctd, "native");
}

fn module_sees_its_container(ctd: &Containerd) {
    let dir = rootfs(&[("/readfile.wasm", wat("readfile"))]);
    let out = run_rootfs(
        ctd,
        "probe-pid",
        dir.path(),
        &[],
        &["/readfile.wasm", "proc/self/stat"],
    )
    .ok("ctr run readfile");
    assert!(
        out.stdout_str().starts_with("1 ("),
        "the module is pid 1: {}",
        out.stdout_str()
    );
    assert_clean(ctd, "probe-pid");
    let out = run_rootfs(
        ctd,
        "probe-cg",
        dir.path(),
        &[],
        &["/readfile.wasm", "proc/self/cgroup"],
    )
    .ok("ctr run readfile");
    assert!(
        out.stdout_str().contains(&own_cgroup_line(ctd, "probe-cg")),
        "{}",
        out.stdout_str()
    );
    assert_clean(ctd, "probe-cg");
}

/// containerd's default spec (`ctr oci spec`) for `args` in `dir`, as container `id`.
pub(crate) fn default_spec(
    ctd: &Containerd,
    id: &str,
    dir: &Path,
    args: &[&str],
) -> serde_json::Value {
    let text = ctd
        .ctr(ns(ctd), &["oci", "spec"])
        .ok("ctr oci spec")
        .stdout_str();
    let mut spec: serde_json::Value = serde_json::from_str(&text).expect("spec JSON");
    spec["root"] = serde_json::json!({"path": dir, "readonly": false});
    spec["process"]["args"] = serde_json::json!(args);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", ns(ctd)));
    spec
}

/// `spec` written to a temporary file, for `ctr run --config`.
fn spec_file(spec: &serde_json::Value) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(spec).unwrap()).unwrap();
    file
}

/// `ctr run --rm --config <spec>` (the spec is used as it is).
pub(crate) fn run_spec(
    ctd: &Containerd,
    id: &str,
    spec: &serde_json::Value,
) -> wasmlet_tests::cmd::Output {
    let file = spec_file(spec);
    let path = file.path().to_string_lossy().into_owned();
    ctd.ctr_timeout(
        ns(ctd),
        &["run", "--rm", "--runtime", rt(ctd), "--config", &path, id],
        Some(b""),
        Duration::from_secs(60),
    )
}

/// `ctr run -d --config <spec>`, with stdout and stderr to `log` when given.
pub(crate) fn run_detached_config(
    ctd: &Containerd,
    id: &str,
    spec: &serde_json::Value,
    log: Option<&Path>,
) {
    let file = spec_file(spec);
    let config = file.path().to_string_lossy().into_owned();
    let uri = log.map(|l| format!("file://{}", l.display()));
    let mut args = vec!["run", "-d", "--runtime", rt(ctd)];
    if let Some(uri) = &uri {
        args.extend(["--log-uri", uri.as_str()]);
    }
    args.extend(["--config", &config, id]);
    ctd.ctr(ns(ctd), &args).ok("ctr run -d --config");
}

fn spec_attributes(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let pids = if cgroup_v1() {
        "/sys/fs/cgroup/pids/pids.max"
    } else {
        "/sys/fs/cgroup/pids.max"
    };
    let script = format!(
        "echo host=$(hostname); echo user=$(id -u):$(id -g):$(id -G); grep CapBnd /proc/self/status; \
         echo timer_list=$(wc -c < /proc/timer_list); echo pids=$(cat {pids} 2>&1); \
         (echo x > /proc/sys/kernel/domainname) 2>/dev/null || echo procsys-ro"
    );
    let mut spec = default_spec(ctd, "attrs", dir.path(), &["/bin/sh", "-c", &script]);
    spec["hostname"] = "wasmlet-probe".into();
    spec["process"]["user"] =
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]});
    spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": 16});
    // The mount CRI adds (containerd's own default spec has none): the container's cgroups.
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"]
        }));
    let out = run_spec(ctd, "attrs", &spec).ok("ctr run --config");
    let text = out.stdout_str();
    assert!(text.contains("host=wasmlet-probe\n"), "{text}");
    assert!(text.contains("user=1000:1000:1000 2000\n"), "{text}");
    // containerd's default capability set, nothing more.
    assert!(text.contains("CapBnd:\t00000000a80425fb\n"), "{text}");
    // Root-only /proc/timer_list is masked with /dev/null: readable, and empty.
    assert!(
        text.contains("timer_list=0\n"),
        "masked /proc/timer_list: {text}"
    );
    assert!(text.contains("pids=16\n"), "{text}");
    assert!(text.contains("procsys-ro\n"), "read-only /proc/sys: {text}");
    assert_clean(ctd, "attrs");
}

fn spec_limits(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let script = "echo nofile=$(ulimit -n); grep NoNewPrivs /proc/self/status; \
                  echo shm_rmid_forced=$(cat /proc/sys/kernel/shm_rmid_forced); \
                  (echo x > /written) 2>/dev/null || echo root-ro";
    let mut spec = default_spec(ctd, "limits", dir.path(), &["/bin/sh", "-c", script]);
    spec["root"]["readonly"] = true.into();
    spec["process"]["rlimits"] =
        serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    spec["process"]["noNewPrivileges"] = true.into();
    // An IPC-namespaced sysctl, written before /proc/sys becomes read-only.
    spec["linux"]["sysctl"] = serde_json::json!({"kernel.shm_rmid_forced": "1"});
    let out = run_spec(ctd, "limits", &spec).ok("ctr run --config");
    let text = out.stdout_str();
    assert!(text.contains("nofile=321\n"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1\n"), "{text}");
    assert!(text.contains("shm_rmid_forced=1\n"), "{text}");
    assert!(text.contains("root-ro\n"), "{text}");
    assert!(!dir.path().join("written").exists());
    assert_clean(ctd, "limits");
}

/// kubelet's systemd cgroup driver gives `slice:prefix:name`; the shim expands it to the
/// path systemd would use and removes it afterwards.
fn systemd_cgroup(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let mut spec = default_spec(ctd, "sysd", dir.path(), &["/bin/cat", "/proc/self/cgroup"]);
    spec["linux"]["cgroupsPath"] = "wasmlet-e2e.slice:wasmlet:sysd".into();
    let out = run_spec(ctd, "sysd", &spec).ok("ctr run --config");
    // Slices nest by their dashes, as systemd lays them out.
    let path = "/wasmlet.slice/wasmlet-e2e.slice/wasmlet-sysd.scope";
    assert!(
        out.stdout_str().contains(&format!(":memory:{path}\n")) || !cgroup_v1(),
        "{out:?}"
    );
    assert!(out.stdout_str().contains(path), "{out:?}");
    assert_clean(ctd, "sysd");
    assert!(
        wasmlet_tests::leaks::cgroup_dirs(path).is_empty(),
        "{:?}",
        wasmlet_tests::leaks::cgroup_dirs(path)
    );
    // The slices are parents shared by a node's containers; remove the test's own.
    for slice in ["/wasmlet.slice/wasmlet-e2e.slice", "/wasmlet.slice"] {
        wasmlet_tests::leaks::remove_cgroup_parent(slice);
    }
}

/// `ctr run --config <spec>` as `id` fails with `want` in its message, and leaves nothing.
pub(crate) fn assert_refused(ctd: &Containerd, id: &str, spec: &serde_json::Value, want: &str) {
    let out = run_spec(ctd, id, spec);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains(want),
        "want {want:?} in: {}",
        out.stderr
    );
    let _ = ctd.ctr(ns(ctd), &["container", "rm", id]);
    assert_clean(ctd, id);
}

fn bad_specs(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let refused =
        |id: &str, spec: &serde_json::Value, want: &str| assert_refused(ctd, id, spec, want);
    let mut spec = default_spec(ctd, "bad-userns", dir.path(), &["/bin/true"]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    refused("bad-userns", &spec, "a new user namespace needs mappings");
    let mut spec = default_spec(ctd, "bad-mount", dir.path(), &["/bin/true"]);
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/data", "type": "nosuchfs", "source": "none", "options": []
        }));
    refused(
        "bad-mount",
        &spec,
        "setting up the container: mounting none (nosuchfs) /data",
    );
    let mut spec = default_spec(ctd, "bad-rlimit", dir.path(), &["/bin/true"]);
    spec["process"]["rlimits"] =
        serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 16}]);
    refused("bad-rlimit", &spec, "setting rlimit RLIMIT_NOFILE");
}

fn joins_netns(ctd: &Containerd) {
    let dir = busybox_rootfs(&[]);
    let log = dir.path().join("..").join(format!("{}.log", "netns-a"));
    let pid = run_detached(
        ctd,
        "netns-a",
        dir.path(),
        &log,
        &[],
        &["/bin/sleep", "300"],
    );
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        theirs, ours,
        "a new network namespace for the first container"
    );
    let with = format!("network:/proc/{pid}/ns/net");
    let out = run_rootfs(
        ctd,
        "netns-b",
        dir.path(),
        &["--with-ns", &with],
        &["/bin/readlink", "/proc/self/ns/net"],
    )
    .ok("ctr run --with-ns");
    assert_eq!(out.stdout_str().trim(), theirs.to_string_lossy());
    assert_clean(ctd, "netns-b");
    kill_and_remove(ctd, "netns-a");
    let _ = std::fs::remove_file(&log);
}

fn seccomp(ctd: &Containerd) {
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let dir = busybox_rootfs(&[("/hello.wasm", wat("hello"))]);
    let file = dir.path().join("..").join("wasmlet-seccomp.json");
    std::fs::write(&file, serde_json::to_vec(&profile).unwrap()).unwrap();
    let path = file.to_string_lossy().into_owned();
    let flags = ["--seccomp", "--seccomp-profile", path.as_str()];
    let out = run_rootfs(
        ctd,
        "seccomp-native",
        dir.path(),
        &flags,
        &["/bin/sh", "-c", "mkdir /made 2>&1; echo rc=$?"],
    );
    let text = out.stdout_str();
    assert!(
        text.contains("Operation not permitted") && text.contains("rc=1"),
        "{out:?}"
    );
    assert_clean(ctd, "seccomp-native");
    // The engine runs under the same filter: containerd's default profile lets it work.
    let out = run_rootfs(
        ctd,
        "seccomp-wasm",
        dir.path(),
        &["--seccomp"],
        &["/hello.wasm"],
    )
    .ok("ctr run --seccomp");
    assert_eq!(out.stdout_str(), "hello from wasm\n");
    assert_clean(ctd, "seccomp-wasm");
    let _ = std::fs::remove_file(&file);
}
