//! `-info`: what containerd 2.x asks every runtime binary before it uses it. The shim reads
//! the runtime options (a protobuf `Any`, possibly empty) on stdin and prints containerd's
//! `RuntimeInfo` (protobuf) on stdout: its name and version, the options echoed back, and
//! the OCI runtime features (the JSON document `runc features` prints) as a typed `Any`.
//! containerd's CRI plugin reads the features to tell kubelet what each handler supports
//! (recursive read-only mounts, user namespaces).
//!
//! The features say what wasmlet really does, no more: they are built from the same tables
//! the container setup uses (mount options, namespaces, seccomp actions and operators).

use std::collections::HashMap;
use std::io::{Read, Write};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};
use oci_spec::runtime::{
    Apparmor, Arch, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, LinuxNamespaceType,
    MountExtensions, Seccomp, Selinux,
};

use crate::error::{Error, Result};
use crate::isolation::options::KNOWN_MOUNT_OPTIONS;
use crate::isolation::seccomp::{ACTIONS, KNOWN_FLAGS, OPERATORS, SUPPORTED_FLAGS};

/// The `Any` type URL containerd registers for the OCI features document.
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// Spec annotations the shim acts on (listed in the features' annotations).
pub const UNDERSTOOD_ANNOTATIONS: [&str; 3] = [
    crate::shim::SANDBOX_ID_ANNOTATION,
    wasmlet_oci::http::LISTEN_ANNOTATION,
    wasmlet_oci::http::TIMEOUT_ANNOTATION,
];

