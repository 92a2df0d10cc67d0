//! `ctr image pull` of pushed images, then `ctr run` or containerd's API; basic auth, the
//! registry's errors, a tampered blob, and image indexes.

use wasmlet_oci::image::{Form, ImageSpec};
use wasmlet_oci::registry::{push, push_index};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{module_image, wat};

use super::{exit42_layers, plain, pull, start};
use crate::support::{assert_clean, ns, rt};

pub(super) fn rootfs_image_pushed_pulled_and_run(ctd: &Containerd) {
    let registry = start(None);
    let reference = format!("{}/wasmlet/hello:v1", registry.host);
    let written = push(
        &module_image(&reference, wat("hello")),
        &reference,
        &plain(None),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    let out = pull(ctd, &reference, None);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, registry.log());
    // containerd stored the manifest we pushed, by its digest.
    let images = ctd.ctr(ns(ctd), &["image", "ls"]).ok("ctr image ls");
    let line = images.stdout_str();
    assert!(
        line.lines()
            .any(|l| l.starts_with(&reference) && l.contains(&written.manifest)),
        "{line}"
    );
    run_hello_then_remove(ctd, &reference, "pulled-rootfs");
}

/// `ctr run` the pulled hello image as `id`: it prints its line and leaves nothing; then
/// remove the image.
fn run_hello_then_remove(ctd: &Containerd, reference: &str, id: &str) {
    let out = ctd.ctr(
        ns(ctd),
        &["run", "--rm", "--runtime", rt(ctd), reference, id],
    );
    assert_eq!(
        (out.code, out.stdout_str().as_str()),
        (Some(0), "hello from wasm\n"),
        "{}",
        out.stderr
    );
    assert_clean(ctd, id);
    ctd.ctr(ns(ctd), &["image", "rm", reference])
        .ok("ctr image rm");
}

/// The CNCF wasm artifact form through a registry. containerd 1.6.20's `ctr image pull`
/// unpacks what it pulls and cannot unpack wasm layers; 2.3.4 pulls it, and containerd's
/// API (as CRI uses it) runs it.
pub(super) fn wasm_layer_image_pushed_pulled_and_run(ctd: &Containerd) {
    let registry = start(None);
    let reference = format!("{}/wasmlet/hello-layer:v1", registry.host);
    let mut spec = ImageSpec::new(&reference).file("/hello.wasm", wat("hello"), 0o644);
    spec.form = Form::WasmLayers;
    push(&spec, &reference, &plain(None)).unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    let out = pull(ctd, &reference, None);
    if ctd.flavour.config_version == 2 {
        // 1.6.20 fetched everything, recorded the image, then failed to unpack it.
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("ctr: mismatched image rootfs and manifest layers"),
            "{}",
            out.stderr
        );
    } else {
        assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, registry.log());
    }
    let logs = tempfile::tempdir().unwrap();
    let run = wasmlet_tests::api::run_image(
        ctd,
        ns(ctd),
        &reference,
        rt(ctd),
        "pulled-layer",
        &["hello.wasm"],
        logs.path(),
    )
    .unwrap_or_else(|e| panic!("running {reference}: {e}"));
    assert_eq!(
        (run.exit_code, run.stdout.as_str()),
        (0, "hello from wasm\n")
    );
    assert_clean(ctd, "pulled-layer");
    ctd.ctr(ns(ctd), &["image", "rm", &reference])
        .ok("ctr image rm");
}

pub(super) fn basic_auth_and_registry_errors(ctd: &Containerd) {
    let registry = start(Some(("alice", "s3cr3t")));
    let reference = format!("{}/wasmlet/private:v1", registry.host);
    let spec = module_image(&reference, wat("hello"));
    // A wrong password: refused, and the message names the registry and the cause.
    let err = push(&spec, &reference, &plain(Some(("alice", "wrong"))))
        .expect_err("a wrong password is refused")
        .to_string();
    assert!(err.starts_with(&format!("registry {reference}: ")), "{err}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    push(&spec, &reference, &plain(Some(("alice", "s3cr3t"))))
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    // Each version says it its own way.
    let refused: [(Option<&str>, &str); 2] = match ctd.flavour.config_version {
        2 => [
            (
                None,
                "failed with status code [manifests v1]: 401 Unauthorized",
            ),
            (
                Some("alice:wrong"),
                "failed with status code [manifests v1]: 401 Unauthorized",
            ),
        ],
        _ => [
            (None, "authorization failed: no basic auth credentials"),
            (
                Some("alice:wrong"),
                "/wasmlet/private/manifests/v1: 401 Unauthorized",
            ),
        ],
    };
    for (user, message) in refused {
        let out = pull(ctd, &reference, user);
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(out.stderr.contains(message), "{}", out.stderr);
    }
    let out = pull(ctd, &reference, registry.user_arg().as_deref());
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, registry.log());
    let out = pull(
        ctd,
        &format!("{}/wasmlet/absent:v1", registry.host),
        registry.user_arg().as_deref(),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("/wasmlet/absent:v1: not found"),
        "{}",
        out.stderr
    );
    // Nothing listens on port 1.
    let out = pull(ctd, "127.0.0.1:1/wasmlet/hello:v1", None);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("dial tcp 127.0.0.1:1: connect: connection refused"),
        "{}",
        out.stderr
    );
    ctd.ctr(ns(ctd), &["image", "rm", &reference])
        .ok("ctr image rm");
}

