//! WAGI handlers (`WASMLET_HTTP_EXECUTOR=wagi`): the `wagi-hello` example, a plain WASI
//! preview 1 program, run once per request CGI-style by the Wasmtime shim; the other
//! engines refuse it at create, naming the shim that serves it.

use std::net::SocketAddr;
use std::time::Duration;

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{example, require, rootfs};
use wasmlet_tests::http::{free_port, request, Client};

use super::{assert_idle, http_hello, start_with, stop_gracefully, wait_serving};
use crate::lifecycle::task_status;
use crate::support::{assert_clean, engine, ns, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "http::wagi::a_module_answers_each_request_cgi_style",
        answers_cgi_style,
    ),
    (
        "http::wagi::broken_answers_are_500_and_the_server_goes_on",
        broken_answers,
    ),
    (
        "http::wagi::the_request_timeout_stops_a_busy_module",
        request_timeout,
    ),
    ("http::wagi::refused_where_it_cannot_run", refusals),
];

const WAGI: &str = "WASMLET_HTTP_EXECUTOR=wagi";

/// The `wagi-hello` example.
pub(crate) fn wagi_hello() -> Vec<u8> {
    let module = example("wasm32-wasip1", "wagi-hello");
    require(&module).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&module).unwrap()
}

/// `wagi-hello` served as `id` with `env` (and `WASMLET_HTTP_EXECUTOR=wagi`) on a free
/// port: its rootfs (keep it) and address; `None` on an engine that does not serve WAGI,
/// once its refusal is checked and nothing is left.
fn serving(
    ctd: &Containerd,
    id: &str,
    memory: &str,
    env: &[&str],
) -> Option<(tempfile::TempDir, SocketAddr)> {
    let dir = rootfs(&[("/http.wasm", wagi_hello())]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut all = vec![WAGI];
    all.extend_from_slice(env);
    let out = start_with(ctd, id, dir.path(), &addr.to_string(), memory, &all);
    let engine = engine(ctd);
    if engine.name != "wasmtime" {
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr.contains("asks for the WAGI executor")
                && out.stderr.contains("containerd-shim-wasmtime-v1"),
            "{}: {}",
            engine.name,
            out.stderr
        );
        let _ = ctd.ctr(ns(ctd), &["container", "rm", id]);
        assert_clean(ctd, id);
        return None;
    }
    out.ok("ctr run -d (WAGI example)");
    wait_serving(addr);
    Some((dir, addr))
}

/// Routes, methods, query, headers and body reach the module as CGI variables and stdin;
/// `Status:` and `Location:` set the answer; the container's env reaches every request;
/// 50 requests at once each get their own instance.
fn answers_cgi_style(ctd: &Containerd) {
    let Some((_dir, addr)) = serving(ctd, "wagi", "67108864", &[]) else {
        return;
    };
    let hello = request(addr, "GET", "/", b"").unwrap();
    assert_eq!(
        (hello.status, hello.text()),
        (
            200,
            "Bonjour from a WAGI module on wasmlet! (GET /)\n".into()
        )
    );
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let mut client = Client::connect(addr).unwrap();
    let echo = client
        .request_with(
            "POST",
            "/echo?x=1&y=two",
            &[("X-Test", "yes"), ("Authorization", "Bearer hidden")],
            b"hello body",
        )
        .unwrap();
    assert_eq!(
        (echo.status, echo.text()),
        (
            200,
            "method=POST\npath=/echo\nquery=x=1&y=two\nx-test=yes\nlength=10\nbody=hello body\n"
                .into()
        )
    );
    // The same keep-alive connection serves the next request, with a fresh instance.
    let created = client.request("GET", "/status/201", b"").unwrap();
    assert_eq!(
        (created.status, created.text()),
        (201, "status 201\n".into())
    );
    let moved = client.request("GET", "/redirect", b"").unwrap();
    assert_eq!((moved.status, moved.header("location")), (302, Some("/")));
    assert_eq!(
        request(addr, "GET", "/env/GREETING", b"").unwrap().text(),
        "Bonjour\n"
    );
    let missing = request(addr, "GET", "/nowhere", b"").unwrap();
    assert_eq!(
        (missing.status, missing.text()),
        (404, "not found: /nowhere\n".into())
    );
    let many: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!("request {i}");
                let r = request(addr, "PUT", "/echo", body.as_bytes()).unwrap();
                assert_eq!(r.status, 200);
                assert!(
                    r.text().ends_with(&format!("body={body}\n")),
                    "{}",
                    r.text()
                );
            })
        })
        .collect();
    for t in many {
        t.join().unwrap();
    }
    stop_gracefully(ctd, "wagi");
}

