//! `wasi:http/proxy` components served by the shim (one instance per request), reached on
//! the host network; the pod-IP path is in `pods`. Engines without components refuse them.

use std::net::SocketAddr;
use std::time::Duration;

use wasmlet_tests::cmd::{eventually, Output};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{example, require, rootfs};
use wasmlet_tests::http::{free_port, request, Client};

use crate::images::refuses_components;
use crate::lifecycle::task_status;
use crate::support::{assert_clean, ns, rt, Test};

mod hostile;
pub mod wagi;

pub const TESTS: &[(&str, Test)] = &[
    (
        "http::proxy_component_serves_requests_and_drains_on_sigterm",
        serves_requests,
    ),
    (
        "http::hundreds_of_requests_in_flight_at_once",
        hundreds_in_flight,
    ),
    (
        "http::request_timeout_answers_504_and_stops_the_instance",
        request_timeout,
    ),
    (
        "http::busy_listen_address_fails_create",
        busy_listen_address,
    ),
    ("http::bad_listen_address_fails_create", bad_listen_address),
    (
        "http::slow_idle_crowding_and_oversized_clients_are_cut_off",
        hostile::hostile_clients,
    ),
    (
        "http::a_response_streaming_forever_ends_at_the_request_timeout",
        hostile::streaming_forever,
    ),
];

/// A rootfs with the `http-hello` example at `/http.wasm`.
pub(crate) fn http_hello() -> Vec<u8> {
    let component = example("wasm32-wasip2", "http_hello");
    require(&component).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&component).unwrap()
}

/// `ctr run -d --net-host` of the example as `id`, listening on `listen`, 64 MiB of memory.
fn start(ctd: &Containerd, id: &str, dir: &std::path::Path, listen: &str) -> Output {
    start_with(ctd, id, dir, listen, "67108864", &[])
}

/// The same with `memory` bytes and more `env` entries.
pub(crate) fn start_with(
    ctd: &Containerd,
    id: &str,
    dir: &std::path::Path,
    listen: &str,
    memory: &str,
    env: &[&str],
) -> Output {
    let d = dir.to_string_lossy();
    let listen = format!("WASMLET_HTTP_LISTEN={listen}");
    let mut args = vec![
        "run",
        "-d",
        "--net-host",
        "--memory-limit",
        memory,
        "--runtime",
        rt(ctd),
        "--env",
        &listen,
        "--env",
        "GREETING=Bonjour",
    ];
    for e in env {
        args.extend(["--env", e]);
    }
    args.extend(["--rootfs", &d, id, "/http.wasm"]);
    ctd.ctr_timeout(ns(ctd), &args, None, Duration::from_secs(60))
}

