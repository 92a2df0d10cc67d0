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
use crate::image::{build, ImageSpec, Written, MT_MANIFEST};

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
    let fail = |detail: String| Error::Registry {
        reference: reference.to_string(),
        detail,
    };
    let parsed: Reference = reference
        .parse()
        .map_err(|e| fail(format!("not an image reference: {e}")))?;
    let built = build(spec)?;
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
    runtime.block_on(async {
        client
            .auth(&parsed, &auth, RegistryOperation::Push)
            .await
            .map_err(|e| fail(chain(&e)))?;
        for blob in &built.blobs {
            let have = client
                .blob_exists(&parsed, &blob.digest)
                .await
                .map_err(|e| fail(chain(&e)))?;
            if !have {
                client
                    .push_blob(&parsed, blob.data.clone(), &blob.digest)
                    .await
                    .map_err(|e| fail(format!("uploading {}: {}", blob.digest, chain(&e))))?;
            }
        }
        client
            .push_manifest_raw(
                &parsed,
                built.manifest.data.clone(),
                MT_MANIFEST.parse().expect("a valid header value"),
            )
            .await
            .map_err(|e| fail(format!("putting the manifest: {}", chain(&e))))?;
        Ok(built.written)
    })
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
