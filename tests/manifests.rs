//! The Kubernetes manifests in `deploy/kubernetes` parse as the Kubernetes types they
//! declare, and agree with the containerd snippets and the installer on handler names.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
    assert_eq!(handlers, ["wasmtime", "wasmedge", "wasmer", "wamr"]);
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
fn kustomizations_list_existing_files() {
    for dir in ["kubernetes/installer", "kubernetes/examples"] {
        let docs = documents(&format!("{dir}/kustomization.yaml"));
        let resources = docs[0].1["resources"].as_sequence().expect("resources");
        for r in resources {
            let rel = format!("{dir}/{}", r.as_str().unwrap());
            assert!(deploy(&rel).exists(), "{rel}");
        }
    }
}

/// The sample web service: a Deployment of wasm + native sidecar through a wasmlet
/// RuntimeClass, and a Service whose selector and target port reach the port the shim
/// listens on.
#[test]
fn sample_deployment_and_service_fit_together() {
    let docs = documents("kubernetes/examples/http-hello.yaml");
    let kinds: Vec<&str> = docs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    let deployment: Deployment = serde_yaml::from_value(docs[0].1.clone()).expect("Deployment");
    let service: Service = serde_yaml::from_value(docs[1].1.clone()).expect("Service");

    let template = deployment.spec.expect("spec").template;
    let pod = template.spec.expect("pod spec");
    let classes: Vec<String> = documents("kubernetes/runtimeclass.yaml")
        .into_iter()
        .map(|(_, v)| v["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let class = pod.runtime_class_name.expect("runtimeClassName");
    assert!(classes.contains(&class), "{class} not in {classes:?}");
    assert_eq!(pod.containers.len(), 2, "wasm + sidecar");

    let web = &pod.containers[0];
    let listen = web
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "WASMLET_HTTP_LISTEN")
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let listen_port: i32 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let port = &web.ports.as_ref().expect("ports")[0];
    assert_eq!(port.container_port, listen_port);
    let probe = web
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("an HTTP readiness probe");
    assert_eq!(probe.port, IntOrString::String(port.name.clone().unwrap()));

    let labels = template.metadata.expect("metadata").labels.expect("labels");
    let spec = service.spec.expect("service spec");
    for (k, v) in spec.selector.expect("selector") {
        assert_eq!(labels.get(&k), Some(&v), "selector {k}={v}");
    }
    let target = spec.ports.expect("ports")[0].target_port.clone();
    assert_eq!(
        target,
        Some(IntOrString::String(port.name.clone().unwrap()))
    );
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
    assert!(
        dockerfile.contains("COPY target/release/containerd-shim-wasmtime-v1 /tmp/wasmlet-bin/")
    );
    assert!(dockerfile.contains("SHIM_SOURCE=/tmp/wasmlet-bin ENGINES=wasmtime"));
    assert!(dockerfile.contains("install.sh install"));
    // A Kubernetes release whose kind node runs containerd 2.x (kind's v1.32 and later).
    let tag = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG KIND_NODE_IMAGE=kindest/node:v1."))
        .expect("the kind node image");
    let minor: u32 = tag.split('.').next().unwrap().parse().unwrap();
    assert!(minor >= 32, "kindest/node:v1.{tag} runs containerd 1.x");
}
