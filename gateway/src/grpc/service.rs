//! The `wsgate.v1.PushApi` service: every RPC is a thin adapter over the gateway's cluster
//! client, so it acts on the whole cluster (peers configured) or on this gateway alone.
//!
//! Each unary RPC waits for the cluster client at most `status::READY_WAIT`, runs the matching
//! [`Cluster`] method, and turns the report into the reply (`replies`) or the error into a
//! status (`status`). What a command must hold is checked by the rules every door shares
//! (`validate::command`, run by the cluster client before it routes), so a refusal here reads
//! as it does on the worker link and the HTTP API. Only what the cluster client's typed
//! methods cannot take is checked here, by the same rules: a missing payload, a close code wider
//! than `u16`, an unknown list kind. A command's `idempotency-key` metadata is its command id,
//! as the HTTP API's `Idempotency-Key` header; a cast's `receipts: wait` metadata asks for
//! each target connection's receipt in the reply.

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wsgate_business::{Cluster, SessionChange, Targets};
use wsgate_proto::v1::push_api_server::PushApi;
use wsgate_proto::v1::{
    BindUser, Broadcast, CommandResponse, ConnInfoResponse, CountsResponse, DeleteTopics,
    EventsRequest, ForceOffline, ListKind, ListResponse, Multicast, OnlineResponse, Publish,
    QueryConnInfo, QueryCounts, QueryList, QueryOnline, SendToUsers, SetSession, SingleCast,
    Subscribe, UnbindUser, Unsubscribe,
};

use wsgate_proto::v1::envelope::Body;
use wsgate_proto::validate::{self, Refused};

use super::status::{self, from_sdk, some_answered};
use super::{events, replies};
use crate::api::context::ApiContext;
use crate::api::extract::{IDEMPOTENCY_KEY, IdempotencyKey};

/// The service behind the gRPC listener.
#[derive(Debug, Clone)]
pub(crate) struct PushService {
    context: ApiContext,
    /// Fires when the gateway stops: ends the events streams.
    stop: CancellationToken,
}

impl PushService {
    pub(crate) fn new(context: ApiContext, stop: CancellationToken) -> Self {
        Self { context, stop }
    }

