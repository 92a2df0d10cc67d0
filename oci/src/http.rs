//! How a `wasi:http/proxy` workload is served, from its spec:
//! - where it listens: the container's `WASMLET_HTTP_LISTEN` environment variable, else the
//!   spec's `wasmlet.dev/http-listen` annotation, else `0.0.0.0:8080` (what `wasmtime serve`
//!   uses). Forms: `ADDR:PORT` (`0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:3000`), `:PORT` and
//!   `PORT` (every IPv4 address);
//! - how long a request may take: `WASMLET_HTTP_REQUEST_TIMEOUT` (or the annotation
//!   `wasmlet.dev/http-request-timeout`): `500ms`, `30s`, `2m`, or plain seconds; none by
//!   default;
//! - how long a client may take to send a request's head, which also bounds how long an
//!   idle keep-alive connection stays open: `WASMLET_HTTP_HEADER_TIMEOUT` (or the annotation
//!   `wasmlet.dev/http-header-timeout`), in the same forms; 30 s by default. A slow or
//!   silent client cannot hold a connection (and a descriptor) for longer;
//! - what answers: `WASMLET_HTTP_EXECUTOR` (or the annotation `wasmlet.dev/http-executor`)
//!   `wagi` serves a WASI preview 1 module as a WAGI handler (see [`crate::wagi`]); by
//!   default a component exporting `wasi:http/incoming-handler` is served, anything else
//!   runs as a program.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The environment variable naming the listen address.
pub const LISTEN_ENV: &str = "WASMLET_HTTP_LISTEN";
/// The annotation naming the listen address (CRI passes pod annotations through only when
/// containerd's runtime config lists them in `pod_annotations`).
pub const LISTEN_ANNOTATION: &str = "wasmlet.dev/http-listen";
/// The listen address when neither is set.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);

/// The environment variable bounding a request's time.
pub const TIMEOUT_ENV: &str = "WASMLET_HTTP_REQUEST_TIMEOUT";
/// The annotation bounding a request's time.
pub const TIMEOUT_ANNOTATION: &str = "wasmlet.dev/http-request-timeout";

/// The environment variable bounding the time to a request's head.
pub const HEADER_TIMEOUT_ENV: &str = "WASMLET_HTTP_HEADER_TIMEOUT";
/// The annotation bounding the time to a request's head.
pub const HEADER_TIMEOUT_ANNOTATION: &str = "wasmlet.dev/http-header-timeout";
/// The time to a request's head when neither is set (hyper's own default).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable choosing the HTTP executor.
pub const EXECUTOR_ENV: &str = "WASMLET_HTTP_EXECUTOR";
/// The annotation choosing the HTTP executor.
pub const EXECUTOR_ANNOTATION: &str = "wasmlet.dev/http-executor";

/// What serves a container's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Executor {
    /// A component exporting `wasi:http/incoming-handler` is served; anything else runs.
    #[default]
    WasiHttp,
    /// The entrypoint module runs once per request as a CGI script (WAGI).
    Wagi,
}

/// The HTTP executor for `spec`, whose environment is `env`.
pub fn executor(spec: &Spec, env: &[(String, String)]) -> Result<Executor> {
    match setting(spec, env, EXECUTOR_ENV, EXECUTOR_ANNOTATION) {
        None => Ok(Executor::WasiHttp),
        Some((source_name, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "wagi" => Ok(Executor::Wagi),
            "wasi-http" | "" => Ok(Executor::WasiHttp),
            _ => Err(Error::InvalidExecutor {
                source_name,
                value: v.to_string(),
            }),
        },
    }
}

/// The setting `env_key` of `env`, else annotation `annotation` of `spec`: (where, value).
fn setting<'a>(
    spec: &'a Spec,
    env: &'a [(String, String)],
    env_key: &str,
    annotation: &str,
) -> Option<(String, &'a str)> {
    if let Some((_, v)) = env.iter().find(|(k, _)| k == env_key) {
        return Some((format!("environment variable {env_key}"), v));
    }
    crate::spec::annotation(spec, annotation).map(|v| (format!("annotation {annotation}"), v))
}

/// The listen address for `spec`, whose environment is `env`.
pub fn listen_address(spec: &Spec, env: &[(String, String)]) -> Result<SocketAddr> {
    match setting(spec, env, LISTEN_ENV, LISTEN_ANNOTATION) {
        Some((source_name, v)) => parse(v).ok_or_else(|| Error::InvalidListenAddress {
            source_name,
            value: v.to_string(),
        }),
        None => Ok(DEFAULT_LISTEN),
    }
}

