//! The business processes the bench itself plays for wsgate, written with the SDK as a user
//! would: a topic subscriber (topics scenario), an echo (echo scenario), and the SDK route's
//! publisher (broadcast scenario).
//!
//! The peers do these jobs natively (`?topic=` on the URL, echo in the hub); wsgate keeps the
//! logic in a business process on the worker link, so that process is part of what is
//! measured. They run on the bench's driver runtime, a thread apart from the clients.
//!
//! The fault scenario needs echo processes it can kill and stop for real: [`process`] is this
//! executable started again in a hidden mode (`wsgate-bench business-echo --worker ADDR
//! --acks`), playing the same echo as a process of its own.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use wsgate_business::proto::v1::envelope::Body;
use wsgate_business::proto::v1::{ConnMessage, ConnOpen, SingleCast};
use wsgate_business::{Client, Event, EventKind, Targets};

use crate::error::BenchError;

/// Connects an SDK client named `name` that wants `events` (none: `Close` only, so the
/// gateway does not route anything else to it).
async fn connect(
    worker: SocketAddr,
    name: &str,
    events: &[EventKind],
    (acks, retries): (bool, bool),
) -> Result<(Client, wsgate_business::Events), BenchError> {
    let events = if events.is_empty() {
        &[EventKind::Close][..]
    } else {
        events
    };
    Client::builder(worker.to_string())
        .name(name)
        .events(events.iter().copied())
        .acks(acks)
        .retries(retries)
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
    pub fn fail(&self, error: String) {
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

/// The parts a bench business process plays, each counting what it did in a [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes through the SDK and handles no events (broadcast). With the SDK's defaults:
    /// each broadcast carries a command id, sent again after a lost link.
    Publisher,
    /// The same with `retries(false)`: no command ids, what the SDK did before them.
    PublisherNoIds,
    /// Subscribes every new connection to the topic named by `topic=` in its upgrade query
    /// (topics). `Tally::done` counts confirmed subscriptions.
    Subscriber,
    /// Sends every client message straight back to its sender with a fire-and-forget single
    /// cast, no reply to wait for (echo). `Tally::done` counts messages answered.
    Echo,
    /// The same, registered with acks: each event is acknowledged once received.
    EchoAcked,
}

impl Role {
    /// The name it registers under.
    fn name(self) -> &'static str {
        match self {
            Role::Publisher => "bench-publisher",
            Role::PublisherNoIds => "bench-publisher-no-ids",
            Role::Subscriber => "bench-topics",
            Role::Echo => "bench-echo",
            Role::EchoAcked => "bench-echo-acks",
        }
    }

    /// The events it wants.
    fn events(self) -> &'static [EventKind] {
        match self {
            Role::Publisher | Role::PublisherNoIds => &[],
            Role::Subscriber => &[EventKind::Open],
            Role::Echo | Role::EchoAcked => &[EventKind::Message],
        }
    }
}

/// Registers a bench business process playing `role` with wsgate at `worker` and starts its
/// event loop on the current runtime; its client.
pub async fn start(
    worker: SocketAddr,
    role: Role,
    tally: Arc<Tally>,
) -> Result<Client, BenchError> {
    let acks = role == Role::EchoAcked;
    let retries = role != Role::PublisherNoIds;
    let (client, events) = connect(worker, role.name(), role.events(), (acks, retries)).await?;
    match role {
        // A publisher handles no events; the link runs as long as the client lives.
        Role::Publisher | Role::PublisherNoIds => drop(events),
        Role::Subscriber | Role::Echo | Role::EchoAcked => {
            drop(serve(role, client.clone(), events, tally));
        }
    }
    Ok(client)
}

/// The event loop of a subscriber or an echo: each event it wants, in turn, until the link
/// closes.
fn serve(
    role: Role,
    client: Client,
    mut events: wsgate_business::Events,
    tally: Arc<Tally>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match (role, event) {
                (Role::Subscriber, Event::Open(open)) => subscribe(&client, &tally, open),
                (Role::Echo | Role::EchoAcked, Event::Message(msg)) => {
                    echo(&client, &tally, msg).await;
                }
                _ => {}
            }
        }
    })
}

/// [`Role::Subscriber`] on one new connection.
fn subscribe(client: &Client, tally: &Arc<Tally>, open: ConnOpen) {
    let Some(topic) = query_topic(&open.query) else {
        tally.fail(format!(
            "connection {} has no topic= in its query {:?}",
            open.conn_id, open.query
        ));
        return;
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

/// [`Role::Echo`] on one client message.
async fn echo(client: &Client, tally: &Tally, msg: ConnMessage) {
    let Some(payload) = msg.payload else { return };
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

/// What [`process`] prints on standard output once it is registered.
pub const READY: &str = "bench business process registered";

/// The hidden `business-echo` mode: registers an echo (with acks if `acks`) with wsgate at
/// `worker`, says [`READY`] on standard output, and echoes until its standard input closes:
/// the bench that started it holds the other end, so it ends with the bench whatever way the
/// bench ends. Killed or stopped by the bench on purpose otherwise.
pub fn process(worker: SocketAddr, acks: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wsgate-bench business-echo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let role = if acks { Role::EchoAcked } else { Role::Echo };
    let outcome = runtime.block_on(async {
        let tally = Arc::new(Tally::default());
        let client = start(worker, role, tally.clone()).await?;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{READY} pid={}", std::process::id());
        let _ = stdout.flush();
        drop(stdout);
        // Until the bench closes our standard input (or it fails).
        let _ = tokio::task::spawn_blocking(|| {
            std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
        })
        .await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), client.shutdown()).await;
        match tally.first_error() {
            Some(e) => Err(BenchError::Driver {
                what: format!("the echo ({} failed)", tally.failed()),
                reason: e,
            }),
            None => Ok(()),
        }
    });
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate-bench business-echo: {e}");
            ExitCode::FAILURE
        }
    }
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
