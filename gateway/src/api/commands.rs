//! The command endpoints (POST, JSON bodies): each reads its JSON, calls the cluster client
//! once and answers with a [`CommandReply`]. What a command must hold is checked by the rules
//! every door shares (`validate::command`, run by the cluster client), not here; here is only
//! what is particular to JSON (`text` or `binary`, a wider `code`).
//!
//! Single-connection commands (send, bind, unbind, session) answer `delivered: 1`, or 404
//! `unknown_connection` when the connection is gone. The others report how many connections
//! they reached and which ids or users were unknown, like the worker protocol's `Result`.
//!
//! The casts take `"receipts": true`: the reply then lists, per target
//! connection, whether the message was written to its socket, the connection was gone, or the
//! message was dropped unwritten (`receipts`).
//!
//! Every command takes an `Idempotency-Key` header: it becomes the command's id on every
//! gateway, so a request retried with the same key is carried out once and answered with the
//! first one's reply (docs/delivery.md).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use wsgate_business::{ClusterReport, SessionChange, Targets};
use wsgate_proto::v1::ForceOffline;
use wsgate_proto::validate;

use super::context::ApiContext;
use super::errors::ApiError;
use super::extract::{IdempotencyKey, JsonBody};
use super::payload;
use super::reach::{cluster, some_answered};
use super::reply::CommandReply;

type Reply = Result<Json<CommandReply>, ApiError>;

/// A cluster report as the reply, or 503 when no gateway answered.
fn report(cluster: &wsgate_business::Cluster, report: ClusterReport) -> Reply {
    some_answered(cluster, &report.failed)?;
    Ok(Json(report.into()))
}

/// `cluster`, waiting for receipts when the body asked for them, and asking clients to
/// acknowledge when it asked for that (which waits for receipts too).
fn asking(
    cluster: wsgate_business::Cluster,
    receipts: bool,
    client_ack: bool,
) -> wsgate_business::Cluster {
    if client_ack {
        cluster.with_client_acks()
    } else if receipts {
        cluster.with_receipts()
    } else {
        cluster
    }
}

