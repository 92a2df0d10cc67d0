//! WebAssembly modules that ship as image layers (the CNCF wasm OCI artifact layout)
//! rather than as files in a rootfs. containerd 1.6 cannot unpack such images into a
//! snapshot, so the container's rootfs is empty; the shim asks containerd (its gRPC API, on
//! the address containerd gave the shim) for the container's image, resolves the manifest
//! (an index by platform), and copies the wasm layers out of the content store into files
//! named by their digests, checked against those digests on every use.

use std::io::Write;
use std::path::{Path, PathBuf};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest, ReadContentRequest};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use sha2::{Digest, Sha256};
use wasmlet_oci::media::{self, Document, ImageForm};

use crate::error::{Error, Result};

/// A wasm layer copied out of the content store.
#[derive(Debug, Clone)]
pub struct LayerModule {
    pub path: PathBuf,
    /// The layer's `org.opencontainers.image.title`, if any.
    pub title: Option<String>,
    pub digest: String,
}

/// containerd's image and content services, as seen by one shim.
pub struct ImageLayers {
    pub address: PathBuf,
    pub namespace: String,
    /// Where layer files are kept (under the compile cache's root).
    pub dir: PathBuf,
}

const TITLE: &str = "org.opencontainers.image.title";

fn image_err(what: &str) -> impl FnOnce(containerd_client::tonic::Status) -> Error + '_ {
    move |s| Error::Engine(format!("containerd {what}: {}", s.message()))
}

impl ImageLayers {
    /// The wasm layers of container `id`'s image, or `None` when the container has no image
    /// or its image is an ordinary rootfs image.
    pub fn modules(&self, id: &str) -> Result<Option<Vec<LayerModule>>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(Error::io("starting an async runtime for", &self.address))?;
        rt.block_on(self.fetch(id))
    }

    async fn read_blob(
        &self,
        content: &mut ContentClient<containerd_client::tonic::transport::Channel>,
        digest: &str,
    ) -> Result<Vec<u8>> {
        let req = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = content
            .read(with_namespace!(req, self.namespace.as_str()))
            .await
            .map_err(image_err("content read"))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(image_err("content read"))? {
            data.extend_from_slice(&chunk.data);
        }
        let actual = format!("sha256:{:x}", Sha256::digest(&data));
        if actual != digest {
            return Err(Error::Engine(format!(
                "blob {digest} read back as {actual}"
            )));
        }
        Ok(data)
    }

    async fn fetch(&self, id: &str) -> Result<Option<Vec<LayerModule>>> {
        let channel = containerd_client::connect(&self.address)
            .await
            .map_err(|e| {
                Error::Engine(format!(
                    "connecting to containerd at {}: {e}",
                    self.address.display()
                ))
            })?;
        let mut containers = ContainersClient::new(channel.clone());
        let req = GetContainerRequest { id: id.to_string() };
        let container = containers
            .get(with_namespace!(req, self.namespace.as_str()))
            .await
            .map_err(image_err("container lookup"))?
            .into_inner()
            .container
            .ok_or_else(|| Error::TaskNotFound { id: id.to_string() })?;
        if container.image.is_empty() {
            return Ok(None);
        }
        let mut images = ImagesClient::new(channel.clone());
        let req = GetImageRequest {
            name: container.image.clone(),
        };
        let target = images
            .get(with_namespace!(req, self.namespace.as_str()))
            .await
            .map_err(image_err("image lookup"))?
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| Error::Engine(format!("image {} has no target", container.image)))?;
        let mut content = ContentClient::new(channel);
        let (mut media_type, mut digest) = (target.media_type, target.digest);
        let manifest = loop {
            let bytes = self.read_blob(&mut content, &digest).await?;
            match media::parse_document(&media_type, &bytes)? {
                Document::Manifest(m) => break m,
                Document::Index(index) => {
                    let arch = wasmlet_oci::image::host_architecture();
                    let chosen = media::select_manifest(&index, &media::preferred_platforms(arch))?;
                    media_type = media::media_type_str(chosen.media_type());
                    digest = chosen.digest().to_string();
                }
            }
        };
        let ImageForm::WasmLayers(layers) = media::image_form(&manifest)? else {
            return Ok(None);
        };
        let mut modules = Vec::with_capacity(layers.len());
        for layer in layers {
            let digest = layer.digest().to_string();
            let path = self.layer_path(&digest);
            if !verify(&path, &digest) {
                let data = self.read_blob(&mut content, &digest).await?;
                self.store(&path, &data)?;
            }
            let title = layer
                .annotations()
                .as_ref()
                .and_then(|a| a.get(TITLE))
                .cloned();
            modules.push(LayerModule {
                path,
                title,
                digest,
            });
        }
        Ok(Some(modules))
    }

    fn layer_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.wasm", digest.replace(':', "-")))
    }

    fn store(&self, path: &Path, data: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("creating", &self.dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(Error::io("creating layer file in", &self.dir))?;
        tmp.write_all(data)
            .map_err(Error::io("writing layer file", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| Error::io("publishing layer file", path)(e.error))?;
        Ok(())
    }
}

/// Whether the file at `path` has content `digest`.
fn verify(path: &Path, digest: &str) -> bool {
    std::fs::read(path)
        .map(|data| format!("sha256:{:x}", Sha256::digest(&data)) == digest)
        .unwrap_or(false)
}

/// The module to run among `modules`: the layer titled like `arg0`'s file name, else the
/// first layer.
pub fn choose<'a>(modules: &'a [LayerModule], arg0: &str) -> Option<&'a LayerModule> {
    let name = arg0.split('#').next().unwrap_or(arg0);
    let file = name.rsplit('/').next().unwrap_or(name);
    modules
        .iter()
        .find(|m| m.title.as_deref() == Some(file))
        .or_else(|| modules.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(title: Option<&str>) -> LayerModule {
        LayerModule {
            path: PathBuf::from("/x"),
            title: title.map(str::to_string),
            digest: "sha256:0".into(),
        }
    }

    #[test]
    fn choose_by_title_else_first() {
        let mods = [m(Some("a.wasm")), m(Some("b.wasm")), m(None)];
        assert_eq!(
            choose(&mods, "/b.wasm#run").unwrap().title.as_deref(),
            Some("b.wasm")
        );
        assert_eq!(
            choose(&mods, "b.wasm").unwrap().title.as_deref(),
            Some("b.wasm")
        );
        assert_eq!(
            choose(&mods, "other").unwrap().title.as_deref(),
            Some("a.wasm")
        );
        assert!(choose(&[], "x").is_none());
    }

    #[test]
    fn verify_checks_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        std::fs::write(&p, b"abc").unwrap();
        let good = format!("sha256:{:x}", Sha256::digest(b"abc"));
        assert!(verify(&p, &good));
        assert!(!verify(&p, "sha256:00"));
        assert!(!verify(&d.path().join("missing"), &good));
    }
}