/// Answer `-info` for `runtime_id` running `engine`: read the options from stdin, write
/// the `RuntimeInfo` to stdout.
pub fn run(runtime_id: &str, engine: &str) -> Result<()> {
    let mut options = Vec::new();
    std::io::stdin()
        .read_to_end(&mut options)
        .map_err(Error::io("reading runtime options from", "stdin"))?;
    let info = runtime_info(runtime_id, engine, &options)?;
    let bytes = info.write_to_bytes().map_err(|e| Error::SpecInvalid {
        field: "runtime info".into(),
        message: e.to_string(),
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(Error::io("writing runtime info to", "stdout"))
}

/// The `RuntimeInfo` for `runtime_id`; `options` are the request's options (an encoded
/// `Any`, or nothing), echoed back.
pub fn runtime_info(runtime_id: &str, engine: &str, options: &[u8]) -> Result<RuntimeInfo> {
    let options = if options.is_empty() {
        MessageField::none()
    } else {
        MessageField::some(
            Any::parse_from_bytes(options).map_err(|e| Error::SpecInvalid {
                field: "runtime options on stdin".into(),
                message: e.to_string(),
            })?,
        )
    };
    let features = serde_json::to_vec(&features(engine)).map_err(|e| Error::SpecInvalid {
        field: "runtime features".into(),
        message: e.to_string(),
    })?;
    Ok(RuntimeInfo {
        name: runtime_id.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("WASMLET_REVISION")
                .unwrap_or_default()
                .to_string(),
            ..Default::default()
        }),
        options,
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.to_string(),
            value: features,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The OCI runtime features wasmlet implements.
pub fn features(engine: &str) -> Features {
    let mut linux = LinuxFeature::default();
    // Every type, new or joined by path; a new user namespace with the spec's mappings.
    linux.set_namespaces(Some(vec![
        LinuxNamespaceType::User,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Time,
    ]));
    linux.set_capabilities(Some(
        caps::all()
            .into_iter()
            .map(|c| c.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    ));
    let mut cgroup = Cgroup::default();
    cgroup.set_v1(Some(true));
    cgroup.set_v2(Some(true));
    // systemd's `slice:prefix:name` paths are expanded, but no unit is asked of systemd.
    cgroup.set_systemd(Some(false));
    cgroup.set_systemd_user(Some(false));
    cgroup.set_rdma(Some(false));
    linux.set_cgroup(Some(cgroup));
    let mut seccomp = Seccomp::default();
    seccomp.set_enabled(Some(true));
    seccomp.set_actions(Some(ACTIONS.into()));
    seccomp.set_operators(Some(OPERATORS.iter().map(|s| s.to_string()).collect()));
    seccomp.set_archs(Some(seccomp_archs()));
    seccomp.set_known_flags(Some(KNOWN_FLAGS.iter().map(|s| s.to_string()).collect()));
    seccomp.set_supported_flags(Some(
        SUPPORTED_FLAGS.iter().map(|s| s.to_string()).collect(),
    ));
    linux.set_seccomp(Some(seccomp));
    let mut off = Apparmor::default();
    off.set_enabled(Some(false));
    linux.set_apparmor(Some(off));
    let mut off = Selinux::default();
    off.set_enabled(Some(false));
    linux.set_selinux(Some(off));
    let mut off = IntelRdt::default();
    off.set_enabled(Some(false));
    linux.set_intel_rdt(Some(off));
    // Bind mounts with uidMappings/gidMappings, and the snapshotter's uidmap=/gidmap= layers.
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(true));
    let mut ext = MountExtensions::default();
    ext.set_idmap(Some(idmap));
    linux.set_mount_extensions(Some(ext));

    let mut annotations = HashMap::new();
    annotations.insert(
        "io.github.seccomp.libseccomp.version".to_string(),
        libseccomp::ScmpVersion::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
            .unwrap_or_default(),
    );
    annotations.insert(
        "dev.wasmlet.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    annotations.insert("dev.wasmlet.engine".to_string(), engine.to_string());
    annotations.insert(
        "dev.wasmlet.annotations".to_string(),
        UNDERSTOOD_ANNOTATIONS.join(","),
    );

    let mut features = Features::default();
    features.set_oci_version_min("1.0.0".to_string());
    features.set_oci_version_max(oci_spec::runtime::VERSION.to_string());
    // OCI hooks are not run.
    features.set_hooks(Some(Vec::new()));
    features.set_mount_options(Some(
        KNOWN_MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect(),
    ));
    features.set_linux(Some(linux));
    features.set_annotations(Some(annotations));
    features
}

/// The architectures a seccomp profile may name that this libseccomp knows.
fn seccomp_archs() -> Vec<Arch> {
    use std::str::FromStr;
    [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchRiscv64,
    ]
    .into_iter()
    .filter(|a| {
        let name = serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        libseccomp::ScmpArch::from_str(&name).is_ok()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_carries_name_options_and_features() {
        let opts = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0x0a, 0x01, b'x'],
            ..Default::default()
        };
        let info = runtime_info(
            "io.containerd.wasmtime.v1",
            "wasmtime",
            &opts.write_to_bytes().unwrap(),
        )
        .unwrap();
        // What containerd does with the bytes: decode the protobuf, then the features JSON.
        let info = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(info.name, "io.containerd.wasmtime.v1");
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.options.type_url, "containerd.runc.v1.Options");
        assert_eq!(info.options.value, vec![0x0a, 0x01, b'x']);
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        let doc: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(doc["ociVersionMin"], "1.0.0");
        let mount_options: Vec<&str> = doc["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for opt in ["ro", "rbind", "rprivate", "rro", "nosymfollow"] {
            assert!(mount_options.contains(&opt), "{opt} in {mount_options:?}");
        }
        let namespaces = doc["linux"]["namespaces"].as_array().unwrap();
        assert!(namespaces.contains(&"pid".into()) && namespaces.contains(&"network".into()));
        assert!(namespaces.contains(&"user".into()), "{namespaces:?}");
        // containerd's CRI offers user namespaces only with both (supportsCRIUserns).
        assert_eq!(doc["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        assert!(mount_options.contains(&"ridmap"), "{mount_options:?}");
        assert!(doc["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".into()));
        assert_eq!(doc["linux"]["seccomp"]["enabled"], true);
        assert!(doc["linux"]["seccomp"]["archs"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_ARCH_X86_64".into()));
        assert!(!doc["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_ACT_NOTIFY".into()));
        assert_eq!(doc["hooks"], serde_json::json!([]));
        assert_eq!(doc["annotations"]["dev.wasmlet.engine"], "wasmtime");
        assert!(doc["annotations"]["dev.wasmlet.annotations"]
            .as_str()
            .unwrap()
            .contains("wasmlet.dev/http-listen"));
    }

    #[test]
    fn no_options_and_bad_options() {
        let info = runtime_info("io.containerd.wasmtime.v1", "wasmtime", &[]).unwrap();
        assert!(info.options.is_none());
        let e = runtime_info("r", "e", &[0xff, 0xff, 0xff])
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtime options on stdin"), "{e}");
    }

    #[test]
    fn every_listed_mount_option_is_parsed_as_a_flag() {
        use crate::isolation::options::MountOptions;
        for opt in KNOWN_MOUNT_OPTIONS.iter() {
            let parsed = MountOptions::parse(Some("bind"), &[opt.to_string()]);
            assert!(parsed.data.is_empty(), "{opt} taken as filesystem data");
        }
    }
}
