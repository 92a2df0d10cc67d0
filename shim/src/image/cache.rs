//! The compiled-module cache shared by every workload of a node.
//!
//! - Keyed by content: an entry's name is the SHA-256 of the engine's compatibility
//!   fingerprint (engine version, target, settings) and of the module bytes, so an engine
//!   upgrade can never load an old entry.
//! - Written atomically: the checksum file (`.sum`: length and SHA-256), then the artifact,
//!   each to a temporary file that is renamed into place. An entry without a
//!   matching checksum (truncated, corrupted, half written) is evicted and recompiled, never
//!   trusted.
//! - Compiled once: a workload that misses takes an exclusive lock on the entry's `.lock`
//!   file while compiling, so ten starts of a new image compile it once and the other nine
//!   wait and load the result.
//! - Bounded: after each store, the least recently used entries (by modification time,
//!   refreshed on every hit) are removed until the cache fits its size bound.
//! - Loaded by mapping: engines get a path and map the file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Environment variable that overrides [`DEFAULT_DIR`].
pub const DIR_ENV: &str = "WASMLET_CACHE_DIR";
/// Where compiled modules are kept unless [`DIR_ENV`] says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/wasmlet/cache";
/// Environment variable that overrides [`DEFAULT_MAX_BYTES`].
pub const MAX_BYTES_ENV: &str = "WASMLET_CACHE_MAX_BYTES";
/// The default size bound of one engine's cache.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

const ARTIFACT: &str = "bin";
const CHECKSUM: &str = "sum";
const LOCK: &str = "lock";

/// Feeds a `Hash` value into SHA-256, giving a fingerprint that is stable across processes.
#[derive(Default)]
pub struct FingerprintHasher(Sha256);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl FingerprintHasher {
    pub fn hex(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A valid entry was mapped.
    Hit,
    /// Compiled now (and stored, unless storing failed).
    Compiled,
    /// An entry existed but failed its checksum or the engine's checks; recompiled.
    Recovered,
}

/// What a look at an entry found.
enum Found<T> {
    Missing,
    Loaded(T),
    /// Failed its checksum or the engine's checks.
    Damaged,
}

/// A cache directory for one engine.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// One entry's files.
#[derive(Debug, Clone)]
pub struct Entry {
    pub artifact: PathBuf,
    checksum: PathBuf,
    lock: PathBuf,
}

fn digest_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    Ok((len, format!("{:x}", h.finalize())))
}

impl ModuleCache {
    /// The cache under `root` for `engine` (e.g. `wasmtime`), bounded to `max_bytes`.
    pub fn new(root: &Path, engine: &str, max_bytes: u64) -> Self {
        ModuleCache {
            dir: root.join(engine),
            max_bytes,
        }
    }

