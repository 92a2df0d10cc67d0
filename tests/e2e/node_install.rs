//! The node installer against this version's real containerd (engine-neutral: once per
//! version): a node's config as `containerd config default` of that very binary writes it
//! (2.3.4: schema version 4, `io.containerd.cri.v1.runtime`; 1.6.20: version 2), made private
//! (paths, no NRI, `restrict_oom_score_adj`, which these machines need) and nothing else
//! changed. `install.sh` edits it; containerd, restarted on the result, loads it and its CRI
//! shows the `wasmtime` handler (on 2.x with the features it learnt from the shim's `-info`);
//! a second install changes nothing; uninstall gives the original back and the handler goes.

use std::path::Path;
use std::time::Duration;

use wasmlet_tests::cmd::run;
use wasmlet_tests::containerd::{Containerd, Options, DISABLED, DISABLED_2X};
use wasmlet_tests::cri::Cri;

use crate::support::Test;

pub const TESTS: &[(&str, Test)] = &[(
    "node_install::installer_edits_the_default_config_of_this_containerd",
    installer_edits_the_default_config,
)];

/// The node's config as its containerd writes it by default, on private paths.
fn node_config(ctd: &Containerd, dir: &Path, address: &Path) -> String {
    let out = run(
        std::process::Command::new(ctd.flavour.containerd())
            .args(["config", "default"])
            .env_clear(),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "containerd config default: {out:?}");
    private(&out.stdout_str(), dir, address)
}

/// `config` with its host paths moved under `dir`, the plugins that reach outside them off,
/// and the OOM score left alone; TOML's two quote styles both handled.
fn private(config: &str, dir: &Path, address: &Path) -> String {
    let d = dir.display();
    let mut text = config.replace(
        "/run/containerd/containerd.sock",
        &address.display().to_string(),
    );
    for (from, to) in [
        ("/var/lib/containerd", format!("{d}/root")),
        ("/run/containerd", format!("{d}/state")),
        ("/opt/containerd", format!("{d}/opt")),
    ] {
        for q in ['\'', '"'] {
            text = text.replace(&format!("{q}{from}{q}"), &format!("{q}{to}{q}"));
        }
    }
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            let indent = &line[..line.len() - line.trim_start().len()];
            match key {
                // 2.x reads /etc/containerd/conf.d/*.toml by default.
                "imports" => format!("{indent}imports = []"),
                "disabled_plugins" => format!(
                    "{indent}disabled_plugins = {:?}",
                    DISABLED.iter().chain(DISABLED_2X).collect::<Vec<_>>()
                ),
                "restrict_oom_score_adj" => format!("{indent}restrict_oom_score_adj = true"),
                _ => line.to_string(),
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

/// The CRI's view of handler `name`: whether it is configured, and (2.x) its features.
fn handler(ctd: &Containerd, name: &str) -> Option<String> {
    let cri = Cri::connect(ctd).unwrap_or_else(|e| panic!("{e}"));
    let status = cri.runtime_status().unwrap_or_else(|e| panic!("{e}"));
    let config = status.info.get("config").cloned().unwrap_or_default();
    let config: serde_json::Value =
        serde_json::from_str(&config).unwrap_or_else(|e| panic!("{e}: {config}"));
    // 1.6: info.config.containerd.runtimes; 2.x: the same key, from the runtime plugin.
    let runtime_type = config["containerd"]["runtimes"][name]["runtimeType"]
        .as_str()
        .map(str::to_string);
    let listed = status.runtime_handlers.iter().find(|h| h.name == name);
    match (runtime_type, ctd.flavour.config_version >= 3) {
        (None, _) => {
            assert!(listed.is_none(), "{name} listed but not configured");
            None
        }
        (Some(rt), false) => Some(rt),
        (Some(rt), true) => {
            let features = listed
                .and_then(|h| h.features)
                .unwrap_or_else(|| panic!("{name} configured but not among {status:?}"));
            Some(format!(
                "{rt} rro={} userns={}",
                features.recursive_read_only_mounts, features.user_namespaces
            ))
        }
    }
}

fn installer_edits_the_default_config(like: &Containerd) {
    let built = Options::from_env().shim_dir;
    let node = tempfile::tempdir().unwrap();
    let host = node.path();
    let bin = host.join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let config = host.join("etc/containerd/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let install = |action: &str| {
        let out = run(
            std::process::Command::new("sh")
                .arg(wasmlet_tests::workspace_root().join("deploy/kubernetes/installer/install.sh"))
                .arg(action)
                .env("HOST_ROOT", host)
                .env("SHIM_SOURCE", &built)
                .env("ENGINES", "wasmtime")
                .env("RESTART", "none"),
            None,
            Duration::from_secs(60),
        );
        assert_eq!(out.code, Some(0), "install.sh {action}: {out:?}");
        out.stdout_str()
    };

    // containerd on the node's config, the node's /usr/local/bin first on its PATH.
    let opts = Options {
        flavour: like.flavour.clone(),
        shim_dir: bin.clone(),
        ..Options::from_env()
    };
    let ctd = Containerd::start_with(&opts, |dir, address| {
        let text = node_config(like, dir, address);
        std::fs::write(&config, &text).map_err(|e| e.to_string())?;
        Ok(text)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    crate::support::wait_for_cri(&ctd);
    assert_eq!(handler(&ctd, "wasmtime"), None);
    let original = std::fs::read_to_string(&config).unwrap();

    let restart = |ctd: &Containerd| {
        ctd.stop_daemon();
        std::fs::copy(&config, ctd.dir.join("config.toml")).unwrap();
        ctd.start_daemon().unwrap_or_else(|e| panic!("{e}"));
        crate::support::wait_for_cri(ctd);
    };
    let log = install("install");
    assert!(log.contains("flavour: containerd"), "{log}");
    let installed = std::fs::read_to_string(&config).unwrap();
    restart(&ctd);
    let expected = if ctd.flavour.config_version >= 3 {
        // The shim's -info: recursive read-only mounts and user namespaces.
        "io.containerd.wasmtime.v1 rro=true userns=true"
    } else {
        "io.containerd.wasmtime.v1"
    };
    assert_eq!(
        handler(&ctd, "wasmtime").as_deref(),
        Some(expected),
        "after install:\n{installed}\n{}",
        ctd.log()
    );
    assert!(handler(&ctd, "runc").is_some(), "runc kept");
    assert!(
        !ctd.log().contains("failed to load runtime info"),
        "{}",
        ctd.log()
    );

    let log = install("install");
    assert!(log.contains("already up to date"), "{log}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), installed);

    install("uninstall");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(!bin.join("containerd-shim-wasmtime-v1").exists());
    restart(&ctd);
    assert_eq!(handler(&ctd, "wasmtime"), None, "after uninstall");
    assert!(handler(&ctd, "runc").is_some());
}
