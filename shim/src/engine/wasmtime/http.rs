//! `wasi:http/proxy` components under Wasmtime: the engine flavour (pooling allocator, epoch
//! interruption), the listener bound during Create, and the handler that
//! [`crate::http::server`] calls for each request: a fresh instance from the pool, busy
//! instances yielding every [`YIELD_EVERY`], a request dropped before its answer cancelled.

use std::net::TcpListener;
use std::sync::Arc;

use wasmlet_oci::WasiPlan;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::{engine_err, Flavour, P2Ctx};
use crate::engine::Exit;
use crate::error::Result;
use crate::http::server::{Failure, Handler, Slot};
use hyper::StatusCode;

/// How often an HTTP instance that computes without waiting yields its thread to other
/// requests (and notices that its request was dropped).
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// The engine for HTTP components: instances from a pool (falling back to on-demand
/// allocation where the pool's address space cannot be reserved), and epoch
/// interruption, so that a busy instance yields to the others every [`YIELD_EVERY`].
pub(super) fn flavour() -> Result<Flavour> {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    // One slot per request served at once. A component holds several core instances and
    // tables (its module plus the shims `wit-component` adds) but usually one memory;
    // unused slots cost address space only.
    let requests = crate::http::server::MAX_CONCURRENT_REQUESTS as u32;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(requests)
        .total_core_instances(4 * requests)
        .total_tables(4 * requests)
        .total_memories(requests);
    let mut pooled = config.clone();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Flavour::new(&pooled).or_else(|e| {
        log::warn!("pooling allocator unavailable ({e:#}): allocating instances on demand");
        Flavour::new(&config).map_err(engine_err)
    })
}

/// Tick `engine`'s epoch every [`YIELD_EVERY`] (on a thread of its own, for the process's
/// life), so that its busy instances yield.
pub(super) fn tick_epochs(engine: wasmtime::Engine) {
    std::thread::spawn(move || loop {
        std::thread::sleep(YIELD_EVERY);
        engine.increment_epoch();
    });
}

/// Serves requests with a fresh instance of a `wasi:http/proxy` component each.
pub struct ProxyHandler {
    pre: ProxyPre<P2Ctx>,
    plan: Arc<WasiPlan>,
}

/// The handler for `pre` and its listener, inside the container. Each request gets a
/// context of its own; building one now fails Create, not every request, when a preopen
/// cannot be opened.
pub(super) fn prepare(
    pre: ProxyPre<P2Ctx>,
    plan: &WasiPlan,
) -> Result<(ProxyHandler, TcpListener)> {
    P2Ctx::new(plan)?;
    let listener = crate::http::server::bind(plan.http_listen)?;
    let handler = ProxyHandler {
        pre,
        plan: Arc::new(plan.clone()),
    };
    Ok((handler, listener))
}

/// Serve until SIGTERM, ticking the engine's epoch for the instances' yields.
pub(super) fn serve(handler: ProxyHandler, listener: TcpListener) -> Exit {
    tick_epochs(handler.pre.engine().clone());
    let header_timeout = handler.plan.http_header_timeout;
    Exit::code(crate::http::server::serve(
        listener,
        handler,
        header_timeout,
    ))
}

impl WasiHttpView for P2Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

impl Handler for ProxyHandler {
    const KIND: &'static str = "wasi:http/proxy";
    type Body = HyperOutgoingBody;

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        slot: Slot,
    ) -> std::result::Result<hyper::Response<HyperOutgoingBody>, Failure> {
        let ctx = P2Ctx::new(&self.plan).map_err(|e| e.to_string())?;
        let mut store = Store::new(self.pre.engine(), ctx);
        store.limiter(|d| &mut d.cap);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let req = http
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| Failure::from(format!("{e:#}")))?;
        let out = http
            .new_response_outparam(tx)
            .map_err(|e| Failure::from(format!("{e:#}")))?;
        let pre = self.pre.clone();
        let timeout = self.plan.http_timeout;
        // Fired when the instance is stopped after it answered (the request timeout, a trap):
        // its body, still streaming, then ends with an error instead of stalling for ever.
        let (stopped, on_stop) = tokio::sync::oneshot::channel::<()>();
        // The instance runs on its own task: it may keep streaming the body after it has
        // set the response. It holds its slot until its store (and pool slots) are gone,
        // also when the task is aborted, and it is stopped at the request timeout, if any.
        let task = tokio::spawn(async move {
            let mut store = InstanceStore { store, _slot: slot };
            let store = &mut store.store;
            let work = async {
                let proxy = pre.instantiate_async(&mut *store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut *store, req, out)
                    .await
            };
            let result = match timeout {
                Some(t) => match tokio::time::timeout(t, work).await {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = stopped.send(());
                        return Err(Failure {
                            status: StatusCode::GATEWAY_TIMEOUT,
                            message: format!("the request took longer than its timeout of {t:?}"),
                        });
                    }
                },
                None => work.await,
            };
            if result.is_err() {
                let _ = stopped.send(());
            }
            result.map_err(|e| {
                let cap = &store.data().cap;
                Failure::from(match cap.limit {
                    Some(limit) if cap.exceeded => {
                        format!("the instance exceeded its memory limit of {limit} bytes")
                    }
                    _ => format!("WebAssembly trap: {e:?}"),
                })
            })
        });
        // A request dropped before its response (the client went away) stops its instance
        // at its next yield; once the response is out, the instance streams the body on.
        let abort = AbortUnlessAnswered(Some(task.abort_handle()));
        let answer = rx.await;
        abort.answered();
        match answer {
            Ok(Ok(response)) => Ok(response.map(|body| {
                http_body_util::BodyExt::boxed_unsync(EndsWithInstance {
                    body,
                    on_stop: Some(on_stop),
                })
            })),
            Ok(Err(code)) => Err(format!("the component answered with error {code:?}").into()),
            Err(_) => Err(match task.await {
                Ok(Ok(())) => "the component never set a response".to_string().into(),
                Ok(Err(e)) => e,
                Err(e) => format!("the request's task failed: {e}").into(),
            }),
        }
    }
}

/// A response body that fails (so hyper closes the connection) once its instance has been
/// stopped: the body of a stopped instance would otherwise never end, and its client would
/// wait for ever.
struct EndsWithInstance {
    body: HyperOutgoingBody,
    on_stop: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl hyper::body::Body for EndsWithInstance {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>>
    {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(on_stop) = this.on_stop.as_mut() {
            match std::pin::Pin::new(on_stop).poll(cx) {
                Poll::Ready(Ok(())) => {
                    this.on_stop = None;
                    return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseTimeout)));
                }
                // The instance ended on its own: the body ends as it says.
                Poll::Ready(Err(_)) => this.on_stop = None,
                Poll::Pending => {}
            }
        }
        std::pin::Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A request's store and its slot, dropped in that order.
struct InstanceStore {
    store: Store<P2Ctx>,
    _slot: Slot,
}

/// Aborts a request's instance task when dropped, unless [`answered`](Self::answered).
struct AbortUnlessAnswered(Option<tokio::task::AbortHandle>);

impl AbortUnlessAnswered {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortUnlessAnswered {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
