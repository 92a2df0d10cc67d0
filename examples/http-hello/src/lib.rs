//! A `wasi:http/proxy` component for wasmlet (and `wasmtime serve`): the shim serves it
//! over HTTP, one fresh instance per request.
//!
//! - `GET /` answers with a greeting (`$GREETING` from the container's environment, else
//!   "Hello") and the request's method and path;
//! - `POST /echo` answers with the request body;
//! - `GET /alloc/<MiB>` allocates and touches that much memory first (to see the
//!   per-instance memory limit at work: past it, the request fails and the server goes on);
//! - `GET /spin/<ms>` computes without pause for that long (other requests are still
//!   answered meanwhile: the shim makes busy instances take turns);
//! - `GET /sleep/<ms>` waits that long before answering (many requests in flight at once);
//! - `GET /stream` answers with a body that never ends (1 KiB lines as fast as the client
//!   takes them), until the client or the server's request timeout stops it;
//! - anything else is a 404.
//!
//! Build: `cargo build --release -p http-hello --target wasm32-wasip2`.

use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(HttpHello);

struct HttpHello;

impl wasip2::exports::http::incoming_handler::Guest for HttpHello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = request.method();
        if matches!(method, Method::Get) && path == "/stream" {
            return stream_forever(out);
        }
        let (status, body) = match (&method, path.as_str()) {
            (Method::Get, "/") => (200, greeting(&method, &path).into_bytes()),
            (Method::Post, "/echo") => match read_body(&request) {
                Ok(body) => (200, body),
                Err(e) => (400, format!("reading the request body: {e}\n").into_bytes()),
            },
            (Method::Get, p) if p.starts_with("/alloc/") => match p[7..].parse::<usize>() {
                Ok(mib) => {
                    let block = vec![1u8; mib << 20];
                    let text = format!("allocated {} MiB\n", block.len() >> 20);
                    (200, text.into_bytes())
                }
                Err(_) => (400, b"usage: /alloc/<MiB>\n".to_vec()),
            },
            (Method::Get, p) if p.starts_with("/sleep/") => match p[7..].parse::<u64>() {
                Ok(ms) => {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    (200, format!("slept {ms} ms\n").into_bytes())
                }
                Err(_) => (400, b"usage: /sleep/<ms>\n".to_vec()),
            },
            (Method::Get, p) if p.starts_with("/spin/") => match p[6..].parse::<u64>() {
                Ok(ms) => {
                    spin(std::time::Duration::from_millis(ms));
                    (200, format!("spun {ms} ms\n").into_bytes())
                }
                Err(_) => (400, b"usage: /spin/<ms>\n".to_vec()),
            },
            _ => (
                404,
                format!("no route for {} {path}\n", name(&method)).into_bytes(),
            ),
        };
        respond(out, status, &body);
    }
}

/// Answer 200 with a body that never ends, until a write fails (the client went away, or
/// the host stopped the request).
fn stream_forever(out: ResponseOutparam) {
    let headers =
        Fields::from_list(&[("content-type".into(), b"text/plain; charset=utf-8".to_vec())])
            .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    let mut line = [b'x'; 1024];
    line[1023] = b'\n';
    while stream
        .write_all(&line)
        .and_then(|()| std::io::Write::flush(&mut stream))
        .is_ok()
    {}
}

/// Compute, without waiting on anything, for `how_long`.
fn spin(how_long: std::time::Duration) {
    let start = std::time::Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < how_long {
        rounds = std::hint::black_box(rounds + 1);
    }
}

fn greeting(method: &Method, path: &str) -> String {
    let greeting = wasip2::cli::environment::get_environment()
        .into_iter()
        .find(|(k, _)| k == "GREETING")
        .map(|(_, v)| v)
        .unwrap_or_else(|| "Hello".into());
    format!(
        "{greeting} from WebAssembly on wasmlet! ({} {path})\n",
        name(method)
    )
}

fn name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(m) => m,
    }
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "body already taken")?;
    let mut stream = body.stream().map_err(|()| "body stream already taken")?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    drop(stream);
    wasip2::http::types::IncomingBody::finish(body);
    Ok(buf)
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ])
    .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    // A client that went away is not the component's problem: nothing to do but stop.
    if stream
        .write_all(body)
        .and_then(|()| std::io::Write::flush(&mut stream))
        .is_ok()
    {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
    }
}
