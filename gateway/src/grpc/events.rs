//! The `Events` stream: client connection events for a gRPC caller, who then is a business
//! process like any other.
//!
//! Each call registers a new SDK [`Cluster`] (a worker link to every gateway) with the events
//! it asked for, and forwards what that registration receives, tagged with the gateway's node
//! id. The gateways hash each connection over every registered business process, so a gRPC
//! subscriber gets its share of the connections, each in order (open, messages, close). The
//! registration follows the gateways this gateway's own cluster client knows (its peers, or
//! this gateway alone), so it covers the same cluster the unary RPCs act on.
//!
//! The registration ends with the stream: when the caller goes away (the response stream is
//! dropped) or the gateway shuts down (the stream ends with UNAVAILABLE after the events that
//! had arrived). A caller that does not read stops the forwarding once [`BUFFER`] events wait
//! for it; if it still has not read after [`SLOW_READER`], the stream ends with
//! RESOURCE_EXHAUSTED rather than buffering without bound.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use wsgate_business::{
    Cluster, ClusterEvent, ClusterEvents, Discovery, Event, EventKind, GatewayState,
};
use wsgate_proto::v1::{
    Draining, EventsRequest, GatewayConnected, GatewayDisconnected, GatewayEvent, gateway_event,
};

use super::status;
use crate::cluster::{ClusterSlot, PEER_LINK_NAME};

/// What an `Events` call returns.
pub(crate) type EventStream = ReceiverStream<Result<GatewayEvent, Status>>;

/// Events waiting for a caller before forwarding pauses.
pub(crate) const BUFFER: usize = 1024;

/// How long forwarding may stay paused by a caller that does not read.
pub(crate) const SLOW_READER: Duration = Duration::from_secs(10);

/// How long a registration may take (each gateway's first attempt) before UNAVAILABLE.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the registration looks at the gateway's cluster client for added or removed
/// gateways (a local read, no network).
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The name a stream registers with when the request names none.
const DEFAULT_NAME: &str = "grpc";

/// The worker addresses of the gateways this gateway's cluster client knows, as a
/// [`Discovery`]: the stream's registration reaches the same gateways, however the cluster
/// client found them (peers, DNS, or this gateway alone).
#[derive(Debug)]
struct FollowGateway(ClusterSlot);

impl Discovery for FollowGateway {
    fn discover(&self) -> Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + '_>> {
        let addrs = self.0.get().map(|cluster| {
            cluster
                .gateways()
                .into_iter()
                .map(|g| g.addr)
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            addrs.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the gateway's cluster client is not connected yet",
                )
            })
        })
    }
}

