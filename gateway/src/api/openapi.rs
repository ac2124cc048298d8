//! The OpenAPI 3.0 document of the /api/v1 push API, served at `/openapi.json`: every
//! endpoint with its request and response schemas, the bearer security scheme and the error
//! body. Hand-written; a test checks that it covers every route of [`routes::v1`].
//!
//! The schemas say exactly what the server accepts — schemathesis checks both ways in CI: a
//! request the schema allows is never refused as invalid, and one it forbids is refused. So
//! names have their character limits (`maxLength` counts characters, as the gateway does),
//! lists their `minItems` and the gateway's per-command limits as `maxItems` (read from this
//! gateway's settings, so the document is built per gateway), a message exactly one of `text`
//! and `binary` (`oneOf`), and commands that need a target say so with `anyOf`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::context::ApiContext;
use super::queries::{DEFAULT_LIMIT, LIST_KINDS, MAX_LIMIT};
#[cfg(test)]
use super::routes;
use crate::connections::state::{MAX_NAME_CHARS, MAX_SESSION_KEYS};
use wsgate_proto::validate::MAX_REASON_CHARS;

/// GET /openapi.json.
pub(crate) async fn document(State(context): State<ApiContext>) -> Json<Value> {
    Json(build(&Limits::of(&context.config)))
}

/// What the schemas take from the gateway's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    topics: usize,
    conn_ids: usize,
    user_ids: usize,
}

impl Limits {
    pub(crate) fn of(config: &crate::Config) -> Self {
        Self {
            topics: config.max_topics_per_command,
            conn_ids: config.max_conn_ids_per_command,
            user_ids: config.max_user_ids_per_command,
        }
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// The error responses every endpoint may give.
fn error_responses() -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    for (status, name) in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("415", "UnsupportedMediaType"),
        ("422", "LimitExceeded"),
        ("500", "Internal"),
        ("503", "Unavailable"),
        ("504", "Timeout"),
    ] {
        map.insert(status.into(), response_ref(name));
    }
    map
}

/// A POST command taking the `body` schema and answering a `CommandReply`.
fn command(id: &str, summary: &str, description: &str, body: &str) -> Value {
    let mut responses = error_responses();
    responses.insert("413".into(), response_ref("TooLarge"));
    responses.insert(
        "200".into(),
        json!({
            "description": "What the command achieved; `failed` names the gateways that did not answer.",
            "content": { "application/json": { "schema": schema_ref("CommandReply") } }
        }),
    );
    json!({
        "post": {
            "operationId": id,
            "summary": summary,
            "description": description,
            "tags": ["commands"],
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": schema_ref(body) } }
            },
            "responses": responses
        }
    })
}

/// A GET query with `parameters`, answering the `reply` schema.
fn query(id: &str, summary: &str, description: &str, parameters: Value, reply: &str) -> Value {
    let mut responses = error_responses();
    responses.insert(
        "200".into(),
        json!({
            "description": "The answer merged over the cluster; `failed` names the gateways whose part is missing.",
            "content": { "application/json": { "schema": schema_ref(reply) } }
        }),
    );
    json!({
        "get": {
            "operationId": id,
            "summary": summary,
            "description": description,
            "tags": ["queries"],
            "parameters": parameters,
            "responses": responses
        }
    })
}

/// A comma-separated list of names in the query string (empty items are dropped).
fn names_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": {
            "type": "string",
            "pattern": format!("^[^,]{{0,{MAX_NAME_CHARS}}}(,[^,]{{0,{MAX_NAME_CHARS}}})*$")
        },
        "example": "a,b"
    })
}

/// A comma-separated list of ids in the query string, any strings.
fn ids_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": { "type": "string" },
        "example": "a,b"
    })
}

/// A user id or topic: 1 to 128 characters.
fn name(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "description": description })
}

/// The one connection a command acts on: required.
fn conn_id(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "description": description })
}

