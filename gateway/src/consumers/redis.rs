//! The Redis consumers: Pub/Sub channels and patterns (fan-out), a list producers `LPUSH`
//! into, and a Stream read by a consumer group (work queues).
//!
//! The list is read without a polling timer and without losing a message to a gateway killed
//! mid-way: `BLMOVE` (blocking) moves the oldest message to this gateway's own processing
//! list `<key>:wsgate:<node id>` in one step, and it is removed from there once carried out.
//! A gateway that starts (or reconnects) first carries out what its processing list still
//! holds, oldest first. A Stream group gives the same through its pending entries: this
//! gateway's own are read again at start (`XREADGROUP … 0`), and entries another consumer of
//! the group left pending past `redeliver_after` are taken over (`XAUTOCLAIM`).

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};

use super::spec::{Bad, Spec};
use super::{Carrier, Outcome, Received, why};

/// Pub/Sub messages that may wait to be carried out before more are dropped.
const PUBSUB_BACKLOG: usize = 10_000;

/// How long one blocking read waits before the reader looks around (lag, shutdown).
const BLOCK: Duration = Duration::from_secs(2);

/// A connection of its own: a blocking read holds it.
async fn connect(spec: &Spec) -> Result<(Client, MultiplexedConnection), String> {
    let client = Client::open(spec.url()).map_err(|e| why("bad Redis url", e))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        // Longer than a blocking read, so only a Redis that stopped answering times out.
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| why("cannot connect to Redis", e))?;
    Ok((client, conn))
}

/// Pub/Sub: every gateway subscribes; each carries a message out for its own connections.
/// Messages published while this gateway was not subscribed are not seen (Pub/Sub keeps
/// nothing); docs/consumers.md says what a publisher can check.
pub(super) async fn subscribe(c: Carrier, spec: &Spec) -> Result<(), String> {
    let client = Client::open(spec.url()).map_err(|e| why("bad Redis url", e))?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| why("cannot connect to Redis", e))?;
    for channel in &spec.channels {
        let pattern = channel.contains(['*', '?', '[']);
        let subscribed = if pattern {
            pubsub.psubscribe(channel).await
        } else {
            pubsub.subscribe(channel).await
        };
        subscribed.map_err(|e| why("cannot subscribe", e))?;
    }
    c.up();
    let (mut sink, mut messages) = pubsub.split();
    // The Redis client reads its socket into an unbounded queue whether or not its messages are
    // taken; a gateway that falls behind (or cannot take commands for a while) must not grow
    // without bound: at most PUBSUB_BACKLOG wait here, the rest are dropped and counted.
    let (backlog, mut waiting) = tokio::sync::mpsc::channel(PUBSUB_BACKLOG);
    let forwarder = c.clone();
    let forward = tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = backlog.try_send(msg) {
                crate::stats::Stats::incr(&forwarder.stats.dropped);
                forwarder.warn(&format!(
                    "dropped a Pub/Sub message: {PUBSUB_BACKLOG} are waiting to be carried out (Pub/Sub keeps nothing; use a list or a stream to keep what cannot be taken at once)"
                ));
            }
        }
    });
    let _forward = super::AbortOnDrop(forward);
    let mut ping = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            msg = waiting.recv() => {
                let Some(msg) = msg else {
                    return Err("Redis closed the subscription".into());
                };
                let received = Received {
                    data: msg.get_payload_bytes(),
                    channel: msg.get_channel_name(),
                    id: None,
                };
                // Nothing to acknowledge: a refusal is logged and counted, and that is all.
                if c.carry(received).await.is_err() {
                    return Ok(());
                }
            }
            _ = ping.tick() => {
                // A Redis that went away without closing the socket shows here.
                match tokio::time::timeout(Duration::from_secs(5), sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(why("Redis did not answer a ping", e)),
                    Err(_) => return Err("Redis did not answer a ping within 5s".into()),
                }
            }
        }
    }
}

