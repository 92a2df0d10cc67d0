//! Pushing a built image to an OCI distribution registry (feature `registry`): each blob
//! (uploaded unless the registry has it), then the manifest under the reference's tag,
//! through ORAS's `oci-client`. The digests are those of [`crate::image::build`], so an
//! image pushed and an image imported from [`crate::image::write_layout`] are the same.
//!
//! Credentials: `user:password` given by the caller, else the registry's entry in a
//! Docker-style `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
//! else anonymous. Token (bearer) registries are handled by the client from the
//! registry's challenge.

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::error::{Error, Result};
use crate::image::{build, json_bytes, Blob, Built, ImageSpec, Written, MT_INDEX, MT_MANIFEST};

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Plain HTTP instead of HTTPS (a registry on localhost or a private network).
    pub plain_http: bool,
    /// `(user, password)`; `None` looks in the Docker config, then goes anonymous.
    pub credentials: Option<(String, String)>,
}

/// Push the image of `spec` as `reference` (`host[:port]/repo[:tag]`).
pub fn push(spec: &ImageSpec, reference: &str, opts: &PushOptions) -> Result<Written> {
    let built = build(spec)?;
    let session = Session::new(reference, opts)?;
    session.run(async {
        session.upload(&built).await?;
        session
            .put_manifest(&session.parsed, &built.manifest.data, MT_MANIFEST)
            .await?;
        Ok(built.written.clone())
    })
}

/// Push each image of `images` by digest, then an image index of them (each entry with its
/// image's platform: `linux/<arch>` for a rootfs image, `wasip1/wasm` or `wasip2/wasm` for a
/// wasm-layer one) as `reference`. Returns the index's digest.
pub fn push_index(images: &[ImageSpec], reference: &str, opts: &PushOptions) -> Result<String> {
    let built: Vec<Built> = images.iter().map(build).collect::<Result<_>>()?;
    let index = Blob::new(json_bytes(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": built.iter().map(|b| serde_json::json!({
            "mediaType": MT_MANIFEST,
            "digest": b.manifest.digest,
            "size": b.manifest.data.len(),
            "platform": b.platform,
        })).collect::<Vec<_>>(),
    })));
    let session = Session::new(reference, opts)?;
    session.run(async {
        for b in &built {
            session.upload(b).await?;
            let by_digest = session.parsed.clone_with_digest(b.manifest.digest.clone());
            session
                .put_manifest(&by_digest, &b.manifest.data, MT_MANIFEST)
                .await?;
        }
        session
            .put_manifest(&session.parsed, &index.data, MT_INDEX)
            .await?;
        Ok(index.digest.clone())
    })
}

/// One push: the parsed reference, an authenticated client, its runtime.
struct Session {
    reference: String,
    parsed: Reference,
    client: Client,
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    fn new(reference: &str, opts: &PushOptions) -> Result<Session> {
        let fail = |detail| registry_error(reference, detail);
        let parsed: Reference = reference
            .parse()
            .map_err(|e| fail(format!("not an image reference: {e}")))?;
        // reqwest is built without a default crypto provider: ring, which is already linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol: if opts.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..Default::default()
        });
        let auth = match &opts.credentials {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => docker_config_credentials(parsed.resolve_registry())
                .map(|(u, p)| RegistryAuth::Basic(u, p))
                .unwrap_or(RegistryAuth::Anonymous),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting the client: {e}")))?;
        Ok(Session {
            reference: reference.to_string(),
            parsed,
            client,
            auth,
            runtime,
        })
    }

    fn fail(&self, detail: String) -> Error {
        registry_error(&self.reference, detail)
    }

    /// Authenticate, then run `f` to its end.
    fn run<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(async {
            self.client
                .auth(&self.parsed, &self.auth, RegistryOperation::Push)
                .await
                .map_err(|e| self.fail(chain(&e)))?;
            f.await
        })
    }

    /// Upload the config and layers of `built` that the registry does not have yet.
    async fn upload(&self, built: &Built) -> Result<()> {
        for blob in &built.blobs {
            let have = self
                .client
                .blob_exists(&self.parsed, &blob.digest)
                .await
                .map_err(|e| self.fail(chain(&e)))?;
            if !have {
                self.client
                    .push_blob(&self.parsed, blob.data.clone(), &blob.digest)
                    .await
                    .map_err(|e| self.fail(format!("uploading {}: {}", blob.digest, chain(&e))))?;
            }
        }
        Ok(())
    }

    async fn put_manifest(&self, at: &Reference, data: &[u8], media_type: &str) -> Result<()> {
        self.client
            .push_manifest_raw(
                at,
                data.to_vec(),
                media_type.parse().expect("a valid header value"),
            )
            .await
            .map_err(|e| self.fail(format!("putting the manifest: {}", chain(&e))))?;
        Ok(())
    }
}

fn registry_error(reference: &str, detail: String) -> Error {
    Error::Registry {
        reference: reference.to_string(),
        detail,
    }
}

/// An error with its causes, `a: b: c` (reqwest hides the cause, such as "connection
/// refused", behind "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// The credentials for `registry` in the Docker config of this user, if any.
fn docker_config_credentials(registry: &str) -> Option<(String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    credentials_in(&text, registry)
}

/// The `auths` entry of a Docker `config.json` for `registry` (by host, with or without a
/// scheme; Docker Hub under its legacy URL too): `auth` is base64 of `user:password`.
pub fn credentials_in(config_json: &str, registry: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let host = |key: &str| {
        let k = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or(k).to_string()
    };
    let want = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let entry = auths
        .iter()
        .find(|(k, _)| host(k) == registry || host(k) == want)?
        .1;
    let raw = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_credentials_by_host() {
        let config = r#"{"auths": {
            "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"},
            "https://index.docker.io/v1/": {"auth": "Ym9iOnB3"},
            "broken.example": {"auth": "not base64!"}
        }}"#;
        assert_eq!(
            credentials_in(config, "127.0.0.1:5000"),
            Some(("alice".into(), "s3cr3t".into()))
        );
        assert_eq!(
            credentials_in(config, "docker.io"),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(credentials_in(config, "broken.example"), None);
        assert_eq!(credentials_in(config, "other.example"), None);
        assert_eq!(credentials_in("not json", "127.0.0.1:5000"), None);
    }

    #[test]
    fn unreachable_registry_names_the_reference_and_the_cause() {
        let spec = ImageSpec::new("x").file("/m.wasm", b"\0asm\x01\0\0\0".to_vec(), 0o755);
        let opts = PushOptions {
            plain_http: true,
            credentials: None,
        };
        // Port 1 on localhost: nothing listens there.
        let err = push(&spec, "127.0.0.1:1/wasmlet/x:v1", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("registry 127.0.0.1:1/wasmlet/x:v1: "),
            "{err}"
        );
        assert!(err.to_lowercase().contains("connection refused"), "{err}");
        let err = push(&spec, "Not A Reference", &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an image reference"), "{err}");
    }
}
