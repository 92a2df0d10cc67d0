//! A private containerd: its own root, state, sockets and config under a temporary
//! directory, the shims under test first on its `PATH`. Stopped, and everything it left
//! (shims, workloads, mounts) cleaned, on drop.
//!
//! Two versions ([`Flavour`]): Debian's 1.6.20 (`/usr/bin`, config `version = 2`) and the
//! containerd 2.3.4 of `../shared` (config `version = 3`, its own `ctr` and runc shim). Each
//! gets the CRI runtime entries the project gives users (`deploy/containerd/`), verbatim.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cmd::{eventually, run, Output};

/// A containerd release the harness can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavour {
    /// Short name used in test names and `WASMLET_CONTAINERD`: `1.6` or `2.3`.
    pub name: &'static str,
    /// Directory holding `containerd` and `ctr` (and, for 2.x, its runc shim).
    pub bin_dir: PathBuf,
    /// The config schema it is given: 2 (containerd 1.x) or 3 (2.x).
    pub config_version: u32,
}

/// Where `make` unpacks the containerd 2.3.4 of `../shared`.
pub const SHARED_CONTAINERD: &str = "shared/containerd-2.3.4";

impl Flavour {
    /// Debian's containerd 1.6.20.
    pub fn debian() -> Flavour {
        Flavour {
            name: "1.6",
            bin_dir: PathBuf::from("/usr/bin"),
            config_version: 2,
        }
    }

    /// containerd 2.3.4: `WASMLET_CONTAINERD2` (a directory with `bin/containerd`), else what
    /// `make` unpacked from `../shared` into the target directory.
    pub fn shared() -> Flavour {
        let dir = std::env::var_os("WASMLET_CONTAINERD2")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::target_dir().join(SHARED_CONTAINERD));
        Flavour {
            name: "2.3",
            bin_dir: dir.join("bin"),
            config_version: 3,
        }
    }

    /// Both versions, in the order the suite runs them.
    pub fn all() -> [Flavour; 2] {
        [Flavour::debian(), Flavour::shared()]
    }

    pub fn containerd(&self) -> PathBuf {
        self.bin_dir.join("containerd")
    }

    pub fn ctr(&self) -> PathBuf {
        self.bin_dir.join("ctr")
    }

    /// Why this version cannot be started here, if it cannot: not installed, or left out by
    /// `WASMLET_CONTAINERD` (a list of names, default all).
    pub fn unavailable(&self) -> Option<String> {
        let wanted = std::env::var("WASMLET_CONTAINERD").unwrap_or_default();
        if !wanted.trim().is_empty() && !wanted.split_whitespace().any(|v| v == self.name) {
            return Some(format!(
                "containerd {} not in WASMLET_CONTAINERD={wanted:?}",
                self.name
            ));
        }
        for tool in [self.containerd(), self.ctr()] {
            if !tool.exists() {
                return Some(match self.config_version {
                    2 => format!(
                        "{} missing: apt-get install containerd runc",
                        tool.display()
                    ),
                    _ => format!(
                        "{} missing: containerd 2.3.4 comes from ../shared/containerd/\
                         containerd-2.3.4-linux-amd64.tar.xz, which `make test` unpacks \
                         when ../shared is beside the project (or set WASMLET_CONTAINERD2 \
                         to a directory with bin/containerd and bin/ctr)",
                        tool.display()
                    ),
                });
            }
        }
        None
    }

    /// The CRI runtime entries the project gives users for this version, verbatim.
    pub fn runtime_entries(&self) -> Result<String, String> {
        let file = match self.config_version {
            2 => "config-1.x.toml",
            _ => "config-2.x.toml",
        };
        let path = crate::workspace_root().join("deploy/containerd").join(file);
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How to start containerd.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which containerd.
    pub flavour: Flavour,
    /// Directory holding `containerd-shim-*-v1`.
    pub shim_dir: PathBuf,
    /// containerd's log level; `debug` also turns on the shims' debug logs.
    pub log_level: String,
    /// Extra TOML appended to the config.
    pub extra_config: String,
    /// Enable the CRI plugin (our runtime handlers, as `deploy/containerd/` gives them, a local sandbox image,
    /// CNI on a loopback-range bridge) with this subnet, as kubelet's containerd would be.
    pub cri_subnet: Option<String>,
    /// The sandbox (pause) image CRI uses; [`PAUSE_IMAGE`] unless a test brings its own.
    pub sandbox_image: String,
}

/// The sandbox (pause) image the CRI tests build and import; nothing can be pulled.
pub const PAUSE_IMAGE: &str = "docker.io/wasmlet/pause:e2e";

