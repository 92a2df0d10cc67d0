//! The OCI-to-WASI mapping: a pure function from a spec and its rootfs to a [`WasiPlan`].
//!
//! Deny by default. The guest gets exactly:
//! - `args`: `process.args`, argv[0] as written (without an `#export` suffix);
//! - `env`: `process.env` exactly as the spec gives it (each entry `KEY=VALUE`, in order,
//!   nothing added: runc adds nothing either, and programs that list their environment must
//!   see only what was set);
//! - preopens: the rootfs as `/` (read-only when `root.readonly`), and each OCI bind mount
//!   of a directory at its destination (read-only when its options say `ro`). Other mount
//!   types (proc, sysfs, tmpfs, ...) expose host kernel state and are never preopened; bind
//!   mounts of single files cannot be WASI preopens and are left out.
//!
//! WASI has no working directory of its own (wasi-libc starts every program at `/`), so
//! `process.cwd` is honoured for locating the entrypoint and validated to exist; engines that
//! have an initial-cwd notion (Wasmtime's preview 2) get it from the plan.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use crate::entrypoint::{find, Entrypoint};
use crate::error::{Error, Result};
use crate::rootfs::resolve;
use crate::spec::root_readonly;

/// A directory the guest may open, and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees it at.
    pub guest: String,
    /// Whether writes are refused.
    pub readonly: bool,
}

/// Everything a WASI context is built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WasiPlan {
    pub entrypoint: Entrypoint,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub preopens: Vec<Preopen>,
    /// `linux.resources.memory.limit`: the cap on the module's linear memory, in bytes.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// Where the module listens when it is a `wasi:http/proxy` component (see [`crate::http`]).
    #[serde(default = "default_listen")]
    pub http_listen: std::net::SocketAddr,
    /// How long one of its requests may take, if bounded.
    #[serde(default)]
    pub http_timeout: Option<std::time::Duration>,
    /// How long a client may take to send a request's head (and an idle connection may stay).
    #[serde(default = "default_header_timeout")]
    pub http_header_timeout: std::time::Duration,
    /// What serves its requests (a WAGI module, or a `wasi:http` component).
    #[serde(default)]
    pub http_executor: crate::http::Executor,
}

fn default_header_timeout() -> std::time::Duration {
    crate::http::DEFAULT_HEADER_TIMEOUT
}

fn default_listen() -> std::net::SocketAddr {
    crate::http::DEFAULT_LISTEN
}

/// Compute the plan for `spec` whose rootfs is at `rootfs` on the host; the module is the
/// entrypoint found in the rootfs.
pub fn plan(spec: &Spec, rootfs: &Path) -> Result<WasiPlan> {
    plan_with(spec, rootfs, |arg0, cwd, path_env| {
        find(rootfs, arg0, cwd, path_env)
    })
}

/// Compute the plan for `spec` when the module is a file outside the rootfs (a wasm layer
/// of the image, fetched from containerd): `module` on the host, named `name` in messages.
/// `process.args[0]` stays the guest's argv[0]; its `#export` suffix still selects the
/// function.
pub fn plan_with_module(spec: &Spec, rootfs: &Path, module: &Path, name: &str) -> Result<WasiPlan> {
    plan_with(spec, rootfs, |arg0, _, _| {
        let (argv0, export) = crate::entrypoint::split_export(arg0)?;
        let header = crate::entrypoint::read_header(module)?;
        Ok(Entrypoint {
            arg0: argv0.to_string(),
            guest_path: name.to_string(),
            host_path: module.to_path_buf(),
            export: export
                .unwrap_or(crate::entrypoint::DEFAULT_EXPORT)
                .to_string(),
            kind: crate::wasm::sniff(&header, name)?,
        })
    })
}

