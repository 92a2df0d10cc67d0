//! The container's cgroup, managed from the shim through libcgroups on cgroup v1, hybrid
//! and v2 hosts: created at `linux.cgroupsPath` (path form, or systemd's
//! `slice:prefix:name` form expanded to its path), resources applied, the workload added
//! before it runs anything; then freezing, pids, metrics, updates, OOM counts and removal.
//!
//! The cgroup is managed directly in the cgroup filesystem even for the systemd form: the
//! shim does not ask systemd to create a scope.

mod metrics;
mod oom;

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix_libcgroups::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::error::{Error, Result};

pub use metrics::{v1_metrics, v2_metrics};

/// How long [`Cgroup::remove`] waits for killed processes to leave the cgroup.
const REMOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The cgroup path for a container: `linux.cgroupsPath` (expanded when it has the systemd
/// form), or `/<namespace>/<id>` as containerd's own default spec says.
pub fn path_for(spec: &Spec, namespace: &str, id: &str) -> Result<PathBuf> {
    let given = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .filter(|p| !p.as_os_str().is_empty());
    let Some(given) = given else {
        return Ok(PathBuf::from(format!("/{namespace}/{id}")));
    };
    let text = given.to_string_lossy();
    if text.starts_with('/') {
        if text.split('/').any(|c| c == "..") {
            return Err(Error::SpecInvalid {
                field: "linux.cgroupsPath".into(),
                message: format!("{text:?} must not contain .."),
            });
        }
        return Ok(given);
    }
    systemd_path(&text).ok_or_else(|| Error::SpecInvalid {
        field: "linux.cgroupsPath".into(),
        message: format!(
            "{text:?} is neither an absolute path nor systemd's slice:prefix:name form"
        ),
    })
}

/// Expand systemd's `slice:prefix:name` into the path systemd would give the unit:
/// `kubepods-besteffort.slice:cri-containerd:abc` becomes
/// `/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope`.
pub fn systemd_path(form: &str) -> Option<PathBuf> {
    let mut parts = form.split(':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() || name.contains('/') || slice.contains('/') {
        return None;
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = PathBuf::from("/");
    if slice != "-.slice" {
        let stem = slice.strip_suffix(".slice")?;
        if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
            return None;
        }
        let mut acc = String::new();
        for piece in stem.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(piece);
            path.push(format!("{acc}.slice"));
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Some(path)
}

fn cg_err(path: &Path, what: &str) -> impl FnOnce(libcgroups::common::AnyManagerError) -> Error {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| Error::Cgroup {
        path,
        message: format!("{what}: {e}"),
    }
}

/// One container's cgroup.
pub struct Cgroup {
    path: PathBuf,
    manager: AnyCgroupManager,
    v2: bool,
}

impl Cgroup {
    /// The manager for `path` (nothing is created until [`Cgroup::add`]).
    pub fn open(path: &Path) -> Result<Cgroup> {
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: false,
            container_name: String::new(),
        })
        .map_err(|e| Error::Cgroup {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let v2 = matches!(manager, AnyCgroupManager::V2(_));
        Ok(Cgroup {
            path: path.to_path_buf(),
            manager,
            v2,
        })
    }

    /// The path, as `linux.cgroupsPath` gives it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create the cgroup (in every hierarchy) and move `pid` into it.
    pub fn add(&self, pid: u32) -> Result<()> {
        self.manager
            .add_task(Pid::from_raw(pid as i32))
            .map_err(cg_err(&self.path, "adding the workload"))
    }

    /// Apply `resources` (also what Update does).
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.manager
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(cg_err(&self.path, "applying resources"))
    }

    /// Freeze (Pause) or thaw (Resume) every process of the container.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager.freeze(state).map_err(cg_err(
            &self.path,
            if frozen { "freezing" } else { "thawing" },
        ))
    }

    /// Whether the container is frozen (paused) now. `false` when the state cannot be read.
    pub fn frozen(&self) -> bool {
        let file = if self.v2 {
            libcgroups::v2::util::get_unified_mount_point()
                .ok()
                .map(|m| m.join(self.rel()).join("cgroup.freeze"))
        } else {
            libcgroups::v1::util::get_subsystem_mount_point(
                &libcgroups::v1::ControllerType::Freezer,
            )
            .ok()
            .map(|m| m.join(self.rel()).join("freezer.state"))
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|state| matches!(state.trim(), "1" | "FROZEN" | "FREEZING"))
    }

    /// Every process in the container.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let mut pids: Vec<u32> = self
            .manager
            .get_all_pids()
            .map_err(cg_err(&self.path, "listing processes"))?
            .into_iter()
            .map(|p| p.as_raw() as u32)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// The metrics containerd expects for this host's cgroup version, as an `Any`.
    pub fn metrics(&self) -> Result<Any> {
        let stats = self
            .manager
            .stats()
            .map_err(cg_err(&self.path, "reading statistics"))?;
        let oom_kills = self.oom_kills();
        let (type_url, value) = if self.v2 {
            let m = v2_metrics(&stats, oom_kills);
            (
                "io.containerd.cgroups.v2.Metrics",
                containerd_shim::protos::protobuf::Message::write_to_bytes(&m),
            )
        } else {
            let m = v1_metrics(&stats, oom_kills);
            (
                "io.containerd.cgroups.v1.Metrics",
                containerd_shim::protos::protobuf::Message::write_to_bytes(&m),
            )
        };
        let value = value.map_err(|e| Error::Cgroup {
            path: self.path.clone(),
            message: format!("encoding metrics: {e}"),
        })?;
        Ok(Any {
            type_url: type_url.to_string(),
            value,
            ..Default::default()
        })
    }

    /// The memory controller's directory of this cgroup.
    fn memory_dir(&self) -> Option<PathBuf> {
        let mount = if self.v2 {
            libcgroups::v2::util::get_unified_mount_point().ok()?
        } else {
            libcgroups::v1::util::get_subsystem_mount_point(&libcgroups::v1::ControllerType::Memory)
                .ok()?
        };
        Some(mount.join(self.rel()))
    }

    /// How many times the kernel's OOM killer has killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.memory_dir()
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|text| oom::oom_kill_count(&text))
            .unwrap_or(0)
    }

    /// Run `on_oom` on a thread of its own after each OOM kill in this cgroup, until the
    /// cgroup is removed.
    pub fn watch_oom(&self, on_oom: Box<dyn Fn() + Send>) -> Result<()> {
        let dir = self.memory_dir().ok_or_else(|| Error::Cgroup {
            path: self.path.clone(),
            message: "no memory controller to watch for OOM kills".into(),
        })?;
        let watch = if self.v2 {
            oom::Watch::V2 { dir }
        } else {
            oom::Watch::V1 { dir }
        };
        watch.spawn(on_oom)
    }

    fn rel(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
    }

    /// Kill what is left in the cgroup and remove it from every hierarchy. A killed process
    /// stays in the cgroup until the kernel has torn it down, which for a workload that
    /// reserved gigabytes of address space (Wasmtime's pooling allocator) on a busy host can
    /// take longer than libcgroups' own retries (about 100 ms): keep asking for a while.
    pub fn remove(&self) -> Result<()> {
        // A frozen cgroup's processes cannot die; thaw first (harmless otherwise).
        let _ = self.freeze(false);
        let deadline = std::time::Instant::now() + REMOVE_WAIT;
        loop {
            match self.manager.remove() {
                Ok(()) => return Ok(()),
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => return Err(cg_err(&self.path, "removing")(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: Option<&str>) -> Spec {
        let mut v = serde_json::json!({"ociVersion": "1.0.2", "linux": {}});
        if let Some(p) = path {
            v["linux"]["cgroupsPath"] = p.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn path_form_and_default() {
        assert_eq!(
            path_for(&spec(Some("/k8s.io/abc")), "k8s.io", "abc").unwrap(),
            Path::new("/k8s.io/abc")
        );
        assert_eq!(
            path_for(&spec(None), "default", "hello").unwrap(),
            Path::new("/default/hello")
        );
        let e = path_for(&spec(Some("/a/../../etc")), "n", "i")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cgroupsPath"), "{e}");
    }

    #[test]
    fn systemd_form_expands_like_systemd() {
        assert_eq!(
            path_for(
                &spec(Some("kubepods-besteffort-pod12.slice:cri-containerd:abc")),
                "k8s.io",
                "abc"
            )
            .unwrap(),
            Path::new(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            systemd_path(":docker:xyz").unwrap(),
            Path::new("/system.slice/docker-xyz.scope")
        );
        assert_eq!(
            systemd_path("-.slice:p:n").unwrap(),
            Path::new("/p-n.scope")
        );
        assert!(systemd_path("bad-.slice:p:n").is_none());
        assert!(systemd_path("relative/path").is_none());
        let e = path_for(&spec(Some("relative")), "n", "i")
            .unwrap_err()
            .to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
    }
}
