//! `-info`: the runtime info containerd 2.x asks every shim for (name, version, the OCI
//! runtime features), read the way containerd reads it; and containerd's own view of it
//! through its introspection API, which CRI uses to tell kubelet what a handler supports.

use std::process::{Command, Stdio};

use prost::Message;
use wasmlet_tests::containerd::{Containerd, Options};
use wasmlet_tests::fixtures::{rootfs, wat};

use crate::support::{assert_clean, engine, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[("info::runtime_info_and_features", runtime_info)];

/// The OCI features document of a `RuntimeInfo`.
fn features(info: &containerd_client::types::RuntimeInfo) -> serde_json::Value {
    let any = info.features.as_ref().expect("features");
    assert_eq!(
        any.type_url,
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
    );
    serde_json::from_slice(&any.value).expect("features JSON")
}

fn runtime_info(ctd: &Containerd) {
    let engine = engine(ctd);
    // What containerd runs: `<shim> -info`, the runtime options (none here) on stdin.
    let shim = Options::from_env().shim_dir.join(engine.shim);
    let out = Command::new(&shim)
        .arg("-info")
        .stdin(Stdio::null())
        .output()
        .expect("running the shim");
    assert!(out.status.success(), "{out:?}");
    let info = containerd_client::types::RuntimeInfo::decode(out.stdout.as_slice())
        .expect("a RuntimeInfo protobuf");
    assert_eq!(info.name, engine.runtime);
    assert!(!info.version.as_ref().expect("version").version.is_empty());
    let doc = features(&info);
    let has = |list: &serde_json::Value, item: &str| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(item)))
    };
    assert!(has(&doc["mountOptions"], "rro"), "{doc}");
    assert!(has(&doc["linux"]["namespaces"], "pid"), "{doc}");
    // containerd's CRI offers user namespaces to kubelet with both of these.
    assert!(has(&doc["linux"]["namespaces"], "user"), "{doc}");
    assert_eq!(
        doc["linux"]["mountExtensions"]["idmap"]["enabled"], true,
        "{doc}"
    );
    assert!(has(&doc["linux"]["capabilities"], "CAP_NET_ADMIN"), "{doc}");
    assert!(
        has(&doc["linux"]["seccomp"]["archs"], "SCMP_ARCH_X86_64"),
        "{doc}"
    );
    assert_eq!(doc["annotations"]["dev.wasmlet.engine"], engine.name);
    // Bad options on stdin: a clear error, exit 1.
    let mut child = Command::new(&shim)
        .arg("-info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &[0xff; 3]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("runtime options on stdin"),
        "{out:?}"
    );

    if ctd.flavour.config_version < 3 {
        return; // containerd 1.x neither asks nor has the introspection call.
    }
    // containerd 2.x asks at every Create: it must not log a failure any more.
    let dir = rootfs(&[("/hello.wasm", wat("hello"))]);
    run_rootfs(ctd, "info-run", dir.path(), &[], &["/hello.wasm"]).ok("ctr run");
    assert_clean(ctd, "info-run");
    let log = ctd.log();
    assert!(
        !log.contains("failed to load runtime info"),
        "containerd could not read the runtime info:\n{}",
        log.lines()
            .filter(|l| l.contains("runtime info"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // containerd's own view, as its CRI plugin reads it.
    let info = wasmlet_tests::api::runtime_info(ctd, engine.runtime).expect("PluginInfo");
    assert_eq!(info.name, engine.runtime);
    assert!(has(&features(&info)["mountOptions"], "rro"));
}