/// The example started as `id` (see [`start_with`]) and answering on a free port of
/// 127.0.0.1: its rootfs (keep it) and address; `None` when the engine refuses components
/// (said with the message the test checks), with nothing left behind.
pub(crate) fn serving(
    ctd: &Containerd,
    id: &str,
    memory: &str,
    env: &[&str],
) -> Option<(tempfile::TempDir, SocketAddr)> {
    let dir = rootfs(&[("/http.wasm", http_hello())]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let out = start_with(ctd, id, dir.path(), &addr.to_string(), memory, env);
    if refuses_components(ctd, out.code, &out.stderr) {
        let _ = ctd.ctr(ns(ctd), &["container", "rm", id]);
        assert_clean(ctd, id);
        return None;
    }
    out.ok("ctr run -d (HTTP example)");
    wait_serving(addr);
    Some((dir, addr))
}

/// Wait until `addr` answers `GET /`.
pub(crate) fn wait_serving(addr: SocketAddr) {
    assert!(
        wasmlet_tests::http::wait_serving(addr),
        "nothing serves http://{addr}/"
    );
}

fn serves_requests(ctd: &Containerd) {
    let Some((_dir, addr)) = serving(ctd, "http", "67108864", &[]) else {
        return;
    };

    // The spec's environment reaches every instance; routes and status codes come through.
    let hello = request(addr, "GET", "/", b"").unwrap();
    assert_eq!(
        (hello.status, hello.text()),
        (200, "Bonjour from WebAssembly on wasmlet! (GET /)\n".into())
    );
    let body: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let echo = request(addr, "POST", "/echo", &body).unwrap();
    assert_eq!(echo.status, 200);
    assert!(echo.body == body, "echo returned {} bytes", echo.body.len());
    assert_eq!(request(addr, "GET", "/missing", b"").unwrap().status, 404);

    // The memory limit caps each instance: one growing past it fails its request alone.
    let small = request(addr, "GET", "/alloc/8", b"").unwrap();
    assert_eq!(
        (small.status, small.text()),
        (200, "allocated 8 MiB\n".into())
    );
    assert_eq!(request(addr, "GET", "/alloc/100", b"").unwrap().status, 500);
    assert_eq!(request(addr, "GET", "/", b"").unwrap().status, 200);

    // Keep-alive, and concurrent clients.
    let mut client = Client::connect(addr).unwrap();
    for _ in 0..50 {
        assert_eq!(client.request("GET", "/", b"").unwrap().status, 200);
    }
    let workers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                (0..20)
                    .map(|_| c.request("GET", "/", b"").unwrap().status)
                    .filter(|s| *s == 200)
                    .count()
            })
        })
        .collect();
    let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(ok, 160);

    // Busy instances take turns: with more of them than the server has threads (one per
    // CPU), a quick request is still answered while they all compute.
    let busy = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let spinners: Vec<_> = (0..busy)
        .map(|_| {
            std::thread::spawn(move || request(addr, "GET", "/spin/2000", b"").map(|r| r.status))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let quick = request(addr, "GET", "/", b"").unwrap();
    assert_eq!(quick.status, 200);
    assert!(
        spinners.iter().all(|s| !s.is_finished()),
        "the quick request waited for the busy ones"
    );
    for s in spinners {
        assert_eq!(s.join().unwrap().unwrap(), 200);
    }

    // A request whose client goes away stops computing: its instance is cancelled at its
    // next yield instead of spinning on for the 30 s it was asked to.
    let (_, pid) = task_status(ctd, "http").expect("task listed");
    {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /spin/30000 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_idle(pid, "the server after the client left");

    // SIGTERM: the server stops accepting, finishes, and exits 0 (not 143).
    stop_gracefully(ctd, "http");
    assert!(request(addr, "GET", "/", b"").is_err(), "still serving");
}

/// 400 requests waiting at once, each in its own instance (more than the pooling
/// allocator's default core-instance slots allow: each component instance holds three).
fn hundreds_in_flight(ctd: &Containerd) {
    let Some((_dir, addr)) = serving(ctd, "http-many", "2147483648", &[]) else {
        return;
    };
    let clients: Vec<_> = (0..400)
        .map(|_| {
            std::thread::spawn(move || {
                request(addr, "GET", "/sleep/2000", b"").map(|r| (r.status, r.text()))
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| matches!(a, Ok((200, _)))).count();
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a, Ok((200, _))))
        .take(3)
        .collect();
    assert_eq!(ok, 400, "failures: {failed:?}");
    stop_gracefully(ctd, "http-many");
}

/// `WASMLET_HTTP_REQUEST_TIMEOUT`: a request still computing or waiting at the deadline is
/// answered 504 and its instance stopped; quicker requests are unaffected.
fn request_timeout(ctd: &Containerd) {
    let timeout = ["WASMLET_HTTP_REQUEST_TIMEOUT=1s"];
    let Some((_dir, addr)) = serving(ctd, "http-timeout", "67108864", &timeout) else {
        return;
    };
    for slow in ["/spin/20000", "/sleep/20000"] {
        let r = request(addr, "GET", slow, b"").unwrap();
        assert_eq!(
            (r.status, r.text()),
            (504, "504 Gateway Timeout\n".into()),
            "{slow}"
        );
    }
    let (_, pid) = task_status(ctd, "http-timeout").expect("task listed");
    assert_idle(pid, "a timed-out instance");
    assert_eq!(request(addr, "GET", "/sleep/100", b"").unwrap().status, 200);
    stop_gracefully(ctd, "http-timeout");
}

/// SIGTERM `id`, which must stop within 10 s with exit code 0, then remove it and check
/// that it left nothing.
pub(crate) fn stop_gracefully(ctd: &Containerd, id: &str) {
    ctd.ctr(ns(ctd), &["task", "kill", id]).ok("ctr task kill");
    let stopped = eventually(Duration::from_secs(10), || {
        task_status(ctd, id).is_some_and(|(s, _)| s == "STOPPED")
    });
    assert!(stopped, "{id} did not stop on SIGTERM");
    // `ctr task delete` names the exit code only when it is not 0.
    let out = ctd
        .ctr(ns(ctd), &["task", "delete", id])
        .ok("ctr task delete");
    assert!(!out.stderr.contains("exit code"), "{out:?}");
    ctd.ctr(ns(ctd), &["container", "rm", id])
        .ok("ctr container rm");
    assert_clean(ctd, id);
}

/// Assert that process `pid` (with its threads) uses less than half a CPU over the next
/// second: `what` (an instance that should be stopped) no longer computes.
pub(crate) fn assert_idle(pid: u32, what: &str) {
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    assert!(
        spent < 50,
        "{what} still computes: {spent} of 100 ticks in 1 s"
    );
}

/// CPU time (user + system, in clock ticks of 1/100 s) of process `pid` and its threads.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); this slice starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn busy_listen_address(ctd: &Containerd) {
    let dir = rootfs(&[("/http.wasm", http_hello())]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = start(ctd, "http-busy", dir.path(), &addr);
    if !refuses_components(ctd, out.code, &out.stderr) {
        assert_ne!(out.code, Some(0), "{out:?}");
        let want = format!("cannot listen for HTTP on {addr}: Address already in use");
        assert!(out.stderr.contains(&want), "want {want:?}: {out:?}");
    }
    let _ = ctd.ctr(ns(ctd), &["container", "rm", "http-busy"]);
    assert_clean(ctd, "http-busy");
}

fn bad_listen_address(ctd: &Containerd) {
    let dir = rootfs(&[("/http.wasm", http_hello())]);
    let out = start(ctd, "http-bad", dir.path(), "localhost:http");
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("invalid HTTP listen address \"localhost:http\" in environment variable WASMLET_HTTP_LISTEN"),
        "{out:?}"
    );
    let _ = ctd.ctr(ns(ctd), &["container", "rm", "http-bad"]);
    assert_clean(ctd, "http-bad");
}