/// Output that is not a WAGI answer (no blank line, a line that is not a header, a bad
/// status, no content type, a control character, a head past 64 KiB), a module that exits
/// non-zero, and a body past 16 MiB: each answered 500 (413 for the body), and the server
/// answers the next request.
fn broken_answers(ctd: &Containerd) {
    let Some((_dir, addr)) = serving(ctd, "wagi-broken", "67108864", &[]) else {
        return;
    };
    for path in [
        "/malformed/no-blank-line",
        "/malformed/not-a-header",
        "/malformed/bad-status",
        "/malformed/no-content-type",
        "/malformed/control",
        "/malformed/huge-header",
        "/malformed/nothing",
        "/exit/3",
    ] {
        let r = request(addr, "GET", path, b"").unwrap();
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    }
    // exit(0) after writing an answer is a normal end.
    assert_eq!(
        request(addr, "GET", "/exit/0", b"").unwrap().text(),
        "not this\n"
    );
    let big = vec![b'x'; (16 << 20) + 1];
    assert_eq!(request(addr, "POST", "/echo", &big).unwrap().status, 413);
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    stop_gracefully(ctd, "wagi-broken");
}

/// `WASMLET_HTTP_REQUEST_TIMEOUT=1s`: a module computing for ever is answered 504 and
/// stopped (the server's CPU use falls back), and the server answers the next request.
fn request_timeout(ctd: &Containerd) {
    let env = ["WASMLET_HTTP_REQUEST_TIMEOUT=1s"];
    let Some((_dir, addr)) = serving(ctd, "wagi-bounds", "67108864", &env) else {
        return;
    };
    let started = std::time::Instant::now();
    let spun = request(addr, "GET", "/spin", b"").unwrap();
    assert_eq!(spun.status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    let (_, pid) = task_status(ctd, "wagi-bounds").expect("task listed");
    std::thread::sleep(Duration::from_millis(500));
    assert_idle(pid, "a timed-out WAGI instance");
    stop_gracefully(ctd, "wagi-bounds");
}

/// An unknown executor fails create naming the setting; a component asked to run as WAGI
/// fails create (on the engines that do not serve WAGI, the WAGI refusal comes first).
fn refusals(ctd: &Containerd) {
    let dir = rootfs(&[("/http.wasm", wagi_hello())]);
    let addr = format!("127.0.0.1:{}", free_port());
    let out = start_with(
        ctd,
        "wagi-unknown",
        dir.path(),
        &addr,
        "67108864",
        &["WASMLET_HTTP_EXECUTOR=cgi"],
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains(
            "invalid HTTP executor \"cgi\" in environment variable WASMLET_HTTP_EXECUTOR"
        ),
        "{}",
        out.stderr
    );
    let _ = ctd.ctr(ns(ctd), &["container", "rm", "wagi-unknown"]);
    assert_clean(ctd, "wagi-unknown");

    let dir = rootfs(&[("/http.wasm", http_hello())]);
    let out = start_with(
        ctd,
        "wagi-component",
        dir.path(),
        &addr,
        "67108864",
        &[WAGI],
    );
    assert_ne!(out.code, Some(0));
    let expected = match engine(ctd).name {
        "wasmtime" => "the WAGI executor runs WASI preview 1 modules",
        _ => "asks for the WAGI executor",
    };
    assert!(out.stderr.contains(expected), "{}", out.stderr);
    let _ = ctd.ctr(ns(ctd), &["container", "rm", "wagi-component"]);
    assert_clean(ctd, "wagi-component");
}
