//! The `wsgate.v1.PushApi` service: every RPC is a thin adapter over the gateway's cluster
//! client, so it acts on the whole cluster (peers configured) or on this gateway alone.
//!
//! Each unary RPC checks what the cluster client cannot check for it (a missing connection id
//! or payload, a list naming nothing: those would otherwise reach no gateway and quietly do
//! nothing), waits for the cluster client at most `status::READY_WAIT`, runs the matching
//! [`Cluster`] method, and turns the report into the reply (`replies`) or the error into a
//! status (`status`). The gateways check the rest (names, limits, close codes) and their
//! refusals come back as INVALID_ARGUMENT with their message.

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wsgate_business::{Cluster, SessionChange, Targets};
use wsgate_proto::v1::push_api_server::PushApi;
use wsgate_proto::v1::{
    BindUser, Broadcast, CommandResponse, ConnInfoResponse, CountsResponse, DeleteTopics,
    EventsRequest, ForceOffline, ListKind, ListResponse, Multicast, OnlineResponse, Payload,
    Publish, QueryConnInfo, QueryCounts, QueryList, QueryOnline, SendToUsers, SetSession,
    SingleCast, Subscribe, UnbindUser, Unsubscribe,
};

use super::status::{self, from_sdk, invalid, some_answered};
use super::{events, replies};
use crate::api::context::ApiContext;

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

/// A required connection id.
fn conn_id(field: &str, conn_id: String) -> Result<String, Status> {
    if conn_id.is_empty() {
        return Err(invalid(format!(
            "{field} is empty; set it to a connection id from a ConnOpen event or the List RPC"
        )));
    }
    Ok(conn_id)
}

/// A required list of connection ids.
fn conn_ids(field: &str, conn_ids: Vec<String>) -> Result<Vec<String>, Status> {
    if conn_ids.is_empty() {
        return Err(invalid(format!(
            "{field} is empty; name at least one connection id"
        )));
    }
    Ok(conn_ids)
}

/// A required payload.
fn payload(field: &str, payload: Option<Payload>) -> Result<Payload, Status> {
    payload.ok_or_else(|| {
        invalid(format!(
            "{field} is missing; set it to the message to send ({{data, kind: PAYLOAD_KIND_TEXT or PAYLOAD_KIND_BINARY}})"
        ))
    })
}

/// The connections a topic command names: at least one connection or user.
fn targets(what: &str, conn_ids: Vec<String>, user_ids: Vec<String>) -> Result<Targets, Status> {
    if conn_ids.is_empty() && user_ids.is_empty() {
        return Err(invalid(format!(
            "{what} names no connection: set conn_ids, user_ids or both"
        )));
    }
    Ok(Targets { conn_ids, user_ids })
}

/// A multi-gateway command's reply, UNAVAILABLE when no gateway answered.
fn command(cluster: &Cluster, report: wsgate_business::ClusterReport) -> Reply<CommandResponse> {
    some_answered(cluster, &report.failed)?;
    Ok(Response::new(replies::command(report)))
}

