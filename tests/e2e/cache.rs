//! The compile cache through a real containerd: filled on the first start, hit on the
//! next, a damaged entry recovered, and one compile for many concurrent starts.

use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{import_image, module_image, rootfs, unique, wat};

use crate::support::{assert_clean, ns, rt, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "cache::filled_then_hit_then_recovered",
        filled_then_hit_then_recovered,
    ),
    (
        "cache::concurrent_starts_compile_once",
        concurrent_starts_compile_once,
    ),
];

/// The compile-cache outcome the shim logged for container `id`, once it is in the log
/// (containerd copies a shim's log into its own; under load that can lag).
pub(crate) fn outcome(ctd: &Containerd, id: &str) -> String {
    let needle = format!("{id}: ");
    let mut found = String::new();
    eventually(Duration::from_secs(30), || {
        found = ctd
            .log()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains("compile cache: "))
            .filter_map(|l| l.split("compile cache: ").nth(1))
            .map(|rest| {
                rest.split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .next()
            .unwrap_or_default();
        !found.is_empty()
    });
    found
}

/// The cache entry the shim logged for container `id`.
fn entry_of(ctd: &Containerd, id: &str) -> std::path::PathBuf {
    let needle = format!("{id}: ");
    let log = ctd.log();
    let line = log
        .lines()
        .find(|l| l.contains(&needle) && l.contains("compile cache: "))
        .unwrap_or_else(|| panic!("no compile cache line for {id}"));
    let path = line
        .split_whitespace()
        .find(|w| {
            w.contains(&format!("/{}/", crate::support::engine(ctd).name)) && w.contains(".bin")
        })
        .expect("entry path in the log line");
    std::path::PathBuf::from(path.trim_end_matches(['"', '\\']))
}

fn filled_then_hit_then_recovered(ctd: &Containerd) {
    let dir = rootfs(&[("/m.wasm", unique(wat("hello"), "filled_then_hit"))]);
    let run = |id: &str| {
        let out = run_rootfs(ctd, id, dir.path(), &[], &["/m.wasm"]).ok("ctr run");
        assert_eq!(out.stdout_str(), "hello from wasm\n");
        assert_clean(ctd, id);
    };
    run("cache-first");
    if !crate::support::engine(ctd).compile_cache && outcome(ctd, "cache-first") == "NotUsed" {
        // The engine interprets (WasmEdge without its AOT compiler): it says so, and runs
        // the module each time all the same.
        run("cache-second");
        assert_eq!(outcome(ctd, "cache-second"), "NotUsed");
        return;
    }
    assert_eq!(outcome(ctd, "cache-first"), "Compiled");
    let entry = entry_of(ctd, "cache-first");
    assert!(entry.starts_with(&ctd.cache_dir), "{}", entry.display());
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let first_inode = inode(&entry);
    run("cache-second");
    assert_eq!(outcome(ctd, "cache-second"), "Hit");
    assert_eq!(
        inode(&entry),
        first_inode,
        "a hit does not rewrite the entry"
    );
    // Damage the entry in place: it must be detected, recompiled, and still run.
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    run("cache-damaged");
    assert_eq!(outcome(ctd, "cache-damaged"), "Recovered");
    run("cache-after");
    assert_eq!(outcome(ctd, "cache-after"), "Hit");
}

fn concurrent_starts_compile_once(ctd: &Containerd) {
    let image = "docker.io/wasmlet/concurrent:e2e";
    import_image(
        ctd,
        ns(ctd),
        &module_image(image, unique(wat("hello"), "concurrent")),
    );
    let ids: Vec<String> = (0..10).map(|i| format!("conc-{i}")).collect();
    std::thread::scope(|s| {
        for id in &ids {
            s.spawn(move || {
                let out = ctd.ctr(ns(ctd), &["run", "--rm", "--runtime", rt(ctd), image, id]);
                assert_eq!(out.code, Some(0), "{id}: {out:?}");
                assert_eq!(out.stdout_str(), "hello from wasm\n", "{id}");
            });
        }
    });
    let outcomes: Vec<String> = ids.iter().map(|id| outcome(ctd, id)).collect();
    if !crate::support::engine(ctd).compile_cache && outcomes.iter().any(|o| o == "NotUsed") {
        assert!(
            outcomes.iter().all(|o| o == "NotUsed"),
            "outcomes: {outcomes:?}"
        );
        for id in &ids {
            assert_clean(ctd, id);
        }
        return;
    }
    let compiled = outcomes.iter().filter(|o| *o == "Compiled").count();
    let hits = outcomes.iter().filter(|o| *o == "Hit").count();
    let cache_log: Vec<String> = ctd
        .log()
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(&format!("{id}: "))) && l.contains("cache"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        (compiled, hits),
        (1, 9),
        "outcomes: {outcomes:?}\ncache log:\n{}",
        cache_log.join("\n")
    );
    for id in &ids {
        assert_clean(ctd, id);
    }
}
