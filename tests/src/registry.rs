//! A private OCI registry for the pull tests: Debian's `docker-registry` (the CNCF
//! Distribution registry v2) on a free `127.0.0.1` port, plain HTTP, with storage in its own
//! temporary directory, optionally behind basic auth (htpasswd, bcrypt). Stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cmd::eventually;

/// Where Debian installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// Debian's tools that other users' images come from and that inspect ours.
pub const SKOPEO: &str = "/usr/bin/skopeo";
pub const UMOCI: &str = "/usr/bin/umoci";

/// The version of the Bytecode Alliance's `wkg` that `make test` builds (into
/// `<target>/bench/bin`).
pub const WKG_VERSION: &str = "0.16.1";

/// The `wkg` binary: `WASMLET_WKG`, else where `make test` installs it.
pub fn wkg() -> PathBuf {
    std::env::var_os("WASMLET_WKG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("bench/bin/wkg"))
}

/// Why the `wkg` tests cannot run here, with what to do.
pub fn wkg_unavailable() -> Option<String> {
    let wkg = wkg();
    (!wkg.exists()).then(|| {
        format!(
            "{} missing: `make test` builds it (cargo install wkg@{WKG_VERSION}), or set WASMLET_WKG",
            wkg.display()
        )
    })
}

/// Why the registry tests cannot run here, with what to do.
pub fn unavailable() -> Option<String> {
    let missing: Vec<&str> = [REGISTRY_BIN, SKOPEO, UMOCI]
        .into_iter()
        .filter(|b| !Path::new(b).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} missing: `make test` installs Debian's docker-registry, skopeo and umoci (`make deps`)",
            missing.join(", ")
        )
    })
}

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:<port>`: the host part of image references pushed here.
    pub host: String,
    /// `(user, password)` when it wants basic auth.
    pub credentials: Option<(String, String)>,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry; with `credentials`, every request needs them.
    pub fn start(credentials: Option<(&str, &str)>) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("wasmlet-registry-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        // A free port: bind, note it, release it for the registry.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let hash = bcrypt::hash(password, 4).map_err(|e| e.to_string())?;
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).map_err(|e| e.to_string())?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wasmlet\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {REGISTRY_BIN}: {e}"))?;
        let registry = Registry {
            host,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            child,
            dir,
        };
        let answers = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(&registry.host).is_ok()
        });
        if !answers {
            return Err(format!(
                "the registry did not listen on {}: {}",
                registry.host,
                registry.log()
            ));
        }
        Ok(registry)
    }

    /// The registry's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Its storage directory (blobs and repositories).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Tell the containerd whose directory is `containerd_dir` how to reach this registry,
    /// as a cluster admin would: `certs.d/<host>/hosts.toml` under its CRI `config_path`,
    /// plain HTTP.
    pub fn write_hosts_toml(&self, containerd_dir: &Path) -> Result<PathBuf, String> {
        let dir = containerd_dir.join("certs.d").join(&self.host);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("hosts.toml");
        let text = format!(
            "server = \"http://{h}\"\n\n[host.\"http://{h}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            h = self.host
        );
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// `ctr`'s `--user` value for it, if it wants one.
    pub fn user_arg(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