impl Options {
    /// Shims from `WASMLET_SHIM_DIR`, else the release directory of cargo's target dir.
    pub fn from_env() -> Self {
        let shim_dir = std::env::var_os("WASMLET_SHIM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::target_dir().join("release"));
        Options {
            flavour: Flavour::debian(),
            shim_dir,
            log_level: std::env::var("WASMLET_CONTAINERD_LOG").unwrap_or_else(|_| "info".into()),
            extra_config: String::new(),
            cri_subnet: None,
            sandbox_image: PAUSE_IMAGE.to_string(),
        }
    }

    /// [`Options::from_env`] for each containerd version, newest first (2.x, then 1.6).
    pub fn newest_first() -> Vec<Options> {
        Flavour::all()
            .into_iter()
            .rev()
            .map(|flavour| Options {
                flavour,
                ..Options::from_env()
            })
            .collect()
    }
}

/// A running private containerd.
pub struct Containerd {
    pub flavour: Flavour,
    /// The namespace tests use on this containerd: `wasmlet-e2e-` and the end of its
    /// directory's name, so that each containerd's containers have cgroups of their own.
    pub ns: String,
    pub dir: PathBuf,
    pub address: PathBuf,
    pub cache_dir: PathBuf,
    /// The daemon's `PATH`: the shims under test, then this version's binaries.
    path: String,
    child: Mutex<Option<Child>>,
    _tmp: tempfile::TempDir,
}

/// Why the harness cannot run here; the message says what to do.
pub fn unavailable_reason(opts: &Options) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root (containerd, mounts): run `make test` as root".into());
    }
    if let Some(why) = opts.flavour.unavailable() {
        return Some(why);
    }
    let shim = opts.shim_dir.join("containerd-shim-wasmtime-v1");
    if !shim.exists() {
        return Some(format!(
            "{} missing: run `make test` (or cargo build --release -p wasmlet-shim)",
            shim.display()
        ));
    }
    None
}

impl Containerd {
    /// Start containerd and wait until it answers.
    pub fn start(opts: &Options) -> Result<Containerd, String> {
        Containerd::start_with(opts, |dir, address| config(opts, dir, address))
    }

    /// Start containerd on the config `make_config` writes for its directory and gRPC
    /// address (a node's own config, say); `opts` gives the version and the shims' `PATH`.
    pub fn start_with(
        opts: &Options,
        make_config: impl FnOnce(&Path, &Path) -> Result<String, String>,
    ) -> Result<Containerd, String> {
        let tmp = tempfile::Builder::new()
            .prefix("wasmlet-ctd-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("creating containerd dir: {e}"))?;
        let dir = tmp.path().to_path_buf();
        // Traversable by anyone, as containerd makes /run/containerd and /var/lib/containerd
        // (0711): a container in a user namespace reaches its rootfs as an unprivileged uid.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| format!("opening up containerd dir: {e}"))?;
        }
        let address = dir.join("containerd.sock");
        let cache_dir = dir.join("cache");
        std::fs::write(dir.join("config.toml"), make_config(&dir, &address)?)
            .map_err(|e| e.to_string())?;
        let path = format!(
            "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            opts.shim_dir.display(),
            opts.flavour.bin_dir.display()
        );
        let tag = dir.file_name().unwrap_or_default().to_string_lossy();
        let ns = format!("wasmlet-e2e-{}", &tag[tag.len().saturating_sub(6)..]).to_lowercase();
        let ctd = Containerd {
            flavour: opts.flavour.clone(),
            ns,
            dir,
            address,
            cache_dir,
            path,
            child: Mutex::new(None),
            _tmp: tmp,
        };
        ctd.start_daemon()?;
        Ok(ctd)
    }