/// A blob whose content no longer matches its digest (the registry's storage damaged
/// under it): containerd checks what it fetched and refuses, naming the digest; nothing is
/// recorded as pulled.
pub(super) fn tampered_blob_is_refused(ctd: &Containerd) {
    let registry = start(None);
    let reference = format!("{}/wasmlet/tampered:v1", registry.host);
    let written = push(
        &module_image(&reference, wat("hello")),
        &reference,
        &plain(None),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hex = written.layer.trim_start_matches("sha256:");
    let data = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    bytes[600] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let out = pull(ctd, &reference, None);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("expected {}", written.layer)),
        "{}",
        out.stderr
    );
    let images = ctd.ctr(ns(ctd), &["image", "ls", "-q"]).ok("ctr image ls");
    assert!(
        !images.stdout_str().contains(&reference),
        "{}",
        images.stdout_str()
    );
}

/// An image index of both forms (`linux/<arch>` rootfs, `wasip1/wasm` layers): containerd
/// picks the node's platform and runs it, pushed by the library and by `wasmlet-oci build
/// --index`. An index with no platform for this node: ctr
/// 1.6.20 refuses the pull (2.3.4's ctr fetches the index alone and says it is done);
/// fetched anyway (`--all-platforms`), the shim refuses the container, listing the
/// platforms it found.
pub(super) fn index_resolved_by_platform(ctd: &Containerd) {
    let registry = start(None);
    let reference = format!("{}/wasmlet/multi:v1", registry.host);
    let images = [
        module_image(&reference, wat("hello")),
        exit42_layers(&reference),
    ];
    push_index(&images, &reference, &plain(None)).unwrap_or_else(|e| panic!("{e}"));
    let out = pull(ctd, &reference, None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    run_hello_then_remove(ctd, &reference, "index-host");

    // The same through the command line: `--index` pushes both forms of one module.
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("hello.wasm");
    std::fs::write(&module, wat("hello")).unwrap();
    let cli = format!("{}/wasmlet/multi-cli:v1", registry.host);
    let oci = wasmlet_tests::containerd::Options::from_env()
        .shim_dir
        .join("wasmlet-oci");
    let out = wasmlet_tests::cmd::run(
        std::process::Command::new(&oci)
            .args(["build", "--push", &cli, "--plain-http", "--index"])
            .arg(&module),
        None,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout_str()
            .starts_with(&format!("pushed {cli}: index sha256:")),
        "{}",
        out.stdout_str()
    );
    let out = pull(ctd, &cli, None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    run_hello_then_remove(ctd, &cli, "index-cli");

    let foreign = format!("{}/wasmlet/foreign:v1", registry.host);
    let images: Vec<ImageSpec> = ["arm64", "s390x"]
        .iter()
        .map(|arch| {
            let mut spec = module_image(&foreign, wat("hello"));
            spec.architecture = arch.to_string();
            spec
        })
        .collect();
    push_index(&images, &foreign, &plain(None)).unwrap_or_else(|e| panic!("{e}"));
    let out = pull(ctd, &foreign, None);
    if ctd.flavour.config_version == 2 {
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains("no match for platform in manifest"),
            "{}",
            out.stderr
        );
    } else {
        // 2.3.4's ctr reports the pull complete, having fetched the index alone.
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let out = ctd.ctr_timeout(
        ns(ctd),
        &["image", "pull", "--plain-http", "--all-platforms", &foreign],
        None,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let logs = tempfile::tempdir().unwrap();
    let err = wasmlet_tests::api::run_image(
        ctd,
        ns(ctd),
        &foreign,
        rt(ctd),
        "index-foreign",
        &["hello.wasm"],
        logs.path(),
    )
    .expect_err("no platform for this node");
    assert!(
        err.contains(
            "no manifest for a wasm or host platform in the index (has linux/arm64, linux/s390x)"
        ),
        "{err}"
    );
    assert_clean(ctd, "index-foreign");
    let _ = ctd.ctr(ns(ctd), &["image", "rm", &foreign]);
}
