//! Image manifests and indexes as containerd's content store hands them to the shim: the
//! first byte picks the media type (or none, so the JSON's shape decides), the rest is the
//! document. An index is resolved by platform, a manifest classified by its layers' media
//! types. Must return an error, never panic; a selected manifest is one of the index's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::media::{self, Document};

const MEDIA_TYPES: &[&str] = &[
    "",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.wasm.config.v0+json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let media_type = MEDIA_TYPES[pick as usize % MEDIA_TYPES.len()];
    match media::parse_document(media_type, bytes) {
        Ok(Document::Index(index)) => {
            let preferred = media::preferred_platforms("amd64");
            if let Ok(d) = media::select_manifest(&index, &preferred) {
                assert!(index.manifests().iter().any(|m| std::ptr::eq(m, d)));
            }
        }
        Ok(Document::Manifest(manifest)) => {
            if let Ok(media::ImageForm::WasmLayers(layers)) = media::image_form(&manifest) {
                assert!(!layers.is_empty());
                for layer in layers {
                    assert!(media::is_wasm_layer(&media::media_type_str(
                        layer.media_type()
                    )));
                }
            }
        }
        Err(_) => {}
    }
});
