//! The node installer's containerd config edit (`deploy/kubernetes/installer/install.sh`),
//! run on real config files of each flavour under a fake host root: no root needed, no
//! containerd restarted (`RESTART=none`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    wasmlet_tests::workspace_root().join("deploy/kubernetes/installer/install.sh")
}

fn fixture(name: &str) -> String {
    let p = wasmlet_tests::workspace_root()
        .join("tests/fixtures/containerd-configs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fake node: `host` is its root; `shims` holds the binaries to install.
struct Node {
    host: tempfile::TempDir,
    shims: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let shims = tempfile::tempdir().unwrap();
        for e in ["wasmtime", "wasmedge"] {
            std::fs::write(shims.path().join(format!("containerd-shim-{e}-v1")), e).unwrap();
        }
        Node {
            host: tempfile::tempdir().unwrap(),
            shims,
        }
    }

    fn put(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.host.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(&self, action: &str, engines: &str) -> String {
        let out = Command::new("sh")
            .arg(script())
            .arg(action)
            .env("HOST_ROOT", self.host.path())
            .env("SHIM_SOURCE", self.shims.path())
            .env("ENGINES", engines)
            .env("RESTART", "none")
            .output()
            .expect("sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{action} failed: {text}");
        text
    }
}

/// The runtime types the config registers under `table` (dotted path of plain keys).
fn runtime_type(config: &str, table: &[&str], handler: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(config).unwrap_or_else(|e| panic!("{e}\n{config}"));
    let mut t = &value;
    for key in table {
        t = t.get(*key)?;
    }
    t.get(handler)?
        .get("runtime_type")?
        .as_str()
        .map(str::to_string)
}

const V2: &[&str] = &[
    "plugins",
    "io.containerd.grpc.v1.cri",
    "containerd",
    "runtimes",
];
const V3: &[&str] = &[
    "plugins",
    "io.containerd.cri.v1.runtime",
    "containerd",
    "runtimes",
];

/// Install twice (the second run changes nothing), check the handlers and the backup,
/// uninstall, and get the original back.
fn round_trip(node: &Node, config: &Path, original: &str, table: &[&str], flavour: &str) {
    let log = node.run("install", "wasmtime wasmedge");
    assert!(log.contains(&format!("flavour: {flavour}")), "{log}");
    let installed = std::fs::read_to_string(config).unwrap();
    assert_eq!(
        runtime_type(&installed, table, "wasmtime").as_deref(),
        Some("io.containerd.wasmtime.v1"),
        "{installed}"
    );
    assert_eq!(
        runtime_type(&installed, table, "wasmedge").as_deref(),
        Some("io.containerd.wasmedge.v1")
    );
    assert_eq!(
        runtime_type(&installed, table, "runc").as_deref(),
        Some("io.containerd.runc.v2")
    );
    let backup = std::fs::read_to_string(config.with_extension(format!(
        "{}.wasmlet-backup",
        config.extension().unwrap().to_string_lossy()
    )))
    .unwrap();
    assert_eq!(backup, original);
    for e in ["wasmtime", "wasmedge"] {
        let shim = node
            .host
            .path()
            .join(format!("usr/local/bin/containerd-shim-{e}-v1"));
        assert_eq!(std::fs::read_to_string(&shim).unwrap(), e);
    }
    let log = node.run("install", "wasmtime wasmedge");
    assert!(log.contains("already up to date"), "{log}");
    assert_eq!(std::fs::read_to_string(config).unwrap(), installed);
    node.run("uninstall", "wasmtime wasmedge");
    assert_eq!(std::fs::read_to_string(config).unwrap(), original);
    assert!(!node
        .host
        .path()
        .join("usr/local/bin/containerd-shim-wasmtime-v1")
        .exists());
}

#[test]
fn containerd_1_7_with_systemd_cgroups() {
    let node = Node::new();
    let original = fixture("containerd-1.7.toml");
    let config = node.put("etc/containerd/config.toml", &original);
    round_trip(&node, &config, &original, V2, "containerd");
    // The systemd cgroup driver carries over to the wasm handlers.
    node.run("install", "wasmtime");
    let text = std::fs::read_to_string(&config).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let wasmtime =
        &value["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["wasmtime"];
    assert_eq!(
        wasmtime["options"]["SystemdCgroup"].as_bool(),
        Some(true),
        "{text}"
    );
}

#[test]
fn containerd_2_uses_the_v3_schema() {
    let node = Node::new();
    let original = fixture("containerd-2.0.toml");
    let config = node.put("etc/containerd/config.toml", &original);
    round_trip(&node, &config, &original, V3, "containerd");
}

/// What `containerd config default` of 2.3 writes: schema version 4, single-quoted keys.
#[test]
fn containerd_2_3_default_config_version_4() {
    let node = Node::new();
    let original = fixture("containerd-2.3.toml");
    assert!(original.contains("\nversion = 4\n"));
    let config = node.put("etc/containerd/config.toml", &original);
    round_trip(&node, &config, &original, V3, "containerd");
    // The runtime table is the default one's, never a second (1.x) plugin table.
    node.run("install", "wasmtime");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("io.containerd.grpc.v1.cri\".containerd"),
        "{text}"
    );
}

#[test]
fn k3s_and_rke2_edit_the_template() {
    for (flavour, dir, file) in [
        (
            "k3s",
            "var/lib/rancher/k3s/agent/etc/containerd",
            "k3s.toml",
        ),
        (
            "rke2",
            "var/lib/rancher/rke2/agent/etc/containerd",
            "rke2.toml",
        ),
    ] {
        let node = Node::new();
        let original = fixture(file);
        node.put(&format!("{dir}/config.toml"), &original);
        let template = node.host.path().join(dir).join("config.toml.tmpl");
        // The first install creates the template from the generated config.
        node.run("install", "wasmtime");
        assert!(template.exists(), "{flavour}: template created");
        node.run("uninstall", "wasmtime");
        assert_eq!(std::fs::read_to_string(&template).unwrap(), original);
        round_trip(&node, &template, &original, V2, flavour);
        // The generated config itself is never edited.
        assert_eq!(
            std::fs::read_to_string(node.host.path().join(dir).join("config.toml")).unwrap(),
            original
        );
    }
}

#[test]
fn microk8s_edits_its_template() {
    let node = Node::new();
    let original = fixture("microk8s.toml");
    let config = node.put(
        "var/snap/microk8s/current/args/containerd-template.toml",
        &original,
    );
    round_trip(&node, &config, &original, V2, "microk8s");
}
