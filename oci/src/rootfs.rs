//! Resolving guest paths inside a rootfs the way the kernel would after a chroot:
//! `..` stops at the root and absolute symlinks restart from the root, so a bundle can
//! never make the shim (which runs as root on the host) look outside its rootfs.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Symlinks followed before giving up, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// Map `guest` (absolute or relative to `/`) to a host path under `root`, following
/// symlinks within the rootfs. Components that do not exist are kept as they are, so the
/// result may name a missing file; callers check existence themselves.
pub fn resolve(root: &Path, guest: &str) -> Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(Path::new(guest));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&name);
        let is_link = std::fs::symlink_metadata(&candidate)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            resolved.push(name);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(Error::SymlinkLoop {
                path: guest.to_string(),
            });
        }
        let target = std::fs::read_link(&candidate).map_err(Error::io(&candidate))?;
        if target.is_absolute() {
            resolved.clear();
        }
        for c in components(&target).into_iter().rev() {
            pending.push_front(c);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// Normal components and `..` of a path; root and `.` are dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Join a guest directory and a guest path the way a process with that cwd would see it.
pub fn guest_join(cwd: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else if cwd.ends_with('/') {
        format!("{cwd}{path}")
    } else {
        format!("{cwd}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_paths_join_under_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(resolve(r, "/a/b.wasm").unwrap(), r.join("a/b.wasm"));
        assert_eq!(resolve(r, "a/./b").unwrap(), r.join("a/b"));
        assert_eq!(resolve(r, "/").unwrap(), r.to_path_buf());
    }

    #[test]
    fn dotdot_stops_at_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(
            resolve(r, "/../../etc/passwd").unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(resolve(r, "/a/../../b").unwrap(), r.join("b"));
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("bin")).unwrap();
        symlink("/etc/passwd", r.join("bin/evil")).unwrap();
        assert_eq!(resolve(r, "/bin/evil").unwrap(), r.join("etc/passwd"));
    }

    #[test]
    fn relative_symlink_and_dotdot_escape_are_clamped() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("app")).unwrap();
        std::fs::write(r.join("app/real.wasm"), b"x").unwrap();
        symlink("real.wasm", r.join("app/link.wasm")).unwrap();
        symlink("../../../../../tmp", r.join("app/up")).unwrap();
        assert_eq!(
            resolve(r, "/app/link.wasm").unwrap(),
            r.join("app/real.wasm")
        );
        assert_eq!(resolve(r, "/app/up/x").unwrap(), r.join("tmp/x"));
    }

    #[test]
    fn symlink_loops_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        assert!(matches!(resolve(r, "/a"), Err(Error::SymlinkLoop { .. })));
    }

    #[test]
    fn guest_join_handles_both_forms() {
        assert_eq!(guest_join("/", "a.wasm"), "/a.wasm");
        assert_eq!(guest_join("/app", "bin/a.wasm"), "/app/bin/a.wasm");
        assert_eq!(guest_join("/app", "/x.wasm"), "/x.wasm");
    }
}
