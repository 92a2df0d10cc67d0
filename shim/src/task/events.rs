//! Where lifecycle events go. The service publishes through the [`EventSink`] trait; the real
//! sink forwards to containerd over ttrpc from one thread, in order, so an RPC never waits
//! on containerd and `/tasks/exit` can never overtake `/tasks/start`. Tests use [`MemorySink`].
//!
//! containerd may be away for a while (a restart, an upgrade) while its tasks go on: an event
//! that cannot reach it is kept, and sent again on a fresh connection until containerd
//! answers, so that an exit that happened meanwhile still reaches it. An event containerd
//! answers with an error is dropped (sending it again would not change the answer).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::{self, context};
use containerd_shim::protos::{Client, EventsClient};

/// A boxed event.
pub type BoxedEvent = Box<dyn Event + Send>;

/// Receives the events a task service publishes.
pub trait EventSink: Clone + Send + Sync + 'static {
    fn publish(&self, event: BoxedEvent);
}

/// How long a shim about to exit waits for queued events to reach containerd.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one forward may take before the connection is taken for dead.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an event was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// containerd answered with an error: the event is dropped.
    Rejected(String),
    /// containerd could not be reached: the event is sent again.
    Unreachable(String),
}

/// Delivers one event to containerd.
pub trait Forward: Send + 'static {
    fn forward(&mut self, req: &ForwardRequest) -> Result<(), Undelivered>;
}

/// containerd's events service at its ttrpc address, connected on first use and again
/// after a failure.
pub struct Containerd {
    address: String,
    client: Option<EventsClient>,
}

impl Containerd {
    pub fn new(address: impl Into<String>) -> Self {
        Containerd {
            address: address.into(),
            client: None,
        }
    }
}

impl Forward for Containerd {
    fn forward(&mut self, req: &ForwardRequest) -> Result<(), Undelivered> {
        let client = match &self.client {
            Some(client) => client,
            None => {
                let fd = containerd_shim::util::connect(&self.address)
                    .map_err(|e| Undelivered::Unreachable(e.to_string()))?;
                let client =
                    Client::new(fd).map_err(|e| Undelivered::Unreachable(e.to_string()))?;
                self.client.insert(EventsClient::new(client))
            }
        };
        let ctx = context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
        match client.forward(ctx, req) {
            Ok(_) => Ok(()),
            Err(ttrpc::Error::RpcStatus(status)) => {
                Err(Undelivered::Rejected(status.message().to_string()))
            }
            Err(e) => {
                self.client = None;
                Err(Undelivered::Unreachable(e.to_string()))
            }
        }
    }
}

/// The pauses between attempts to reach containerd: doubling from `first` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

/// Deliver `req`, trying again after each `Unreachable` until it is delivered or rejected.
pub fn deliver(forward: &mut dyn Forward, req: &ForwardRequest, backoff: Backoff) {
    let topic = &req.envelope.topic;
    let mut pause = backoff.first;
    let mut attempts = 0u32;
    loop {
        match forward.forward(req) {
            Ok(()) => {
                if attempts > 0 {
                    log::info!("{topic} delivered after {attempts} failed attempts");
                }
                return;
            }
            Err(Undelivered::Rejected(e)) => {
                log::warn!("containerd refused {topic}: {e}");
                return;
            }
            Err(Undelivered::Unreachable(e)) => {
                if attempts == 0 {
                    log::warn!("cannot reach containerd with {topic} ({e}); trying again");
                }
                attempts += 1;
                std::thread::sleep(pause);
                pause = (pause * 2).min(backoff.max);
            }
        }
    }
}

/// The request containerd's events service takes for `event` in `namespace`, stamped now.
pub fn envelope(event: BoxedEvent, namespace: &str) -> Option<ForwardRequest> {
    let topic = event.topic();
    let any = match containerd_shim::util::convert_to_any(event) {
        Ok(any) => any,
        Err(e) => {
            log::warn!("encoding {topic}: {e}");
            return None;
        }
    };
    let mut envelope = Envelope::new();
    envelope.set_topic(topic);
    envelope.set_namespace(namespace.to_string());
    envelope.set_timestamp(containerd_shim::util::timestamp().ok()?);
    envelope.set_event(any);
    let mut req = ForwardRequest::new();
    req.set_envelope(envelope);
    Some(req)
}

enum Message {
    Event(ForwardRequest),
    Flush(mpsc::Sender<()>),
}