/// A list: `BLMOVE` to this gateway's processing list, carry out, `LREM`.
pub(super) async fn pop(c: Carrier, spec: &Spec) -> Result<(), String> {
    let key = spec.key.clone().unwrap_or_default();
    let processing = format!("{key}:wsgate:{}", c.node_id);
    let (_client, mut conn) = connect(spec).await?;
    c.up();
    // What this gateway took and had not finished when it stopped or lost Redis: oldest last.
    let left: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&processing)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .map_err(|e| why("LRANGE of the processing list failed", e))?;
    for data in left.into_iter().rev() {
        if !handle_list_item(&c, spec, &mut conn, &key, &processing, data).await? {
            return Ok(());
        }
    }
    // The item carried out last: removed from the processing list in the same round trip
    // as the next move, so a message costs one round trip, not two.
    let mut finished: Option<Vec<u8>> = None;
    loop {
        let mut pipe = redis::pipe();
        if let Some(data) = finished.take() {
            pipe.cmd("LREM").arg(&processing).arg(-1).arg(data).ignore();
        }
        pipe.cmd("BLMOVE")
            .arg(&key)
            .arg(&processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(BLOCK.as_secs_f64());
        let (moved,): (Option<Vec<u8>>,) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| why("BLMOVE failed", e))?;
        let Some(data) = moved else {
            let waiting: u64 = redis::cmd("LLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| why("LLEN failed", e))?;
            c.stats.set_lag(waiting);
            continue;
        };
        if spec.bad == Bad::DeadLetter {
            // Rare enough to settle at once, dead letter and removal in one transaction.
            if !handle_list_item(&c, spec, &mut conn, &key, &processing, data).await? {
                return Ok(());
            }
            continue;
        }
        let received = Received {
            data: &data,
            channel: &key,
            id: None,
        };
        match c.carry(received).await {
            Ok(_) => finished = Some(data),
            Err(_stopped) => return Ok(()),
        }
    }
}

