//! The business processes the bench itself plays for wsgate, written with the SDK as a user
//! would: a topic subscriber (topics scenario) and an echo (echo scenario).
//!
//! The peers do these jobs natively (`?topic=` on the URL, echo in the hub); wsgate keeps the
//! logic in a business process on the worker link, so that process is part of what is
//! measured. They run on the bench's driver runtime, a thread apart from the clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use wsgate_business::proto::v1::SingleCast;
use wsgate_business::proto::v1::envelope::Body;
use wsgate_business::{Client, Event, EventKind, Targets};

use crate::error::BenchError;

/// Connects an SDK client named `name` that wants `events` (none: `Close` only, so the
/// gateway does not route anything else to it).
pub async fn connect(
    worker: SocketAddr,
    name: &str,
    events: &[EventKind],
) -> Result<(Client, wsgate_business::Events), BenchError> {
    let events = if events.is_empty() {
        &[EventKind::Close][..]
    } else {
        events
    };
    Client::builder(worker.to_string())
        .name(name)
        .events(events.iter().copied())
        .connect()
        .await
        .map_err(|e| BenchError::Driver {
            what: format!("the bench's {name} business process"),
            reason: format!("cannot register with wsgate at {worker}: {e}"),
        })
}

/// A bench business process's client that shuts its link down when dropped, on every path
/// out of a scenario (a clone held by an event loop would otherwise keep reconnecting to a
/// target that is gone).
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    driver: tokio::runtime::Handle,
}

impl Registered {
    pub fn new(client: Client, driver: tokio::runtime::Handle) -> Registered {
        Registered { client, driver }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let client = self.client.clone();
        drop(self.driver.spawn(async move { client.shutdown().await }));
    }
}

/// Counts of what a bench business process did.
#[derive(Debug, Default)]
pub struct Tally {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(error);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Subscribes every new connection to the topic named by `topic=` in its upgrade query.
/// `Tally::done` counts confirmed subscriptions.
pub fn subscriber(
    client: Client,
    mut events: wsgate_business::Events,
    tally: Arc<Tally>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Open(open) = event else { continue };
            let Some(topic) = query_topic(&open.query) else {
                tally.fail(format!(
                    "connection {} has no topic= in its query {:?}",
                    open.conn_id, open.query
                ));
                continue;
            };
            let (client, tally) = (client.clone(), tally.clone());
            // One task per subscribe: thousands in flight instead of one round trip at a time.
            tokio::spawn(async move {
                match client.subscribe([topic], Targets::conn(open.conn_id)).await {
                    Ok(r) if r.delivered == 1 => {
                        tally.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => tally.fail(format!(
                        "subscribe reached {} connections, not 1",
                        r.delivered
                    )),
                    Err(e) => tally.fail(format!("subscribe failed: {e}")),
                }
            });
        }
    })
}

/// Sends every client message straight back to its sender with a fire-and-forget single cast
/// (no reply to wait for). `Tally::done` counts messages answered.
pub fn echo(
    client: Client,
    mut events: wsgate_business::Events,
    tally: Arc<Tally>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Message(msg) = event else { continue };
            let Some(payload) = msg.payload else { continue };
            let body = Body::SingleCast(SingleCast {
                conn_id: msg.conn_id,
                payload: Some(payload),
            });
            match client.post(body).await {
                Ok(()) => {
                    tally.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tally.fail(format!("posting the echo failed: {e}")),
            }
        }
    })
}

/// The value of `topic=` in a query string.
fn query_topic(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("topic="))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::query_topic;

    #[test]
    fn topic_from_query() {
        assert_eq!(query_topic("topic=t7").as_deref(), Some("t7"));
        assert_eq!(query_topic("a=1&topic=t2").as_deref(), Some("t2"));
        assert_eq!(query_topic("topic="), None);
        assert_eq!(query_topic(""), None);
    }
}
