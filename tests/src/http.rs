//! A minimal HTTP/1.1 client over `std::net` for the HTTP tests and the requests/s bench:
//! keep-alive connections, `Content-Length` and chunked bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code, headers (names in lower case) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Send one request and read its response.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
        self.request_with(method, path, &[], body)
    }

    /// The same with more request headers.
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: wasmlet.test\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req)?;
        self.read_response()
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
        let (mut length, mut chunked) = (None, false);
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').ok_or_else(|| bad("bad header"))?;
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// One request on a connection of its own.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    Client::connect(addr)?.request(method, path, body)
}

/// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a [`load`] run measured.
#[derive(Debug, Default)]
pub struct Load {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every answered request.
    pub latencies: Vec<Duration>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1).
    pub fn latency(&self, q: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// `GET path` on `connections` keep-alive connections, as fast as answers come, for
/// `duration`.
pub fn load(addr: SocketAddr, path: &str, connections: usize, duration: Duration) -> Load {
    let start = std::time::Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut load = Load::default();
                let mut client = None;
                while std::time::Instant::now() < deadline {
                    let c = match client.as_mut() {
                        Some(c) => c,
                        None => match Client::connect(addr) {
                            Ok(c) => client.insert(c),
                            Err(_) => {
                                load.errors += 1;
                                continue;
                            }
                        },
                    };
                    let t = std::time::Instant::now();
                    match c.request("GET", &path, b"") {
                        Ok(r) if r.status == 200 => {
                            load.ok += 1;
                            load.latencies.push(t.elapsed());
                        }
                        Ok(_) => load.errors += 1,
                        Err(_) => {
                            load.errors += 1;
                            client = None;
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for w in workers {
        let l = w.join().unwrap_or_default();
        total.ok += l.ok;
        total.errors += l.errors;
        total.latencies.extend(l.latencies);
    }
    total.elapsed = start.elapsed();
    total
}

/// Wait until `addr` answers `GET /` with 200; whether it did within 30 s.
pub fn wait_serving(addr: SocketAddr) -> bool {
    crate::cmd::eventually(Duration::from_secs(30), || {
        request(addr, "GET", "/", b"").is_ok_and(|r| r.status == 200)
    })
}

/// Run `image` (a `wasi:http/proxy` component) detached as `id` with `runtime` on the host
/// network, listening on a free port of 127.0.0.1; its address once it answers.
pub fn serve_image(
    ctd: &crate::containerd::Containerd,
    ns: &str,
    runtime: &str,
    image: &str,
    id: &str,
) -> SocketAddr {
    serve_image_with(ctd, ns, runtime, image, id, &[])
}

/// [`serve_image`] with more `env` entries (`KEY=VALUE`).
pub fn serve_image_with(
    ctd: &crate::containerd::Containerd,
    ns: &str,
    runtime: &str,
    image: &str,
    id: &str,
    env: &[&str],
) -> SocketAddr {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = format!("WASMLET_HTTP_LISTEN={addr}");
    let mut args = vec![
        "run",
        "-d",
        "--net-host",
        "--runtime",
        runtime,
        "--env",
        &listen,
    ];
    for e in env {
        args.extend(["--env", e]);
    }
    args.extend([image, id]);
    ctd.ctr(ns, &args).ok("ctr run -d (HTTP)");
    assert!(wait_serving(addr), "{image} does not serve http://{addr}/");
    addr
}
