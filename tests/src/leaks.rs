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

/// The workload processes of container `id` (the shim starts them as
/// `wasmlet-workload --wasmlet-workload <id>`).
pub fn workload_processes(id: &str) -> Vec<(u32, String)> {
    processes_with(&[&format!("--wasmlet-workload {id} ")])
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

/// SIGKILL every process whose command line contains `needle`.
pub fn kill_processes_mentioning(needle: &str) {
    for (pid, _) in processes_with(&[needle]) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
