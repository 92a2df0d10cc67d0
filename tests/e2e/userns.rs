//! User namespaces (root, as the whole suite): `ctr run --uidmap` (the snapshot chowned by
//! containerd, or, with `--remap-labels` on 2.x, id-mapped layers the shim mounts), a spec
//! with its own mappings and an id-mapped bind mount, and a Kubernetes pod with
//! `hostUsers: false` at the CRI level. Native programs and modules alike run as the
//! container's root, an unprivileged uid on the host.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use k8s_cri::v1::{IdMapping, UserNamespace};
use wasmlet_oci::image::ImageSpec as OciImage;
use wasmlet_tests::cmd::{eventually, Output};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::cri::Cri;
use wasmlet_tests::fixtures::{import_image, module_image, wat};

use crate::isolation::{assert_refused, busybox_rootfs, default_spec, kill_and_remove, run_spec};
use crate::lifecycle::task_status;
use crate::pods::{container, exited, one_pod_at_a_time, pod_config, BUSYBOX, HELLO};
use crate::support::{assert_clean, cri_containerd, engine, ns, rt, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "userns::ctr_uidmap_runs_native_and_wasm_as_mapped_root",
        ctr_uidmap,
    ),
    ("userns::id_mapped_layers_with_remap_labels", remap_labels),
    (
        "userns::spec_mappings_and_an_id_mapped_bind_mount",
        spec_mappings,
    ),
    ("userns::pod_with_host_users_false", pod_without_host_users),
];

/// The host ids the tests map the container's 0..65536 to.
const HOST: u32 = 100_000;
const MAP: &str = "0:100000:65536";

const BB: &str = "docker.io/wasmlet/userns-busybox:e2e";
const WRITER: &str = "docker.io/wasmlet/userns-writemount:e2e";

fn import(ctd: &Containerd) {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox");
    let mut image = OciImage::new(BB).file("/bin/busybox", busybox, 0o755);
    image.entrypoint = vec!["/bin/busybox".into()];
    import_image(ctd, ns(ctd), &image);
    import_image(ctd, ns(ctd), &module_image(WRITER, wat("writemount")));
}

/// `ctr run <how>` (`--rm` or `-d`) with the runtime and a user namespace mapping the
/// container's root to [`HOST`], then `flags`, `image`, `id` and `args`.
fn mapped_args<'a>(
    ctd: &Containerd,
    how: &'a str,
    flags: &[&'a str],
    image: &'a str,
    id: &'a str,
    args: &[&'a str],
) -> Vec<&'a str> {
    let mut all = vec![
        "run",
        how,
        "--runtime",
        rt(ctd),
        "--uidmap",
        MAP,
        "--gidmap",
        MAP,
    ];
    all.extend_from_slice(flags);
    all.extend_from_slice(&[image, id]);
    all.extend_from_slice(args);
    all
}

/// `ctr run --rm` of `image` in a user namespace mapping the container's root to [`HOST`].
fn run_mapped(ctd: &Containerd, id: &str, flags: &[&str], image: &str, args: &[&str]) -> Output {
    let all = mapped_args(ctd, "--rm", flags, image, id, args);
    ctd.ctr_timeout(ns(ctd), &all, Some(b""), Duration::from_secs(60))
}

/// Whether `text` has a line of these whitespace-separated words (`/proc/self/uid_map`
/// pads its columns).
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
}