/// A connection id in a list: any string (an empty or made-up one is simply not connected).
fn listed_conn_id() -> Value {
    json!({ "type": "string", "description": "A connection id." })
}

/// A list of `items`: `min` to `max` of them.
fn list(items: Value, min: usize, max: usize, description: &str) -> Value {
    let mut schema =
        json!({ "type": "array", "items": items, "maxItems": max, "description": description });
    if min > 0 {
        schema["minItems"] = json!(min);
    }
    schema
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

/// An object schema; `required` is left out when empty (OpenAPI 3.0 wants one name at least).
fn object(required: &[&str], properties: Value, description: &str) -> Value {
    let mut schema = json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": false
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// `text` / `binary` added to `properties`, and exactly one of them required.
fn with_message(mut schema: Value) -> Value {
    if let Some(map) = schema["properties"].as_object_mut() {
        map.insert(
            "text".into(),
            json!({ "type": "string", "description": "A text message. Exactly one of text and binary." }),
        );
        map.insert(
            "binary".into(),
            json!({ "type": "string", "format": "byte", "description": "A binary message, standard base64 with padding. Exactly one of text and binary." }),
        );
    }
    schema["oneOf"] = json!([{ "required": ["text"] }, { "required": ["binary"] }]);
    schema
}

/// At least one of two lists must name something.
fn one_of_lists_non_empty(mut schema: Value, a: &str, b: &str) -> Value {
    schema["anyOf"] = json!([
        { "required": [a], "properties": { a: { "minItems": 1 } } },
        { "required": [b], "properties": { b: { "minItems": 1 } } }
    ]);
    schema
}

/// Not both of two fields.
fn at_most_one_of(mut schema: Value, a: &str, b: &str) -> Value {
    schema["not"] = json!({ "required": [a, b] });
    schema
}

fn schemas(limits: &Limits) -> Value {
    let exclude = list(
        listed_conn_id(),
        0,
        limits.conn_ids,
        "Connection ids that must not get the message.",
    );
    let conn_ids =
        |min: usize, description: &str| list(listed_conn_id(), min, limits.conn_ids, description);
    let user_ids =
        |min: usize, description: &str| list(name("A user id."), min, limits.user_ids, description);
    let topics = |description: &str| list(name("A topic."), 1, limits.topics, description);
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "enum": ["bad_request", "unauthorized", "forbidden", "unknown_connection", "not_found", "method_not_allowed", "too_large", "unsupported_media_type", "limit_exceeded", "internal", "unavailable", "timeout"],
                    "description": "A stable code to match on."
                },
                "message": { "type": "string", "description": "What went wrong and what to do about it." }
            }
        },
        "Failure": {
            "type": "object",
            "required": ["gateway", "error"],
            "properties": {
                "gateway": { "type": "string", "description": "The gateway's node id (its address when it never registered)." },
                "error": { "type": "string", "description": "Why it did not answer." }
            }
        },
        "Failed": {
            "type": "array",
            "items": schema_ref("Failure"),
            "description": "The gateways that did not answer (down, timed out, refused); empty when all did."
        },
        "CommandReply": {
            "type": "object",
            "required": ["delivered", "unknown_conn_ids", "unknown_user_ids", "failed"],
            "properties": {
                "delivered": { "type": "integer", "format": "int32", "minimum": 0, "description": "Connections reached: messages queued, connections closed (force-offline) or changed; 1 for a single-connection command." },
                "unknown_conn_ids": strings("Named connections that are not connected."),
                "unknown_user_ids": strings("Named users with no connection on any gateway that answered."),
                "failed": schema_ref("Failed"),
                "receipts": {
                    "type": "array",
                    "description": "Only when the cast asked for receipts: each target connection's outcome.",
                    "items": {
                        "type": "object",
                        "required": ["conn_id", "delivery"],
                        "properties": {
                            "conn_id": { "type": "string" },
                            "delivery": {
                                "type": "string",
                                "enum": ["written", "gone", "dropped", "acked", "unacked"],
                                "description": "written: to the client's socket; gone: not connected when the cast ran; dropped: never written (slow consumer, or closed with it queued); acked: the client acknowledged it (client_ack); unacked: written, not acknowledged within --client-ack-timeout."
                            }
                        }
                    }
                }
            }
        },
        "SendRequest": with_message(object(&["conn_id"], json!({
            "conn_id": conn_id("A connection id from a ConnOpen event."),
            "receipts": { "type": "boolean", "description": "Wait for the connection's outcome and list it in the reply (`receipts`)." },
            "client_ack": { "type": "boolean", "description": "Also ask each wsgate.stream.v1 client to acknowledge (docs/streams.md); waits for the receipts, so up to --client-ack-timeout: acked or unacked instead of written." }
        }), "One message to one connection.")),
        "MulticastRequest": with_message(object(&["conn_ids"], json!({
            "conn_ids": conn_ids(1, "Connection ids."),
            "receipts": { "type": "boolean", "description": "Wait for each target connection's outcome and list it in the reply (`receipts`); at most --max-conn-ids-per-command targets." },
            "client_ack": { "type": "boolean", "description": "Also ask each wsgate.stream.v1 client to acknowledge (docs/streams.md); waits for the receipts, so up to --client-ack-timeout: acked or unacked instead of written." }
        }), "One message to several connections.")),
        "BroadcastRequest": with_message(object(&[], json!({
            "exclude_conn_ids": exclude,
            "receipts": { "type": "boolean", "description": "Wait for each target connection's outcome and list it in the reply (`receipts`); at most --max-conn-ids-per-command targets." },
            "client_ack": { "type": "boolean", "description": "Also ask each wsgate.stream.v1 client to acknowledge (docs/streams.md); waits for the receipts, so up to --client-ack-timeout: acked or unacked instead of written." }
        }), "One message to every connection of the cluster.")),
        "UsersSendRequest": with_message(object(&["user_ids"], json!({
            "user_ids": user_ids(1, "User ids."),
            "exclude_conn_ids": exclude,
            "receipts": { "type": "boolean", "description": "Wait for each target connection's outcome and list it in the reply (`receipts`); at most --max-conn-ids-per-command targets." },
            "client_ack": { "type": "boolean", "description": "Also ask each wsgate.stream.v1 client to acknowledge (docs/streams.md); waits for the receipts, so up to --client-ack-timeout: acked or unacked instead of written." }
        }), "One message to every connection of these users.")),
        "PublishRequest": with_message(object(&["topics"], json!({
            "topics": topics("Topics."),
            "exclude_conn_ids": exclude,
            "receipts": { "type": "boolean", "description": "Wait for each target connection's outcome and list it in the reply (`receipts`); at most --max-conn-ids-per-command targets." },
            "client_ack": { "type": "boolean", "description": "Also ask each wsgate.stream.v1 client to acknowledge (docs/streams.md); waits for the receipts, so up to --client-ack-timeout: acked or unacked instead of written." }
        }), "One message to every member of these topics.")),
        "BindRequest": object(&["conn_id", "user_id"], json!({
            "conn_id": conn_id("A connection id."),
            "user_id": name("The user id.")
        }), "Binds a user id to a connection; user commands then reach it."),
        "UnbindRequest": object(&["conn_id"], json!({
            "conn_id": conn_id("A connection id.")
        }), "Removes a connection's user binding."),
        "TopicsRequest": one_of_lists_non_empty(object(&["topics"], json!({
            "topics": topics("Topics."),
            "conn_ids": conn_ids(0, "Connections to act on."),
            "user_ids": user_ids(0, "Users whose current connections to act on.")
        }), "Topic membership change for connections and/or users' current connections (at least one of conn_ids and user_ids names one)."), "conn_ids", "user_ids"),
        "DeleteTopicsRequest": object(&["topics"], json!({
            "topics": topics("Topics to empty.")
        }), "Removes every member from these topics."),
        "SessionRequest": object(&["conn_id"], json!({
            "conn_id": conn_id("A connection id."),
            "set": { "type": "object", "maxProperties": MAX_SESSION_KEYS, "propertyNames": { "minLength": 1, "maxLength": MAX_NAME_CHARS }, "additionalProperties": { "type": "string" }, "description": "Keys to write (1 to 128 characters each), after delete." },
            "delete": { "type": "array", "items": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS }, "description": "Keys to remove, before set; a key in both ends up set." },
            "replace": { "type": "boolean", "default": false, "description": "Make the session exactly `set` (delete then changes nothing)." }
        }), "A change to a connection's session data (at most 64 keys, 16 KiB in all)."),
        "ForceOfflineRequest": at_most_one_of(one_of_lists_non_empty(object(&[], json!({
                "conn_ids": conn_ids(0, "Connections to close."),
                "user_ids": user_ids(0, "Users whose connections to close."),
                "code": {
                    "type": "integer",
                    "description": "Close code: 1000 or 3000-4999; 0 or left out means 1000.",
                    "oneOf": [{ "enum": [0, 1000] }, { "minimum": 3000, "maximum": 4999 }]
                },
                "reason": { "type": "string", "maxLength": MAX_REASON_CHARS, "description": "Close reason; the client gets its first 123 bytes." },
                "last_text": { "type": "string", "description": "A last text message sent before closing." },
                "last_binary": { "type": "string", "format": "byte", "description": "A last binary message (standard base64); not together with last_text." }
            }), "Closes connections from the server side (at least one of conn_ids and user_ids names one)."), "conn_ids", "user_ids"), "last_text", "last_binary"),
        "OnlineReply": {
            "type": "object",
            "required": ["conn_ids", "user_ids", "failed"],
            "properties": {
                "conn_ids": strings("The asked connections that are connected, in the order asked."),
                "user_ids": strings("The asked users with a connection, in the order asked."),
                "failed": schema_ref("Failed")
            }
        },
        "Connection": {
            "type": "object",
            "required": ["conn_id", "user_id", "topics", "session", "remote_addr", "connected_at_ms", "forwarded_for", "real_ip", "failed"],
            "properties": {
                "conn_id": { "type": "string" },
                "user_id": { "type": "string", "description": "Empty when no user is bound." },
                "topics": strings("Topics the connection is in."),
                "session": { "type": "object", "additionalProperties": { "type": "string" } },
                "remote_addr": { "type": "string", "description": "The TCP peer, ip:port." },
                "connected_at_ms": { "type": "integer", "format": "int64", "description": "Unix time in milliseconds." },
                "forwarded_for": { "type": "string", "description": "X-Forwarded-For of the handshake; empty when absent." },
                "real_ip": { "type": "string", "description": "X-Real-IP of the handshake; empty when absent." },
                "failed": schema_ref("Failed")
            }
        },
        "TopicCount": {
            "type": "object",
            "required": ["topic", "connections", "users"],
            "properties": {
                "topic": { "type": "string" },
                "connections": { "type": "integer", "format": "int64" },
                "users": { "type": "integer", "format": "int64" }
            }
        },
        "CountsReply": {
            "type": "object",
            "required": ["connections", "users", "topics", "topic_counts", "failed"],
            "description": "Summed over the gateways: a user or topic present on two gateways counts twice.",
            "properties": {
                "connections": { "type": "integer", "format": "int64" },
                "users": { "type": "integer", "format": "int64" },
                "topics": { "type": "integer", "format": "int64" },
                "topic_counts": { "type": "array", "items": schema_ref("TopicCount") },
                "failed": schema_ref("Failed")
            }
        },
        "ListReply": {
            "type": "object",
            "required": ["items", "next_cursor", "failed"],
            "properties": {
                "items": strings("In ascending byte order, without repeats."),
                "next_cursor": { "type": "string", "description": "Pass back as cursor for the next page; empty on the last page." },
                "failed": schema_ref("Failed")
            }
        }
    })
}