    /// The cache root from the environment or the default.
    pub fn root_from_env() -> PathBuf {
        std::env::var_os(DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
    }

    /// The size bound from the environment or the default.
    pub fn max_bytes_from_env() -> u64 {
        std::env::var(MAX_BYTES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES)
    }

    /// The entry for `module` compiled by an engine with `fingerprint`.
    pub fn entry(&self, module: &[u8], fingerprint: &str) -> Entry {
        let mut h = Sha256::new();
        h.update(fingerprint.as_bytes());
        h.update([0]);
        h.update(module);
        let key = format!("{:x}", h.finalize());
        let file = |ext: &str| self.dir.join(format!("{key}.{ext}"));
        Entry {
            artifact: file(ARTIFACT),
            checksum: file(CHECKSUM),
            lock: file(LOCK),
        }
    }

    /// Whether `entry` is complete and intact (`None`: no artifact, perhaps a store under
    /// way). A hit refreshes the entry's modification time, which orders eviction.
    fn verified(&self, entry: &Entry) -> Option<bool> {
        // The checksum is published before the artifact, so an artifact that exists must
        // have its checksum.
        if !entry.artifact.exists() {
            return None;
        }
        let recorded = std::fs::read_to_string(&entry.checksum).ok();
        let actual = digest_file(&entry.artifact)
            .ok()
            .map(|(len, sum)| format!("{len} {sum}"));
        if recorded.is_some() && recorded == actual {
            let _ = File::options()
                .append(true)
                .open(&entry.artifact)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Some(true);
        }
        Some(false)
    }

    /// Load `module` through the cache: map a verified entry, or compile (once, under the
    /// entry's lock), store and map. `load` maps an artifact file; `load_bytes` is the
    /// fallback when the cache cannot be written.
    pub fn load_or_compile<T>(
        &self,
        module: &[u8],
        fingerprint: &str,
        compile: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
        load: impl Fn(&Path) -> Result<T>,
        load_bytes: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<(T, Outcome)> {
        let entry = self.entry(module, fingerprint);
        let result = self.load_entry(&entry, module, compile, load, load_bytes);
        if let Ok((_, outcome)) = &result {
            log::info!("compile cache: {outcome:?} {}", entry.artifact.display());
        }
        result
    }

    fn load_entry<T>(
        &self,
        entry: &Entry,
        module: &[u8],
        compile: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
        load: impl Fn(&Path) -> Result<T>,
        load_bytes: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<(T, Outcome)> {
        // Without the lock, only look: an entry that looks damaged may be one that another
        // workload is replacing, and evicting it here would make a third compile again.
        let mut damaged = match self.try_load(entry, &load, false) {
            Found::Loaded(t) => return Ok((t, Outcome::Hit)),
            Found::Damaged => true,
            Found::Missing => false,
        };
        let lock = match self.lock(entry) {
            Ok(lock) => Some(lock),
            Err(e) => {
                log::warn!("not caching compiled module: {e}");
                None
            }
        };
        // Another workload may have compiled it while this one waited for the lock; only
        // the lock holder evicts a damaged entry.
        match self.try_load(entry, &load, lock.is_some()) {
            Found::Loaded(t) => return Ok((t, Outcome::Hit)),
            Found::Damaged => damaged = true,
            Found::Missing => {}
        }
        let artifact = compile(module)?;
        let outcome = if damaged {
            Outcome::Recovered
        } else {
            Outcome::Compiled
        };
        if lock.is_some() {
            match self.store(entry, &artifact) {
                Ok(()) => {
                    if let Ok(t) = load(&entry.artifact) {
                        return Ok((t, outcome));
                    }
                }
                Err(e) => log::warn!("not caching compiled module: {e}"),
            }
        }
        load_bytes(&artifact).map(|t| (t, outcome))
    }

    /// Map `entry` if it is intact. A damaged or unusable entry is evicted when `locked`
    /// (this workload holds the entry's lock), and only reported otherwise.
    fn try_load<T>(
        &self,
        entry: &Entry,
        load: &impl Fn(&Path) -> Result<T>,
        locked: bool,
    ) -> Found<T> {
        let problem = match self.verified(entry) {
            None => return Found::Missing,
            Some(false) => "is damaged".to_string(),
            Some(true) => match load(&entry.artifact) {
                Ok(t) => return Found::Loaded(t),
                Err(e) => format!("is unusable ({e})"),
            },
        };
        if locked {
            log::warn!(
                "cache entry {} {problem}; recompiling",
                entry.artifact.display()
            );
            self.evict(entry);
        }
        Found::Damaged
    }

    fn lock(&self, entry: &Entry) -> Result<Flock<File>> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("creating cache dir", &self.dir))?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&entry.lock)
            .map_err(Error::io("opening cache lock", &entry.lock))?;
        let mut file = file;
        loop {
            // A signal while waiting is no reason to compile without the lock.
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(lock),
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(Error::sys(format!("locking {}", entry.lock.display()))(e))
                }
            }
        }
    }

    fn write_atomically(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(Error::io("creating cache file in", &self.dir))?;
        tmp.write_all(data)
            .and_then(|_| tmp.as_file().sync_data())
            .map_err(Error::io("writing cache file", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| Error::io("publishing cache file", path)(e.error))?;
        Ok(())
    }

    /// Store `artifact` for `entry`: its checksum, then the artifact, each atomically (a
    /// reader that sees the artifact always finds its checksum); then evict least recently
    /// used entries beyond the size bound.
    pub fn store(&self, entry: &Entry, artifact: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("creating cache dir", &self.dir))?;
        let sum = format!("{} {:x}", artifact.len(), Sha256::digest(artifact));
        self.write_atomically(&entry.checksum, sum.as_bytes())?;
        self.write_atomically(&entry.artifact, artifact)?;
        self.enforce_bound(&entry.artifact);
        Ok(())
    }

    /// Drop an entry.
    pub fn evict(&self, entry: &Entry) {
        for f in [&entry.checksum, &entry.artifact] {
            if let Err(e) = std::fs::remove_file(f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("evicting {}: {e}", f.display());
                }
            }
        }
    }

    /// Remove the least recently used artifacts (never `keep`) until the cache fits.
    fn enforce_bound(&self, keep: &Path) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == ARTIFACT))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            let stem = path.with_extension("");
            let entry = Entry {
                artifact: path.clone(),
                checksum: stem.with_extension(CHECKSUM),
                lock: stem.with_extension(LOCK),
            };
            log::info!(
                "cache over {} bytes: evicting {}",
                self.max_bytes,
                path.display()
            );
            self.evict(&entry);
            let _ = std::fs::remove_file(&entry.lock);
            total = total.saturating_sub(len);
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