/// The owner and group `ls -ln` shows on the line naming `path`.
fn owner<'a>(text: &'a str, path: &str) -> (&'a str, &'a str) {
    let line = text
        .lines()
        .find(|l| l.ends_with(path))
        .unwrap_or_else(|| panic!("no ls line for {path} in {text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2], words[3])
}

const PROBE: &str = "cat /proc/self/uid_map; echo uid=$(id -u); ls -ln /bin/busybox; \
                     (echo x > /made) && echo wrote";

fn ctr_uidmap(ctd: &Containerd) {
    import(ctd);
    // containerd chowns a copy of the snapshot to the mapped ids (both versions).
    let out = run_mapped(
        ctd,
        "userns-native",
        &[],
        BB,
        &["/bin/busybox", "sh", "-c", PROBE],
    )
    .ok("ctr run --uidmap");
    let text = out.stdout_str();
    assert!(has_line(&text, &["0", "100000", "65536"]), "{text}");
    assert!(
        text.contains("uid=0\n") && text.contains("wrote\n"),
        "{text}"
    );
    assert_eq!(owner(&text, "/bin/busybox"), ("0", "0"), "{text}");
    assert_clean(ctd, "userns-native");

    // On the host, the container's root is the unprivileged uid it maps to.
    let sleep = ["/bin/busybox", "sleep", "300"];
    let all = mapped_args(ctd, "-d", &[], BB, "userns-sleep", &sleep);
    ctd.ctr(ns(ctd), &all).ok("ctr run -d --uidmap");
    let (_, pid) = task_status(ctd, "userns-sleep").expect("task listed");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = format!("Uid:\t{HOST}\t{HOST}\t{HOST}\t{HOST}\n");
    assert!(status.contains(&uid), "{status}");
    kill_and_remove(ctd, "userns-sleep");

    // A module writes through a bind mount: the file is the mapped root's on the host.
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.path().display()
    );
    run_mapped(ctd, "userns-wasm", &["--mount", &mount], WRITER, &[])
        .ok("ctr run --uidmap (module)");
    let written = std::fs::metadata(data.path().join("out.txt")).expect("out.txt written");
    assert_eq!((written.uid(), written.gid()), (HOST, HOST));
    assert_clean(ctd, "userns-wasm");
}

/// `--remap-labels` leaves the layers as they are and asks for id-mapped mounts: 2.x's
/// overlay snapshotter passes `uidmap=`/`gidmap=` and the shim maps each layer, so the
/// image's files belong to the container's root. 1.6.20's snapshotter ignores the labels:
/// the rootfs stays the host root's, and the container's root cannot make its mount
/// points (the create fails saying so, as with runc).
fn remap_labels(ctd: &Containerd) {
    import(ctd);
    let args = ["/bin/busybox", "sh", "-c", PROBE];
    let out = run_mapped(ctd, "userns-labels", &["--remap-labels"], BB, &args);
    if ctd.flavour.config_version == 2 {
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr.contains("creating mount point")
                && out.stderr.contains("/rootfs/proc: Permission denied"),
            "{out:?}"
        );
        let _ = ctd.ctr(ns(ctd), &["container", "rm", "userns-labels"]);
    } else {
        let text = out.ok("ctr run --uidmap --remap-labels").stdout_str();
        assert!(has_line(&text, &["0", "100000", "65536"]), "{text}");
        assert_eq!(owner(&text, "/bin/busybox"), ("0", "0"), "{text}");
        // The upper layer belongs to the mapped root: the container can write.
        assert!(text.contains("wrote\n"), "{text}");
    }
    assert_clean(ctd, "userns-labels");
}

/// Give `path` and everything below it to `uid`:`gid` (as containerd's chown of a
/// snapshot does), without following links.
fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

fn spec_mappings(ctd: &Containerd) {
    // The container's root owns its rootfs, as in a chowned snapshot: it creates the mount
    // points.
    let dir = busybox_rootfs(&[]);
    chown_tree(dir.path(), HOST, HOST);
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(shared.path().join("f"), "data\n").unwrap();
    let maps = serde_json::json!([{"containerID": 0, "hostID": HOST, "size": 65536}]);
    let script = "cat /proc/self/uid_map; ls -ln /idm/f /plain/f; cat /idm/f";
    let mut spec = default_spec(ctd, "userns-spec", dir.path(), &["/bin/sh", "-c", script]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    spec["linux"]["uidMappings"] = maps.clone();
    spec["linux"]["gidMappings"] = maps.clone();
    let mounts = spec["mounts"].as_array_mut().unwrap();
    for (at, idmapped) in [("/idm", true), ("/plain", false)] {
        let mut m = serde_json::json!({
            "destination": at, "type": "bind", "source": shared.path(),
            "options": ["rbind", "ro"]
        });
        if idmapped {
            m["uidMappings"] = maps.clone();
            m["gidMappings"] = maps.clone();
        }
        mounts.push(m);
    }
    let out = run_spec(ctd, "userns-spec", &spec).ok("ctr run --config (user namespace)");
    let text = out.stdout_str();
    assert!(has_line(&text, &["0", "100000", "65536"]), "{text}");
    // The host's root owns the file: through the id-mapped mount it is the container's
    // root; through the plain one, an id the namespace does not map.
    assert_eq!(owner(&text, "/idm/f"), ("0", "0"), "{text}");
    assert_eq!(owner(&text, "/plain/f"), ("65534", "65534"), "{text}");
    assert!(text.contains("data\n"), "{text}");
    assert_clean(ctd, "userns-spec");

    let refused =
        |id: &str, spec: &serde_json::Value, want: &str| assert_refused(ctd, id, spec, want);
    let mut unmapped = spec.clone();
    unmapped["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 1, "hostID": HOST, "size": 65535}]);
    refused(
        "userns-unmapped",
        &unmapped,
        "uid 0 (the container's root) is not mapped",
    );
    let mut tmpfs = spec.clone();
    tmpfs["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": [], "uidMappings": maps, "gidMappings": maps
        }));
    refused("userns-tmpfs", &tmpfs, "id-mapped mounts of type \"tmpfs\"");
}

