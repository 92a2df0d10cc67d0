//! A WAGI handler: a plain WASI preview 1 program, with no HTTP library, that the shim runs
//! once per request (`WASMLET_HTTP_EXECUTOR=wagi`). The request arrives CGI-style: its
//! method, path and query in the environment (`REQUEST_METHOD`, `PATH_INFO`,
//! `QUERY_STRING`, a header as `HTTP_<NAME>`), its body on stdin. The answer is written to
//! stdout: header lines, a blank line, the body. Routes:
//! - `GET /`: a greeting;
//! - `/echo` (any method): the method, path, query, a header and the body, one per line;
//! - `GET /status/<code>`: that status (`Status:`);
//! - `GET /redirect`: a redirect to `/` (`Location:`, 302);
//! - `GET /env/<NAME>`: the container's variable NAME (the container's env reaches every
//!   request);
//! - `GET /malformed/<n>`: a broken answer (no blank line, a line that is not a header, an
//!   invalid status, no content type): the server answers 500 and logs why;
//! - `GET /exit/<code>`: exits with that code before answering (500 unless 0);
//! - `GET /spin`: computes for ever (the request timeout stops it);
//! - anything else is a 404.
//!
//! Build: `cargo build --release -p wagi-hello --target wasm32-wasip1`.

use std::io::{Read, Write};

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (method, path) = (var("REQUEST_METHOD"), var("PATH_INFO"));
    let mut out = std::io::stdout().lock();
    let text = "Content-Type: text/plain; charset=utf-8\n\n";
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => writeln!(
            out,
            "{text}Bonjour from a WAGI module on wasmlet! ({method} {path})"
        )
        .unwrap(),
        (_, "/echo") => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body).unwrap();
            writeln!(
                out,
                "{text}method={method}\npath={path}\nquery={}\nx-test={}\nlength={}\nbody={}",
                var("QUERY_STRING"),
                var("HTTP_X_TEST"),
                var("CONTENT_LENGTH"),
                String::from_utf8_lossy(&body)
            )
            .unwrap()
        }
        ("GET", "/redirect") => out.write_all(b"Location: /\n\n").unwrap(),
        ("GET", "/spin") => loop {
            std::hint::black_box(());
        },
        ("GET", p) if p.starts_with("/status/") => {
            writeln!(out, "Status: {}\n{text}status {}", &p[8..], &p[8..]).unwrap()
        }
        ("GET", p) if p.starts_with("/env/") => writeln!(out, "{text}{}", var(&p[5..])).unwrap(),
        ("GET", p) if p.starts_with("/exit/") => {
            writeln!(out, "{text}not this").unwrap();
            std::process::exit(p[6..].parse().unwrap_or(1))
        }
        ("GET", p) if p.starts_with("/malformed/") => {
            let answer: &[u8] = match &p[11..] {
                "no-blank-line" => b"Content-Type: text/plain\nhello",
                "not-a-header" => b"this is not a header\n\nhello",
                "bad-status" => b"Status: teapot\n\n",
                "no-content-type" => b"X-Only: 1\n\nhello",
                "control" => b"Content-Type: text/plain\nX-A: a\x01b\n\n",
                "huge-header" => &[b'x'; 100_000],
                _ => b"",
            };
            out.write_all(answer).unwrap()
        }
        _ => writeln!(out, "Status: 404\n{text}not found: {path}").unwrap(),
    }
}
