//! Hostile HTTP traffic against a served component: clients that would hold the server's
//! connections (slowloris, silent, idle, crowds past the descriptor limit, oversized heads)
//! and a guest whose response never ends.

use std::net::SocketAddr;
use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::http::request;

use super::{assert_idle, serving, stop_gracefully};
use crate::lifecycle::task_status;

/// Read `stream` until it ends (end of file, or reset); the bytes read. Panics if it is
/// still sending after `limit`.
fn read_to_end_within(mut stream: std::net::TcpStream, limit: Duration) -> usize {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("after {total} bytes: {e}"),
        }
        assert!(
            started.elapsed() < limit,
            "still streaming after {limit:?} ({total} bytes)"
        );
    }
}

/// A guest whose response body never ends, under `WASMLET_HTTP_REQUEST_TIMEOUT=2s`: a
/// client reading it gets a stream cut at the deadline (its instance stopped), a client
/// that stops reading holds nothing past it either, and the server answers others all
/// along.
pub(super) fn streaming_forever(ctd: &Containerd) {
    use std::io::{Read, Write};
    let timeout = ["WASMLET_HTTP_REQUEST_TIMEOUT=2s"];
    let Some((_dir, addr)) = serving(ctd, "http-stream", "67108864", &timeout) else {
        return;
    };
    let get = |addr: SocketAddr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: wasmlet\r\n\r\n")
            .unwrap();
        s
    };
    let reader = get(addr);
    let read = read_to_end_within(reader, Duration::from_secs(15));
    assert!(read > 1 << 20, "it streamed before the cut: {read} bytes");
    // A client that reads a little, then nothing: the guest waits on it until the deadline.
    let mut stalled = get(addr);
    let mut head = [0u8; 4096];
    stalled.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"), "{:?}", &head[..32]);
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    std::thread::sleep(Duration::from_secs(3));
    let (_, pid) = task_status(ctd, "http-stream").expect("task listed");
    assert_idle(pid, "a stopped streaming instance");
    read_to_end_within(stalled, Duration::from_secs(15));
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    stop_gracefully(ctd, "http-stream");
}

/// Whether the server closes `stream` within 5 s (it may answer first, e.g. 408).
fn closed_by_server(mut stream: std::net::TcpStream) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Clients that would hold the server's connections (`WASMLET_HTTP_HEADER_TIMEOUT=1s`): a
/// slowloris (a request head never finished), a silent connection and an idle keep-alive
/// one are each closed after the timeout; 1100 silent connections, past the container's
/// 1024 descriptors, keep no one out once they time out; a head of 200 headers is refused
/// with 431.
pub(super) fn hostile_clients(ctd: &Containerd) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let env = ["WASMLET_HTTP_HEADER_TIMEOUT=1s"];
    let Some((_dir, addr)) = serving(ctd, "http-hostile", "67108864", &env) else {
        return;
    };
    // This process holds 10000 connections: raise its own descriptor limit (to the hard
    // limit: raising that needs CAP_SYS_RESOURCE).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let crowd_size = 10_000.min(hard.saturating_sub(500) as usize);

    let mut slowloris = TcpStream::connect(addr).unwrap();
    slowloris
        .write_all(b"GET / HTTP/1.1\r\nHost: wasmlet.test\r\n")
        .unwrap();
    let silent = TcpStream::connect(addr).unwrap();
    let mut idle = wasmlet_tests::http::Client::connect(addr).unwrap();
    assert_eq!(idle.request("GET", "/", b"").unwrap().status, 200);
    assert!(
        closed_by_server(slowloris),
        "a slowloris client kept its connection"
    );
    assert!(
        closed_by_server(silent),
        "a silent client kept its connection"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        idle.request("GET", "/", b"").is_err(),
        "an idle keep-alive connection outlived the header timeout"
    );

    // 10k silent connections, 20 clients at once, far past the server's descriptor limit
    // (1024) and its listen backlog: the server accepts what its descriptors allow, closes
    // each at the header timeout, and a client with a request is still served.
    let crowd: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                (0..crowd_size / 20)
                    .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(60)).ok())
                    .collect::<Vec<TcpStream>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let served = eventually(Duration::from_secs(60), || {
        request(addr, "GET", "/", b"").is_ok_and(|r| r.status == 200)
    });
    assert!(served, "{crowd_size} silent connections kept a client out");
    let crowd: Vec<TcpStream> = crowd.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(
        crowd.len() > crowd_size * 9 / 10,
        "only {} of {crowd_size} connections were made",
        crowd.len()
    );
    let (_, pid) = task_status(ctd, "http-hostile").expect("task listed");
    let rss = wasmlet_tests::leaks::rss_kib(pid);
    assert!(
        rss < 200 << 10,
        "the server holds {rss} KiB after the crowd"
    );
    drop(crowd);
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);

    let mut big = TcpStream::connect(addr).unwrap();
    let mut head = String::from("GET / HTTP/1.1\r\nHost: wasmlet.test\r\n");
    for i in 0..200 {
        head.push_str(&format!("X-Header-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    big.write_all(head.as_bytes()).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);
    stop_gracefully(ctd, "http-hostile");
}
