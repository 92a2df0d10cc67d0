//! The images `deploy/` builds, built and run here as their users would (engine-neutral:
//! run once, with the Wasmtime shim):
//! - the node-installer image as the DaemonSet runs it: built without Docker by
//!   `deploy/kubernetes/installer/build-image.sh` (Debian's static BusyBox, install.sh, the
//!   shim), imported, and run with runc against a node root with a real containerd 1.7
//!   config: install, install again (no change), uninstall (config restored);
//! - the example app images `make kind-e2e` loads into its cluster
//!   (`deploy/kind/images.sh`), run through the shim.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use wasmlet_tests::cmd::{eventually, run, Output};
use wasmlet_tests::containerd::{Containerd, Options};

use crate::support::{ns, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "deploy_images::node_installer_installs_and_uninstalls_on_a_node_root",
        installs_and_uninstalls,
    ),
    (
        "deploy_images::kind_e2e_app_images_run_through_the_shim",
        kind_app_images_run,
    ),
];

const IMAGE: &str = "docker.io/wasmlet/node-installer:e2e";

fn installer(ctd: &Containerd, id: &str, host: &Path, args: &[&str]) -> Output {
    let mount = format!(
        "type=bind,src={},dst=/host,options=rbind:rw",
        host.display()
    );
    let mut all = vec![
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--mount",
        &mount,
        "--env",
        "HOST_ROOT=/host",
        "--env",
        "RESTART=none",
        "--env",
        "ENGINES=wasmtime",
        IMAGE,
        id,
    ];
    all.extend_from_slice(args);
    ctd.ctr_timeout(ns(ctd), &all, Some(b""), Duration::from_secs(60))
}

fn installs_and_uninstalls(ctd: &Containerd) {
    let shim_dir = Options::from_env().shim_dir;
    let tar = ctd.dir.join("node-installer.tar");
    let script = wasmlet_tests::workspace_root().join("deploy/kubernetes/installer/build-image.sh");
    run(
        std::process::Command::new(&script)
            .arg(&tar)
            .arg(IMAGE)
            .env("SHIM_DIR", &shim_dir)
            .env("ENGINES", "wasmtime"),
        None,
        Duration::from_secs(120),
    )
    .ok("build-image.sh");
    ctd.ctr(ns(ctd), &["image", "import", &tar.to_string_lossy()])
        .ok("ctr image import");

    let host = tempfile::tempdir().unwrap();
    // The DaemonSet's long-running container: BusyBox's sh runs its applets by name.
    let out = installer(
        ctd,
        "installer-sh",
        host.path(),
        &["/bin/sh", "-c", "exec sleep 0"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");

    let config = host.path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let original = std::fs::read_to_string(
        wasmlet_tests::workspace_root()
            .join("tests/fixtures/containerd-configs/containerd-1.7.toml"),
    )
    .unwrap();
    std::fs::write(&config, &original).unwrap();
    let install = ["/bin/sh", "/wasmlet/install.sh", "install"];

    let out = installer(ctd, "installer-1", host.path(), &install);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout_str().contains("flavour: containerd"), "{out:?}");
    let shim = host
        .path()
        .join("usr/local/bin/containerd-shim-wasmtime-v1");
    let built = std::fs::read(shim_dir.join("containerd-shim-wasmtime-v1")).unwrap();
    assert!(
        std::fs::read(&shim).unwrap() == built,
        "the built shim is installed"
    );
    assert_eq!(shim.metadata().unwrap().permissions().mode() & 0o777, 0o755);
    let installed = std::fs::read_to_string(&config).unwrap();
    assert!(
        installed.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmtime]")
            && installed.contains("runtime_type = \"io.containerd.wasmtime.v1\""),
        "{installed}"
    );
    let backup = host
        .path()
        .join("etc/containerd/config.toml.wasmlet-backup");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), original);

    // Under load, runc's shim in containerd 1.6 sometimes ends `ctr run` before the last
    // lines of a quick container's output are copied (seen here 2 times in 20 loaded runs,
    // with exit code 0 and only the first line): the install is idempotent, so ask again
    // until its output is whole.
    let mut out = installer(ctd, "installer-2", host.path(), &install);
    for attempt in 0..3 {
        if out.code != Some(0) || out.stdout_str().contains("install done") {
            break;
        }
        let id = format!("installer-2-{attempt}");
        out = installer(ctd, &id, host.path(), &install);
    }
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout_str().contains("already up to date"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), installed);

    let out = installer(
        ctd,
        "installer-3",
        host.path(),
        &["/bin/sh", "/wasmlet/install.sh", "uninstall"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(!shim.exists());
    ctd.ctr(ns(ctd), &["image", "rm", IMAGE]).ok("ctr image rm");
}

fn kind_app_images_run(ctd: &Containerd) {
    let shim_dir = Options::from_env().shim_dir;
    let out_dir = ctd.dir.join("kind-images");
    let script = wasmlet_tests::workspace_root().join("deploy/kind/images.sh");
    run(
        std::process::Command::new(&script)
            .arg(&out_dir)
            .arg("e2e")
            .env("TARGET_DIR", wasmlet_tests::target_dir())
            .env("WASMLET_OCI", shim_dir.join("wasmlet-oci")),
        None,
        Duration::from_secs(120),
    )
    .ok("deploy/kind/images.sh");
    for tar in ["hello.tar", "http-hello.tar"] {
        ctd.ctr(
            ns(ctd),
            &["image", "import", &out_dir.join(tar).to_string_lossy()],
        )
        .ok("ctr image import");
    }
    let rt = "io.containerd.wasmtime.v1";
    let hello = "docker.io/wasmlet/hello:e2e";
    let out = ctd.ctr_timeout(
        ns(ctd),
        &[
            "run",
            "--rm",
            "--runtime",
            rt,
            hello,
            "kind-hello",
            "/hello.wasm",
            "kind",
        ],
        Some(b""),
        Duration::from_secs(60),
    );
    assert!(
        out.stdout_str().contains("Hello from WebAssembly"),
        "{out:?}"
    );

    let web = "docker.io/wasmlet/http-hello:e2e";
    let addr = wasmlet_tests::http::serve_image(ctd, ns(ctd), rt, web, "kind-web");
    let answer = wasmlet_tests::http::request(addr, "GET", "/", b"").unwrap();
    assert!(
        answer
            .text()
            .contains("from WebAssembly on wasmlet! (GET /)"),
        "{answer:?}"
    );
    ctd.ctr(ns(ctd), &["task", "kill", "kind-web"])
        .ok("ctr task kill");
    let deleted = eventually(Duration::from_secs(10), || {
        ctd.ctr(ns(ctd), &["task", "delete", "kind-web"]).code == Some(0)
    });
    assert!(deleted, "kind-web did not stop on SIGTERM");
    ctd.ctr(ns(ctd), &["container", "rm", "kind-web"])
        .ok("ctr container rm");
    crate::support::assert_clean(ctd, "kind-web");
    for image in [hello, web] {
        ctd.ctr(ns(ctd), &["image", "rm", image]).ok("ctr image rm");
    }
}