#[tonic::async_trait]
impl PushApi for PushService {
    async fn single_cast(&self, request: Request<SingleCast>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let id = conn_id("SingleCast.conn_id", c.conn_id)?;
        let payload = payload("SingleCast.payload", c.payload)?;
        let cluster = self.cluster().await?;
        cluster.single_cast(id, payload).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn multicast(&self, request: Request<Multicast>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let ids = conn_ids("Multicast.conn_ids", c.conn_ids)?;
        let payload = payload("Multicast.payload", c.payload)?;
        let cluster = self.cluster().await?;
        let report = cluster.multicast(ids, payload).await.map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn broadcast(&self, request: Request<Broadcast>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let payload = payload("Broadcast.payload", c.payload)?;
        let cluster = self.cluster().await?;
        let report = cluster
            .broadcast(payload, c.exclude)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn send_to_users(&self, request: Request<SendToUsers>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let payload = payload("SendToUsers.payload", c.payload)?;
        let cluster = self.cluster().await?;
        let report = cluster
            .send_to_users(c.user_ids, payload, c.exclude_conn_ids)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn publish(&self, request: Request<Publish>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let payload = payload("Publish.payload", c.payload)?;
        let cluster = self.cluster().await?;
        let report = cluster
            .publish(c.topics, payload, c.exclude_conn_ids)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn bind_user(&self, request: Request<BindUser>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let id = conn_id("BindUser.conn_id", c.conn_id)?;
        let cluster = self.cluster().await?;
        cluster.bind_user(id, c.user_id).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn unbind_user(&self, request: Request<UnbindUser>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let id = conn_id("UnbindUser.conn_id", c.conn_id)?;
        let cluster = self.cluster().await?;
        cluster.unbind_user(id).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn subscribe(&self, request: Request<Subscribe>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let targets = targets("Subscribe", c.conn_ids, c.user_ids)?;
        let cluster = self.cluster().await?;
        let report = cluster
            .subscribe(c.topics, targets)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn unsubscribe(&self, request: Request<Unsubscribe>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let targets = targets("Unsubscribe", c.conn_ids, c.user_ids)?;
        let cluster = self.cluster().await?;
        let report = cluster
            .unsubscribe(c.topics, targets)
            .await
            .map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn delete_topics(&self, request: Request<DeleteTopics>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let cluster = self.cluster().await?;
        let report = cluster.delete_topics(c.topics).await.map_err(from_sdk)?;
        command(&cluster, report)
    }

    async fn set_session(&self, request: Request<SetSession>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        let id = conn_id("SetSession.conn_id", c.conn_id)?;
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
        let cluster = self.cluster().await?;
        cluster.set_session(id, change).await.map_err(from_sdk)?;
        Ok(Response::new(replies::single()))
    }

    async fn force_offline(&self, request: Request<ForceOffline>) -> Reply<CommandResponse> {
        let c = request.into_inner();
        if c.conn_ids.is_empty() && c.user_ids.is_empty() {
            return Err(invalid(
                "ForceOffline names no connection: set conn_ids, user_ids or both",
            ));
        }
        let code = u16::try_from(c.code).map_err(|_| {
            invalid(format!(
                "ForceOffline.code {} is not a WebSocket close code; use 0 (meaning 1000), 1000 or 3000-4999",
                c.code
            ))
        })?;
        let cluster = self.cluster().await?;
        let last = c.last_message;
        let by_conn = async {
            if c.conn_ids.is_empty() {
                return Ok(None);
            }
            cluster
                .force_offline(c.conn_ids, code, &c.reason, last.clone())
                .await
                .map(Some)
        };
        let by_user = async {
            if c.user_ids.is_empty() {
                return Ok(None);
            }
            cluster
                .force_offline_users(c.user_ids, code, &c.reason, last.clone())
                .await
                .map(Some)
        };
        let (by_conn, by_user) = tokio::join!(by_conn, by_user);
        let report = match (by_conn.map_err(from_sdk)?, by_user.map_err(from_sdk)?) {
            (Some(a), Some(b)) => crate::cluster::combine(a, b),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => wsgate_business::ClusterReport::default(),
        };
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
        let asked = conn_ids("QueryConnInfo.conn_ids", q.conn_ids)?;
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
        let kind = match ListKind::try_from(q.kind) {
            Ok(ListKind::Unspecified) | Err(_) => {
                return Err(invalid(format!(
                    "QueryList.kind {} is not a list kind; use LIST_KIND_CONNECTIONS (1), LIST_KIND_USERS (2), LIST_KIND_TOPICS (3), LIST_KIND_TOPIC_CONNECTIONS (4), LIST_KIND_TOPIC_USERS (5) or LIST_KIND_USER_CONNECTIONS (6)",
                    q.kind
                )));
            }
            Ok(kind) => kind,
        };
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
