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
use wsgate_proto::v1::{self as v1, ForceOffline, envelope::Body};
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

/// A command in the JSON shape of these routes, `{"method": "<route>", "params": {<body>}}`,
/// as the worker-link body it makes: for callers other than the HTTP API that take commands
/// as JSON (the consumers, docs/consumers.md). `method` is the route after `/api/v1/`
/// (`send`, `users/send`, `topics/publish`, `force-offline`, …); `params` is that route's
/// body. The answer's error says what to fix. `receipts` and `client_ack` are refused: no one
/// waits for this command's answer.
pub(crate) fn body_of(method: &str, params: serde_json::Value) -> Result<Body, ApiError> {
    fn parse<T: serde::de::DeserializeOwned>(
        method: &str,
        params: serde_json::Value,
    ) -> Result<T, ApiError> {
        serde_json::from_value(params).map_err(|e| {
            ApiError::bad_request(format!(
                "the params of {method} do not fit: {e}; they are the body of POST /api/v1/{method}, as the gateway's /openapi.json describes it"
            ))
        })
    }
    let unanswered = |receipts: bool, client_ack: bool| {
        if receipts || client_ack {
            Err(ApiError::bad_request(
                "receipts and client_ack need someone to wait for the answer, and no one waits for this command; leave them out",
            ))
        } else {
            Ok(())
        }
    };
    Ok(match method {
        "send" => {
            let b: SendBody = parse(method, params)?;
            unanswered(b.receipts, b.client_ack)?;
            Body::SingleCast(v1::SingleCast {
                conn_id: b.conn_id,
                payload: Some(payload::required(b.text, b.binary)?),
            })
        }
        "multicast" => {
            let b: MulticastBody = parse(method, params)?;
            unanswered(b.receipts, b.client_ack)?;
            Body::Multicast(v1::Multicast {
                conn_ids: b.conn_ids,
                payload: Some(payload::required(b.text, b.binary)?),
            })
        }
        "broadcast" => {
            let b: BroadcastBody = parse(method, params)?;
            unanswered(b.receipts, b.client_ack)?;
            Body::Broadcast(v1::Broadcast {
                payload: Some(payload::required(b.text, b.binary)?),
                exclude: b.exclude_conn_ids,
            })
        }
        "users/send" => {
            let b: UsersSendBody = parse(method, params)?;
            unanswered(b.receipts, b.client_ack)?;
            Body::SendToUsers(v1::SendToUsers {
                user_ids: b.user_ids,
                payload: Some(payload::required(b.text, b.binary)?),
                exclude_conn_ids: b.exclude_conn_ids,
            })
        }
        "topics/publish" => {
            let b: PublishBody = parse(method, params)?;
            unanswered(b.receipts, b.client_ack)?;
            Body::Publish(v1::Publish {
                topics: b.topics,
                payload: Some(payload::required(b.text, b.binary)?),
                exclude_conn_ids: b.exclude_conn_ids,
            })
        }
        "users/bind" => {
            let b: BindBody = parse(method, params)?;
            Body::BindUser(v1::BindUser {
                conn_id: b.conn_id,
                user_id: b.user_id,
            })
        }
        "users/unbind" => {
            let b: UnbindBody = parse(method, params)?;
            Body::UnbindUser(v1::UnbindUser { conn_id: b.conn_id })
        }
        "topics/subscribe" | "topics/unsubscribe" => {
            let b: TopicsBody = parse(method, params)?;
            if method == "topics/subscribe" {
                Body::Subscribe(v1::Subscribe {
                    topics: b.topics,
                    conn_ids: b.conn_ids,
                    user_ids: b.user_ids,
                })
            } else {
                Body::Unsubscribe(v1::Unsubscribe {
                    topics: b.topics,
                    conn_ids: b.conn_ids,
                    user_ids: b.user_ids,
                })
            }
        }
        "topics/delete" => {
            let b: DeleteTopicsBody = parse(method, params)?;
            Body::DeleteTopics(v1::DeleteTopics { topics: b.topics })
        }
        "session" => {
            let b: SessionBody = parse(method, params)?;
            Body::SetSession(v1::SetSession {
                conn_id: b.conn_id,
                set: b.set,
                // With `replace` the gateway ignores deletes, as the route's own path does.
                delete: if b.replace { Vec::new() } else { b.delete },
                replace: b.replace,
            })
        }
        "force-offline" => {
            let b: ForceOfflineBody = parse(method, params)?;
            let code = validate::close(b.code, &b.reason).map_err(ApiError::refused)?;
            let last = payload::optional(b.last_text, b.last_binary, "last_text", "last_binary")?;
            Body::ForceOffline(ForceOffline {
                conn_ids: b.conn_ids,
                user_ids: b.user_ids,
                code: code.into(),
                reason: b.reason,
                last_message: last,
            })
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown method {other:?}; use one of {}",
                METHODS.join(", ")
            )));
        }
    })
}

/// The methods [`body_of`] takes: the command routes, after `/api/v1/`.
pub(crate) const METHODS: [&str; 12] = [
    "send",
    "multicast",
    "broadcast",
    "users/send",
    "topics/publish",
    "users/bind",
    "users/unbind",
    "topics/subscribe",
    "topics/unsubscribe",
    "topics/delete",
    "session",
    "force-offline",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn session(json: &str) -> Result<(String, SessionChange), ApiError> {
        Ok(serde_json::from_str::<SessionBody>(json)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .change())
    }

    #[test]
    fn json_commands_make_the_routes_bodies() {
        let body = body_of(
            "topics/publish",
            serde_json::json!({"topics": ["news"], "text": "hi"}),
        )
        .expect("a publish");
        let Body::Publish(p) = body else {
            panic!("not a publish: {body:?}")
        };
        assert_eq!(p.topics, ["news"]);
        assert_eq!(
            p.payload.expect("payload").as_text(),
            Some("hi"),
            "the text"
        );
        let unknown = body_of("explode", serde_json::json!({})).expect_err("unknown");
        assert!(
            unknown.message.contains("topics/publish"),
            "{}",
            unknown.message
        );
        let wrong = body_of("send", serde_json::json!({"conn": "x", "text": "a"}))
            .expect_err("wrong field");
        assert!(wrong.message.contains("unknown field"), "{}", wrong.message);
        let asks = body_of(
            "broadcast",
            serde_json::json!({"text": "a", "receipts": true}),
        )
        .expect_err("receipts");
        assert!(asks.message.contains("no one waits"), "{}", asks.message);
        assert!(
            body_of(
                "force-offline",
                serde_json::json!({"user_ids": ["7"], "code": 4000})
            )
            .is_ok()
        );
        for method in METHODS {
            // Every method is one body_of knows: none falls through to "unknown method".
            let e = body_of(method, serde_json::json!(null)).expect_err("null params");
            assert!(
                !e.message.contains("unknown method"),
                "{method}: {}",
                e.message
            );
        }
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
