//! kubelet's path to a pulled image, and images that other tools write or read.

use wasmlet_oci::image::ImageSpec;
use wasmlet_oci::registry::push;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{module_image, wat};
use wasmlet_tests::registry::{Registry, SKOPEO, UMOCI};

use super::{exit42_layers, plain, start};

/// kubelet's path: PullImage (with an image pull secret's credentials) through the registry
/// configuration a cluster admin writes (`hosts.toml` under the CRI `config_path`), then a
/// pod running the pulled images with our handler: a rootfs image, and the wasm-layer
/// form where the version pulls it.
pub(super) fn cri_pulls_through_hosts_toml_and_runs_a_pod(engine_ctd: &Containerd) {
    let registry = start(Some(("alice", "s3cr3t")));
    let creds = Some(("alice", "s3cr3t"));
    let rootfs_ref = format!("{}/wasmlet/cri-hello:v1", registry.host);
    push(
        &module_image(&rootfs_ref, wat("hello")),
        &rootfs_ref,
        &plain(creds),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let layer_ref = format!("{}/wasmlet/cri-layer:v1", registry.host);
    push(&exit42_layers(&layer_ref), &layer_ref, &plain(creds)).unwrap_or_else(|e| panic!("{e}"));
    cri_pull_and_run(engine_ctd, &registry, &rootfs_ref, &layer_ref, "pulled");
}

/// Pull `rootfs_ref` (the hello module, rootfs form) and `layer_ref` (exit42, wasm layers)
/// through CRI with the registry's credentials (first without, when it has some: refused),
/// and run both in a pod named `pod_name`.
fn cri_pull_and_run(
    engine_ctd: &Containerd,
    registry: &Registry,
    rootfs_ref: &str,
    layer_ref: &str,
    pod_name: &str,
) {
    use crate::pods::{assert_pod_clean, container, exited, one_pod_at_a_time, pod_config};
    let engine = crate::support::engine(engine_ctd);
    let (ctd, cri) = cri_reaching(engine_ctd, registry);
    let creds = registry
        .credentials
        .as_ref()
        .map(|(u, p)| (u.as_str(), p.as_str()));
    if creds.is_some() {
        // Without the pull secret the registry refuses, and kubelet hears why.
        let err = cri
            .pull_image(rootfs_ref, None)
            .expect_err("no credentials");
        assert!(
            err.contains("401 Unauthorized") || err.contains("authorization failed"),
            "{err}"
        );
    }
    let pulled = cri
        .pull_image(rootfs_ref, creds)
        .expect("PullImage (rootfs form)");
    assert!(pulled.starts_with("sha256:"), "{pulled}");
    let layer = cri.pull_image(layer_ref, creds);

    let logs = tempfile::tempdir().unwrap();
    let config = pod_config(pod_name, engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    let hello = cri
        .create(&pod, container("hello", rootfs_ref, &[], 0), &config)
        .expect("CreateContainer (pulled rootfs image)");
    cri.start(&hello).expect("StartContainer");
    let s = exited(&cri, &hello);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    let log = std::fs::read_to_string(logs.path().join("hello.log")).unwrap_or_default();
    assert!(log.contains(" stdout F hello from wasm"), "{log}");
    if ctd.flavour.config_version == 2 {
        // 1.6.20's CRI unpacks what it pulls and cannot unpack wasm layers.
        let err = layer.expect_err("1.6.20 cannot unpack wasm layers");
        assert!(
            err.contains("failed to unpack image on snapshotter overlayfs: mismatched image rootfs and manifest layers"),
            "{err}"
        );
    } else {
        layer.expect("PullImage (wasm-layer form)");
        // The artifact's config names no entrypoint: the pod names the module's layer.
        let exit = cri
            .create(
                &pod,
                container("layer", layer_ref, &["exit42.wasm"], 0),
                &config,
            )
            .expect("CreateContainer (pulled wasm-layer image)");
        cri.start(&exit).expect("StartContainer");
        let s = exited(&cri, &exit);
        assert_eq!(s.exit_code, 42, "{s:?}");
    }
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_pod_clean(&ctd, engine.shim, &pod);

    // A second pod of the pulled image (a new shim) compiles nothing: the compile cache
    // has the module, whichever way the image came.
    second_pod_hits_the_cache(&ctd, &cri, &format!("{pod_name}-again"), rootfs_ref, &[]);
}

/// The CRI containerd of `engine_ctd`'s version and engine, told how to reach `registry`
/// (its `hosts.toml`), and a CRI client of it.
pub(super) fn cri_reaching(
    engine_ctd: &Containerd,
    registry: &Registry,
) -> (std::sync::Arc<Containerd>, wasmlet_tests::cri::Cri) {
    let ctd = crate::support::cri_containerd(engine_ctd);
    let cri = wasmlet_tests::cri::Cri::connect(&ctd).expect("CRI connection");
    registry
        .write_hosts_toml(&ctd.dir)
        .expect("writing hosts.toml");
    (ctd, cri)
}

/// With an engine that keeps a compile cache: a second pod `pod_name` running `image`
/// (`command`) exits 0 and finds its module compiled (a new shim: the cache, not memory).
pub(super) fn second_pod_hits_the_cache(
    ctd: &Containerd,
    cri: &wasmlet_tests::cri::Cri,
    pod_name: &str,
    image: &str,
    command: &[&str],
) {
    use crate::pods::{assert_pod_clean, container, exited, pod_config};
    let engine = crate::support::engine(ctd);
    if !engine.compile_cache {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let config = pod_config(pod_name, engine.name, logs.path());
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    let again = cri
        .create(&pod, container("again", image, command, 0), &config)
        .expect("CreateContainer (same image)");
    cri.start(&again).expect("StartContainer");
    assert_eq!(exited(cri, &again).exit_code, 0);
    assert_eq!(crate::cache::outcome(ctd, &again), "Hit");
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_pod_clean(ctd, engine.shim, &pod);
}

fn tool(bin: &str, args: &[&str]) -> wasmlet_tests::cmd::Output {
    wasmlet_tests::cmd::run(
        std::process::Command::new(bin).args(args),
        None,
        std::time::Duration::from_secs(60),
    )
}

/// Our archives as other tools see them: `skopeo inspect` and `umoci stat` read the rootfs
/// form without a word on stderr; both refuse to interpret the wasm artifact's config (an
/// artifact is no runnable image to them: `skopeo inspect --raw` shows its manifest).
/// `skopeo copy` puts both into a registry, and CRI pulls and runs what it copied.
pub(super) fn skopeo_and_umoci_take_our_archives(engine_ctd: &Containerd) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, spec: &ImageSpec| {
        let path = dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        wasmlet_oci::image::write_layout(spec, std::io::BufWriter::new(file)).unwrap();
        path.to_string_lossy().into_owned()
    };
    let rootfs_tar = write(
        "rootfs.tar",
        &module_image("docker.io/wasmlet/skopeo:v1", wat("hello")),
    );
    let layer_tar = write(
        "layers.tar",
        &exit42_layers("docker.io/wasmlet/skopeo-layer:v1"),
    );

    let out = tool(SKOPEO, &["inspect", &format!("oci-archive:{rootfs_tar}")]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(0), ""),
        "skopeo inspect"
    );
    assert!(
        out.stdout_str().contains("\"Architecture\""),
        "{}",
        out.stdout_str()
    );
    let out = tool(SKOPEO, &["inspect", &format!("oci-archive:{layer_tar}")]);
    assert!(
        out.stderr
            .contains("unsupported image-specific operation on artifact with type")
            && out.stderr.contains("application/vnd.wasm.config.v0+json"),
        "{}",
        out.stderr
    );
    let out = tool(
        SKOPEO,
        &["inspect", "--raw", &format!("oci-archive:{layer_tar}")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout_str().contains("application/wasm"),
        "{}",
        out.stdout_str()
    );
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    tar_extract(&rootfs_tar, &layout);
    let out = tool(
        UMOCI,
        &["stat", "--image", &format!("{}:v1", layout.display())],
    );
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "umoci stat");
    assert!(
        out.stdout_str().contains("wasmlet-oci build"),
        "{}",
        out.stdout_str()
    );

    let registry = start(None);
    let rootfs_ref = format!("{}/wasmlet/skopeo:v1", registry.host);
    let layer_ref = format!("{}/wasmlet/skopeo-layer:v1", registry.host);
    for (tar, reference) in [(&rootfs_tar, &rootfs_ref), (&layer_tar, &layer_ref)] {
        let out = tool(
            SKOPEO,
            &[
                "copy",
                "--dest-tls-verify=false",
                &format!("oci-archive:{tar}"),
                &format!("docker://{reference}"),
            ],
        );
        assert_eq!(out.code, Some(0), "skopeo copy: {}", out.stderr);
    }
    cri_pull_and_run(engine_ctd, &registry, &rootfs_ref, &layer_ref, "skopeo");
}

fn tar_extract(tar: &str, into: &std::path::Path) {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    archive.unpack(into).unwrap();
}
