//! A pod's containers at the edges of their lives, at the CRI level: a container in the
//! pod's shared PID namespace whose shell leaves a process behind (critest's server images
//! do), and a container that exits while containerd is down.

use std::time::{Duration, Instant};

use k8s_cri::v1::{LinuxSandboxSecurityContext, NamespaceOption};
use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::cri::Cri;
use wasmlet_tests::leaks;

use crate::pods::{
    assert_pod_clean, container, exited, one_pod_at_a_time, pod_config, BUSYBOX, ISATTY,
};
use crate::support::{cri_containerd, engine, private_cri_containerd, wait_for_cri, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "pods::shared_pid_namespace_leaves_nothing_behind",
        shared_pid_namespace,
    ),
    (
        "pods::exit_while_containerd_is_down_keeps_its_code",
        exit_while_down,
    ),
    ("pods::tty_containers_get_a_terminal", tty_containers),
];

/// critest's default: the containers share the pod's PID namespace (mode POD).
fn shared_pid() -> NamespaceOption {
    NamespaceOption {
        network: 0,
        pid: 0,
        ipc: 0,
        ..Default::default()
    }
}

fn shared_pid_namespace(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let mut config = pod_config("sharedpid", engine.name, logs.path());
    config.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
        namespace_options: Some(shared_pid()),
        ..Default::default()
    });
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    // The shell starts a server-like child that keeps the container's output open, then
    // ends: its child must not outlive it, or containerd 2.x waits for that output forever.
    let mut c = container(
        "leaver",
        BUSYBOX,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox sleep 300 & echo started; exit 4",
        ],
        0,
    );
    c.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options = Some(shared_pid());
    let id = cri.create(&pod, c, &config).expect("CreateContainer");
    cri.start(&id).expect("StartContainer");
    let s = exited(&cri, &id);
    assert_eq!(s.exit_code, 4, "{s:?}");
    let cgroup = format!("/k8s.io/{id}");
    let emptied = eventually(Duration::from_secs(10), || cgroup_empty(&cgroup));
    assert!(emptied, "the container's child outlived it");
    let t = Instant::now();
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_pod_clean(&ctd, engine.shim, &id);
}

fn exit_while_down(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = private_cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let config = pod_config("downexit", engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    let c = container(
        "late",
        BUSYBOX,
        &["/bin/busybox", "sh", "-c", "/bin/busybox sleep 2; exit 3"],
        0,
    );
    let id = cri.create(&pod, c, &config).expect("CreateContainer");
    cri.start(&id).expect("StartContainer");
    assert_eq!(cri.status(&id).map(|s| s.state), Ok(1), "running");
    drop(cri);
    ctd.stop_daemon();
    assert!(
        eventually(Duration::from_secs(15), || cgroup_empty(&format!(
            "/k8s.io/{id}"
        ))),
        "the container did not exit"
    );
    std::thread::sleep(Duration::from_secs(1));
    ctd.start_daemon().expect("containerd starts again");
    wait_for_cri(&ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let s = exited(&cri, &id);
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_pod_clean(&ctd, engine.shim, &pod);
}

/// Whether cgroup `path` has no process left (or is gone) in every hierarchy.
fn cgroup_empty(path: &str) -> bool {
    leaks::cgroup_dirs(path)
        .iter()
        .all(|d| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty()))
}

/// Containers with `tty: true` (what `kubectl run -it`, `kubectl attach` and `kubectl debug`
/// create): their output comes through a terminal of their own, native or wasm.
fn tty_containers(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let config = pod_config("tty", engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    let tty = |mut c: k8s_cri::v1::ContainerConfig| {
        c.tty = true;
        c.stdin = true;
        c
    };
    let shell = tty(container(
        "shell",
        BUSYBOX,
        &["/bin/busybox", "sh", "-c", "/bin/busybox tty; echo done"],
        0,
    ));
    let module = tty(container("module", ISATTY, &[], 0));
    for (name, config_c, want) in [("shell", shell, "/dev/pts/0"), ("module", module, "tty")] {
        let id = cri
            .create(&pod, config_c, &config)
            .expect("CreateContainer");
        cri.start(&id).expect("StartContainer");
        let s = exited(&cri, &id);
        assert_eq!(s.exit_code, 0, "{name}: {s:?}");
        let path = logs.path().join(format!("{name}.log"));
        let mut log = String::new();
        let logged = eventually(Duration::from_secs(10), || {
            log = std::fs::read_to_string(&path).unwrap_or_default();
            log.lines()
                .any(|l| l.contains(" stdout ") && l.trim_end().ends_with(want))
        });
        assert!(logged, "{name}: {log:?}");
    }
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
}