/// Carries out one list item and removes it from the processing list (dead-lettering a bad
/// one first when configured). False when the gateway stopped first.
async fn handle_list_item(
    c: &Carrier,
    spec: &Spec,
    conn: &mut MultiplexedConnection,
    key: &str,
    processing: &str,
    data: Vec<u8>,
) -> Result<bool, String> {
    let received = Received {
        data: &data,
        channel: key,
        id: None,
    };
    let outcome = match c.carry(received).await {
        Ok(outcome) => outcome,
        Err(_stopped) => return Ok(false),
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    if let Outcome::Bad(_) = outcome
        && spec.bad == Bad::DeadLetter
    {
        pipe.cmd("LPUSH")
            .arg(spec.dead_letter_key())
            .arg(&data)
            .ignore();
    }
    // The oldest copy: the item came from the tail.
    pipe.cmd("LREM").arg(processing).arg(-1).arg(&data).ignore();
    pipe.query_async::<()>(conn).await.map_err(|e| {
        why(
            "removing a carried-out message from the processing list failed",
            e,
        )
    })?;
    Ok(true)
}

/// A Stream read by a consumer group; each gateway is a consumer named by its node id.
pub(super) async fn group(c: Carrier, spec: &Spec) -> Result<(), String> {
    let key = spec.key.clone().unwrap_or_default();
    let group = spec.group.clone().unwrap_or_else(|| "wsgate".into());
    let claim_idle = spec.redeliver_after();
    let (_client, mut conn) = connect(spec).await?;
    let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(&group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    if let Err(e) = created
        && e.code() != Some("BUSYGROUP")
    {
        return Err(why("XGROUP CREATE failed", e));
    }
    c.up();
    // This gateway's own pending entries first (taken before it stopped), then new ones.
    let mut from_pending = true;
    let mut last_claim = tokio::time::Instant::now();
    loop {
        if last_claim.elapsed() >= claim_idle.min(Duration::from_secs(30)) {
            last_claim = tokio::time::Instant::now();
            let claimed: Value = redis::cmd("XAUTOCLAIM")
                .arg(&key)
                .arg(&group)
                .arg(&c.node_id)
                .arg(claim_idle.as_millis() as u64)
                .arg("0")
                .arg("COUNT")
                .arg(spec.batch())
                .query_async(&mut conn)
                .await
                .map_err(|e| why("XAUTOCLAIM failed", e))?;
            if let Value::Array(parts) = claimed
                && parts
                    .get(1)
                    .is_some_and(|v| matches!(v, Value::Array(a) if !a.is_empty()))
            {
                // Taken over: they are this consumer's pending entries now.
                from_pending = true;
            }
        }
        let start = if from_pending { "0" } else { ">" };
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&group)
            .arg(&c.node_id)
            .arg("COUNT")
            .arg(spec.batch());
        if !from_pending {
            read.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        let reply: Value = read
            .arg("STREAMS")
            .arg(&key)
            .arg(start)
            .query_async(&mut conn)
            .await
            .map_err(|e| why("XREADGROUP failed", e))?;
        let entries = stream_entries(reply);
        if entries.is_empty() {
            from_pending = false;
            let lag = stream_lag(&mut conn, &key, &group).await?;
            if let Some(lag) = lag {
                c.stats.set_lag(lag);
            }
            continue;
        }
        for (id, fields) in entries {
            let data = field(&fields, "data").or_else(|| field(&fields, "payload"));
            let channel = field(&fields, "channel").unwrap_or_default();
            let outcome = match data {
                Some(data) => {
                    let received = Received {
                        data: &data,
                        channel: std::str::from_utf8(&channel).unwrap_or(""),
                        id: Some(&id),
                    };
                    match c.carry(received).await {
                        Ok(outcome) => outcome,
                        Err(_stopped) => return Ok(()),
                    }
                }
                None => {
                    let refusal = super::Refusal::new(
                        super::Reason::NotCommand,
                        format!("entry {id} has no field \"data\"; XADD {key} * data <message>"),
                    );
                    c.refuse(refusal)
                }
            };
            let mut pipe = redis::pipe();
            pipe.atomic();
            if let Outcome::Bad(refusal) = &outcome
                && spec.bad == Bad::DeadLetter
            {
                let mut add = redis::cmd("XADD");
                add.arg(spec.dead_letter_key()).arg("*");
                for (name, value) in &fields {
                    add.arg(name).arg(value);
                }
                add.arg("wsgate_reason").arg(refusal.reason.name());
                add.arg("wsgate_error").arg(&refusal.detail);
                add.arg("wsgate_id").arg(&id);
                pipe.add_command(add).ignore();
            }
            pipe.cmd("XACK").arg(&key).arg(&group).arg(&id).ignore();
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| why("XACK failed", e))?;
        }
    }
}

/// An entry's fields, in order.
type Fields = Vec<(String, Vec<u8>)>;

/// `(id, fields)` of an `XREADGROUP` reply for one stream.
fn stream_entries(reply: Value) -> Vec<(String, Fields)> {
    // [[key, [[id, [f, v, …]], …]]] (RESP2), or a map {key: [...]} (RESP3).
    let streams = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut parts) = entry else {
                continue;
            };
            if parts.len() != 2 {
                continue;
            }
            let fields = parts.pop();
            let id = parts
                .pop()
                .and_then(bytes)
                .and_then(|b| String::from_utf8(b).ok());
            let Some(id) = id else { continue };
            let fields: Fields = fields
                .map(pairs)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| bytes(v).map(|v| (k, v)))
                .collect();
            // A deleted entry still pending reads as nil fields: carried out as "no data".
            out.push((id, fields));
        }
    }
    out
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// The name/value pairs of a flat array (RESP2) or a map (RESP3).
fn pairs(v: Value) -> Vec<(String, Value)> {
    let kv: Vec<(Value, Value)> = match v {
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        Value::Map(map) => map,
        _ => Vec::new(),
    };
    kv.into_iter()
        .filter_map(|(k, v)| bytes(k).map(|k| (String::from_utf8_lossy(&k).into_owned(), v)))
        .collect()
}

fn field(fields: &[(String, Vec<u8>)], name: &str) -> Option<Vec<u8>> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The group's `lag` (entries not yet delivered to it), as `XINFO GROUPS` reports it.
async fn stream_lag(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Result<Option<u64>, String> {
    let groups: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| why("XINFO GROUPS failed", e))?;
    for g in groups {
        let pairs = pairs(g);
        let name = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| bytes(v.clone()).map(|b| String::from_utf8_lossy(&b).into_owned()));
        if name.as_deref() == Some(group) {
            return Ok(pairs
                .iter()
                .find(|(k, _)| k == "lag")
                .and_then(|(_, v)| match v {
                    Value::Int(n) => u64::try_from(*n).ok(),
                    _ => None,
                }));
        }
    }
    Ok(None)
}
