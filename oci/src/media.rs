//! Media types of the image forms wasmlet runs, and reading image manifests and indexes:
//! which layers are rootfs tarballs, which are WebAssembly modules (the CNCF wasm OCI
//! artifact layout), and which manifest of an index fits a platform.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};

/// A component layer (Bytecode Alliance `wkg` / `wasm-pkg-tools`).
pub const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// A plain module layer.
pub const WASM_LAYER: &str = "application/wasm";
/// runwasi's content layer type.
pub const CONTENT_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The CNCF wasm artifact config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

const WASM_LAYERS: [&str; 3] = [COMPONENT_LAYER, WASM_LAYER, CONTENT_LAYER];
const ROOTFS_LAYERS: [&str; 6] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Whether a layer media type holds a WebAssembly binary.
pub fn is_wasm_layer(media_type: &str) -> bool {
    WASM_LAYERS.contains(&media_type)
}

/// Whether a layer media type is a filesystem tarball.
pub fn is_rootfs_layer(media_type: &str) -> bool {
    ROOTFS_LAYERS.contains(&media_type)
}

/// How an image carries its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageForm {
    /// Filesystem layers: containerd unpacks them and the module is a file in the rootfs.
    Rootfs,
    /// WebAssembly layers, in manifest order.
    WasmLayers(Vec<Descriptor>),
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Document {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// Parse a manifest or an index; `media_type` decides, or the JSON's shape when it is empty.
pub fn parse_document(media_type: &str, bytes: &[u8]) -> Result<Document> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::Image(format!("malformed {what} ({media_type:?}): {e}"))
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad("image document", &e))?;
    let is_index = match media_type {
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => true,
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => false,
        "" => value.get("manifests").is_some(),
        other => {
            return Err(Error::Image(format!(
                "unknown manifest media type {other:?}"
            )))
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(|i| Document::Index(Box::new(i)))
            .map_err(|e| bad("image index", &e))
    } else {
        serde_json::from_value(value)
            .map(|m| Document::Manifest(Box::new(m)))
            .map_err(|e| bad("image manifest", &e))
    }
}

/// The form of an image from its manifest. Layers of unknown media types are an error
/// naming them; wasm layers and rootfs layers cannot be mixed.
pub fn image_form(manifest: &ImageManifest) -> Result<ImageForm> {
    let mut wasm = Vec::new();
    let mut rootfs = 0;
    for layer in manifest.layers() {
        let mt = media_type_str(layer.media_type());
        if is_wasm_layer(&mt) {
            wasm.push(layer.clone());
        } else if is_rootfs_layer(&mt) {
            rootfs += 1;
        } else {
            return Err(Error::Image(format!(
                "layer {} has unknown media type {mt:?}",
                layer.digest()
            )));
        }
    }
    match (wasm.is_empty(), rootfs) {
        (true, 0) => Err(Error::Image("image has no layers".into())),
        (true, _) => Ok(ImageForm::Rootfs),
        (false, 0) => Ok(ImageForm::WasmLayers(wasm)),
        (false, _) => Err(Error::Image(
            "image mixes WebAssembly layers and filesystem layers".into(),
        )),
    }
}

/// A media type as its string.
pub fn media_type_str(mt: &MediaType) -> String {
    mt.to_string()
}

/// Platforms in order of preference for a wasm workload on `host_arch`: the wasm platforms
/// first, then the host's Linux platform (rootfs images that carry a .wasm).
pub fn preferred_platforms(host_arch: &str) -> Vec<(String, String)> {
    vec![
        ("wasip1".into(), "wasm".into()),
        ("wasip2".into(), "wasm".into()),
        ("wasi".into(), "wasm".into()),
        ("linux".into(), host_arch.into()),
    ]
}

/// The manifest of `index` for the first platform in `preferred` it has.
pub fn select_manifest<'a>(
    index: &'a ImageIndex,
    preferred: &[(String, String)],
) -> Result<&'a Descriptor> {
    for (os, arch) in preferred {
        let found = index.manifests().iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == *os && p.architecture().to_string() == *arch)
        });
        if let Some(d) = found {
            return Ok(d);
        }
    }
    // An index without platforms (common for single-manifest artifacts) means its only entry.
    match index.manifests().as_slice() {
        [only] if only.platform().is_none() => Ok(only),
        _ => {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .map(|d| match d.platform() {
                    Some(p) => format!("{}/{}", p.os(), p.architecture()),
                    None => "(no platform)".into(),
                })
                .collect();
            Err(Error::Image(format!(
                "no manifest for a wasm or host platform in the index (has {})",
                have.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_A: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const DIGEST_B: &str =
        "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(config_mt: &str, layers: &[&str]) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|mt| serde_json::json!({"mediaType": mt, "digest": DIGEST_B, "size": 8}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_mt, "digest": DIGEST_A, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    fn form(bytes: &[u8]) -> Result<ImageForm> {
        match parse_document("", bytes)? {
            Document::Manifest(m) => image_form(&m),
            Document::Index(_) => panic!("not an index"),
        }
    }

    #[test]
    fn wasm_artifact_layers_are_selected_in_order() {
        let m = manifest(WASM_CONFIG, &[WASM_LAYER, COMPONENT_LAYER, CONTENT_LAYER]);
        match form(&m).unwrap() {
            ImageForm::WasmLayers(layers) => assert_eq!(layers.len(), 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tar_layers_are_a_rootfs_image() {
        let m = manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar+gzip"],
        );
        assert_eq!(form(&m).unwrap(), ImageForm::Rootfs);
    }

    #[test]
    fn unknown_and_mixed_layers_are_named() {
        let m = manifest(WASM_CONFIG, &["application/x-surprise"]);
        let err = form(&m).unwrap_err().to_string();
        assert!(err.contains("application/x-surprise"), "{err}");
        let m = manifest(
            WASM_CONFIG,
            &[WASM_LAYER, "application/vnd.oci.image.layer.v1.tar"],
        );
        assert!(form(&m).unwrap_err().to_string().contains("mixes"));
        let m = manifest(WASM_CONFIG, &[]);
        assert!(form(&m).unwrap_err().to_string().contains("no layers"));
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(parse_document("", b"{").is_err());
        let err = parse_document(
            "application/vnd.oci.image.manifest.v1+json",
            b"{\"schemaVersion\":2}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("malformed image manifest"), "{err}");
        let err = parse_document("text/plain", b"{}").unwrap_err().to_string();
        assert!(err.contains("unknown manifest media type"), "{err}");
    }

    #[test]
    fn index_resolves_by_platform_preference() {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST_A, "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST_B, "size": 1,
                 "platform": {"os": "wasip1", "architecture": "wasm"}},
            ]
        });
        let Document::Index(index) =
            parse_document("", &serde_json::to_vec(&index).unwrap()).unwrap()
        else {
            panic!("index expected")
        };
        let d = select_manifest(&index, &preferred_platforms("amd64")).unwrap();
        assert_eq!(d.digest().to_string(), DIGEST_B);
        let arm_only = vec![("linux".to_string(), "arm64".to_string())];
        let err = select_manifest(&index, &arm_only).unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64") && err.contains("wasip1/wasm"),
            "{err}"
        );
    }
}
