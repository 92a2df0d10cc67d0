//! The Kubernetes manifests in `deploy/kubernetes` parse as the Kubernetes types they
//! declare, and agree with the containerd snippets and the installer on handler names.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::node::v1::RuntimeClass;
use serde::Deserialize;

fn deploy(rel: &str) -> PathBuf {
    wasmlet_tests::workspace_root().join("deploy").join(rel)
}

/// Every YAML document of `rel`, as (kind, value).
fn documents(rel: &str) -> Vec<(String, serde_yaml::Value)> {
    let text = std::fs::read_to_string(deploy(rel)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v = serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            (kind, v)
        })
        .collect()
}

#[test]
fn runtime_classes_name_the_handlers_containerd_knows() {
    let docs = documents("kubernetes/runtimeclass.yaml");
    let mut handlers = Vec::new();
    for (kind, v) in docs {
        assert_eq!(kind, "RuntimeClass");
        let rc: RuntimeClass = serde_yaml::from_value(v).expect("a RuntimeClass");
        assert_eq!(rc.metadata.name.as_deref(), Some(rc.handler.as_str()));
        handlers.push(rc.handler);
    }
    assert_eq!(handlers, ["wasmtime", "wasmedge"]);
    for snippet in ["containerd/config-1.x.toml", "containerd/config-2.x.toml"] {
        let text = std::fs::read_to_string(deploy(snippet)).unwrap();
        for h in &handlers {
            assert!(
                text.contains(&format!(".containerd.runtimes.{h}]"))
                    && text.contains(&format!("runtime_type = \"io.containerd.{h}.v1\"")),
                "{snippet} registers {h}"
            );
        }
    }
}

#[test]
fn installer_daemonset_runs_the_script_privileged_on_the_host_root() {
    let docs = documents("kubernetes/installer/daemonset.yaml");
    assert_eq!(docs.len(), 1);
    let ds: DaemonSet = serde_yaml::from_value(docs[0].1.clone()).expect("a DaemonSet");
    let pod = ds.spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(
        pod.host_pid,
        Some(true),
        "restarting containerd needs the host's PID 1"
    );
    let init = &pod.init_containers.expect("init containers")[0];
    let command = init.command.clone().unwrap_or_default();
    assert!(
        command.iter().any(|c| c.ends_with("install.sh")),
        "{command:?}"
    );
    assert_eq!(
        init.security_context.as_ref().and_then(|s| s.privileged),
        Some(true)
    );
    let mount = &init.volume_mounts.as_ref().expect("mounts")[0];
    let env = init.env.clone().unwrap_or_default();
    let host_root = env
        .iter()
        .find(|e| e.name == "HOST_ROOT")
        .and_then(|e| e.value.clone());
    assert_eq!(host_root.as_deref(), Some(mount.mount_path.as_str()));
    let volumes = pod.volumes.expect("volumes");
    let host = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .expect("host volume");
    assert_eq!(host.host_path.as_ref().map(|h| h.path.as_str()), Some("/"));
}

#[test]
fn kustomization_lists_existing_files() {
    let docs = documents("kubernetes/installer/kustomization.yaml");
    let resources = docs[0].1["resources"].as_sequence().expect("resources");
    for r in resources {
        let rel = format!("kubernetes/installer/{}", r.as_str().unwrap());
        assert!(deploy(&rel).exists(), "{rel}");
    }
}

/// The scripts users run (the kind e2e cannot run on this project's machines) at least
/// parse, and the kind node image registers the handler the RuntimeClass names.
#[test]
fn scripts_parse_and_kind_node_registers_wasmtime() {
    for (shell, script) in [
        ("bash", "kind/e2e.sh"),
        ("sh", "kubernetes/installer/install.sh"),
    ] {
        let out = std::process::Command::new(shell)
            .arg("-n")
            .arg(deploy(script))
            .output()
            .expect("shell");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dockerfile = std::fs::read_to_string(deploy("kind/Dockerfile")).unwrap();
    assert!(dockerfile.contains("containerd-shim-wasmtime-v1 /usr/local/bin/"));
    assert!(dockerfile.contains("deploy/containerd/config-1.x.toml"));
}
