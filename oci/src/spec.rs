//! Loading and validating a bundle's `config.json`, and the settings its annotations make.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The shim's environment variable bounding how long a workload may take to get ready
/// (the module loaded and compiled, the container set up): a node's setting, in
/// containerd's environment, which the shims inherit.
pub const PREPARE_TIMEOUT_ENV: &str = "WASMLET_PREPARE_TIMEOUT";
/// The annotation that lowers that bound for one container (never raises it: the node's
/// setting protects the node from a tenant's module).
pub const PREPARE_TIMEOUT_ANNOTATION: &str = "wasmlet.dev/prepare-timeout";
/// The bound when the node sets none: kubelet's default runtime request timeout.
pub const DEFAULT_PREPARE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How long `spec`'s workload may take to get ready: the node's setting (`node`, the value
/// of [`PREPARE_TIMEOUT_ENV`] if set) or the default, lowered by the spec's annotation.
pub fn prepare_timeout(spec: &Spec, node: Option<&str>) -> Result<std::time::Duration> {
    let parse = |source_name: String, v: &str| {
        crate::http::parse_duration(v).ok_or_else(|| Error::InvalidTimeout {
            source_name,
            value: v.to_string(),
        })
    };
    let node = match node {
        Some(v) => parse(format!("the shim's {PREPARE_TIMEOUT_ENV}"), v)?,
        None => DEFAULT_PREPARE_TIMEOUT,
    };
    Ok(match annotation(spec, PREPARE_TIMEOUT_ANNOTATION) {
        Some(v) => node.min(parse(
            format!("annotation {PREPARE_TIMEOUT_ANNOTATION}"),
            v,
        )?),
        None => node,
    })
}

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

    #[test]
    fn the_prepare_timeout_is_the_nodes_and_an_annotation_only_lowers_it() {
        let with = |a: Option<&str>| -> Spec {
            let mut v = serde_json::json!({"ociVersion": "1.0.2"});
            if let Some(a) = a {
                v["annotations"] = serde_json::json!({ PREPARE_TIMEOUT_ANNOTATION: a });
            }
            serde_json::from_value(v).unwrap()
        };
        let secs = std::time::Duration::from_secs;
        assert_eq!(prepare_timeout(&with(None), None).unwrap(), secs(120));
        assert_eq!(
            prepare_timeout(&with(None), Some("10m")).unwrap(),
            secs(600)
        );
        assert_eq!(prepare_timeout(&with(Some("5s")), None).unwrap(), secs(5));
        assert!(prepare_timeout(&with(Some("1h0")), None).is_err());
        assert_eq!(
            prepare_timeout(&with(Some("30m")), Some("1m")).unwrap(),
            secs(60)
        );
        let e = prepare_timeout(&with(None), Some("soon"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("WASMLET_PREPARE_TIMEOUT") && e.contains("soon"),
            "{e}"
        );
    }

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
