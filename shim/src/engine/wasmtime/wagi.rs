//! WAGI handlers under Wasmtime: a WASI preview 1 module run once per request as a CGI
//! script ([`wasmlet_oci::wagi`] gives the contract). Each request gets a fresh instance
//! from the HTTP engine (pooling allocator, epoch interruption: a busy module yields every
//! few milliseconds), the container's args, env and preopens plus the CGI variables, the
//! request body on stdin (at most [`MAX_REQUEST_BODY`]) and its stdout (at most
//! [`MAX_RESPONSE`]) read back as the response once the module has exited 0. The
//! request timeout and the memory cap apply to each instance.

use std::net::TcpListener;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Response, StatusCode};
use wasmlet_oci::wagi::{parse_response, request_env, RequestInfo};
use wasmlet_oci::WasiPlan;
use wasmtime::{InstancePre, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::I32Exit;

use super::{CoreData, MemoryCap, Wasmtime};
use crate::engine::Exit;
use crate::error::Result;
use crate::http::server::{Failure, Handler, Peer, Slot};

/// The largest request body a WAGI module is given; a larger one is answered 413.
pub const MAX_REQUEST_BODY: usize = 16 << 20;
/// The most a WAGI module may write to stdout for one response: a write past it fails the
/// request (500).
pub const MAX_RESPONSE: usize = 16 << 20;

/// Serves requests with a fresh instance of a WAGI module each.
pub struct WagiHandler {
    pre: InstancePre<CoreData>,
    export: String,
    plan: Arc<WasiPlan>,
}

/// The handler for `pre` (calling `export`) and its listener, inside the container. A
/// context is built now so that a preopen that cannot be opened fails Create, not every
/// request.
pub(super) fn prepare(
    pre: InstancePre<CoreData>,
    export: String,
    plan: &WasiPlan,
) -> Result<(WagiHandler, TcpListener)> {
    Wasmtime::wasi_builder(plan)?;
    let listener = crate::http::server::bind(plan.http_listen)?;
    let handler = WagiHandler {
        pre,
        export,
        plan: Arc::new(plan.clone()),
    };
    Ok((handler, listener))
}

/// Serve until SIGTERM, ticking the engine's epoch for the instances' yields.
pub(super) fn serve(handler: WagiHandler, listener: TcpListener) -> Exit {
    super::http::tick_epochs(handler.pre.module().engine().clone());
    let header_timeout = handler.plan.http_header_timeout;
    Exit::code(crate::http::server::serve(
        listener,
        handler,
        header_timeout,
    ))
}

/// What a request's stdin and environment are made of.
fn request_info(parts: &hyper::http::request::Parts, peer: Peer, body_len: usize) -> RequestInfo {
    RequestInfo {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        protocol: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), value)
            })
            .collect(),
        local: peer.local,
        remote: peer.remote,
        body_len,
    }
}

impl WagiHandler {
    /// The plan of one request: the container's, its environment overridden by `cgi`.
    fn request_plan(&self, cgi: Vec<(String, String)>) -> WasiPlan {
        let mut plan = (*self.plan).clone();
        plan.env.retain(|(k, _)| !cgi.iter().any(|(c, _)| c == k));
        plan.env.extend(cgi);
        plan
    }

    /// Run the module for one request: its stdout, once it has exited 0.
    async fn run(&self, plan: &WasiPlan, body: Bytes) -> std::result::Result<Bytes, Failure> {
        let stdout = MemoryOutputPipe::new(MAX_RESPONSE);
        let mut builder = Wasmtime::wasi_builder(plan).map_err(|e| e.to_string())?;
        builder
            .stdin(MemoryInputPipe::new(body))
            .stdout(stdout.clone());
        let data = CoreData {
            wasi: builder.build_p1(),
            cap: MemoryCap::new(plan),
        };
        let mut store = Store::new(self.pre.module().engine(), data);
        store.limiter(|d| &mut d.cap);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let work = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let f = instance.get_typed_func::<(), ()>(&mut store, &self.export)?;
            f.call_async(&mut store, ()).await
        };
        let result = match plan.http_timeout {
            Some(t) => tokio::time::timeout(t, work).await.map_err(|_| Failure {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!("the request took longer than its timeout of {t:?}"),
            })?,
            None => work.await,
        };
        match result {
            Ok(()) => {}
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => {}
                Some(I32Exit(code)) => {
                    return Err(format!("the WAGI module exited with code {code}").into())
                }
                None => {
                    let cap = &store.data().cap;
                    return Err(match cap.limit {
                        Some(limit) if cap.exceeded => {
                            format!("the instance grew past the memory limit of {limit} bytes")
                        }
                        _ => format!("the WAGI module trapped: {e:#}"),
                    }
                    .into());
                }
            },
        }
        drop(store);
        Ok(stdout.contents())
    }
}

impl Handler for WagiHandler {
    const KIND: &'static str = "WAGI";
    type Body = Full<Bytes>;

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        slot: Slot,
    ) -> std::result::Result<Response<Full<Bytes>>, Failure> {
        let _slot = slot;
        let peer =
            req.extensions().get::<Peer>().copied().ok_or_else(|| {
                Failure::from("the request came by no known connection".to_string())
            })?;
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Failure {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("a request body past {MAX_REQUEST_BODY} bytes"),
                })
            }
            Err(e) => {
                return Err(Failure {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("reading the request body: {e}"),
                })
            }
        };
        let plan = self.request_plan(request_env(&request_info(&parts, peer, body.len())));
        let out = self.run(&plan, body).await?;
        let answer = parse_response(&out).map_err(|e| e.to_string())?;
        let mut response = Response::new(Full::new(out.slice(answer.body_start..)));
        *response.status_mut() = StatusCode::from_u16(answer.status)
            .map_err(|e| format!("malformed WAGI response: status {}: {e}", answer.status))?;
        for (name, value) in answer.headers {
            let header = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(hyper::header::HeaderValue::from_str(&value).ok());
            let Some((name, value)) = header else {
                return Err(format!("malformed WAGI response: header {name}: {value:?}").into());
            };
            response.headers_mut().append(name, value);
        }
        Ok(response)
    }
}
