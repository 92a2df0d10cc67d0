//! Images that tools other than ours wrote: a component pushed by the Bytecode Alliance's
//! `wkg` (the CNCF wasm OCI artifact), pulled by kubelet's path and run; and an artifact whose
//! `application/wasm` layer holds no WebAssembly (an OCI layout written by hand, copied into
//! the registry by `skopeo`), refused with the shim's message and nothing left behind.

use serde_json::json;
use sha2::{Digest, Sha256};
use wasmlet_tests::cmd::run;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{example, require};
use wasmlet_tests::registry::{wkg, SKOPEO};

use super::{pull, start};
use crate::support::{assert_clean, ns, rt};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `wkg oci push` (with basic auth) of the hello component, then CRI `PullImage` through
/// `hosts.toml` with the pull secret's credentials and a pod that runs it: the artifact's
/// config names no entrypoint, so the container names the layer by its title (the file
/// name wkg gives it); a second pod finds its module in the compile cache. containerd
/// 1.6.20's CRI cannot unpack the artifact: the pull fails with its own message.
pub(super) fn wkg_component_pulled_by_cri_and_run(engine_ctd: &Containerd) {
    use crate::pods::{assert_pod_clean, container, exited, one_pod_at_a_time, pod_config};
    let component = example("wasm32-wasip2", "hello");
    require(&component).unwrap_or_else(|e| panic!("{e}"));
    let registry = start(Some(("alice", "s3cr3t")));
    let reference = format!("{}/wasmlet/wkg-hello:v1", registry.host);
    let home = tempfile::tempdir().unwrap();
    let out = run(
        std::process::Command::new(wkg())
            .args(["oci", "push", "-u", "alice", "-p", "s3cr3t"])
            .args(["--insecure", &registry.host, &reference])
            .arg(&component)
            // No user config or Docker credentials of the machine's.
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", home.path()),
        None,
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "wkg: {}\n{}", out.stderr, registry.log());
    assert!(
        out.stdout_str().contains(&format!("pushed: {reference}")),
        "{}",
        out.stdout_str()
    );
    // What wkg wrote: the wasm config and one `application/wasm` layer titled by the file.
    let raw = run(
        std::process::Command::new(SKOPEO).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:s3cr3t",
            &format!("docker://{reference}"),
        ]),
        None,
        TIMEOUT,
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw.stdout_str())
        .unwrap_or_else(|e| panic!("{e}: {} {}", raw.stdout_str(), raw.stderr));
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm", "{manifest}");
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"], "hello.wasm",
        "{manifest}"
    );

    let engine = crate::support::engine(engine_ctd);
    let (ctd, cri) = super::cri::cri_reaching(engine_ctd, &registry);
    let pulled = cri.pull_image(&reference, Some(("alice", "s3cr3t")));
    if ctd.flavour.config_version == 2 {
        let err = pulled.expect_err("1.6.20 cannot unpack wasm layers");
        assert!(
            err.contains("failed to unpack image on snapshotter overlayfs: mismatched image rootfs and manifest layers"),
            "{err}"
        );
        return;
    }
    pulled.unwrap_or_else(|e| panic!("PullImage of wkg's artifact: {e}"));
    let logs = tempfile::tempdir().unwrap();
    let config = pod_config("wkg", engine.name, logs.path());
    let _one = one_pod_at_a_time();
    let pod = cri
        .run_pod(config.clone(), engine.name)
        .expect("RunPodSandbox");
    let hello = cri
        .create(
            &pod,
            container("wkg", &reference, &["hello.wasm", "from", "wkg"], 0),
            &config,
        )
        .expect("CreateContainer (wkg's artifact)");
    cri.start(&hello).expect("StartContainer");
    let s = exited(&cri, &hello);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    let log = std::fs::read_to_string(logs.path().join("wkg.log")).unwrap_or_default();
    assert!(
        log.contains(" stdout F Hello from WebAssembly, wasmlet!")
            && log.contains(" stdout F args: from wkg"),
        "{log}"
    );
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_pod_clean(&ctd, engine.shim, &pod);

    // A second pod of the artifact (a new shim) finds the layer's module compiled.
    super::cri::second_pod_hits_the_cache(&ctd, &cri, "wkg-again", &reference, &["hello.wasm"]);
}

/// A wasm artifact whose `application/wasm` layer is a shell script (digests all correct):
/// containerd pulls it (2.3.4; 1.6.20 records it, then fails to unpack it, as for any
/// artifact); the container is refused at create with the shim's reason, naming the
/// layer, and nothing is left behind.
pub(super) fn wasm_layer_that_is_not_wasm_is_refused(ctd: &Containerd) {
    let registry = start(None);
    let reference = format!("{}/wasmlet/not-wasm:v1", registry.host);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_artifact(&layout, b"#!/bin/sh\necho not wasm\n", "app.wasm");
    let out = run(
        std::process::Command::new(SKOPEO).args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{reference}"),
        ]),
        None,
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "skopeo copy: {}", out.stderr);
    let out = pull(ctd, &reference, None);
    let expected = if ctd.flavour.config_version == 2 {
        Some(1)
    } else {
        Some(0)
    };
    assert_eq!(out.code, expected, "{}", out.stderr);
    let logs = tempfile::tempdir().unwrap();
    let err = wasmlet_tests::api::run_image(
        ctd,
        ns(ctd),
        &reference,
        rt(ctd),
        "not-wasm-layer",
        &["app.wasm"],
        logs.path(),
    )
    .expect_err("a layer that is no WebAssembly");
    // The layer was found: what is wrong with it is the whole message.
    assert!(
        err.contains("entrypoint \"layer app.wasm (sha256:")
            && err.contains("is not a WebAssembly file: it is a script (starts with #!)")
            && !err.contains("not found in the rootfs"),
        "{err}"
    );
    assert_clean(ctd, "not-wasm-layer");
    ctd.ctr(ns(ctd), &["image", "rm", &reference])
        .ok("ctr image rm");
}

/// An OCI image layout at `dir` (tag `v1`) of a wasm artifact with one `application/wasm`
/// layer of `data` titled `title`, written by hand as any tool could.
fn write_artifact(dir: &std::path::Path, data: &[u8], title: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (layer, layer_size) = put(data);
    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer],
    });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.wasm.config.v0+json",
            "digest": config,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": layer,
            "size": layer_size,
            "annotations": {"org.opencontainers.image.title": title},
        }],
    });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}
