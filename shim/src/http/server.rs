//! The HTTP front of `wasi:http/proxy` workloads, engine-agnostic: it binds the listen
//! address (inside the container, during Create, so a bad or busy address fails the task
//! with its cause), serves HTTP/1.1 connections on a multi-threaded Tokio runtime, hands
//! each request to the engine's [`Handler`] (a fresh instance per request), and on SIGTERM
//! or SIGINT stops accepting, lets the requests in flight finish, and exits 0.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode};

use super::log;
use crate::error::{Error, Result};

/// Connections waiting for accept at most.
const LISTEN_BACKLOG: i32 = 1024;

/// How often a run of accept errors is logged.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Requests served at once; more wait for a slot (the pooling allocator's instance count).
pub const MAX_CONCURRENT_REQUESTS: usize = 1000;

/// One of the [`MAX_CONCURRENT_REQUESTS`] slots: the handler keeps it for as long as the
/// request's instance lives (which may be after the response head, while the body streams).
pub struct Slot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

/// An error a response body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no answer from the module: logged to the container's stderr and
/// answered with `status` (the message is not shown to the client).
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl From<String> for Failure {
    /// A failure answered 500.
    fn from(message: String) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

/// The addresses of the connection a request came by (in each request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What answers requests: the engine's side of the server.
pub trait Handler: Send + Sync + 'static {
    /// What it serves, for the log (`wasi:http/proxy`, `WAGI`).
    const KIND: &'static str;

    /// The response body type.
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;

    /// Answer one request, keeping `slot` until its instance is gone.
    fn handle(
        &self,
        req: Request<Incoming>,
        slot: Slot,
    ) -> impl Future<Output = std::result::Result<Response<Self::Body>, Failure>> + Send;
}

/// Bind `addr` for [`serve`].
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listen_err = |source| Error::Listen { addr, source };
    let listener = TcpListener::bind(addr).map_err(listen_err)?;
    // A deeper queue of connections waiting for accept than std's 128 (the kernel caps it
    // at net.core.somaxconn): a crowd connecting at once waits there instead of having its
    // SYNs dropped and retried seconds later.
    let backlog = nix::sys::socket::Backlog::new(LISTEN_BACKLOG).map_err(std::io::Error::from);
    backlog
        .and_then(|b| nix::sys::socket::listen(&listener, b).map_err(std::io::Error::from))
        .map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    Ok(listener)
}

/// Serve `listener` with `handler` until SIGTERM or SIGINT; the exit code. A client that
/// has not sent a whole request head within `header_timeout` (a slow client, or an idle
/// keep-alive connection) is disconnected.
pub fn serve<H: Handler>(listener: TcpListener, handler: H, header_timeout: Duration) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmlet: cannot start the HTTP server's runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(accept_loop(listener, Arc::new(handler), header_timeout))
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    header_timeout: Duration,
) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    // The workload's default handlers end it at once; a server drains instead.
    crate::sys::default_disposition(&[libc::SIGTERM, libc::SIGINT]);
    let signals =
        signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
    let (mut term, mut int) = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasmlet: cannot watch for SIGTERM: {e}");
            return 1;
        }
    };
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wasmlet: cannot serve HTTP: {e}");
            return 1;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        eprintln!(
            "wasmlet: serving HTTP on http://{addr}/ ({}, one instance per request)",
            H::KIND
        );
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    // When the last accept error was logged: a burst of them (out of descriptors while a
    // crowd connects) is logged every ACCEPT_ERROR_LOG_EVERY, not ten times a second.
    let mut accept_error_logged: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().unwrap_or(remote);
                    let peer = Peer { local, remote };
                    let conn = connection(stream, peer, handler.clone(), slots.clone(), stopped.clone(), header_timeout);
                    connections.spawn(conn);
                }
                Err(e) => {
                    // Out of descriptors or memory: wait for connections to close.
                    if accept_error_logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        accept_error_logged = Some(std::time::Instant::now());
                        log::line(format!("wasmlet: accepting an HTTP connection: {e} (waiting for connections to close)"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    0
}

async fn connection<H: Handler>(
    stream: tokio::net::TcpStream,
    peer: Peer,
    handler: Arc<H>,
    slots: Arc<tokio::sync::Semaphore>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        let handler = handler.clone();
        let slots = slots.clone();
        async move {
            let Ok(slot) = slots.acquire_owned().await else {
                return Ok(error_response(StatusCode::SERVICE_UNAVAILABLE).map(Either::Right));
            };
            Ok::<_, Infallible>(match handler.handle(req, Slot(slot)).await {
                Ok(response) => response.map(Either::Left),
                Err(f) => {
                    log::line(format!(
                        "wasmlet: HTTP request failed ({}): {}",
                        f.status, f.message
                    ));
                    error_response(f.status).map(Either::Right)
                }
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            log::line(format!("wasmlet: HTTP connection: {e}"));
        }
    }
}

fn error_response(status: StatusCode) -> Response<Full<Bytes>> {
    let text = format!("{status}\n");
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}
