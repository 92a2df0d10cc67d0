//! Writing OCI image layouts that `ctr image import` accepts, deterministically: the same
//! inputs give the same digests. Two forms:
//!
//! - [`Form::Rootfs`]: the files land in one uncompressed tar layer and the image config
//!   names the entrypoint, as any container image does (a Docker `manifest.json` is
//!   written beside `index.json` too). Every containerd can unpack it.
//! - [`Form::WasmLayers`]: the CNCF wasm OCI artifact layout: each module is a layer of its
//!   own (`application/wasm`, or the component layer type for components) and the config
//!   is `application/vnd.wasm.config.v0+json`; the platform is `wasip1/wasm` (`wasip2/wasm`
//!   when a component is present).

use std::io::Write;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A file to put in the image's rootfs layer.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Absolute path inside the image.
    pub path: String,
    pub data: Vec<u8>,
    /// Unix permission bits.
    pub mode: u32,
}

/// Which image form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Rootfs,
    WasmLayers,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub form: Form,
    /// Full reference, e.g. `docker.io/wasmlet/hello:latest`.
    pub name: String,
    pub files: Vec<LayerFile>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub os: String,
    pub architecture: String,
}

impl ImageSpec {
    /// An image for this host's platform (`linux` and its GOARCH name).
    pub fn new(name: &str) -> Self {
        ImageSpec {
            form: Form::Rootfs,
            name: name.to_string(),
            files: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: None,
            os: "linux".into(),
            architecture: host_architecture().into(),
        }
    }

    /// Add a file to the layer.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files.push(LayerFile {
            path: path.to_string(),
            data: data.into(),
            mode,
        });
        self
    }
}

/// The architecture name OCI uses for this host.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Digests of what [`write_layout`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub manifest: String,
    pub config: String,
    pub layer: String,
}

/// A content-addressed blob of an image: a layer, a config or a manifest.
#[derive(Debug, Clone)]
pub struct Blob {
    /// `sha256:<hex>` of `data`.
    pub digest: String,
    pub data: Vec<u8>,
}

/// An image built in memory: what [`write_layout`] writes as a tarball and
/// [`crate::registry`] pushes to a registry.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image manifest (media type [`MT_MANIFEST`]).
    pub manifest: Blob,
    /// The config first, then the layers.
    pub blobs: Vec<Blob>,
    /// The manifest's platform, as an index entry gives it.
    pub platform: serde_json::Value,
    /// Docker's `manifest.json`, for `docker load` (rootfs images).
    docker_manifest: Option<Vec<u8>>,
    pub written: Written,
}

impl Blob {
    /// The blob of `data`, with its digest.
    pub fn new(data: Vec<u8>) -> Self {
        Blob {
            digest: format!("sha256:{:x}", Sha256::digest(&data)),
            data,
        }
    }

    fn path(&self) -> String {
        format!("blobs/sha256/{}", &self.digest["sha256:".len()..])
    }
}

