//! The PostgreSQL outbox: applications insert a row in the same transaction as their own
//! change (the order and its "paid" notice commit together or not at all); wsgate carries the
//! rows out in `id` order and deletes them.
//!
//! Woken by `LISTEN/NOTIFY` (a trigger on the table notifies at commit), and once every few
//! seconds besides, in case a notification was missed while disconnected. A batch is taken in
//! a transaction that holds an advisory lock on the table's name, so the gateways sharing the
//! table take turns and rows go out in order; a gateway killed mid-batch has its transaction
//! rolled back by PostgreSQL, and the next gateway takes the same rows again, whose ids make
//! them command ids carried out once.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::spec::{Bad, Spec};
use super::{Carrier, Outcome, Received, why};

/// The default table.
pub(crate) const DEFAULT_TABLE: &str = "wsgate_outbox";
/// How often the table is read without a notification.
const RECHECK: Duration = Duration::from_secs(5);

/// The names one outbox uses in SQL (the table was checked to be a plain name).
struct Names {
    table: String,
    dead: String,
    /// The `LISTEN` channel.
    channel: String,
    /// The advisory lock's key.
    lock: i64,
}

impl Names {
    fn of(spec: &Spec) -> Self {
        let table = spec.table.clone().unwrap_or_else(|| DEFAULT_TABLE.into());
        let flat = table.replace('.', "_");
        // FNV-1a: a stable key for the advisory lock, the same in every gateway.
        let lock = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }) as i64;
        Self {
            dead: format!("{table}_dead"),
            channel: format!("{flat}_wsgate"),
            table,
            lock,
        }
    }

    /// The table, its dead-letter table and the trigger that notifies, when missing.
    fn declare(&self) -> String {
        let Names {
            table,
            dead,
            channel,
            ..
        } = self;
        let flat = table.replace('.', "_");
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 id bigserial PRIMARY KEY,
                 channel text NOT NULL DEFAULT '',
                 payload text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {dead} (
                 id bigint PRIMARY KEY,
                 channel text NOT NULL,
                 payload text NOT NULL,
                 created_at timestamptz NOT NULL,
                 reason text NOT NULL,
                 error text NOT NULL,
                 failed_at timestamptz NOT NULL DEFAULT now());
             CREATE OR REPLACE FUNCTION {flat}_wsgate_notify() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
             CREATE OR REPLACE TRIGGER {flat}_wsgate_notify AFTER INSERT ON {table}
                 FOR EACH STATEMENT EXECUTE FUNCTION {flat}_wsgate_notify();"
        )
    }
}

pub(super) async fn drain(c: Carrier, spec: &Spec) -> Result<(), String> {
    let names = Names::of(spec);
    let (mut client, mut connection) = tokio_postgres::connect(spec.url(), NoTls)
        .await
        .map_err(|e| why("cannot connect to PostgreSQL", e))?;
    // The connection's task: notifications to `woken`, its end to `lost`.
    let (woken_tx, mut woken) = mpsc::channel::<()>(1);
    let (lost_tx, mut lost) = mpsc::channel::<String>(1);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = woken_tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = lost_tx.try_send(why("PostgreSQL connection failed", e));
                    return;
                }
            }
        }
        let _ = lost_tx.try_send("PostgreSQL closed the connection".into());
    });
    let _stop_driver = super::AbortOnDrop(driver);
    if spec.declare() {
        // Gateways starting together would race on CREATE … IF NOT EXISTS: one at a time.
        let tx = locked(&mut client, names.lock).await?;
        tx.batch_execute(&names.declare()).await.map_err(|e| {
            why(
                &format!("cannot create the outbox table {}", names.table),
                e,
            )
        })?;
        tx.commit().await.map_err(|e| why("COMMIT failed", e))?;
    }
    client
        .batch_execute(&format!("LISTEN {}", names.channel))
        .await
        .map_err(|e| why("LISTEN failed", e))?;
    c.up();
    loop {
        // Everything there is, a batch at a time.
        loop {
            match batch(&c, spec, &names, &mut client).await? {
                Some(0) => break,
                Some(_) => {}
                None => return Ok(()),
            }
        }
        tokio::select! {
            _ = woken.recv() => {}
            why = lost.recv() => return Err(why.unwrap_or_else(|| "PostgreSQL connection ended".into())),
            _ = tokio::time::sleep(RECHECK) => {
                let row = client
                    .query_one(&format!("SELECT count(*) FROM {}", names.table), &[])
                    .await
                    .map_err(|e| why("counting the outbox failed", e))?;
                c.stats.set_lag(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
            }
        }
    }
}

/// Takes up to `batch` rows in order under the table's lock, carries them out and deletes
/// them (bad ones moved to the dead-letter table when configured). The rows handled, or None
/// when the gateway stopped first (the transaction is rolled back: the rows stay).
async fn batch(
    c: &Carrier,
    spec: &Spec,
    names: &Names,
    client: &mut tokio_postgres::Client,
) -> Result<Option<usize>, String> {
    let tx = locked(client, names.lock).await?;
    let limit = i64::try_from(spec.batch()).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &format!(
                "SELECT id, channel, payload FROM {} ORDER BY id LIMIT $1",
                names.table
            ),
            &[&limit],
        )
        .await
        .map_err(|e| {
            why(
                &format!(
                    "reading the outbox {} failed (it needs columns id bigint, channel text, payload text)",
                    names.table
                ),
                e,
            )
        })?;
    let mut done = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.get(0);
        let channel: String = row.get(1);
        let payload: String = row.get(2);
        let id_text = id.to_string();
        let received = Received {
            data: payload.as_bytes(),
            channel: &channel,
            id: Some(&id_text),
        };
        let outcome = match c.carry(received).await {
            Ok(outcome) => outcome,
            Err(_stopped) => return Ok(None),
        };
        if let Outcome::Bad(refusal) = outcome
            && spec.bad == Bad::DeadLetter
        {
            tx.execute(
                &format!(
                    "INSERT INTO {} (id, channel, payload, created_at, reason, error)
                     SELECT id, channel, payload, created_at, $2, $3 FROM {} WHERE id = $1
                     ON CONFLICT (id) DO NOTHING",
                    names.dead, names.table
                ),
                &[&id, &refusal.reason.name(), &refusal.detail],
            )
            .await
            .map_err(|e| why(&format!("moving a bad row to {} failed", names.dead), e))?;
        }
        done.push(id);
    }
    tx.execute(
        &format!("DELETE FROM {} WHERE id = ANY($1)", names.table),
        &[&done],
    )
    .await
    .map_err(|e| why("deleting carried-out rows failed", e))?;
    tx.commit().await.map_err(|e| why("COMMIT failed", e))?;
    Ok(Some(rows.len()))
}

/// A transaction holding the table's advisory lock until it ends: the gateways sharing an
/// outbox take turns.
async fn locked(
    client: &mut tokio_postgres::Client,
    lock: i64,
) -> Result<tokio_postgres::Transaction<'_>, String> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| why("BEGIN failed", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await
        .map_err(|e| why("taking the outbox lock failed", e))?;
    Ok(tx)
}
