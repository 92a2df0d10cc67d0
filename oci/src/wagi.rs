//! The WAGI contract (CGI/1.1 for WebAssembly modules, as deislabs' WAGI and Spin's `wagi`
//! executor define it), pure: the environment a request gives the module
//! ([`request_env`]), and the module's stdout read back as a response
//! ([`parse_response`]): header lines up to the first blank line, `Status` setting the
//! code, `Location` redirecting (302 unless a status is given), then the body. Output with
//! neither a content type, a location nor a status is refused, as is anything that is not a
//! header line; the server answers those 500 and logs why.

use std::net::SocketAddr;

use crate::error::{Error, Result};

/// The route a plain WAGI container serves: every path.
pub const ROUTE: &str = "/...";

/// What the environment of one request is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub method: String,
    /// The path as the client sent it (percent-encoded), without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: String,
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub protocol: String,
    /// The request's headers, in order (a repeated name appears repeatedly).
    pub headers: Vec<(String, String)>,
    /// The server's address the request came to.
    pub local: SocketAddr,
    /// The client's address.
    pub remote: SocketAddr,
    /// The body's length in bytes (the body is the module's stdin).
    pub body_len: usize,
}

/// The CGI variables for `req` (without the container's own environment).
pub fn request_env(req: &RequestInfo) -> Vec<(String, String)> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let host = header("host")
        .map(str::to_string)
        .unwrap_or_else(|| req.local.to_string());
    let server_name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name.to_string()
        }
        _ => host.clone(),
    };
    let full_url = match req.query.is_empty() {
        true => format!("http://{host}{}", req.path),
        false => format!("http://{host}{}?{}", req.path, req.query),
    };
    let mut env: Vec<(String, String)> = [
        ("REQUEST_METHOD", req.method.clone()),
        ("QUERY_STRING", req.query.clone()),
        ("PATH_INFO", percent_decode(&req.path)),
        ("X_RAW_PATH_INFO", req.path.clone()),
        ("SCRIPT_NAME", String::new()),
        ("X_MATCHED_ROUTE", ROUTE.to_string()),
        ("X_FULL_URL", full_url),
        ("SERVER_NAME", server_name),
        ("SERVER_PORT", req.local.port().to_string()),
        ("SERVER_PROTOCOL", req.protocol.clone()),
        (
            "SERVER_SOFTWARE",
            format!("wasmlet/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("REMOTE_ADDR", req.remote.ip().to_string()),
        ("REMOTE_HOST", req.remote.ip().to_string()),
        ("CONTENT_LENGTH", req.body_len.to_string()),
        (
            "CONTENT_TYPE",
            header("content-type").unwrap_or_default().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Each header as HTTP_<NAME> (repeated ones joined with ", "); credentials stay out.
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => env.push((key, value.clone())),
        }
    }
    env
}

/// `%XX` sequences decoded; anything else (an invalid sequence included) kept as it is.
/// Bytes that are not UTF-8 once decoded are replaced (U+FFFD).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A module's answer: its status and headers; the body is `stdout[body_start..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body_start: usize,
}

/// The most a module's header section may hold (hyper's own limit for requests is about
/// 400 KiB; a CGI script's headers are a few lines).
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Headers the server sets itself: the body's framing and the connection's.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// Read a module's stdout as a WAGI response.
pub fn parse_response(stdout: &[u8]) -> Result<Response> {
    let bad = |reason: String| Error::WagiResponse { reason };
    if stdout.is_empty() {
        return Err(bad("the module wrote nothing to stdout".into()));
    }
    let mut status: Option<u16> = None;
    let mut headers = Vec::new();
    let mut location = false;
    let mut content_type = false;
    let mut at = 0;
    for number in 1.. {
        if at >= MAX_HEADER_BYTES {
            return Err(bad(format!(
                "no blank line within the first {MAX_HEADER_BYTES} bytes: headers too long"
            )));
        }
        let Some(len) = stdout[at..].iter().position(|&b| b == b'\n') else {
            return Err(bad(format!(
                "no blank line after the headers ({} bytes written)",
                stdout.len()
            )));
        };
        let raw = &stdout[at..at + len];
        at += len + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad(format!(
                "line {number} is not a header (NAME: value): {:?}",
                shown()
            )));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(bad(format!(
                "line {number} has an invalid header name: {:?}",
                shown()
            )));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad(format!(
                "line {number} has a control character in its value: {:?}",
                shown()
            )));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).into_owned();
        match name.as_str() {
            "status" => {
                let code = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (100..=999).contains(c));
                match code {
                    Some(c) => status = Some(c),
                    None => {
                        return Err(bad(format!(
                            "line {number}: invalid status {value:?} (a code from 100 to 999)"
                        )))
                    }
                }
            }
            n if FRAMING.contains(&n) => {}
            n => {
                location |= n == "location";
                content_type |= n == "content-type";
                headers.push((name, value));
            }
        }
    }
    if status.is_none() && !location && !content_type {
        return Err(bad(
            "no Content-Type, Location or Status header: the module must write one".into(),
        ));
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(Response {
        status,
        headers,
        body_start: at,
    })
}

