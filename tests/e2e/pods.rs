//! Kubernetes at the CRI level (root, as the whole suite): the calls kubelet makes for a
//! pod whose RuntimeClass names our handler, against containerd's CRI plugin. The pod's
//! pause container (a locally built image) and a busybox sidecar run natively through the
//! shim, next to wasm containers; one shim serves the whole pod.

use std::path::Path;
use std::time::Duration;

use wasmlet_oci::image::ImageSpec as OciImage;
use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::cri::Cri;
pub(crate) use wasmlet_tests::cri::{container, pod_config};
use wasmlet_tests::fixtures::{import_image, module_image, pause_image, wat};
use wasmlet_tests::leaks;

use crate::support::{cri_containerd, engine, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "pods::wasm_and_native_containers_in_one_pod",
        wasm_and_native_containers_in_one_pod,
    ),
    (
        "pods::http_component_answers_at_the_pod_ip",
        http_component_answers_at_the_pod_ip,
    ),
];

pub(crate) const K8S_NS: &str = "k8s.io";
pub(crate) const HELLO: &str = "docker.io/wasmlet/pod-hello:e2e";
pub(crate) const EXIT42: &str = "docker.io/wasmlet/pod-exit42:e2e";
pub(crate) const BUSYBOX: &str = "docker.io/wasmlet/pod-busybox:e2e";
const HTTP: &str = "docker.io/wasmlet/pod-http-hello:e2e";
const WAGI: &str = "docker.io/wasmlet/pod-wagi-hello:e2e";
pub(crate) const ISATTY: &str = "docker.io/wasmlet/pod-isatty:e2e";

/// Import the sandbox image and the pod test images into CRI's namespace.
pub fn import_images(ctd: &Containerd) {
    import_image(ctd, K8S_NS, &pause_image());
    import_image(ctd, K8S_NS, &module_image(HELLO, wat("hello")));
    import_image(ctd, K8S_NS, &module_image(EXIT42, wat("exit42")));
    import_image(ctd, K8S_NS, &module_image(HTTP, crate::http::http_hello()));
    import_image(
        ctd,
        K8S_NS,
        &module_image(WAGI, crate::http::wagi::wagi_hello()),
    );
    import_image(ctd, K8S_NS, &module_image(ISATTY, wat("isatty")));
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox");
    let mut image = OciImage::new(BUSYBOX).file("/bin/busybox", busybox, 0o755);
    image.entrypoint = vec!["/bin/busybox".into()];
    import_image(ctd, K8S_NS, &image);
}

/// Wait until container `id` has exited; its status.
pub(crate) fn exited(cri: &Cri, id: &str) -> k8s_cri::v1::ContainerStatus {
    let mut status = None;
    let done = eventually(Duration::from_secs(20), || {
        status = cri.status(id).ok();
        status.as_ref().is_some_and(|s| s.state == 2)
    });
    assert!(done, "container {id} did not exit: {status:?}");
    status.unwrap()
}

/// Pod tests run one at a time: each checks that only its own pod's shim, namespaces and
/// cgroups exist.
static ONE_POD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn one_pod_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_POD_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn wasm_and_native_containers_in_one_pod(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let pod_config = pod_config("pod", engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let netns_before = netns_entries();
    let pod = cri
        .run_pod(pod_config.clone(), engine.name)
        .expect("RunPodSandbox with our handler");

    let wasm = cri
        .create(&pod, container("wasm", HELLO, &[], 0), &pod_config)
        .expect("CreateContainer (wasm)");
    let failing = cri
        .create(&pod, container("failing", EXIT42, &[], 0), &pod_config)
        .expect("CreateContainer (exit 42)");
    let sidecar = cri
        .create(
            &pod,
            container(
                "sidecar",
                BUSYBOX,
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "echo sidecar up; exec /bin/busybox sleep 300",
                ],
                0,
            ),
            &pod_config,
        )
        .expect("CreateContainer (native sidecar)");
    let oom = cri
        .create(
            &pod,
            container(
                "oom",
                BUSYBOX,
                &[
                    "/bin/busybox",
                    "dd",
                    "if=/dev/zero",
                    "of=/dev/null",
                    "bs=64M",
                    "count=1",
                ],
                16 << 20,
            ),
            &pod_config,
        )
        .expect("CreateContainer (native, over its memory limit)");
    for id in [&wasm, &failing, &sidecar, &oom] {
        cri.start(id).expect("StartContainer");
    }

    let s = exited(&cri, &wasm);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    // CRI's log format, what `kubectl logs` reads: "<time> stdout F <line>".
    let mut log = String::new();
    let logged = eventually(Duration::from_secs(10), || {
        log = std::fs::read_to_string(logs.path().join("wasm.log")).unwrap_or_default();
        log.contains(" stdout F hello from wasm")
    });
    assert!(logged, "wasm.log: {log:?}");
    let s = exited(&cri, &failing);
    assert_eq!((s.exit_code, s.reason.as_str()), (42, "Error"), "{s:?}");
    let s = exited(&cri, &oom);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );

    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            logs.path().join("sidecar.log")
        )
        .unwrap_or_default()
        .contains(" stdout F sidecar up")),
        "sidecar log"
    );
    // ExecSync, as an exec probe or `kubectl exec` makes it: in the sidecar's namespaces.
    let (code, out, err) = cri
        .exec_sync(
            &sidecar,
            &[
                "/bin/busybox",
                "sh",
                "-c",
                "echo probe; /bin/busybox hostname; echo bad >&2; exit 3",
            ],
        )
        .expect("ExecSync");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (3, "probe\nwasmlet-pod\n", "bad\n")
    );
    let stats = cri.stats(&sidecar).expect("ContainerStats");
    let memory = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(memory > 0, "{stats:?}");

    // One shim serves the whole pod.
    let address = ctd.address.to_string_lossy().into_owned();
    let shims = leaks::processes_with(&[engine.shim, &address]);
    let daemons: Vec<_> = shims
        .iter()
        .filter(|(_, cmd)| !cmd.contains(" start") && !cmd.contains(" delete"))
        .collect();
    assert_eq!(daemons.len(), 1, "one shim for the pod: {shims:?}");

    // A sleeping pid 1 ignores SIGTERM: StopContainer kills it after the grace period.
    cri.stop(&sidecar, 1).expect("StopContainer");
    let s = exited(&cri, &sidecar);
    assert_eq!(s.exit_code, 137, "{s:?}");

    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert!(cri.pods().expect("ListPodSandbox").is_empty());
    let clean = eventually(Duration::from_secs(10), || {
        leaks::processes_with(&[engine.shim, &address]).is_empty()
            && [&pod, &wasm, &failing, &sidecar, &oom]
                .iter()
                .all(|id| leaks::cgroup_dirs(&format!("/k8s.io/{id}")).is_empty())
            && netns_entries() == netns_before
            && leaks::mounts_under(&ctd.dir).is_empty()
    });
    assert!(
        clean,
        "pod left: shims {:?}, netns {:?} (before {:?}), mounts {:?}",
        leaks::processes_with(&[engine.shim, &address]),
        netns_entries(),
        netns_before,
        leaks::mounts_under(&ctd.dir)
    );
}

