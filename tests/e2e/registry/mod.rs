//! From a registry to a running container: images pushed by `wasmlet_oci::registry` to a
//! private `docker-registry` (plain HTTP, or behind basic auth), pulled by containerd and
//! run, for each image form; the registry's errors as `ctr` and the pusher report them.
//! Once per containerd version (the engine does not matter: the shim sees the unpacked
//! image or the content store either way).
//!
//! - [`pull`]: `ctr image pull` then `ctr run` or containerd's API; auth, errors, indexes.
//! - [`cri`]: kubelet's path (`PullImage` through `hosts.toml`, then pods), and images
//!   written by other tools (`skopeo copy`) or read by them (`skopeo inspect`, `umoci`).
//! - [`foreign`]: images that other tools wrote: `wkg oci push` of a component, and an
//!   artifact whose wasm layer is not WebAssembly.

mod cri;
mod foreign;
mod pull;

use wasmlet_oci::image::{Form, ImageSpec};
use wasmlet_oci::registry::PushOptions;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::wat;
use wasmlet_tests::registry::Registry;

use crate::support::{ns, Test};
use cri::*;
use foreign::*;
use pull::*;

pub const TESTS: &[(&str, Test)] = &[
    (
        "registry::rootfs_image_pushed_pulled_and_run",
        rootfs_image_pushed_pulled_and_run,
    ),
    (
        "registry::wasm_layer_image_pushed_pulled_and_run",
        wasm_layer_image_pushed_pulled_and_run,
    ),
    (
        "registry::basic_auth_and_registry_errors",
        basic_auth_and_registry_errors,
    ),
    (
        "registry::cri_pulls_through_hosts_toml_and_runs_a_pod",
        cri_pulls_through_hosts_toml_and_runs_a_pod,
    ),
    (
        "registry::skopeo_and_umoci_take_our_archives",
        skopeo_and_umoci_take_our_archives,
    ),
    (
        "registry::tampered_blob_is_refused",
        tampered_blob_is_refused,
    ),
    (
        "registry::index_resolved_by_platform",
        index_resolved_by_platform,
    ),
    (
        "registry::wasm_layer_that_is_not_wasm_is_refused",
        wasm_layer_that_is_not_wasm_is_refused,
    ),
];

/// The tests that need `wkg` besides the registry.
pub const WKG_TESTS: &[(&str, Test)] = &[(
    "registry::wkg_component_pulled_by_cri_and_run",
    wkg_component_pulled_by_cri_and_run,
)];

pub(super) fn start(credentials: Option<(&str, &str)>) -> Registry {
    Registry::start(credentials).unwrap_or_else(|e| panic!("starting the registry: {e}"))
}

pub(super) fn plain(credentials: Option<(&str, &str)>) -> PushOptions {
    PushOptions {
        plain_http: true,
        credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
    }
}

/// `ctr image pull --plain-http [--user U:P] REF`.
pub(super) fn pull(
    ctd: &Containerd,
    reference: &str,
    user: Option<&str>,
) -> wasmlet_tests::cmd::Output {
    let mut args = vec!["image", "pull", "--plain-http"];
    if let Some(u) = user {
        args.extend(["--user", u]);
    }
    args.push(reference);
    ctd.ctr_timeout(ns(ctd), &args, None, std::time::Duration::from_secs(60))
}

/// A wasm-layer image of the exit42 module (a layer titled `exit42.wasm`).
pub(super) fn exit42_layers(reference: &str) -> ImageSpec {
    let mut spec = ImageSpec::new(reference).file("/exit42.wasm", wat("exit42"), 0o644);
    spec.form = Form::WasmLayers;
    spec
}