    /// Start the daemon (again) on this containerd's config, and wait until it answers.
    pub fn start_daemon(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(self.flavour.containerd())
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env_clear()
            .env("PATH", &self.path)
            .env("WASMLET_CACHE_DIR", &self.cache_dir)
            // The shims log at info (compile cache outcomes) into containerd's log.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let ready = eventually(Duration::from_secs(30), || {
            self.ctr_timeout("default", &["version"], None, Duration::from_secs(5))
                .code
                == Some(0)
        });
        if !ready {
            return Err(format!("containerd did not start:\n{}", self.log()));
        }
        Ok(())
    }

    /// Stop the daemon (SIGTERM, as an upgrade or `systemctl restart` does); its shims and
    /// their workloads keep running.
    pub fn stop_daemon(&self) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let stopped = eventually(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Run `ctr` in namespace `ns` (60 s deadline).
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Output {
        self.ctr_timeout(ns, args, None, Duration::from_secs(60))
    }

    /// Run `ctr` with stdin input and a deadline.
    pub fn ctr_timeout(
        &self,
        ns: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Output {
        let mut cmd = self.ctr_command(ns);
        cmd.args(args);
        run(&mut cmd, stdin, timeout)
    }

    /// A `ctr` command for this containerd and namespace, without arguments yet.
    pub fn ctr_command(&self, ns: &str) -> Command {
        let mut cmd = Command::new(self.flavour.ctr());
        cmd.arg("--address").arg(&self.address).arg("-n").arg(ns);
        cmd
    }

    /// The bundle directory containerd makes for a task.
    pub fn bundle_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(ns)
            .join(id)
    }

    /// The socket a shim grouped under `group` listens on (as containerd-shim computes it).
    pub fn shim_socket(&self, ns: &str, group: &str) -> PathBuf {
        let key = format!("{}/{ns}/{group}", self.address.display());
        PathBuf::from(format!(
            "/run/containerd/s/{:x}",
            Sha256::digest(key.as_bytes())
        ))
    }
}

/// The plugins no test uses and that would reach outside the private paths (NRI's socket
/// under /var/run) or need what these machines lack.
pub const DISABLED: &[&str] = &[
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];
/// containerd 2.x's plugins of the same kind.
pub const DISABLED_2X: &[&str] = &[
    "io.containerd.nri.v1.nri",
    "io.containerd.snapshotter.v1.erofs",
    "io.containerd.snapshotter.v1.blockfile",
];
/// The CRI plugins, disabled unless a test asks for CRI.
const CRI_1X: &[&str] = &["io.containerd.grpc.v1.cri"];
const CRI_2X: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.cri.v1.runtime",
    "io.containerd.cri.v1.images",
    "io.containerd.podsandbox.controller.v1.podsandbox",
];

/// containerd's config for `opts` in `dir`, in the schema of its version.
fn config(opts: &Options, dir: &Path, address: &Path) -> Result<String, String> {
    let v2 = opts.flavour.config_version >= 3;
    let mut disabled: Vec<&str> = DISABLED.to_vec();
    if v2 {
        disabled.extend(DISABLED_2X);
    }
    let cri = match &opts.cri_subnet {
        None => {
            disabled.extend(if v2 { CRI_2X } else { CRI_1X });
            String::new()
        }
        Some(subnet) => cri_config(opts, dir, subnet)?,
    };
    let disabled = disabled
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        r#"version = {version}
root = "{d}/root"
state = "{d}/state"
{imports}disabled_plugins = [{disabled}]

[grpc]
  address = "{a}"

[ttrpc]
  address = "{a}.ttrpc"

[debug]
  level = "{level}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{cri}
{extra}
"#,
        version = opts.flavour.config_version,
        // 2.x reads /etc/containerd/conf.d/*.toml unless told otherwise.
        imports = if v2 { "imports = []\n" } else { "" },
        d = dir.display(),
        a = address.display(),
        level = opts.log_level,
        extra = opts.extra_config,
    ))
}

/// The CRI plugin's configuration and its CNI network (written under `dir`): a bridge of its
/// own with `subnet` (a loopback range: these machines have no other), no masquerading, and
/// `wasmlet-cni-localnet` chained after it so that the host reaches pods at their IPs.
/// `restrict_oom_score_adj`, because these machines cannot lower a score. The wasmlet
/// handlers are exactly the entries of `deploy/containerd/` for this version.
fn cri_config(opts: &Options, dir: &Path, subnet: &str) -> Result<String, String> {
    let cni = dir.join("cni");
    std::fs::create_dir_all(&cni).map_err(|e| e.to_string())?;
    let bin = cni_bin_dir(dir)?;
    let gateway = gateway(subnet)?;
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "wasmlet-e2e",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge_name(dir),
            "isGateway": false,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet}]],
                "dataDir": dir.join("cni-ipam"),
            }
        }, {
            "type": "wasmlet-cni-localnet",
            "bridge": bridge_name(dir),
            "subnet": subnet,
            "gateway": gateway,
        }, {
            // Pods' hostPort mappings (critest's port-mapping tests).
            "type": "portmap",
            "capabilities": {"portMappings": true},
        }]
    });
    std::fs::write(
        cni.join("10-wasmlet.conflist"),
        serde_json::to_vec_pretty(&conflist).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let ours = opts.flavour.runtime_entries()?;
    let (cni, bin) = (cni.display(), bin.display());
    let sandbox = &opts.sandbox_image;
    // Registries as a cluster admin configures them: `certs.d/<host>/hosts.toml`.
    let certs = dir.join("certs.d");
    let certs = certs.display();
    Ok(if opts.flavour.config_version >= 3 {
        format!(
            r#"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{sandbox}"

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "{certs}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{bin}"]
    conf_dir = "{cni}"

{ours}"#
        )
    } else {
        format!(
            r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"

{ours}"#
        )
    })
}