/// Forwards events to containerd from a background thread, in order.
#[derive(Clone)]
pub struct RemoteSink {
    tx: Arc<Mutex<mpsc::Sender<Message>>>,
    namespace: String,
}

impl RemoteSink {
    /// A sink for `namespace` that delivers through `forward`.
    pub fn new(mut forward: impl Forward, namespace: String, backoff: Backoff) -> Self {
        let (tx, rx) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        Message::Event(req) => deliver(&mut forward, &req, backoff),
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("spawning the event thread");
        RemoteSink {
            tx: Arc::new(Mutex::new(tx)),
            namespace,
        }
    }

    /// Wait until every event queued so far has been sent (before the shim exits).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Message::Flush(done));
        if sent.is_ok() && wait.recv_timeout(FLUSH_TIMEOUT).is_err() {
            log::warn!("events still queued after {FLUSH_TIMEOUT:?}; exiting anyway");
        }
    }
}

impl EventSink for RemoteSink {
    fn publish(&self, event: BoxedEvent) {
        let topic = event.topic();
        let Some(req) = envelope(event, &self.namespace) else {
            return;
        };
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(Message::Event(req)).is_err() {
            log::warn!("event thread is gone; dropped {topic}");
        }
    }
}

/// Keeps events in memory, for tests.
#[derive(Clone, Default)]
pub struct MemorySink {
    pub events: Arc<Mutex<Vec<BoxedEvent>>>,
}

impl MemorySink {
    /// The topics published so far, in order.
    pub fn topics(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.topic())
            .collect()
    }
}

impl EventSink for MemorySink {
    fn publish(&self, event: BoxedEvent) {
        self.events.lock().unwrap().push(event);
    }
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::events::task::{TaskExit, TaskStart};

    use super::*;

    /// Fails as scripted, then records what it delivers.
    #[derive(Clone, Default)]
    struct Scripted {
        failures: Arc<Mutex<Vec<Undelivered>>>,
        delivered: Arc<Mutex<Vec<String>>>,
    }

    impl Forward for Scripted {
        fn forward(&mut self, req: &ForwardRequest) -> Result<(), Undelivered> {
            if let Some(e) = self.failures.lock().unwrap().pop() {
                return Err(e);
            }
            self.delivered
                .lock()
                .unwrap()
                .push(req.envelope.topic.clone());
            Ok(())
        }
    }

    const QUICK: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[test]
    fn unreachable_containerd_gets_the_events_later_in_order() {
        let fwd = Scripted::default();
        *fwd.failures.lock().unwrap() =
            vec![Undelivered::Unreachable("connection refused".into()); 5];
        let sink = RemoteSink::new(fwd.clone(), "default".into(), QUICK);
        sink.publish(Box::new(TaskStart::default()));
        sink.publish(Box::new(TaskExit {
            container_id: "c".into(),
            exit_status: 7,
            ..Default::default()
        }));
        sink.flush();
        assert_eq!(
            *fwd.delivered.lock().unwrap(),
            ["/tasks/start", "/tasks/exit"]
        );
        assert!(fwd.failures.lock().unwrap().is_empty(), "all five retried");
    }

    #[test]
    fn a_rejected_event_is_dropped_and_the_next_one_goes() {
        let fwd = Scripted::default();
        *fwd.failures.lock().unwrap() = vec![Undelivered::Rejected("namespace gone".into())];
        let sink = RemoteSink::new(fwd.clone(), "default".into(), QUICK);
        sink.publish(Box::new(TaskStart::default()));
        sink.publish(Box::new(TaskExit::default()));
        sink.flush();
        assert_eq!(*fwd.delivered.lock().unwrap(), ["/tasks/exit"]);
    }

    #[test]
    fn envelope_carries_topic_namespace_and_the_event() {
        let req = envelope(
            Box::new(TaskExit {
                container_id: "c".into(),
                exit_status: 3,
                ..Default::default()
            }),
            "k8s.io",
        )
        .unwrap();
        assert_eq!(req.envelope.topic, "/tasks/exit");
        assert_eq!(req.envelope.namespace, "k8s.io");
        assert_eq!(req.envelope.event.type_url, "containerd.events.TaskExit");
        assert!(req.envelope.timestamp.is_some());
    }

    #[test]
    fn containerd_that_is_not_there_is_unreachable() {
        let mut c = Containerd::new("/nonexistent/containerd.sock.ttrpc");
        let req = envelope(Box::new(TaskStart::default()), "default").unwrap();
        assert!(matches!(c.forward(&req), Err(Undelivered::Unreachable(_))));
    }
}
