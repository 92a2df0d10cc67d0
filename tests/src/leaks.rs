//! Finding what a container may leave behind: processes, mounts, sockets, state.

use std::path::Path;

/// Command lines of all processes, by pid, with NULs shown as spaces.
pub fn processes() -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        if cmdline.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        Some((pid, text))
    })
    .collect()
}

/// Processes whose command line contains every one of `needles`.
pub fn processes_with(needles: &[&str]) -> Vec<(u32, String)> {
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|(pid, cmd)| *pid != me && needles.iter().all(|n| cmd.contains(n)))
        .collect()
}

/// The workload processes of container `id` whose bundle is `bundle` (the shim starts them
/// as `wasmlet-workload --wasmlet-workload <id> <bundle>`).
pub fn workload_processes(id: &str, bundle: &Path) -> Vec<(u32, String)> {
    processes_with(&[&format!("--wasmlet-workload {id} {} ", bundle.display())])
}

/// Mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Unmount everything at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mut mps = mounts_under(dir);
    mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mp in mps {
        let _ = nix::mount::umount2(mp.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The parent pid of `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// SIGKILL `pid` and all of its descendants.
pub fn kill_tree(pid: u32) {
    let all: Vec<u32> = processes().into_iter().map(|(p, _)| p).collect();
    for child in all.iter().copied().filter(|p| parent_of(*p) == Some(pid)) {
        kill_tree(child);
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Files called `name` anywhere below `dir`.
pub fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            found.extend(files_named(&p, name));
        } else if e.file_name() == name {
            found.push(p);
        }
    }
    found
}

/// The directories of cgroup `path` (as `linux.cgroupsPath` gives it) that exist in any
/// hierarchy under `/sys/fs/cgroup` (v1 controllers, the v2 unified mount, or a pure v2
/// root).
pub fn cgroup_dirs(path: &str) -> Vec<std::path::PathBuf> {
    let rel = path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join(rel))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    if root.join(rel).is_dir() {
        found.push(root.join(rel));
    }
    found
}

/// Remove the (empty) parent cgroup `path` that containerd's default cgroupsPath
/// (`/<namespace>/<id>`) creates per namespace; directories still in use stay.
pub fn remove_cgroup_parent(path: &str) {
    for d in cgroup_dirs(path) {
        let _ = std::fs::remove_dir(d);
    }
}

/// (inode, peer inode) of every Unix socket in the network namespace of `pid` (`ss -xa`,
/// run in that namespace).
pub fn unix_socket_peers(pid: u32) -> Vec<(u64, u64)> {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ss", "-xa"])
        .output()
        .expect("nsenter ss (util-linux, iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((f.get(5)?.parse().ok()?, f.get(7)?.parse().ok()?))
        })
        .collect()
}

/// `VmRSS` of `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