/// kubelet's `hostUsers: false`: the pod gets a user namespace (its pause container makes
/// it, the pod's network namespace belongs to it) and every container joins it. 1.6.20's
/// CRI predates the field and runs the pod in the host's namespace.
fn pod_without_host_users(engine_ctd: &Containerd) {
    let engine = engine(engine_ctd);
    let ctd = cri_containerd(engine_ctd);
    let cri = Cri::connect(&ctd).expect("CRI connection");
    let logs = tempfile::tempdir().unwrap();
    let mut pod_config = pod_config("userns", engine.name, logs.path());
    let mapping = vec![IdMapping {
        host_id: 196_608,
        container_id: 0,
        length: 65536,
    }];
    let userns = UserNamespace {
        mode: 0, // POD
        uids: mapping.clone(),
        gids: mapping,
    };
    let with_userns = |mut namespaces: k8s_cri::v1::NamespaceOption| {
        namespaces.userns_options = Some(userns.clone());
        namespaces
    };
    let security = pod_config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .unwrap();
    security.namespace_options = security.namespace_options.clone().map(with_userns);
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(pod_config.clone(), engine.name)
        .expect("RunPodSandbox with a user namespace");
    let in_pod = |mut c: k8s_cri::v1::ContainerConfig| {
        let sc = c
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .unwrap();
        sc.namespace_options = sc.namespace_options.clone().map(with_userns);
        c
    };
    let wasm = cri
        .create(&pod, in_pod(container("wasm", HELLO, &[], 0)), &pod_config)
        .expect("CreateContainer (wasm)");
    let probe = "cat /proc/self/uid_map; echo uid=$(id -u); ls -ln /bin/busybox; \
                 exec /bin/busybox sleep 300";
    let sidecar = cri
        .create(
            &pod,
            in_pod(container(
                "sidecar",
                BUSYBOX,
                &["/bin/busybox", "sh", "-c", probe],
                0,
            )),
            &pod_config,
        )
        .expect("CreateContainer (native)");
    for id in [&wasm, &sidecar] {
        cri.start(id).expect("StartContainer");
    }
    let s = exited(&cri, &wasm);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    let mut log = String::new();
    let logged = eventually(Duration::from_secs(10), || {
        log = std::fs::read_to_string(logs.path().join("sidecar.log")).unwrap_or_default();
        log.contains("uid=")
    });
    assert!(logged, "sidecar.log: {log:?}");
    let lines: String = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, exec_out, _) = cri
        .exec_sync(&sidecar, &["/bin/busybox", "cat", "/proc/self/uid_map"])
        .expect("ExecSync");
    assert_eq!(code, 0);
    if ctd.flavour.config_version > 2 {
        assert!(has_line(&lines, &["0", "196608", "65536"]), "{lines}");
        assert!(has_line(&exec_out, &["0", "196608", "65536"]), "{exec_out}");
        // The image's files belong to the pod's root (id-mapped layers).
        assert_eq!(owner(&lines, "/bin/busybox"), ("0", "0"), "{lines}");
    } else {
        assert!(has_line(&lines, &["0", "0", "4294967295"]), "{lines}");
    }
    assert!(lines.contains("uid=0\n"), "{lines}");
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    crate::pods::assert_pod_clean(&ctd, engine.shim, &pod);
}
