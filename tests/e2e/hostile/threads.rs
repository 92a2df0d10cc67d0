//! A native program that starts threads without end (100000 asked) under `pids.max`: the
//! threads stop at the limit, the program sees the refusal as an error (EAGAIN), another container runs meanwhile, and SIGKILL ends it with nothing
//! left. The program is this test binary itself, run as `e2e --wasmlet-thread-bomb N` in a
//! rootfs holding it and the C libraries it links.

use std::io::Write;
use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::rootfs;

use super::engine::run_fixture;
use crate::isolation::{controller_file, default_spec, run_detached_config};
use crate::lifecycle::{remove, task_status, wait_stopped};
use crate::support::{ns, Test};

pub const THREADS: &[(&str, Test)] = &[(
    "hostile::thread_bomb_stops_at_pids_max",
    thread_bomb_stops_at_pids_max,
)];

const ARG: &str = "--wasmlet-thread-bomb";

/// In the container: when this binary was started as the thread bomb, start threads until
/// `N` run or one is refused, say how far it got, and wait to be killed.
pub fn thread_bomb_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(ARG) {
        return;
    }
    let wanted: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut started = 0;
    let mut refusal = String::from("none");
    for _ in 0..wanted {
        let spawned = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| loop {
                std::thread::park();
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => {
                refusal = e.to_string();
                break;
            }
        }
    }
    println!("threads={started} refused={refusal}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A rootfs holding this binary as `/bomb` and the libraries it links (glibc's).
fn bomb_rootfs() -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("the test binary");
    let mut files = vec![("/bomb".to_string(), std::fs::read(&exe).unwrap())];
    let ldd = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        if let Some(path) = path {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let dir = rootfs(&refs);
    // The program and its loader (the kernel executes both).
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in &files {
        let at = dir.path().join(path.trim_start_matches('/'));
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn thread_bomb_stops_at_pids_max(ctd: &Containerd) {
    let id = "threadbomb";
    let dir = bomb_rootfs();
    let mut spec = default_spec(ctd, id, dir.path(), &["/bomb", ARG, "100000"]);
    spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": 256});
    let log = dir.path().join("..").join("wasmlet-threadbomb.log");
    run_detached_config(ctd, id, &spec, Some(&log));
    let mut text = String::new();
    let said = eventually(Duration::from_secs(20), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("threads=")
    });
    assert!(said, "the bomb said how far it got: {text:?}");
    let started: u64 = text
        .split("threads=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The main thread counts too: 255 more at most, and the refusal reached the program.
    assert!((100..256).contains(&started), "{text}");
    assert!(text.contains("Resource temporarily unavailable"), "{text}");
    // The container's cgroup holds them all, at its limit.
    let (_, pid) = task_status(ctd, id).expect("task listed");
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_string()))
        .unwrap_or_default();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let rel = own
        .lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_string()))
        .or_else(|| {
            own.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default();
    let max = controller_file("pids", rel.trim_start_matches('/'), "pids.max");
    assert_eq!(
        std::fs::read_to_string(&max).unwrap_or_default().trim(),
        "256",
        "{max}"
    );
    assert_eq!(threads, (started + 1).to_string(), "the bomb: {text}");
    let other = run_fixture(ctd, "beside-threadbomb", "hello", &[]);
    assert_eq!(other.stdout_str(), "hello from wasm\n", "{other:?}");
    ctd.ctr(ns(ctd), &["task", "kill", "-s", "SIGKILL", id])
        .ok("ctr task kill");
    wait_stopped(ctd, id);
    remove(ctd, id, 137);
    let _ = std::fs::remove_file(&log);
}