/// The registration's name and event kinds, checked.
fn registration(request: EventsRequest) -> Result<(String, Vec<EventKind>), Status> {
    let name = match request.name.trim() {
        "" => DEFAULT_NAME.to_owned(),
        PEER_LINK_NAME => {
            return Err(status::invalid(format!(
                "EventsRequest.name {PEER_LINK_NAME:?} is reserved for the gateways' own links; choose another name (or leave it empty for {DEFAULT_NAME:?})"
            )));
        }
        name => name.to_owned(),
    };
    let mut kinds = Vec::new();
    for raw in request.events {
        match EventKind::try_from(raw) {
            Ok(kind @ (EventKind::Open | EventKind::Message | EventKind::Close)) => {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            _ => {
                return Err(status::invalid(format!(
                    "EventsRequest.events has {raw}, which is not an event a stream can receive; list any of EVENT_KIND_OPEN (1), EVENT_KIND_MESSAGE (2), EVENT_KIND_CLOSE (3), or none for all three"
                )));
            }
        }
    }
    if kinds.is_empty() {
        kinds = vec![EventKind::Open, EventKind::Message, EventKind::Close];
    }
    Ok((name, kinds))
}

/// Registers a new business process for `request` and starts forwarding its events. Returns
/// once the registration is in place, so the events of connections opened after this returns
/// are routed with the stream counted in.
pub(crate) async fn open(
    slot: &ClusterSlot,
    worker_token: Option<&str>,
    request: EventsRequest,
    stop: CancellationToken,
) -> Result<EventStream, Status> {
    let (name, kinds) = registration(request)?;
    // The gateways to register with are the cluster client's: wait for it like the unary RPCs.
    status::cluster(slot).await?;
    let connect = Cluster::builder(FollowGateway(slot.clone()))
        .name(name.as_str())
        .token(worker_token.unwrap_or_default())
        .events(kinds)
        .request_timeout(REGISTER_TIMEOUT)
        .rediscover_every(FOLLOW_EVERY)
        .connect();
    let (cluster, events) = tokio::select! {
        connected = connect => connected.map_err(|e| Status::unavailable(format!(
            "cannot register the events stream with the gateways: {e}"
        )))?,
        _ = stop.cancelled() => {
            return Err(Status::unavailable("the gateway is shutting down; call another gateway"));
        }
    };
    let up = cluster
        .gateways()
        .iter()
        .filter(|g| g.state == GatewayState::Up)
        .count();
    tracing::debug!(%name, gateways = up, "gRPC events stream registered");
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(forward(cluster, events, tx, stop));
    Ok(ReceiverStream::new(rx))
}

/// Why forwarding ended.
enum End {
    /// The caller went away or the registration closed: nothing more to say.
    Quiet,
    /// The stream ends with this status.
    Status(Status),
}

/// Forwards the registration's events to the caller until one of them goes away or the
/// gateway stops, then removes the registration.
async fn forward(
    cluster: Cluster,
    mut events: ClusterEvents,
    tx: mpsc::Sender<Result<GatewayEvent, Status>>,
    stop: CancellationToken,
) {
    let end = loop {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => break End::Quiet,
            _ = stop.cancelled() => break shutting_down(&mut events, &tx).await,
            next = events.recv() => next,
        };
        let Some(event) = next else {
            break End::Status(Status::unavailable(
                "the events registration closed; open the stream again",
            ));
        };
        let Some(item) = item(event) else { continue };
        let sent = tokio::select! {
            _ = stop.cancelled() => break shutting_down(&mut events, &tx).await,
            sent = tokio::time::timeout(SLOW_READER, tx.send(Ok(item))) => sent,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break End::Quiet,
            Err(_) => {
                break End::Status(Status::resource_exhausted(format!(
                    "the events stream was not read for {SLOW_READER:?} with {BUFFER} events waiting; read faster, ask for fewer kinds of events, or run more subscribers to share the connections"
                )));
            }
        }
    };
    if let End::Status(status) = end {
        let _ = tx.try_send(Err(status));
    }
    cluster.shutdown().await;
    tracing::debug!("gRPC events stream ended; its registration is removed");
}

/// The gateway is stopping: hand over the events that already arrived (the ConnCloses of the
/// drain), as far as the caller takes them without waiting, then end with UNAVAILABLE.
async fn shutting_down(
    events: &mut ClusterEvents,
    tx: &mpsc::Sender<Result<GatewayEvent, Status>>,
) -> End {
    while let Some(event) = events.try_recv() {
        if let Some(item) = item(event)
            && tx.try_send(Ok(item)).is_err()
        {
            break;
        }
    }
    End::Status(Status::unavailable(
        "the gateway is shutting down; open the stream again on another gateway or after the restart",
    ))
}

/// The stream item for a registration event; `None` for events a stream does not carry.
fn item(event: ClusterEvent) -> Option<GatewayEvent> {
    use gateway_event::Event as Item;
    let item = match event.event {
        Event::Open(open) => Item::Open(open),
        Event::Message(message) => Item::Message(message),
        Event::Close(close) => Item::Close(close),
        Event::Connected { .. } => Item::Connected(GatewayConnected {}),
        Event::Disconnected { reason } => Item::Disconnected(GatewayDisconnected { reason }),
        Event::Draining {
            close_code,
            drain_timeout_ms,
        } => Item::Draining(Draining {
            close_code,
            drain_timeout_ms,
        }),
        // Authorize requests never come: the registration does not answer the hook.
        _ => return None,
    };
    Some(GatewayEvent {
        node_id: event.node_id,
        addr: event.addr,
        event: Some(item),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn request(name: &str, events: &[i32]) -> EventsRequest {
        EventsRequest {
            name: name.into(),
            events: events.to_vec(),
        }
    }

    #[test]
    fn registrations_default_to_every_event() {
        let (name, kinds) = registration(request("", &[])).expect("valid");
        assert_eq!(name, "grpc");
        assert_eq!(
            kinds,
            [EventKind::Open, EventKind::Message, EventKind::Close]
        );
        let (name, kinds) = registration(request("chat", &[2, 2])).expect("valid");
        assert_eq!(name, "chat");
        assert_eq!(kinds, [EventKind::Message]);
    }

    #[test]
    fn bad_registrations_say_what_to_send() {
        for bad in [
            request(PEER_LINK_NAME, &[]),
            request("x", &[0]),
            request("x", &[4]),
            request("x", &[1, 99]),
        ] {
            let err = registration(bad).expect_err("refused");
            assert_eq!(err.code(), Code::InvalidArgument);
        }
    }
}