/// The request timeout for `spec`, whose environment is `env`, if one is set.
pub fn request_timeout(spec: &Spec, env: &[(String, String)]) -> Result<Option<Duration>> {
    duration_setting(spec, env, TIMEOUT_ENV, TIMEOUT_ANNOTATION)
}

/// How long a client of `spec`'s server may take to send a request's head.
pub fn header_timeout(spec: &Spec, env: &[(String, String)]) -> Result<Duration> {
    Ok(
        duration_setting(spec, env, HEADER_TIMEOUT_ENV, HEADER_TIMEOUT_ANNOTATION)?
            .unwrap_or(DEFAULT_HEADER_TIMEOUT),
    )
}

fn duration_setting(
    spec: &Spec,
    env: &[(String, String)],
    env_key: &str,
    annotation: &str,
) -> Result<Option<Duration>> {
    match setting(spec, env, env_key, annotation) {
        Some((source_name, v)) => {
            parse_duration(v)
                .map(Some)
                .ok_or_else(|| Error::InvalidTimeout {
                    source_name,
                    value: v.to_string(),
                })
        }
        None => Ok(None),
    }
}

/// `500ms`, `30s`, `2m`, or plain seconds; never zero.
pub(crate) fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
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
    fn request_timeouts() {
        let env = |v: &str| vec![(TIMEOUT_ENV.to_string(), v.to_string())];
        for (given, want) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("7", 7000),
        ] {
            let t = request_timeout(&spec(None), &env(given)).unwrap();
            assert_eq!(t, Some(Duration::from_millis(want)), "{given}");
        }
        assert_eq!(request_timeout(&spec(None), &[]).unwrap(), None);
        for bad in ["0", "1h", "", "-1s", "1.5s"] {
            let e = request_timeout(&spec(None), &env(bad)).unwrap_err();
            assert!(e.to_string().contains(TIMEOUT_ENV), "{bad}: {e}");
        }
    }

    #[test]
    fn header_timeout_defaults_to_30_s_and_is_set_like_the_request_timeout() {
        assert_eq!(
            header_timeout(&spec(None), &[]).unwrap(),
            Duration::from_secs(30)
        );
        let env = |v: &str| vec![(HEADER_TIMEOUT_ENV.to_string(), v.to_string())];
        assert_eq!(
            header_timeout(&spec(None), &env("2s")).unwrap(),
            Duration::from_secs(2)
        );
        let mut annotated = Spec::default();
        annotated.set_annotations(Some(
            [(HEADER_TIMEOUT_ANNOTATION.to_string(), "500ms".to_string())].into(),
        ));
        assert_eq!(
            header_timeout(&annotated, &[]).unwrap(),
            Duration::from_millis(500)
        );
        let e = header_timeout(&spec(None), &env("soon")).unwrap_err();
        assert!(e.to_string().contains(HEADER_TIMEOUT_ENV), "{e}");
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = listen_address(&spec(None), &env("localhost:80")).unwrap_err();
        assert!(e.to_string().contains(LISTEN_ENV), "{e}");
        assert!(e.to_string().contains("localhost:80"), "{e}");
        let e = listen_address(&spec(Some("99999")), &[]).unwrap_err();
        assert!(e.to_string().contains(LISTEN_ANNOTATION), "{e}");
    }

    #[test]
    fn the_executor_is_wasi_http_unless_wagi_is_asked_for() {
        let env = |v: &str| vec![(EXECUTOR_ENV.to_string(), v.to_string())];
        assert_eq!(executor(&spec(None), &[]).unwrap(), Executor::WasiHttp);
        assert_eq!(executor(&spec(None), &env("wagi")).unwrap(), Executor::Wagi);
        assert_eq!(
            executor(&spec(None), &env(" WAGI ")).unwrap(),
            Executor::Wagi
        );
        assert_eq!(
            executor(&spec(None), &env("wasi-http")).unwrap(),
            Executor::WasiHttp
        );
        let mut annotated = Spec::default();
        annotated.set_annotations(Some(
            [(EXECUTOR_ANNOTATION.to_string(), "wagi".to_string())].into(),
        ));
        assert_eq!(executor(&annotated, &[]).unwrap(), Executor::Wagi);
        assert_eq!(
            executor(&annotated, &env("wasi-http")).unwrap(),
            Executor::WasiHttp
        );
        let e = executor(&spec(None), &env("cgi")).unwrap_err().to_string();
        assert!(
            e.contains("\"cgi\"") && e.contains(EXECUTOR_ENV) && e.contains("wagi"),
            "{e}"
        );
    }
}