fn plan_with(
    spec: &Spec,
    rootfs: &Path,
    entrypoint: impl FnOnce(&str, &str, Option<&str>) -> Result<Entrypoint>,
) -> Result<WasiPlan> {
    if !rootfs.is_dir() {
        return Err(Error::RootfsMissing {
            path: rootfs.to_path_buf(),
        });
    }
    let process = spec.process().as_ref().ok_or(Error::MissingProcess)?;
    let spec_args = process.args().as_deref().unwrap_or_default();
    let arg0 = spec_args.first().ok_or(Error::EmptyArgs)?;

    let cwd = process.cwd().to_string_lossy().into_owned();
    let cwd = if cwd.is_empty() { "/".to_string() } else { cwd };
    if !cwd.starts_with('/') {
        return Err(Error::CwdNotAbsolute { cwd });
    }
    if !resolve(rootfs, &cwd)?.is_dir() {
        return Err(Error::CwdNotFound { cwd });
    }

    let env = parse_env(process.env().as_deref().unwrap_or_default())?;
    let path_env = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let entrypoint = entrypoint(arg0, &cwd, path_env)?;

    let mut args = Vec::with_capacity(spec_args.len());
    args.push(entrypoint.arg0.clone());
    args.extend(spec_args[1..].iter().cloned());

    let mut preopens = vec![Preopen {
        host: rootfs.to_path_buf(),
        guest: "/".to_string(),
        readonly: root_readonly(spec),
    }];
    for mount in spec.mounts().as_deref().unwrap_or_default() {
        if let Some(p) = mount_preopen(mount)? {
            preopens.push(p);
        }
    }

    let http_listen = crate::http::listen_address(spec, &env)?;
    let http_timeout = crate::http::request_timeout(spec, &env)?;
    let http_header_timeout = crate::http::header_timeout(spec, &env)?;
    let http_executor = crate::http::executor(spec, &env)?;
    Ok(WasiPlan {
        entrypoint,
        args,
        env,
        cwd,
        preopens,
        memory_limit: memory_limit(spec),
        http_listen,
        http_timeout,
        http_header_timeout,
        http_executor,
    })
}

/// The memory limit of `linux.resources`, when one is set (positive).
pub fn memory_limit(spec: &Spec) -> Option<u64> {
    let limit = spec
        .linux()
        .as_ref()?
        .resources()
        .as_ref()?
        .memory()
        .as_ref()?
        .limit()?;
    u64::try_from(limit).ok().filter(|l| *l > 0)
}

/// Parse `KEY=VALUE` entries, keeping them all, in order (as `execve` would get them).
pub fn parse_env(entries: &[String]) -> Result<Vec<(String, String)>> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::InvalidEnv {
                entry: entry.clone(),
            }),
        })
        .collect()
}

fn has_option(mount: &Mount, wanted: &[&str]) -> bool {
    mount
        .options()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| wanted.contains(&o.as_str()))
}

