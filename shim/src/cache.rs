//! The compiled-module cache shared by every workload of a node.
//!
//! An entry's name is the SHA-256 of the module bytes and of the engine's compatibility
//! fingerprint (engine version, target and settings), so an engine upgrade can never load an
//! old entry. Entries are written to a temporary file and renamed into place, so concurrent
//! starts of one image never see half an entry; each engine loads them by mapping the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Environment variable that overrides [`DEFAULT_DIR`].
pub const DIR_ENV: &str = "WASMLET_CACHE_DIR";
/// Where compiled modules are kept unless [`DIR_ENV`] says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/wasmlet/cache";

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

/// A cache directory for one engine.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// The cache under `root` for `engine` (e.g. `wasmtime`).
    pub fn new(root: &Path, engine: &str) -> Self {
        ModuleCache {
            dir: root.join(engine),
        }
    }

    /// The cache root from the environment or the default.
    pub fn root_from_env() -> PathBuf {
        std::env::var_os(DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
    }

    /// The entry path for `module` compiled by an engine with `fingerprint`.
    pub fn entry(&self, module: &[u8], fingerprint: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(fingerprint.as_bytes());
        h.update([0]);
        h.update(module);
        self.dir.join(format!("{:x}.bin", h.finalize()))
    }

    /// Store `artifact` at `entry` atomically. Failure leaves no partial entry behind.
    pub fn store(&self, entry: &Path, artifact: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("creating cache dir", &self.dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(Error::io("creating cache entry in", &self.dir))?;
        tmp.write_all(artifact)
            .and_then(|_| tmp.as_file().sync_data())
            .map_err(Error::io("writing cache entry", tmp.path()))?;
        tmp.persist(entry)
            .map_err(|e| Error::io("publishing cache entry", entry)(e.error))?;
        Ok(())
    }

    /// Drop an entry that failed to load, so the next start recompiles.
    pub fn evict(&self, entry: &Path) {
        if let Err(e) = std::fs::remove_file(entry) {
            log::debug!("evicting {}: {e}", entry.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn key_depends_on_module_and_fingerprint() {
        let c = ModuleCache::new(Path::new("/c"), "wasmtime");
        let a = c.entry(b"module-a", "v1");
        assert_eq!(a, c.entry(b"module-a", "v1"));
        assert_ne!(a, c.entry(b"module-b", "v1"));
        assert_ne!(a, c.entry(b"module-a", "v2"));
        assert!(a.starts_with("/c/wasmtime"));
    }

    #[test]
    fn store_is_atomic_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let c = ModuleCache::new(d.path(), "e");
        let entry = c.entry(b"m", "f");
        c.store(&entry, b"one").unwrap();
        c.store(&entry, b"two").unwrap();
        assert_eq!(std::fs::read(&entry).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path().join("e")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary files left");
        c.evict(&entry);
        assert!(!entry.exists());
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
}
