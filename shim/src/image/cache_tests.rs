//! Cache keying, integrity and concurrency, with a fake "engine" whose artifact is the
//! module bytes reversed.

use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

fn compile(m: &[u8]) -> Result<Vec<u8>> {
    Ok(m.iter().rev().copied().collect())
}

fn load(p: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(p).map_err(Error::io("reading", p))?;
    if bytes.first() == Some(&b'!') {
        return Err(Error::Engine("engine refuses this artifact".into()));
    }
    Ok(bytes)
}

fn load_bytes(b: &[u8]) -> Result<Vec<u8>> {
    Ok(b.to_vec())
}

fn get(c: &ModuleCache, module: &[u8]) -> (Vec<u8>, Outcome) {
    c.load_or_compile(module, "fp", compile, load, load_bytes)
        .unwrap()
}

#[test]
fn key_depends_on_module_and_fingerprint() {
    let c = ModuleCache::new(Path::new("/c"), "wasmtime", 1 << 20);
    let a = c.entry(b"module-a", "v1").artifact;
    assert_eq!(a, c.entry(b"module-a", "v1").artifact);
    assert_ne!(a, c.entry(b"module-b", "v1").artifact);
    assert_ne!(a, c.entry(b"module-a", "v2").artifact);
    assert!(a.starts_with("/c/wasmtime"));
}

#[test]
fn miss_then_hit() {
    let d = tempfile::tempdir().unwrap();
    let c = ModuleCache::new(d.path(), "e", 1 << 20);
    assert_eq!(get(&c, b"abc"), (b"cba".to_vec(), Outcome::Compiled));
    assert_eq!(get(&c, b"abc"), (b"cba".to_vec(), Outcome::Hit));
}

#[test]
fn corrupted_truncated_or_unchecked_entries_are_recompiled() {
    let d = tempfile::tempdir().unwrap();
    let c = ModuleCache::new(d.path(), "e", 1 << 20);
    let entry = c.entry(b"module", "fp");
    get(&c, b"module");
    // A flipped byte.
    std::fs::write(&entry.artifact, b"eludoM").unwrap();
    assert_eq!(get(&c, b"module"), (b"eludom".to_vec(), Outcome::Recovered));
    // A truncated artifact.
    std::fs::write(&entry.artifact, b"elu").unwrap();
    assert_eq!(get(&c, b"module").1, Outcome::Recovered);
    // An artifact without its checksum (removed by hand or by a crashed evictor).
    std::fs::remove_file(&entry.checksum).unwrap();
    assert_eq!(get(&c, b"module").1, Outcome::Recovered);
    // A checksum without its artifact (a store under way elsewhere) is a plain miss.
    std::fs::remove_file(&entry.artifact).unwrap();
    assert_eq!(get(&c, b"module").1, Outcome::Compiled);
    assert_eq!(get(&c, b"module").1, Outcome::Hit);
}

#[test]
fn artifact_the_engine_refuses_is_recompiled() {
    let d = tempfile::tempdir().unwrap();
    let c = ModuleCache::new(d.path(), "e", 1 << 20);
    let entry = c.entry(b"x!", "fp");
    // The artifact of "x!" starts with '!': the fake engine refuses to map it, every time.
    assert_eq!(get(&c, b"x!"), (b"!x".to_vec(), Outcome::Compiled));
    assert!(!entry.artifact.exists() || std::fs::read(&entry.artifact).unwrap() == b"!x");
    assert_eq!(get(&c, b"x!"), (b"!x".to_vec(), Outcome::Recovered));
}

#[test]
fn concurrent_misses_compile_once() {
    let d = tempfile::tempdir().unwrap();
    let c = Arc::new(ModuleCache::new(d.path(), "e", 1 << 20));
    let compiles = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (c, compiles) = (c.clone(), compiles.clone());
            std::thread::spawn(move || {
                let slow = |m: &[u8]| {
                    compiles.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    compile(m)
                };
                c.load_or_compile(b"shared", "fp", slow, load, load_bytes)
                    .unwrap()
                    .0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), b"derahs");
    }
    assert_eq!(compiles.load(Ordering::SeqCst), 1);
}

#[test]
fn only_the_lock_holder_evicts_a_damaged_entry() {
    let d = tempfile::tempdir().unwrap();
    let c = ModuleCache::new(d.path(), "e", 1 << 20);
    let entry = c.entry(b"module", "fp");
    get(&c, b"module");
    std::fs::write(&entry.artifact, b"eludoM").unwrap();
    // A look without the lock (another workload may be replacing the entry) leaves it.
    assert!(matches!(c.try_load(&entry, &load, false), Found::Damaged));
    assert_eq!(std::fs::read(&entry.artifact).unwrap(), b"eludoM");
    assert!(entry.checksum.exists());
    // The lock holder evicts it.
    let _lock = c.lock(&entry).unwrap();
    assert!(matches!(c.try_load(&entry, &load, true), Found::Damaged));
    assert!(!entry.artifact.exists() && !entry.checksum.exists());
}

#[test]
fn a_damaged_entry_another_workload_replaces_is_a_hit() {
    let d = tempfile::tempdir().unwrap();
    let c = Arc::new(ModuleCache::new(d.path(), "e", 1 << 20));
    let entry = c.entry(b"module", "fp");
    get(&c, b"module");
    std::fs::write(&entry.artifact, b"eludoM").unwrap();
    // One workload holds the lock and is about to replace the damaged entry; another looks
    // (damaged), waits for the lock, and then finds the repaired entry.
    let lock = c.lock(&entry).unwrap();
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || get(&c, b"module"))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.evict(&entry);
    c.store(&entry, b"eludom").unwrap();
    drop(lock);
    assert_eq!(waiter.join().unwrap(), (b"eludom".to_vec(), Outcome::Hit));
}

#[test]
fn least_recently_used_entries_go_first() {
    let d = tempfile::tempdir().unwrap();
    let c = ModuleCache::new(d.path(), "e", 25);
    let old = [b'a'; 10];
    let used = [b'b'; 10];
    let new = [b'c'; 10];
    get(&c, &old);
    std::thread::sleep(std::time::Duration::from_millis(20));
    get(&c, &used);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(get(&c, &old).1, Outcome::Hit, "a hit refreshes `old`");
    std::thread::sleep(std::time::Duration::from_millis(20));
    get(&c, &new);
    assert!(
        c.entry(&old, "fp").artifact.exists(),
        "recently hit entry kept"
    );
    assert!(
        !c.entry(&used, "fp").artifact.exists(),
        "least recently used evicted"
    );
    assert!(c.entry(&new, "fp").artifact.exists(), "new entry kept");
}

#[test]
fn unwritable_cache_still_runs() {
    let c = ModuleCache::new(Path::new("/proc/wasmlet-no-such-cache"), "e", 1 << 20);
    assert_eq!(get(&c, b"abc"), (b"cba".to_vec(), Outcome::Compiled));
}

#[test]
fn fingerprint_is_stable() {
    let fp = |v: &str| {
        let mut h = FingerprintHasher::default();
        v.hash(&mut h);
        h.hex()
    };
    assert_eq!(fp("x"), fp("x"));
    assert_ne!(fp("x"), fp("y"));
}
