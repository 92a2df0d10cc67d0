//! Where lifecycle events go. The service publishes through the [`EventSink`] trait; the real
//! sink forwards to containerd over ttrpc from one thread, in order, so an RPC never waits
//! on containerd and `/tasks/exit` can never overtake `/tasks/start`. Tests use [`MemorySink`].

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

/// A boxed event.
pub type BoxedEvent = Box<dyn Event + Send>;

/// Receives the events a task service publishes.
pub trait EventSink: Clone + Send + Sync + 'static {
    fn publish(&self, event: BoxedEvent);
}

/// How long a shim about to exit waits for queued events to reach containerd.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

enum Message {
    Event(BoxedEvent),
    Flush(mpsc::Sender<()>),
}

/// Forwards events to containerd (its `TTRPC_ADDRESS`) from a background thread.
#[derive(Clone)]
pub struct RemoteSink {
    tx: Arc<Mutex<mpsc::Sender<Message>>>,
}

impl RemoteSink {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for message in rx {
                    let event = match message {
                        Message::Event(event) => event,
                        Message::Flush(done) => {
                            let _ = done.send(());
                            continue;
                        }
                    };
                    let topic = event.topic();
                    let msg: Box<dyn MessageDyn> = event;
                    if let Err(e) = publisher.publish(Context::default(), &topic, &namespace, msg) {
                        log::warn!("publishing {topic} failed: {e}");
                    }
                }
            })
            .expect("spawning the event thread");
        RemoteSink {
            tx: Arc::new(Mutex::new(tx)),
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
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(Message::Event(event)).is_err() {
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
