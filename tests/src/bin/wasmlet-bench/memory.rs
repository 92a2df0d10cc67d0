//! Memory: RSS and PSS of a shim's whole process tree while its workload sleeps.

use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::leaks::{parent_of, processes, processes_with};

use crate::{engine_of, Runtime, BUSYBOX_IMAGE, NATIVE, NS, RUNC, SLEEP_IMAGE};

/// (RSS, PSS) in KiB of `pid` and all of its descendants.
pub fn tree_memory(pid: u32) -> (u64, u64, usize) {
    let all: Vec<u32> = processes().into_iter().map(|(p, _)| p).collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .copied()
                .filter(|p| parent_of(*p) == Some(parent)),
        );
        i += 1;
    }
    let field = |file: &str, key: &str, p: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/{file}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let rss = tree.iter().map(|p| field("status", "VmRSS:", *p)).sum();
    let pss = tree.iter().map(|p| field("smaps_rollup", "Pss:", *p)).sum();
    (rss, pss, tree.len())
}

pub fn idle_memory(
    ctd: &Containerd,
    rt: &Runtime,
    image: &str,
    args: &[&str],
) -> (u64, u64, usize) {
    let slug: Vec<&str> = rt
        .name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let id = format!("mem-{}", slug.join("-"));
    let mut cmd = vec!["run", "-d", "--runtime", rt.runtime, image, &id];
    cmd.extend_from_slice(args);
    ctd.ctr(NS, &cmd).ok("ctr run -d");
    let needle = format!("-id {id} ");
    let address = ctd.address.to_string_lossy().into_owned();
    let mut shim = None;
    eventually(Duration::from_secs(10), || {
        shim = processes_with(&[rt.shim, &needle, &address])
            .first()
            .map(|p| p.0);
        shim.is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    // Look again: the first match may have been the short-lived `start` invocation.
    let shim = processes_with(&[rt.shim, &needle, &address])
        .into_iter()
        .find(|(_, cmd)| !cmd.contains(" start"))
        .map(|p| p.0)
        .or(shim);
    let shim = shim.unwrap_or_else(|| {
        panic!(
            "no {} process for {id}: {:?}",
            rt.shim,
            processes_with(&[rt.shim])
        )
    });
    let mem = tree_memory(shim);

    ctd.ctr(NS, &["task", "kill", "-s", "SIGKILL", &id])
        .ok("kill");
    eventually(Duration::from_secs(10), || {
        ctd.ctr(NS, &["task", "delete", &id]).code == Some(0)
    });
    ctd.ctr(NS, &["container", "rm", &id]).ok("rm");
    mem
}

/// The shim trees of runc, our engines and our native run, each while its workload sleeps;
/// prints the table and returns (name, PSS) per row, runc's first.
pub fn idle_table(ctd: &Containerd, engines: &[&Runtime]) -> Vec<(&'static str, u64)> {
    let sleep: &[&str] = &["/bin/busybox", "sleep", "300"];
    let mut rows: Vec<(&'static str, (u64, u64, usize))> = vec![(
        "runc: shim + busybox sleep",
        idle_memory(ctd, &RUNC, BUSYBOX_IMAGE, sleep),
    )];
    for engine in engines {
        let name: &'static str = Box::leak(
            format!("wasmlet ({}): shim + sleep.wasm", engine_of(engine)).into_boxed_str(),
        );
        rows.push((name, idle_memory(ctd, engine, SLEEP_IMAGE, &[])));
    }
    rows.push((
        "wasmlet: shim + native busybox sleep",
        idle_memory(ctd, &NATIVE, BUSYBOX_IMAGE, sleep),
    ));
    let (rss0, pss0) = (rows[0].1 .0 as f64, rows[0].1 .1 as f64);
    println!("\nshim process tree while the workload sleeps (KiB)   RSS      PSS  procs   RSS/runc PSS/runc");
    for (name, (rss, pss, procs)) in &rows {
        println!(
            "  {name:<44} {rss:>7} {pss:>8} {procs:>5}   {:>7.2}x {:>7.2}x",
            *rss as f64 / rss0,
            *pss as f64 / pss0
        );
    }
    rows.into_iter().map(|(n, (_, pss, _))| (n, pss)).collect()
}
