//! Casts with receipts on a worker link (`Envelope.receipt`): carried out in order with the
//! link's other commands, answered later.
//!
//! A cast's frames are queued before the link reads its next command, as for any command, so
//! two casts to one connection arrive in the order sent. What waits is only the answer: with
//! `RECEIPT_MODE_WAIT` the `Result` once every target has an outcome, with
//! `RECEIPT_MODE_LATER` the `Receipts` frames after an immediate `Result`. The session keeps
//! those waits in a set it polls beside its other work ([`start`] returns one), so a client
//! that is slow to read holds back no other command.
//!
//! The wait runs under the command id like the cast itself: its `Result` — receipts included —
//! is what a retry gets. A wait still running when the link ends is finished in a task of its
//! own rather than dropped, so the command id is never forgotten for a cast that was carried
//! out (its retry would deliver twice).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;
use wsgate_proto::v1::{Envelope, Receipt, Receipts, envelope::Body};

use super::commands::Asked;
use super::context::Context;

/// What a cast with receipts still has to answer: the frames to write when it is done.
pub(crate) type Later = Pin<Box<dyn Future<Output = Vec<Envelope>> + Send>>;

/// Carries out the cast `body` (from an envelope with `request_id` and `command_id`) with the
/// receipts `asked` for. Returns once its frames are queued: what to answer now (`LATER`: the
/// `Result`), and what to answer when the outcomes are in (`WAIT`: the `Result` with them;
/// `LATER`: the `Receipts` frames).
pub(crate) async fn start(
    ctx: Arc<Context>,
    request_id: u64,
    command_id: String,
    body: Body,
    asked: Asked,
) -> (Option<Envelope>, Option<Later>) {
    if asked.wait {
        return match waiting(ctx, request_id, command_id, body, asked).await {
            Ok(out) => (out, None),
            Err(later) => (None, Some(later)),
        };
    }
    let ran = AtomicBool::new(false);
    let result = ctx
        .command_ids
        .carry_out(&command_id, body, |body| async {
            let result = ctx.carry_out(body, Some(&asked), &command_id).await;
            ran.store(true, Ordering::Relaxed);
            result
        })
        .await;
    let now = result.and_then(|r| answer(request_id, r));
    // Receipts belong to the try that ran the cast; a retry answered from the command-id
    // window gets its Result only.
    let later = ran.load(Ordering::Relaxed).then(|| {
        let per_frame = ctx.limits.per_command.conn_ids;
        let receipts = asked.receipts;
        Box::pin(async move { frames(request_id, &command_id, receipts.all().await, per_frame) })
            as Later
    });
    (now, later)
}

/// `RECEIPT_MODE_WAIT`: the `Result` waits for every outcome, under the command id so that a
/// retry gets it too. `Ok` when it is all done already, else the answer to come.
async fn waiting(
    ctx: Arc<Context>,
    request_id: u64,
    command_id: String,
    body: Body,
    asked: Asked,
) -> Result<Option<Envelope>, Later> {
    let (queued_tx, queued_rx) = oneshot::channel();
    let mut answer = Box::pin(async move {
        let result = ctx
            .command_ids
            .carry_out(&command_id, body, |body| async {
                let mut result = ctx.carry_out(body, Some(&asked), &command_id).await?;
                let _ = queued_tx.send(());
                result.receipts = asked.receipts.all().await;
                Some(result)
            })
            .await;
        result.and_then(|r| answer(request_id, r))
    });
    tokio::select! {
        biased;
        out = &mut answer => Ok(out),
        // Queued (or, closed: answered without running it here); the rest waits.
        _ = queued_rx => Err(Box::pin(async move { answer.await.into_iter().collect() })),
    }
}

/// The `Result` envelope, unless the command wanted none (request id 0).
fn answer(request_id: u64, result: wsgate_proto::v1::Result) -> Option<Envelope> {
    (request_id != 0).then(|| Envelope {
        request_id,
        body: Some(Body::Result(result)),
        ..Default::default()
    })
}

/// The receipts as `Receipts` frames of at most `per_frame` each, the last one marked.
fn frames(request_id: u64, command_id: &str, all: Vec<Receipt>, per_frame: usize) -> Vec<Envelope> {
    let per_frame = per_frame.max(1);
    let mut chunks: Vec<Vec<Receipt>> = Vec::new();
    let mut all = all.into_iter().peekable();
    while all.peek().is_some() {
        chunks.push(all.by_ref().take(per_frame).collect());
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, receipts)| Envelope {
            request_id,
            command_id: command_id.to_owned(),
            body: Some(Body::Receipts(Receipts {
                receipts,
                last: i == last,
            })),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use wsgate_proto::v1::Delivery;

    use super::*;

    fn receipts(n: usize) -> Vec<Receipt> {
        (0..n)
            .map(|i| Receipt {
                conn_id: format!("gw-{i}"),
                delivery: Delivery::Written as i32,
            })
            .collect()
    }

    #[test]
    fn receipts_are_split_into_frames_and_the_last_is_marked() {
        let lens = |out: &[Envelope]| -> Vec<(usize, bool)> {
            out.iter()
                .map(|e| match &e.body {
                    Some(Body::Receipts(r)) => (r.receipts.len(), r.last),
                    other => panic!("not Receipts: {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            lens(&frames(7, "c", receipts(5), 2)),
            [(2, false), (2, false), (1, true)]
        );
        assert_eq!(
            lens(&frames(7, "c", receipts(4), 2)),
            [(2, false), (2, true)]
        );
        // No target at all: still one frame, so the business learns the cast is settled.
        assert_eq!(lens(&frames(7, "c", Vec::new(), 2)), [(0, true)]);
        assert!(
            frames(7, "c", receipts(1), 2)
                .iter()
                .all(|e| e.request_id == 7 && e.command_id == "c")
        );
    }
}