/// The preopen for a bind mount of a directory; `None` for every other mount.
fn mount_preopen(mount: &Mount) -> Result<Option<Preopen>> {
    let is_bind = mount.typ().as_deref() == Some("bind") || has_option(mount, &["bind", "rbind"]);
    let destination = mount.destination().to_string_lossy().into_owned();
    let Some(source) = mount.source().as_ref().filter(|_| is_bind) else {
        return Ok(None);
    };
    if destination == "/" || !destination.starts_with('/') {
        return Ok(None);
    }
    let meta = std::fs::metadata(source).map_err(|_| Error::MountSourceMissing {
        destination: destination.clone(),
        source_path: source.clone(),
    })?;
    if !meta.is_dir() {
        return Ok(None);
    }
    Ok(Some(Preopen {
        host: source.clone(),
        guest: destination,
        readonly: has_option(mount, &["ro"]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn bundle() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        std::fs::create_dir_all(r.join("app")).unwrap();
        std::fs::write(r.join("hello.wasm"), MODULE).unwrap();
        std::fs::create_dir_all(d.path().join("data")).unwrap();
        std::fs::write(d.path().join("hosts"), b"127.0.0.1 localhost").unwrap();
        d
    }

    fn spec_with(process: &str, extra: &str) -> Spec {
        let process = process.replacen('{', r#"{"user":{"uid":0,"gid":0},"#, 1);
        let text = format!(
            r#"{{"ociVersion":"1.0.2","process":{process},"root":{{"path":"rootfs"}}{extra}}}"#
        );
        parse(&text, Path::new("config.json")).unwrap()
    }

    #[test]
    fn args_env_cwd_and_root_preopen() {
        let b = bundle();
        let spec = spec_with(
            r#"{"args":["/hello.wasm#main","a","b c"],"env":["A=1","B=x=y","A=2"],"cwd":"/app"}"#,
            "",
        );
        let plan = plan(&spec, &b.path().join("rootfs")).unwrap();
        assert_eq!(plan.args, ["/hello.wasm", "a", "b c"]);
        assert_eq!(plan.entrypoint.export, "main");
        assert_eq!(
            plan.env,
            [
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("A".into(), "2".into())
            ]
        );
        assert_eq!(plan.cwd, "/app");
        assert_eq!(
            plan.preopens,
            [Preopen {
                host: b.path().join("rootfs"),
                guest: "/".into(),
                readonly: false
            }]
        );
    }

    #[test]
    fn readonly_root_makes_readonly_preopen() {
        let b = bundle();
        let text = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/hello.wasm"],"cwd":"/"},"root":{"path":"rootfs","readonly":true}}"#;
        let spec = parse(text, Path::new("c")).unwrap();
        let plan = plan(&spec, &b.path().join("rootfs")).unwrap();
        assert!(plan.preopens[0].readonly);
    }

    #[test]
    fn only_directory_bind_mounts_become_preopens() {
        let b = bundle();
        let d = b.path().display();
        let mounts = format!(
            r#","mounts":[
              {{"destination":"/proc","type":"proc","source":"proc"}},
              {{"destination":"/data","type":"bind","source":"{d}/data","options":["rbind","ro"]}},
              {{"destination":"/rw","source":"{d}/data","options":["bind"]}},
              {{"destination":"/etc/hosts","type":"bind","source":"{d}/hosts","options":["rbind"]}},
              {{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid"]}}
            ]"#
        );
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"/"}"#, &mounts);
        let plan = plan(&spec, &b.path().join("rootfs")).unwrap();
        let got: Vec<(&str, bool)> = plan
            .preopens
            .iter()
            .map(|p| (p.guest.as_str(), p.readonly))
            .collect();
        assert_eq!(got, [("/", false), ("/data", true), ("/rw", false)]);
    }

    #[test]
    fn missing_bind_source_is_an_error_naming_it() {
        let b = bundle();
        let spec = spec_with(
            r#"{"args":["/hello.wasm"],"cwd":"/"}"#,
            r#","mounts":[{"destination":"/x","type":"bind","source":"/nonexistent/wasmlet"}]"#,
        );
        let err = plan(&spec, &b.path().join("rootfs")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/wasmlet"), "{err}");
    }

    #[test]
    fn bad_cwd_and_env_are_named() {
        let b = bundle();
        let r = b.path().join("rootfs");
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"/nope"}"#, "");
        assert!(matches!(plan(&spec, &r), Err(Error::CwdNotFound { .. })));
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"relative"}"#, "");
        assert!(matches!(plan(&spec, &r), Err(Error::CwdNotAbsolute { .. })));
        let spec = spec_with(
            r#"{"args":["/hello.wasm"],"cwd":"/","env":["NOEQUALS"]}"#,
            "",
        );
        assert!(matches!(plan(&spec, &r), Err(Error::InvalidEnv { .. })));
    }

    #[test]
    fn missing_rootfs_is_reported() {
        let b = bundle();
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"/"}"#, "");
        let err = plan(&spec, &b.path().join("absent")).unwrap_err();
        assert!(matches!(err, Error::RootfsMissing { .. }));
    }

    #[test]
    fn module_from_a_layer_keeps_argv0_and_export() {
        let b = bundle();
        let layer = b.path().join("layer.wasm");
        std::fs::write(&layer, MODULE).unwrap();
        let spec = spec_with(r#"{"args":["app.wasm#run","x"],"cwd":"/"}"#, "");
        let plan =
            plan_with_module(&spec, &b.path().join("rootfs"), &layer, "layer app.wasm").unwrap();
        assert_eq!(plan.args, ["app.wasm", "x"]);
        assert_eq!(plan.entrypoint.export, "run");
        assert_eq!(plan.entrypoint.host_path, layer);
        assert_eq!(plan.preopens[0].guest, "/");
        std::fs::write(&layer, b"not wasm").unwrap();
        let err = plan_with_module(&spec, &b.path().join("rootfs"), &layer, "layer app.wasm");
        assert!(matches!(err, Err(Error::NotWasm { .. })));
    }

    #[test]
    fn memory_limit_comes_from_linux_resources() {
        let b = bundle();
        let r = b.path().join("rootfs");
        let with = |resources: &str| {
            let spec = spec_with(
                r#"{"args":["/hello.wasm"],"cwd":"/"}"#,
                &format!(r#","linux":{{"resources":{resources}}}"#),
            );
            plan(&spec, &r).unwrap().memory_limit
        };
        assert_eq!(with(r#"{"memory":{"limit":33554432}}"#), Some(32 << 20));
        assert_eq!(with(r#"{"memory":{"limit":-1}}"#), None);
        assert_eq!(with(r#"{"cpu":{"shares":2}}"#), None);
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"/"}"#, "");
        assert_eq!(plan(&spec, &r).unwrap().memory_limit, None);
    }

    #[test]
    fn nothing_is_added_to_the_env() {
        let b = bundle();
        let spec = spec_with(r#"{"args":["/hello.wasm"],"cwd":"/app"}"#, "");
        let bare = plan(&spec, &b.path().join("rootfs")).unwrap();
        assert_eq!(bare.env, []);
        let spec = spec_with(
            r#"{"args":["/hello.wasm"],"cwd":"/app","env":["PWD=/x"]}"#,
            "",
        );
        let plan = plan(&spec, &b.path().join("rootfs")).unwrap();
        assert_eq!(plan.env, [("PWD".into(), "/x".into())]);
    }
}