/// A Deployment's pod as kubelet runs it: a `wasi:http/proxy` component served by the shim,
/// reached from the host at the pod's IP (what a Service's endpoints and kube-proxy use),
/// logging in CRI format, stopped gracefully by StopContainer.
fn http_component_answers_at_the_pod_ip(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let pod_config = pod_config("web", engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(pod_config.clone(), engine.name)
        .expect("RunPodSandbox with our handler");
    let ip = cri.pod_ip(&pod).expect("PodSandboxStatus");
    let mut web = container("web", HTTP, &[], 64 << 20);
    web.envs = vec![k8s_cri::v1::KeyValue {
        key: "GREETING".into(),
        value: "Hallo".into(),
    }];
    let web = cri
        .create(&pod, web, &pod_config)
        .expect("CreateContainer (wasi:http/proxy)");
    // CRI creates the task, where the engine loads the module, in StartContainer.
    let started = cri.start(&web);
    if !engine.components {
        let e = started.expect_err("components refused");
        assert!(e.contains("does not run WebAssembly components"), "{e}");
    } else {
        started.expect("StartContainer");
        let addr: std::net::SocketAddr = format!("{ip}:8080").parse().unwrap();
        crate::http::wait_serving(addr);
        let r = wasmlet_tests::http::request(addr, "GET", "/", b"").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (200, "Hallo from WebAssembly on wasmlet! (GET /)\n".into())
        );
        // containerd copies the container's output into the log file on its own time.
        let mut log = String::new();
        let logged = eventually(Duration::from_secs(10), || {
            log = std::fs::read_to_string(logs.path().join("web.log")).unwrap_or_default();
            log.contains(" stderr F wasmlet: serving HTTP on http://0.0.0.0:8080/")
        });
        assert!(logged, "web.log: {log:?}");
        // SIGTERM drains and exits 0: the pod's container ends Completed, not killed.
        cri.stop(&web, 10).expect("StopContainer");
        let s = exited(&cri, &web);
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    }
    // A WAGI module in the same pod, on another port.
    let mut wagi = container("wagi", WAGI, &[], 64 << 20);
    wagi.envs = [
        ("WASMLET_HTTP_EXECUTOR", "wagi"),
        ("WASMLET_HTTP_LISTEN", ":8081"),
    ]
    .map(|(key, value)| k8s_cri::v1::KeyValue {
        key: key.into(),
        value: value.into(),
    })
    .into();
    let wagi = cri
        .create(&pod, wagi, &pod_config)
        .expect("CreateContainer (WAGI)");
    let started = cri.start(&wagi);
    if engine.name != "wasmtime" {
        let e = started.expect_err("WAGI refused");
        assert!(e.contains("asks for the WAGI executor"), "{e}");
    } else {
        started.expect("StartContainer (WAGI)");
        let addr: std::net::SocketAddr = format!("{ip}:8081").parse().unwrap();
        crate::http::wait_serving(addr);
        let r = wasmlet_tests::http::request(addr, "POST", "/echo?from=pod", b"hi").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (
                200,
                "method=POST\npath=/echo\nquery=from=pod\nx-test=\nlength=2\nbody=hi\n".into()
            )
        );
        cri.stop(&wagi, 10).expect("StopContainer (WAGI)");
        let s = exited(&cri, &wagi);
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    }
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_pod_clean(&ctd, engine.shim, &pod);
}

/// Wait until `ctd` runs no `shim` process and the cgroup `/k8s.io/<id>` is gone (a removed
/// pod's or container's); panic naming the shims left.
pub fn assert_pod_clean(ctd: &Containerd, shim: &str, id: &str) {
    let address = ctd.address.to_string_lossy().into_owned();
    let cgroup = format!("/k8s.io/{id}");
    let clean = eventually(Duration::from_secs(10), || {
        leaks::processes_with(&[shim, &address]).is_empty()
            && leaks::cgroup_dirs(&cgroup).is_empty()
    });
    assert!(
        clean,
        "left after RemovePodSandbox: shims {:?}, cgroup {cgroup}: {:?}",
        leaks::processes_with(&[shim, &address]),
        leaks::cgroup_dirs(&cgroup)
    );
}

/// The network namespaces CRI has pinned.
pub(crate) fn netns_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(Path::new("/var/run/netns"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