/// Build the rootfs layer: the files plus their parent directories, sorted, owned by root,
/// with zero timestamps.
pub fn layer_tar(files: &[LayerFile]) -> Result<Vec<u8>> {
    let mut dirs = std::collections::BTreeSet::new();
    let mut entries: Vec<&LayerFile> = files.iter().collect();
    for f in files {
        if !f.path.starts_with('/') || f.path.ends_with('/') || f.path.contains("/../") {
            return Err(Error::Image(format!(
                "layer path {:?} must be an absolute file path",
                f.path
            )));
        }
        let mut parent = std::path::Path::new(&f.path).parent();
        while let Some(p) = parent.filter(|p| p != &std::path::Path::new("/")) {
            dirs.insert(p.to_string_lossy().trim_start_matches('/').to_string());
            parent = p.parent();
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut tar = tar::Builder::new(Vec::new());
    for dir in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        append(&mut tar, &mut h, &format!("{dir}/"), &[][..])?;
    }
    for f in entries {
        let mut h = header(tar::EntryType::Regular, f.mode, f.data.len() as u64);
        append(
            &mut tar,
            &mut h,
            f.path.trim_start_matches('/'),
            &f.data[..],
        )?;
    }
    tar.into_inner().map_err(|e| Error::Image(e.to_string()))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    h: &mut tar::Header,
    path: &str,
    data: &[u8],
) -> Result<()> {
    tar.append_data(h, path, data)
        .map_err(|e| Error::Image(format!("adding {path}: {e}")))
}

/// Write the image as an OCI layout tarball to `out`.
pub fn write_layout(spec: &ImageSpec, out: impl Write) -> Result<Written> {
    let built = build(spec)?;
    write_tar(out, spec, &built)?;
    Ok(built.written)
}

/// Build the image of `spec` in memory: its manifest, config and layers.
pub fn build(spec: &ImageSpec) -> Result<Built> {
    match spec.form {
        Form::Rootfs => build_rootfs(spec),
        Form::WasmLayers => build_wasm(spec),
    }
}

fn build_rootfs(spec: &ImageSpec) -> Result<Built> {
    let layer = Blob::new(layer_tar(&spec.files)?);
    let mut container_config = serde_json::Map::new();
    let mut put = |key: &str, v: &[String]| {
        if !v.is_empty() {
            container_config.insert(key.into(), serde_json::json!(v));
        }
    };
    put("Entrypoint", &spec.entrypoint);
    put("Cmd", &spec.cmd);
    put("Env", &spec.env);
    if let Some(w) = &spec.workdir {
        container_config.insert("WorkingDir".into(), serde_json::json!(w));
    }
    // `created` (the epoch: builds are reproducible) on the image and its history entry:
    // tools such as umoci expect both.
    let config = Blob::new(json_bytes(&serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": spec.architecture,
        "os": spec.os,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "wasmlet-oci build"}],
    })));
    let manifest = Blob::new(json_bytes(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": [{"mediaType": MT_LAYER_TAR, "digest": layer.digest, "size": layer.data.len()}],
    })));
    let docker_manifest = json_bytes(&serde_json::json!([{
        "Config": config.path(),
        "RepoTags": [spec.name],
        "Layers": [layer.path()],
    }]));
    let platform = serde_json::json!({"architecture": spec.architecture, "os": spec.os});
    let written = Written {
        manifest: manifest.digest.clone(),
        config: config.digest.clone(),
        layer: layer.digest.clone(),
    };
    Ok(Built {
        manifest,
        blobs: vec![config, layer],
        platform,
        docker_manifest: Some(docker_manifest),
        written,
    })
}

fn build_wasm(spec: &ImageSpec) -> Result<Built> {
    if spec.files.is_empty() {
        return Err(Error::Image(
            "a wasm-layer image needs at least one module".into(),
        ));
    }
    let mut layers = Vec::new();
    let mut any_component = false;
    for f in &spec.files {
        let kind = crate::wasm::sniff(&f.data[..f.data.len().min(8)], &f.path)?;
        any_component |= kind == crate::wasm::WasmKind::Component;
        let media_type = match kind {
            crate::wasm::WasmKind::Module => crate::media::WASM_LAYER,
            crate::wasm::WasmKind::Component => crate::media::COMPONENT_LAYER,
            // `sniff` never answers Native; a wasm layer must hold WebAssembly anyway.
            crate::wasm::WasmKind::Native => {
                return Err(Error::NotWasm {
                    path: f.path.clone(),
                    detail: "it is a native executable".into(),
                })
            }
        };
        let title = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
        layers.push((Blob::new(f.data.clone()), media_type, title));
    }
    let os = if any_component { "wasip2" } else { "wasip1" };
    let config = Blob::new(json_bytes(&serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": os,
        "layerDigests": layers.iter().map(|(b, _, _)| b.digest.clone()).collect::<Vec<_>>(),
    })));
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|(b, mt, title)| {
            serde_json::json!({
                "mediaType": mt,
                "digest": b.digest,
                "size": b.data.len(),
                "annotations": {"org.opencontainers.image.title": title},
            })
        })
        .collect();
    let manifest = Blob::new(json_bytes(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": crate::media::WASM_CONFIG,
        "config": {"mediaType": crate::media::WASM_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": layer_descriptors,
    })));
    let written = Written {
        manifest: manifest.digest.clone(),
        config: config.digest.clone(),
        layer: layers[0].0.digest.clone(),
    };
    let mut blobs = vec![config];
    blobs.extend(layers.into_iter().map(|(b, _, _)| b));
    let platform = serde_json::json!({"architecture": "wasm", "os": os});
    Ok(Built {
        manifest,
        blobs,
        platform,
        docker_manifest: None,
        written,
    })
}