fn error_response(description: &str, example_code: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": {
            "schema": schema_ref("Error"),
            "example": { "error": example_code, "message": "what went wrong and what to do" }
        } }
    })
}

fn paths() -> Value {
    let kinds: Vec<&str> = LIST_KINDS.iter().map(|(name, ..)| *name).collect();
    json!({
        "/api/v1/send": command("send", "Send to one connection",
            "Routed to the gateway that owns the connection. 404 when it is not connected (or no gateway of the cluster has its node id), 503 when its gateway is down.",
            "SendRequest"),
        "/api/v1/multicast": command("multicast", "Send to several connections",
            "Each gateway gets its own connections' ids; gone ids are in unknown_conn_ids.",
            "MulticastRequest"),
        "/api/v1/broadcast": command("broadcast", "Send to every connection",
            "Every gateway of the cluster, except exclude_conn_ids.", "BroadcastRequest"),
        "/api/v1/users/send": command("sendToUsers", "Send to users",
            "Every connection of these users on every gateway.", "UsersSendRequest"),
        "/api/v1/users/bind": command("bindUser", "Bind a user to a connection",
            "On the gateway that owns the connection. 422 when the user holds the most connections allowed (--max-connections-per-user, refuse-new).", "BindRequest"),
        "/api/v1/users/unbind": command("unbindUser", "Unbind a connection's user",
            "On the gateway that owns the connection.", "UnbindRequest"),
        "/api/v1/topics/publish": command("publish", "Publish to topics",
            "Every member of these topics on every gateway.", "PublishRequest"),
        "/api/v1/topics/subscribe": command("subscribe", "Subscribe to topics",
            "The named connections and the users' current connections join the topics. 422 when some connection would pass --max-topics-per-conn (it is left unchanged; the others are served).",
            "TopicsRequest"),
        "/api/v1/topics/unsubscribe": command("unsubscribe", "Unsubscribe from topics",
            "The named connections and the users' current connections leave the topics.",
            "TopicsRequest"),
        "/api/v1/topics/delete": command("deleteTopics", "Delete topics",
            "Removes every member; delivered counts the topics deleted per gateway.",
            "DeleteTopicsRequest"),
        "/api/v1/session": command("setSession", "Change session data",
            "Edits (delete, then set) or replaces a connection's session map; 400 when the result would pass the session limits.", "SessionRequest"),
        "/api/v1/force-offline": command("forceOffline", "Close connections",
            "Closes connections and every connection of users, with an optional last message.",
            "ForceOfflineRequest"),
        "/api/v1/online": query("online", "Who is online",
            "Which of these connections and users are connected.",
            json!([
                ids_param("conn_ids", "Comma-separated connection ids."),
                ids_param("user_ids", "Comma-separated user ids (an id no user can have is simply not online).")
            ]),
            "OnlineReply"),
        "/api/v1/connections/{conn_id}": query("connection", "One connection's info",
            "What the owning gateway knows about the connection; 404 when it is not connected.",
            json!([{
                "name": "conn_id", "in": "path", "required": true,
                "description": "A connection id.", "schema": { "type": "string", "minLength": 1 }
            }]),
            "Connection"),
        "/api/v1/counts": query("counts", "Counts",
            "Connections, users and topics summed over the cluster, plus per-topic counts.",
            json!([names_param("topics", "Comma-separated topics to count members of.")]),
            "CountsReply"),
        "/api/v1/list/{kind}": query("list", "One page of a list",
            "Merged across the cluster in ascending byte order. Start with an empty cursor and pass next_cursor back until it is empty.",
            json!([
                {
                    "name": "kind", "in": "path", "required": true,
                    "description": "What to list; topic-connections and topic-users list the members of topic key, user-connections the connections of user key (empty without a key).",
                    "schema": { "type": "string", "enum": kinds }
                },
                {
                    "name": "key", "in": "query", "required": false,
                    "description": "The topic or user id, for the kinds that list one's members; the other kinds ignore it.",
                    "schema": { "type": "string" }
                },
                {
                    "name": "cursor", "in": "query", "required": false,
                    "description": "The previous page's next_cursor; empty for the first page.",
                    "schema": { "type": "string" }
                },
                {
                    "name": "limit", "in": "query", "required": false,
                    "description": "Items per page.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT }
                }
            ]),
            "ListReply")
    })
}

