//! A WAGI module's stdout read back as a response (untrusted: the module is the tenant's),
//! and a request's CGI environment (untrusted: the client's path, query and headers). The
//! parse gives a response whose status is a code from 100 to 999, whose headers hyper
//! accepts and whose body starts inside the output, or an error saying so; the
//! environment never panics and never carries the Authorization header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmlet_oci::wagi::{parse_response, percent_decode, request_env, RequestInfo};

fuzz_target!(|data: &[u8]| {
    match parse_response(data) {
        Ok(r) => {
            assert!((100..=999).contains(&r.status), "{}", r.status);
            assert!(r.body_start <= data.len());
            for (name, value) in &r.headers {
                assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name:?}");
                assert!(http::HeaderValue::from_str(value).is_ok(), "{value:?}");
            }
        }
        Err(e) => assert!(e.to_string().starts_with("malformed WAGI response: "), "{e}"),
    }
    let text = String::from_utf8_lossy(data);
    let _ = percent_decode(&text);
    let mut parts = text.splitn(3, '\n');
    let path = parts.next().unwrap_or_default().to_string();
    let query = parts.next().unwrap_or_default().to_string();
    let header = parts.next().unwrap_or_default().to_string();
    let env = request_env(&RequestInfo {
        method: "GET".into(),
        path,
        query,
        protocol: "HTTP/1.1".into(),
        headers: vec![
            ("host".into(), header.clone()),
            (header.clone(), "v".into()),
            ("authorization".into(), "secret-token".into()),
        ],
        local: "127.0.0.1:8080".parse().unwrap(),
        remote: "127.0.0.1:40000".parse().unwrap(),
        body_len: data.len(),
    });
    assert!(!env.iter().any(|(k, _)| k == "HTTP_AUTHORIZATION"));
});