/// Write `oci-layout`, `index.json`, the optional Docker `manifest.json` and the blobs.
fn write_tar(out: impl Write, spec: &ImageSpec, built: &Built) -> Result<()> {
    let manifest = &built.manifest;
    let tag = spec
        .name
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or("latest");
    let index = json_bytes(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": manifest.digest,
            "size": manifest.data.len(),
            "annotations": {
                "io.containerd.image.name": spec.name,
                "org.opencontainers.image.ref.name": tag,
            },
            "platform": built.platform,
        }],
    }));
    let mut tar = tar::Builder::new(out);
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut h, dir, &[][..])
            .map_err(|e| Error::Image(e.to_string()))?;
    }
    let mut files: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), &index),
        (manifest.path(), &manifest.data),
    ];
    if let Some(dm) = &built.docker_manifest {
        files.push(("manifest.json".into(), dm));
    }
    files.extend(built.blobs.iter().map(|b| (b.path(), &b.data[..])));
    for (path, data) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, &path, data)
            .map_err(|e| Error::Image(format!("writing {path}: {e}")))?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::Image(e.to_string()))?;
    Ok(())
}

pub(crate) fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialising a JSON value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> ImageSpec {
        let mut s = ImageSpec::new("docker.io/wasmlet/hello:v1").file(
            "/app/hello.wasm",
            b"\0asm\x01\0\0\0".to_vec(),
            0o755,
        );
        s.entrypoint = vec!["/app/hello.wasm".into()];
        s
    }

    fn entries(tar_bytes: &[u8]) -> Vec<String> {
        tar::Archive::new(tar_bytes)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn layout_is_deterministic() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let wa = write_layout(&hello(), &mut a).unwrap();
        let wb = write_layout(&hello(), &mut b).unwrap();
        assert_eq!(wa, wb);
        assert_eq!(a, b);
    }

    #[test]
    fn layout_has_index_manifest_and_blobs() {
        let mut out = Vec::new();
        let w = write_layout(&hello(), &mut out).unwrap();
        let names = entries(&out);
        for want in ["oci-layout", "index.json", "manifest.json"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let manifest_blob = format!("blobs/sha256/{}", &w.manifest[7..]);
        assert!(names.contains(&manifest_blob), "{names:?}");
        let mut archive = tar::Archive::new(&out[..]);
        let index = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("index.json"))
            .map(|e| serde_json::from_reader::<_, serde_json::Value>(e).unwrap())
            .unwrap();
        assert_eq!(index["manifests"][0]["digest"], w.manifest.as_str());
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/wasmlet/hello:v1"
        );
    }

    #[test]
    fn layer_has_parent_dirs_and_sorted_files() {
        let files = vec![
            LayerFile {
                path: "/b/x".into(),
                data: vec![1],
                mode: 0o644,
            },
            LayerFile {
                path: "/a/y/z".into(),
                data: vec![2],
                mode: 0o755,
            },
        ];
        let names = entries(&layer_tar(&files).unwrap());
        assert_eq!(names, ["a/", "a/y/", "b/", "a/y/z", "b/x"]);
    }

    #[test]
    fn wasm_layer_form_follows_the_artifact_layout() {
        let mut spec = hello();
        spec.form = Form::WasmLayers;
        let mut out = Vec::new();
        let w = write_layout(&spec, &mut out).unwrap();
        let names = entries(&out);
        assert!(!names.iter().any(|n| n == "manifest.json"), "{names:?}");
        let read = |name: &str| -> serde_json::Value {
            let mut archive = tar::Archive::new(&out[..]);
            let entry = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.path().unwrap().to_str() == Some(name))
                .unwrap();
            serde_json::from_reader(entry).unwrap()
        };
        let manifest = read(&format!("blobs/sha256/{}", &w.manifest[7..]));
        assert_eq!(manifest["config"]["mediaType"], crate::media::WASM_CONFIG);
        assert_eq!(manifest["layers"][0]["mediaType"], crate::media::WASM_LAYER);
        assert_eq!(
            manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
            "hello.wasm"
        );
        let index = read("index.json");
        assert_eq!(index["manifests"][0]["platform"]["os"], "wasip1");
        let doc =
            crate::media::parse_document("", &serde_json::to_vec(&manifest).unwrap()).unwrap();
        match doc {
            crate::media::Document::Manifest(m) => assert!(matches!(
                crate::media::image_form(&m).unwrap(),
                crate::media::ImageForm::WasmLayers(l) if l.len() == 1
            )),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wasm_layer_form_refuses_non_wasm() {
        let mut spec = ImageSpec::new("x:y").file("/a.wasm", b"text".to_vec(), 0o644);
        spec.form = Form::WasmLayers;
        assert!(matches!(
            write_layout(&spec, Vec::new()),
            Err(Error::NotWasm { .. })
        ));
    }

    #[test]
    fn relative_layer_paths_are_refused() {
        let files = vec![LayerFile {
            path: "rel".into(),
            data: vec![],
            mode: 0o644,
        }];
        assert!(matches!(layer_tar(&files), Err(Error::Image(_))));
    }
}