/// The bridge of the CRI network of the containerd in `dir`.
fn bridge_name(dir: &Path) -> String {
    let tag = format!("{:x}", Sha256::digest(dir.to_string_lossy().as_bytes()));
    format!("wlt{}", &tag[..8])
}

/// The first address of `subnet` (`a.b.c.0/24` gives `a.b.c.1`), which host-local never
/// hands to a pod.
fn gateway(subnet: &str) -> Result<String, String> {
    let net: std::net::Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("bad subnet {subnet:?}"))?;
    Ok(std::net::Ipv4Addr::from(u32::from(net) + 1).to_string())
}

/// A CNI plugin directory: Debian's plugins, and `wasmlet-cni-localnet` (built next to the
/// running test binary, or in the release directory).
fn cni_bin_dir(dir: &Path) -> Result<PathBuf, String> {
    let bin = dir.join("cni-bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let debian = std::fs::read_dir("/usr/lib/cni")
        .map_err(|e| format!("/usr/lib/cni: {e} (apt-get install containernetworking-plugins)"))?;
    for plugin in debian.flatten() {
        std::os::unix::fs::symlink(plugin.path(), bin.join(plugin.file_name()))
            .map_err(|e| e.to_string())?;
    }
    const LOCALNET: &str = "wasmlet-cni-localnet";
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let candidates = [
        exe.parent().map(|d| d.join(LOCALNET)),
        exe.parent()
            .and_then(Path::parent)
            .map(|d| d.join(LOCALNET)),
        Some(crate::target_dir().join("release").join(LOCALNET)),
    ];
    let localnet = candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!("{LOCALNET} not built: cargo build --release -p wasmlet-tests --bins")
        })?;
    std::os::unix::fs::symlink(localnet, bin.join(LOCALNET)).map_err(|e| e.to_string())?;
    Ok(bin)
}

impl Containerd {
    /// Kill and remove every task and container a test left, in every namespace.
    pub fn remove_everything(&self) {
        let t = Duration::from_secs(20);
        let namespaces = self.ctr_timeout("default", &["namespaces", "ls", "-q"], None, t);
        for ns in namespaces.stdout_str().lines() {
            let tasks = self.ctr_timeout(ns, &["task", "ls", "-q"], None, t);
            for id in tasks.stdout_str().lines() {
                self.ctr_timeout(ns, &["task", "kill", "-a", "-s", "SIGKILL", id], None, t);
                eventually(Duration::from_secs(5), || {
                    self.ctr_timeout(ns, &["task", "delete", id], None, t).code == Some(0)
                });
            }
            let containers = self.ctr_timeout(ns, &["containers", "ls", "-q"], None, t);
            for id in containers.stdout_str().lines() {
                self.ctr_timeout(ns, &["containers", "rm", id], None, t);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_everything();
        if let Some(keep) = std::env::var_os("WASMLET_KEEP_LOG") {
            // A directory keeps every containerd's log; a file, the last one's.
            let keep = PathBuf::from(keep);
            let keep = match keep.is_dir() {
                true => keep.join(format!(
                    "{}.log",
                    self.dir.file_name().unwrap_or_default().to_string_lossy()
                )),
                false => keep,
            };
            let _ = std::fs::copy(self.dir.join("containerd.log"), keep);
        }
        self.stop_daemon();
        // Shims that outlived containerd, and their workloads.
        let shims = crate::leaks::processes_with(&[&self.address.to_string_lossy()]);
        for (pid, _) in &shims {
            crate::leaks::kill_tree(*pid);
        }
        for addr in crate::leaks::files_named(&self.dir.join("state"), "address") {
            if let Ok(a) = std::fs::read_to_string(&addr) {
                let _ = std::fs::remove_file(a.trim().trim_start_matches("unix://"));
            }
        }
        crate::leaks::unmount_under(&self.dir);
        crate::leaks::remove_cgroup_parent(&self.ns);
        // The CRI network's bridge (with its address and routes), if pods made one.
        if self.dir.join("cni").exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", &bridge_name(&self.dir)])
                .stderr(Stdio::null())
                .status();
        }
    }
}
