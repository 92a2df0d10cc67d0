//! Loading and validating a bundle's `config.json`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The spec file inside a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// Load `config.json` from `bundle` and check the parts a workload needs.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadSpec {
        path: path.clone(),
        source,
    })?;
    parse(&text, &path)
}

/// Parse spec JSON (`path` only names it in errors) and validate it.
pub fn parse(text: &str, path: &Path) -> Result<Spec> {
    let spec: Spec = serde_json::from_str(text).map_err(|e| Error::ParseSpec {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// Check that the spec has a process with args and a root.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref().ok_or(Error::MissingProcess)?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::EmptyArgs),
    }
    spec.root().as_ref().ok_or(Error::MissingRoot)?;
    Ok(())
}

/// The rootfs directory: `root.path`, relative to the bundle unless absolute.
pub fn rootfs(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or(Error::MissingRoot)?;
    Ok(bundle.join(root.path()))
}

/// Whether `root.readonly` is set.
pub fn root_readonly(spec: &Spec) -> bool {
    spec.root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
}

/// A spec annotation by key.
pub fn annotation<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("config.json")
    }

    #[test]
    fn minimal_spec_parses() {
        let spec = parse(
            r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/a.wasm"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
            p(),
        )
        .unwrap();
        assert_eq!(
            rootfs(Path::new("/b"), &spec).unwrap(),
            Path::new("/b/rootfs")
        );
        assert!(!root_readonly(&spec));
    }

    #[test]
    fn absolute_root_path_wins() {
        let spec = parse(
            r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["x"],"cwd":"/"},"root":{"path":"/srv/r","readonly":true}}"#,
            p(),
        )
        .unwrap();
        assert_eq!(rootfs(Path::new("/b"), &spec).unwrap(), Path::new("/srv/r"));
        assert!(root_readonly(&spec));
    }

    #[test]
    fn missing_parts_are_named() {
        let no_process = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#;
        assert!(matches!(parse(no_process, p()), Err(Error::MissingProcess)));
        let no_args = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":[],"cwd":"/"},"root":{"path":"r"}}"#;
        assert!(matches!(parse(no_args, p()), Err(Error::EmptyArgs)));
        let no_root =
            r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["a"],"cwd":"/"}}"#;
        assert!(matches!(parse(no_root, p()), Err(Error::MissingRoot)));
    }

    #[test]
    fn garbage_is_a_parse_error_naming_the_file() {
        let err = parse("{not json", p()).unwrap_err();
        assert!(matches!(err, Error::ParseSpec { .. }));
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn load_reports_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::ReadSpec { .. }), "{err}");
    }
}