pub(crate) fn build(limits: &Limits) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wsgate HTTP push API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Push to and query the WebSocket clients of a wsgate gateway, or of its whole cluster when peers are configured. Commands are POST with JSON bodies (Content-Type: application/json), queries GET with query parameters. Messages are `text`, or `binary` as standard base64. Every success body has `failed`: the gateways that did not answer. Errors are `{\"error\": code, \"message\": text}`. A command may carry an `Idempotency-Key` header (1 to 128 printable ASCII bytes, one per command): a request retried with the same key is carried out once and answered with the first reply; the same key with a different command is refused (400). Without an API key the API answers only requests to a loopback name or address."
        },
        "tags": [
            { "name": "commands", "description": "Send, bind, subscribe, change sessions, close." },
            { "name": "queries", "description": "Online checks, connection info, counts, lists." }
        ],
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <key>` with the gateway's API key (api_key, WSGATE_API_KEY, --api-key). Needed only when the gateway has a key."
                }
            },
            "schemas": schemas(limits),
            "responses": {
                "BadRequest": error_response("The request is invalid; the message says what to fix.", "bad_request"),
                "Unauthorized": error_response("No or a wrong API key.", "unauthorized"),
                "Forbidden": error_response("Without an API key: a Host or Origin that is not a loopback name or address (or --api-allowed-hosts).", "forbidden"),
                "NotFound": error_response("The connection is not connected, or the route does not exist.", "unknown_connection"),
                "UnsupportedMediaType": error_response("The body is not declared application/json.", "unsupported_media_type"),
                "LimitExceeded": error_response("The request names more than a per-command limit allows, or would take a connection past one.", "limit_exceeded"),
                "TooLarge": error_response("The body, or the command it makes, does not fit in one worker-link frame (--max-frame-bytes); send less per request.", "too_large"),
                "Unavailable": error_response("The cluster client is not connected yet, or no gateway answered.", "unavailable"),
                "Timeout": error_response("No gateway answered within the request timeout; the command may or may not have been carried out.", "timeout"),
                "Internal": error_response("A bug or an answer the gateway cannot interpret.", "internal")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = build(&Limits::of(&crate::Config::default()));
        for route in routes::v1() {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is missing from /openapi.json",
                route.method,
                route.path
            );
            assert!(op["responses"]["200"].is_object(), "{}", route.path);
            assert!(op["responses"]["401"].is_object(), "{}", route.path);
        }
        let documented = doc["paths"].as_object().map_or(0, |p| p.len());
        assert_eq!(
            documented,
            routes::v1().len(),
            "documented routes that do not exist"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = build(&Limits::of(&crate::Config::default()));
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/").skip(1) {
            let path = piece.split('"').next().unwrap_or_default();
            let mut node = &doc;
            for part in path.split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "#/{path} does not resolve");
        }
    }

    #[test]
    fn required_lists_are_never_empty() {
        fn walk(node: &Value, at: &str) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::Array(required)) = map.get("required") {
                        assert!(
                            !required.is_empty(),
                            "{at}: OpenAPI 3.0 forbids required: []"
                        );
                    }
                    for (key, child) in map {
                        walk(child, &format!("{at}/{key}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| walk(item, at)),
                _ => {}
            }
        }
        walk(&build(&Limits::of(&crate::Config::default())), "#");
    }
}