/// A cast's reply, with its receipts when they were asked for (an empty list included).
fn receipted(cluster: &wsgate_business::Cluster, r: ClusterReport, asked: bool) -> Reply {
    some_answered(cluster, &r.failed)?;
    Ok(Json(CommandReply::of(r, asked)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    conn_id: String,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    /// Wait for, and answer with, the connection's receipt.
    #[serde(default)]
    receipts: bool,
    /// Also ask each client to acknowledge (implies `receipts`).
    #[serde(default)]
    client_ack: bool,
}

/// POST /api/v1/send: one message to one connection.
pub(crate) async fn send(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<SendBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = key.apply(cluster(&context).await?);
    if body.receipts || body.client_ack {
        // A cast to one connection that reports like the others, unknown still a 404.
        let r = asking(cluster.clone(), true, body.client_ack)
            .multicast([body.conn_id], payload)
            .await
            .map_err(ApiError::from_sdk)?;
        if !r.report.unknown_conn_ids.is_empty() {
            return Err(ApiError::from_sdk(
                wsgate_business::Error::UnknownConnection {
                    conn_ids: r.report.unknown_conn_ids,
                },
            ));
        }
        return receipted(&cluster, r, true);
    }
    cluster
        .single_cast(body.conn_id, payload)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MulticastBody {
    conn_ids: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    /// Wait for, and answer with, each target connection's receipt.
    #[serde(default)]
    receipts: bool,
    /// Also ask each client to acknowledge (implies `receipts`).
    #[serde(default)]
    client_ack: bool,
}

/// POST /api/v1/multicast: one message to several connections.
pub(crate) async fn multicast(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<MulticastBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = asking(
        key.apply(cluster(&context).await?),
        body.receipts,
        body.client_ack,
    );
    let r = cluster
        .multicast(body.conn_ids, payload)
        .await
        .map_err(ApiError::from_sdk)?;
    receipted(&cluster, r, body.receipts || body.client_ack)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastBody {
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
    /// Wait for, and answer with, each target connection's receipt.
    #[serde(default)]
    receipts: bool,
    /// Also ask each client to acknowledge (implies `receipts`).
    #[serde(default)]
    client_ack: bool,
}

/// POST /api/v1/broadcast: one message to every connection of the cluster.
pub(crate) async fn broadcast(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<BroadcastBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = asking(
        key.apply(cluster(&context).await?),
        body.receipts,
        body.client_ack,
    );
    let r = cluster
        .broadcast(payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    receipted(&cluster, r, body.receipts || body.client_ack)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersSendBody {
    user_ids: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
    /// Wait for, and answer with, each target connection's receipt.
    #[serde(default)]
    receipts: bool,
    /// Also ask each client to acknowledge (implies `receipts`).
    #[serde(default)]
    client_ack: bool,
}

/// POST /api/v1/users/send: one message to every connection of these users.
pub(crate) async fn send_to_users(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<UsersSendBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = asking(
        key.apply(cluster(&context).await?),
        body.receipts,
        body.client_ack,
    );
    let r = cluster
        .send_to_users(body.user_ids, payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    receipted(&cluster, r, body.receipts || body.client_ack)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    topics: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
    /// Wait for, and answer with, each target connection's receipt.
    #[serde(default)]
    receipts: bool,
    /// Also ask each client to acknowledge (implies `receipts`).
    #[serde(default)]
    client_ack: bool,
}

/// POST /api/v1/topics/publish: one message to every member of these topics.
pub(crate) async fn publish(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<PublishBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = asking(
        key.apply(cluster(&context).await?),
        body.receipts,
        body.client_ack,
    );
    let r = cluster
        .publish(body.topics, payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    receipted(&cluster, r, body.receipts || body.client_ack)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindBody {
    conn_id: String,
    user_id: String,
}

/// POST /api/v1/users/bind: binds a user id to a connection.
pub(crate) async fn bind_user(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<BindBody>,
) -> Reply {
    let cluster = key.apply(cluster(&context).await?);
    cluster
        .bind_user(body.conn_id, body.user_id)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnbindBody {
    conn_id: String,
}

/// POST /api/v1/users/unbind: removes a connection's user binding.
pub(crate) async fn unbind_user(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<UnbindBody>,
) -> Reply {
    let cluster = key.apply(cluster(&context).await?);
    cluster
        .unbind_user(body.conn_id)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicsBody {
    topics: Vec<String>,
    #[serde(default)]
    conn_ids: Vec<String>,
    #[serde(default)]
    user_ids: Vec<String>,
}

impl TopicsBody {
    fn into_parts(self) -> (Vec<String>, Targets) {
        let targets = Targets {
            conn_ids: self.conn_ids,
            user_ids: self.user_ids,
        };
        (self.topics, targets)
    }
}

/// POST /api/v1/topics/subscribe: adds connections (or users' connections) to topics.
pub(crate) async fn subscribe(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<TopicsBody>,
) -> Reply {
    let (topics, targets) = body.into_parts();
    let cluster = key.apply(cluster(&context).await?);
    let r = cluster
        .subscribe(topics, targets)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

/// POST /api/v1/topics/unsubscribe: removes connections (or users' connections) from topics.
pub(crate) async fn unsubscribe(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<TopicsBody>,
) -> Reply {
    let (topics, targets) = body.into_parts();
    let cluster = key.apply(cluster(&context).await?);
    let r = cluster
        .unsubscribe(topics, targets)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteTopicsBody {
    topics: Vec<String>,
}

/// POST /api/v1/topics/delete: removes every member from these topics.
pub(crate) async fn delete_topics(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<DeleteTopicsBody>,
) -> Reply {
    let cluster = key.apply(cluster(&context).await?);
    let r = cluster
        .delete_topics(body.topics)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    conn_id: String,
    #[serde(default)]
    set: HashMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    replace: bool,
}

impl SessionBody {
    /// The change as the gateway applies it: `delete` first, then `set` (a key in both ends
    /// up set); with `replace` the session becomes exactly `set`, so `delete` changes nothing.
    fn change(self) -> (String, SessionChange) {
        let mut change = SessionChange::new();
        for key in self.delete {
            change = change.delete(key);
        }
        for (key, value) in self.set {
            change = change.set(key, value);
        }
        if self.replace {
            change = change.replace_all();
        }
        (self.conn_id, change)
    }
}

/// POST /api/v1/session: changes a connection's session data.
pub(crate) async fn set_session(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<SessionBody>,
) -> Reply {
    let (conn_id, change) = body.change();
    let cluster = key.apply(cluster(&context).await?);
    cluster
        .set_session(conn_id, change)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceOfflineBody {
    #[serde(default)]
    conn_ids: Vec<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    /// Wider than the protocol's `uint32`, so any JSON integer gets the one close-code rule
    /// (`validate::close`) and its message.
    #[serde(default)]
    code: i64,
    #[serde(default)]
    reason: String,
    #[serde(default, deserialize_with = "payload::present")]
    last_text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    last_binary: Option<String>,
}

/// POST /api/v1/force-offline: closes connections (and every connection of users) from the
/// server side, optionally sending a last message first.
pub(crate) async fn force_offline(
    State(context): State<ApiContext>,
    key: IdempotencyKey,
    JsonBody(body): JsonBody<ForceOfflineBody>,
) -> Reply {
    let code = validate::close(body.code, &body.reason).map_err(ApiError::refused)?;
    let last = payload::optional(body.last_text, body.last_binary, "last_text", "last_binary")?;
    let command = ForceOffline {
        conn_ids: body.conn_ids,
        user_ids: body.user_ids,
        code: code.into(),
        reason: body.reason,
        last_message: last,
    };
    let cluster = key.apply(cluster(&context).await?);
    let r = crate::cluster::force_offline(&cluster, command)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(json: &str) -> Result<(String, SessionChange), ApiError> {
        Ok(serde_json::from_str::<SessionBody>(json)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .change())
    }

    #[test]
    fn session_bodies_are_checked() {
        let (conn, change) =
            session(r#"{"conn_id":"c","set":{"a":"1"},"delete":["b"]}"#).expect("valid edit");
        assert_eq!(conn, "c");
        assert_eq!(change, SessionChange::new().delete("b").set("a", "1"));
        // A key in both is set; delete beside replace changes nothing. Both are accepted, as
        // the schema says.
        assert!(session(r#"{"conn_id":"c","delete":["a"],"replace":true}"#).is_ok());
        assert!(session(r#"{"conn_id":"c","set":{"a":"1"},"delete":["a"]}"#).is_ok());
        // An empty conn_id is the shared rules' to refuse (validate::command), at every door.
        assert!(
            session(r#"{"set":{"a":"1"}}"#).is_err(),
            "conn_id is required"
        );
    }
}