/// A character of an HTTP token (RFC 9110's `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, query: &str, headers: &[(&str, &str)]) -> RequestInfo {
        RequestInfo {
            method: "POST".into(),
            path: path.into(),
            query: query.into(),
            protocol: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            local: "10.0.0.2:8080".parse().unwrap(),
            remote: "10.0.0.9:41000".parse().unwrap(),
            body_len: 5,
        }
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_request_becomes_the_cgi_environment() {
        let env = request_env(&info(
            "/a%20b/c",
            "x=1&y=%2F",
            &[
                ("Host", "example.test:8080"),
                ("Content-Type", "text/plain"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("Accept", "a"),
                ("accept", "b"),
                ("Authorization", "Bearer secret"),
            ],
        ));
        for (k, v) in [
            ("REQUEST_METHOD", "POST"),
            ("QUERY_STRING", "x=1&y=%2F"),
            ("PATH_INFO", "/a b/c"),
            ("X_RAW_PATH_INFO", "/a%20b/c"),
            ("SCRIPT_NAME", ""),
            ("X_MATCHED_ROUTE", "/..."),
            ("X_FULL_URL", "http://example.test:8080/a%20b/c?x=1&y=%2F"),
            ("SERVER_NAME", "example.test"),
            ("SERVER_PORT", "8080"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "10.0.0.9"),
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_X_FORWARDED_FOR", "1.2.3.4"),
            ("HTTP_ACCEPT", "a, b"),
            ("HTTP_HOST", "example.test:8080"),
        ] {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
        assert!(get(&env, "SERVER_SOFTWARE")
            .unwrap()
            .starts_with("wasmlet/"));
        assert_eq!(get(&env, "HTTP_AUTHORIZATION"), None);
        assert!(!env.iter().any(|(_, v)| v.contains("secret")));
    }

    #[test]
    fn without_a_host_header_the_server_address_names_the_server() {
        let env = request_env(&info("/", "", &[]));
        assert_eq!(get(&env, "SERVER_NAME"), Some("10.0.0.2"));
        assert_eq!(get(&env, "X_FULL_URL"), Some("http://10.0.0.2:8080/"));
        assert_eq!(get(&env, "CONTENT_TYPE"), Some(""));
        let v6 = request_env(&info("/", "", &[("host", "[::1]:80")]));
        assert_eq!(get(&v6, "SERVER_NAME"), Some("[::1]"));
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_a_sequence() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn a_response_has_headers_a_blank_line_and_a_body() {
        let out = b"Content-Type: text/plain\r\nX-A:  1 \n\nhello\n";
        let r = parse_response(out).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers,
            vec![
                ("content-type".to_string(), "text/plain".to_string()),
                ("x-a".to_string(), "1".to_string())
            ]
        );
        assert_eq!(&out[r.body_start..], b"hello\n");
    }

    #[test]
    fn status_and_location_set_the_code() {
        let r = parse_response(b"Status: 404 Not Found\n\n").unwrap();
        assert_eq!((r.status, r.headers.len()), (404, 0));
        let r = parse_response(b"location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, 302);
        let r = parse_response(b"Location: /x\nStatus: 301\n\n").unwrap();
        assert_eq!(r.status, 301);
        // The server frames the body itself.
        let r =
            parse_response(b"Content-Type: a\nContent-Length: 99\nConnection: close\n\n").unwrap();
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn malformed_output_is_refused_with_its_reason() {
        for (out, reason) in [
            (&b""[..], "wrote nothing"),
            (b"hello world", "no blank line"),
            (
                b"Content-Type: text/plain\nbody without a blank line",
                "no blank line",
            ),
            (b"Content-Type text/plain\n\nx", "line 1 is not a header"),
            (
                b"Content-Type: a\nBad Name: x\n\n",
                "line 2 has an invalid header name",
            ),
            (b": x\n\n", "invalid header name"),
            (b"X-A: a\x01b\n\n", "control character"),
            (b"Status: teapot\n\n", "invalid status"),
            (b"Status: 42\n\n", "invalid status"),
            (b"Status: 70000\n\n", "invalid status"),
            (b"X-Only: 1\n\nbody", "no Content-Type, Location or Status"),
        ] {
            let e = parse_response(out).unwrap_err().to_string();
            assert!(e.contains(reason), "{out:?}: {e}");
            assert!(e.starts_with("malformed WAGI response: "), "{e}");
        }
        let long = format!("Content-Type: a\nX: {}\n\n", "v".repeat(MAX_HEADER_BYTES));
        let e = parse_response(long.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("headers too long"), "{e}");
    }
}
