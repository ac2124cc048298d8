//! Carries out the commands a business process sends: casts and force-offline.
//!
//! Commands never wait on a client: a payload is converted to a WebSocket message once and
//! shared by reference count with every recipient's queue.

use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use wsgate_proto::v1::{
    Broadcast, ClosedBy, ErrorCode, ForceOffline, Multicast, Payload, Result as CmdResult,
    SingleCast, envelope::Body,
};

use crate::registry::{CloseRequest, Registry, SendOutcome, close_code};

/// Runs one command body. `None` when `body` is not a command.
pub(crate) fn execute(registry: &Registry, body: Body) -> Option<CmdResult> {
    let result = match body {
        Body::SingleCast(c) => single_cast(registry, c),
        Body::Multicast(c) => multicast(registry, c),
        Body::Broadcast(c) => broadcast(registry, c),
        Body::ForceOffline(c) => force_offline(registry, c),
        _ => return None,
    };
    Some(result.unwrap_or_else(|message| CmdResult {
        code: ErrorCode::BadRequest as i32,
        message,
        ..Default::default()
    }))
}

/// The WebSocket message for a payload, built once per command.
pub(crate) fn to_message(payload: Option<Payload>, field: &str) -> Result<Message, String> {
    let payload =
        payload.ok_or_else(|| format!("{field} is missing; set it to the message to send"))?;
    if payload.is_text() {
        Utf8Bytes::try_from(payload.data).map(Message::Text).map_err(|_| {
            format!("{field} is marked text but is not valid UTF-8; send it as binary or fix its encoding")
        })
    } else {
        Ok(Message::Binary(payload.data))
    }
}

fn report(delivered: u32, unknown: Vec<String>) -> CmdResult {
    if unknown.is_empty() {
        return CmdResult {
            delivered,
            ..Default::default()
        };
    }
    let message = match unknown.as_slice() {
        [one] => format!(
            "connection {one} is not connected to this gateway (it has closed, or belongs to another gateway)"
        ),
        many => format!(
            "{} connections are not connected to this gateway (they have closed, or belong to another gateway)",
            many.len()
        ),
    };
    CmdResult {
        code: ErrorCode::UnknownConnection as i32,
        message,
        delivered,
        unknown_conn_ids: unknown,
    }
}

fn cast_to<'a>(
    registry: &Registry,
    ids: impl IntoIterator<Item = &'a String>,
    msg: &Message,
) -> CmdResult {
    let mut delivered = 0;
    let mut unknown = Vec::new();
    for id in ids {
        match registry.send(id, msg) {
            SendOutcome::Queued => delivered += 1,
            // A slow consumer is being closed: for the caller it is gone.
            SendOutcome::Unknown | SendOutcome::SlowConsumer => unknown.push(id.clone()),
        }
    }
    report(delivered, unknown)
}

fn single_cast(registry: &Registry, c: SingleCast) -> Result<CmdResult, String> {
    if c.conn_id.is_empty() {
        return Err("SingleCast.conn_id is empty; set it to a connection id from ConnOpen".into());
    }
    let msg = to_message(c.payload, "SingleCast.payload")?;
    Ok(cast_to(registry, [&c.conn_id], &msg))
}

fn multicast(registry: &Registry, c: Multicast) -> Result<CmdResult, String> {
    let msg = to_message(c.payload, "Multicast.payload")?;
    Ok(cast_to(registry, &c.conn_ids, &msg))
}

fn broadcast(registry: &Registry, c: Broadcast) -> Result<CmdResult, String> {
    let msg = to_message(c.payload, "Broadcast.payload")?;
    Ok(report(registry.broadcast(&msg, &c.exclude), Vec::new()))
}

fn force_offline(registry: &Registry, c: ForceOffline) -> Result<CmdResult, String> {
    let code = match c.code {
        0 => close_code::NORMAL,
        1000 => 1000,
        c @ 3000..=4999 => c as u16,
        other => {
            return Err(format!(
                "ForceOffline.code {other} is not allowed; use 1000 or an application code from 3000 to 4999"
            ));
        }
    };
    if c.reason.len() > 123 {
        return Err(format!(
            "ForceOffline.reason is {} bytes; a close reason holds at most 123",
            c.reason.len()
        ));
    }
    let last = match c.last_message {
        Some(p) => Some(to_message(Some(p), "ForceOffline.last_message")?),
        None => None,
    };
    let request = CloseRequest {
        code,
        reason: c.reason,
        closed_by: ClosedBy::Business,
    };
    let mut closed = 0;
    let mut unknown = Vec::new();
    for id in c.conn_ids {
        if registry.close(&id, last.clone(), request.clone()) {
            closed += 1;
        } else {
            unknown.push(id);
        }
    }
    Ok(report(closed, unknown))
}