    async fn cluster(&self) -> Result<Cluster, Status> {
        status::cluster(&self.context.cluster).await
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The `idempotency-key` metadata of a command: its command id, as the HTTP API's header.
fn idempotency_key<T>(request: &Request<T>) -> Result<IdempotencyKey, Status> {
    let value = request
        .metadata()
        .get(IDEMPOTENCY_KEY)
        .map(|v| v.as_bytes());
    IdempotencyKey::of(value).map_err(Status::invalid_argument)
}

/// Whether a cast asked for receipts with `receipts: wait` metadata, and for client
/// acknowledgements with `client-ack: true` (which waits for receipts too).
fn receipts_asked<T>(request: &Request<T>) -> Result<Receipts, Status> {
    let metadata = request.metadata();
    let wait = match metadata.get(RECEIPTS).map(|v| v.as_bytes()) {
        None => false,
        Some(b"wait") => true,
        Some(other) => {
            return Err(Status::invalid_argument(format!(
                "receipts metadata {:?} is not understood; send `receipts: wait` to wait for each target connection's receipt, or leave it out",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let client_ack = match metadata.get(CLIENT_ACK).map(|v| v.as_bytes()) {
        None | Some(b"false") => false,
        Some(b"true") => true,
        Some(other) => {
            return Err(Status::invalid_argument(format!(
                "client-ack metadata {:?} is not understood; send `client-ack: true` to ask each client to acknowledge, or leave it out",
                String::from_utf8_lossy(other)
            )));
        }
    };
    Ok(Receipts(wait || client_ack, client_ack))
}

/// The metadata key that asks a cast for receipts.
const RECEIPTS: &str = "receipts";
/// The metadata key that asks a cast for client acknowledgements.
const CLIENT_ACK: &str = "client-ack";

/// A cast's receipts (asked for or not) and client acknowledgements (asked for or not).
struct Receipts(bool, bool);

impl Receipts {
    fn apply(&self, cluster: Cluster) -> Cluster {
        match self {
            Receipts(_, true) => cluster.with_client_acks(),
            Receipts(true, false) => cluster.with_receipts(),
            Receipts(false, false) => cluster,
        }
    }
}

/// A command refused by the shared rules, as the cluster client would report it.
fn refused(refused: Refused) -> Status {
    from_sdk(refused.into())
}

/// The refusal of a command whose payload is missing (the cluster client's methods take a
/// payload, so it cannot be passed on): the shared rules name the first thing wrong with the
/// body as received, which may be another field, as on the worker link.
fn missing_payload(body: Body) -> Status {
    match validate::command(&body, &validate::Limits::default()) {
        Err(refusal) => refused(refusal),
        Ok(()) => Status::invalid_argument("the payload is missing; set it to the message to send"),
    }
}

/// A multi-gateway command's reply, UNAVAILABLE when no gateway answered.
fn command(cluster: &Cluster, report: wsgate_business::ClusterReport) -> Reply<CommandResponse> {
    some_answered(cluster, &report.failed)?;
    Ok(Response::new(replies::command(report)))
}

#[tonic::async_trait]
impl PushApi for PushService {
    async fn single_cast(&self, request: Request<SingleCast>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let receipts = receipts_asked(&request)?;
        let c = request.into_inner();
        let Some(payload) = c.payload else {
            return Err(missing_payload(Body::SingleCast(SingleCast {
                payload: None,
                ..c
            })));
        };
        let cluster = key.apply(self.cluster().await?);
        if receipts.0 {
            // A cast to one connection that reports like the others, unknown still NOT_FOUND.
            let report = receipts
                .apply(cluster.clone())
                .multicast([c.conn_id], payload)
                .await
                .map_err(from_sdk)?;
            if !report.report.unknown_conn_ids.is_empty() {
                return Err(from_sdk(wsgate_business::Error::UnknownConnection {
                    conn_ids: report.report.unknown_conn_ids,
                }));
            }
            return command(&cluster, report);
        }
        cluster
            .single_cast(c.conn_id, payload)
            .await
            .map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn multicast(&self, request: Request<Multicast>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let receipts = receipts_asked(&request)?;
        let c = request.into_inner();
        let Some(payload) = c.payload else {
            return Err(missing_payload(Body::Multicast(Multicast {
                payload: None,
                ..c
            })));
        };
        let cluster = receipts.apply(key.apply(self.cluster().await?));
        let report = cluster
            .multicast(c.conn_ids, payload)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn broadcast(&self, request: Request<Broadcast>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let receipts = receipts_asked(&request)?;
        let c = request.into_inner();
        let Some(payload) = c.payload else {
            return Err(missing_payload(Body::Broadcast(Broadcast {
                payload: None,
                ..c
            })));
        };
        let cluster = receipts.apply(key.apply(self.cluster().await?));
        let report = cluster
            .broadcast(payload, c.exclude)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn send_to_users(&self, request: Request<SendToUsers>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let receipts = receipts_asked(&request)?;
        let c = request.into_inner();
        let Some(payload) = c.payload else {
            return Err(missing_payload(Body::SendToUsers(SendToUsers {
                payload: None,
                ..c
            })));
        };
        let cluster = receipts.apply(key.apply(self.cluster().await?));
        let report = cluster
            .send_to_users(c.user_ids, payload, c.exclude_conn_ids)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn publish(&self, request: Request<Publish>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let receipts = receipts_asked(&request)?;
        let c = request.into_inner();
        let Some(payload) = c.payload else {
            return Err(missing_payload(Body::Publish(Publish {
                payload: None,
                ..c
            })));
        };
        let cluster = receipts.apply(key.apply(self.cluster().await?));
        let report = cluster
            .publish(c.topics, payload, c.exclude_conn_ids)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn bind_user(&self, request: Request<BindUser>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let cluster = key.apply(self.cluster().await?);
        cluster
            .bind_user(c.conn_id, c.user_id)
            .await
            .map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn unbind_user(&self, request: Request<UnbindUser>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let cluster = key.apply(self.cluster().await?);
        cluster.unbind_user(c.conn_id).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn subscribe(&self, request: Request<Subscribe>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let targets = Targets {
            conn_ids: c.conn_ids,
            user_ids: c.user_ids,
        };
        let cluster = key.apply(self.cluster().await?);
        let report = cluster
            .subscribe(c.topics, targets)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn unsubscribe(&self, request: Request<Unsubscribe>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let targets = Targets {
            conn_ids: c.conn_ids,
            user_ids: c.user_ids,
        };
        let cluster = key.apply(self.cluster().await?);
        let report = cluster
            .unsubscribe(c.topics, targets)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn delete_topics(&self, request: Request<DeleteTopics>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let cluster = key.apply(self.cluster().await?);
        let report = cluster.delete_topics(c.topics).await.map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn set_session(&self, request: Request<SetSession>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let c = request.into_inner();
        let id = c.conn_id;
        let mut change = SessionChange::new();
        for (key, value) in c.set {
            change = change.set(key, value);
        }
        if c.replace {
            change = change.replace_all();
        } else {
            for key in c.delete {
                change = change.delete(key);
            }
        }
        let cluster = key.apply(self.cluster().await?);
        cluster.set_session(id, change).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn force_offline(&self, request: Request<ForceOffline>) -> Reply<CommandResponse> {
        let key = idempotency_key(&request)?;
        let cluster = key.apply(self.cluster().await?);
        let report = crate::cluster::force_offline(&cluster, request.into_inner())
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn online(&self, request: Request<QueryOnline>) -> Reply<OnlineResponse> {
        let q = request.into_inner();
        let cluster = self.cluster().await?;
        let answer = cluster
            .online(q.conn_ids, q.user_ids)
            .await
            .map_err(from_sdk)?;
        some_answered(&cluster, &answer.failed)?;
        Ok(Response::new(replies::online(answer)))
    }

    async fn conn_info(&self, request: Request<QueryConnInfo>) -> Reply<ConnInfoResponse> {
        let q = request.into_inner();
        // Asking about no connection answers nothing, as on the worker link.
        let asked = q.conn_ids;
        let cluster = self.cluster().await?;
        let answer = cluster
            .conn_info(asked.iter().cloned())
            .await
            .map_err(from_sdk)?;
        some_answered(&cluster, &answer.failed)?;
        Ok(Response::new(replies::conn_info(&asked, answer)))
    }

    async fn counts(&self, request: Request<QueryCounts>) -> Reply<CountsResponse> {
        let q = request.into_inner();
        let cluster = self.cluster().await?;
        let answer = cluster.counts(q.topics).await.map_err(from_sdk)?;
        some_answered(&cluster, &answer.failed)?;
        Ok(Response::new(replies::counts(answer)))
    }

    async fn list(&self, request: Request<QueryList>) -> Reply<ListResponse> {
        let q = request.into_inner();
        validate::command(&Body::QueryList(q.clone()), &validate::Limits::default())
            .map_err(refused)?;
        // A known kind: validate::command refused the others.
        let kind = ListKind::try_from(q.kind).unwrap_or(ListKind::Connections);
        let cluster = self.cluster().await?;
        let answer = cluster
            .list(kind, q.key, q.cursor, q.limit)
            .await
            .map_err(from_sdk)?;
        some_answered(&cluster, &answer.failed)?;
        Ok(Response::new(replies::list(answer)))
    }

    type EventsStream = events::EventStream;

    async fn events(&self, request: Request<EventsRequest>) -> Reply<Self::EventsStream> {
        let stream = events::open(
            &self.context.cluster,
            self.context.config.worker_token.as_deref(),
            request.into_inner(),
            self.stop.clone(),
        )
        .await?;
        Ok(Response::new(stream))
    }
}
