//! Where a `wasi:http/proxy` workload listens: the container's `WASMLET_HTTP_LISTEN`
//! environment variable, else the spec's `wasmlet.dev/http-listen` annotation, else
//! `0.0.0.0:8080` (what `wasmtime serve` uses).
//!
//! Accepted forms: `ADDR:PORT` (`0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:3000`), `:PORT` and
//! `PORT` (every IPv4 address).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The environment variable naming the listen address.
pub const LISTEN_ENV: &str = "WASMLET_HTTP_LISTEN";
/// The annotation naming the listen address (CRI passes pod annotations through only when
/// containerd's runtime config lists them in `pod_annotations`).
pub const LISTEN_ANNOTATION: &str = "wasmlet.dev/http-listen";
/// The listen address when neither is set.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);

/// The listen address for `spec`, whose environment is `env`.
pub fn listen_address(spec: &Spec, env: &[(String, String)]) -> Result<SocketAddr> {
    if let Some((_, v)) = env.iter().find(|(k, _)| k == LISTEN_ENV) {
        return parse(v).ok_or_else(|| invalid(format!("environment variable {LISTEN_ENV}"), v));
    }
    if let Some(v) = crate::spec::annotation(spec, LISTEN_ANNOTATION) {
        return parse(v).ok_or_else(|| invalid(format!("annotation {LISTEN_ANNOTATION}"), v));
    }
    Ok(DEFAULT_LISTEN)
}

fn invalid(source: String, value: &str) -> Error {
    Error::InvalidListenAddress {
        source_name: source,
        value: value.to_string(),
    }
}

fn parse(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port = value
        .strip_prefix(':')
        .unwrap_or(value)
        .parse::<u16>()
        .ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(annotation: Option<&str>) -> Spec {
        let mut spec = Spec::default();
        if let Some(a) = annotation {
            spec.set_annotations(Some(
                [(LISTEN_ANNOTATION.to_string(), a.to_string())].into(),
            ));
        }
        spec
    }

    fn env(v: &str) -> Vec<(String, String)> {
        vec![(LISTEN_ENV.to_string(), v.to_string())]
    }

    #[test]
    fn default_is_every_ipv4_address_port_8080() {
        assert_eq!(
            listen_address(&spec(None), &[]).unwrap().to_string(),
            "0.0.0.0:8080"
        );
    }

    #[test]
    fn forms_accepted() {
        for (given, want) in [
            ("127.0.0.1:3000", "127.0.0.1:3000"),
            ("[::]:80", "[::]:80"),
            (":9090", "0.0.0.0:9090"),
            ("9090", "0.0.0.0:9090"),
            (" 0.0.0.0:1 ", "0.0.0.0:1"),
        ] {
            let addr = listen_address(&spec(None), &env(given)).unwrap();
            assert_eq!(addr.to_string(), want, "{given}");
        }
    }

    #[test]
    fn environment_wins_over_annotation() {
        let addr = listen_address(&spec(Some("127.0.0.1:1")), &env(":2")).unwrap();
        assert_eq!(addr.port(), 2);
        let addr = listen_address(&spec(Some("127.0.0.1:1")), &[]).unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:1");
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = listen_address(&spec(None), &env("localhost:80")).unwrap_err();
        assert!(e.to_string().contains(LISTEN_ENV), "{e}");
        assert!(e.to_string().contains("localhost:80"), "{e}");
        let e = listen_address(&spec(Some("99999")), &[]).unwrap_err();
        assert!(e.to_string().contains(LISTEN_ANNOTATION), "{e}");
    }
}
