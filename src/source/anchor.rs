//! Anchored dumps: the backup's snapshot exported by a TEMPORARY logical slot
//! (`CREATE_REPLICATION_SLOT pgdr_anchor_<random> TEMPORARY LOGICAL pgoutput (SNAPSHOT
//! 'export')`), so the dump holds exactly the transactions that committed before the slot's
//! consistent point, the backup's `cut_lsn` (a snapshot from `pg_export_snapshot()` is not
//! exact: a commit already in WAL but not yet visible lands in neither the dump nor the
//! stream). The replication session stays idle until the dump is done (any command on it
//! would end the exported snapshot); the slot goes with it.
//!
//! Creating the slot waits for every transaction that holds an xid: a session idle in a
//! transaction blocks it without limit. After `timeout` the attempt is cancelled and the
//! backup goes on unanchored, naming the oldest blocker, never hanging.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::snapshot::{Cut, NotAnchored, Snapshot};
use super::walsender::Walsender;
use crate::config::Database;
use crate::error::{PgdrError, Result};

/// The default wait for the anchor slot.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Open the backup's snapshot on `client`, anchored if the slot comes within `timeout`.
pub async fn open(db: &Database, client: Client, timeout: Duration) -> Result<Snapshot> {
    let slot = format!("pgdr_anchor_{:08x}", fastrand::u32(..));
    let app = slot.clone();
    let started = std::time::Instant::now();
    let attempt = async {
        let mut ws = Walsender::open_as(db, &app).await?;
        let created = ws.create_slot(&slot, true, true).await?;
        Ok::<_, PgdrError>((ws, created))
    };
    let outcome = tokio::time::timeout(timeout, attempt).await;
    let waited = started.elapsed();
    match outcome {
        Ok(Ok((guard, created))) => {
            let name = created.snapshot.ok_or_else(|| {
                PgdrError::database(format!("slot {slot}: the server exported no snapshot"))
            })?;
            let time = import(&client, &name).await?;
            Ok(Snapshot {
                id: name,
                time,
                method: "replication_slot",
                client,
                cut: Some(Cut::Anchored {
                    lsn: created.consistent_point,
                    guard,
                }),
                slot_wait: Some(waited),
            })
        }
        Ok(Err(e)) => Err(e.context(format!("database '{}': creating the anchor slot", db.name))),
        Err(_) => {
            // The walsender still waits: cancel it, so the slot is never made and its
            // session ends, then say who blocked.
            let _ = client
                .execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                )
                .await;
            let not = blocker(&client, timeout).await?;
            tracing::warn!(
                event = "backup_not_anchored",
                database = %db.name,
                blocking_pid = ?not.blocking_pid,
                blocking_seconds = ?not.blocking_seconds,
                "{}", not.reason
            );
            let mut s = super::snapshot::ExportedSnapshot::begin(client).await?;
            s.cut = Some(Cut::NotAnchored(not));
            s.slot_wait = Some(waited);
            Ok(s)
        }
    }
}

/// Import the exported snapshot into the backup's own transaction (the schema fingerprint
/// reads through it); the moment it represents is taken there.
async fn import(client: &Client, name: &str) -> Result<DateTime<Utc>> {
    let q = |e: tokio_postgres::Error| {
        PgdrError::database(format!("importing the anchor's snapshot {name}: {e}"))
    };
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
            crate::sql::quote_literal(name)
        ))
        .await
        .map_err(q)?;
    let row = client.query_one("SELECT now()", &[]).await.map_err(q)?;
    Ok(row.get(0))
}

/// The oldest session (or prepared transaction) holding an xid: what the slot waited for.
async fn blocker(client: &Client, timeout: Duration) -> Result<NotAnchored> {
    let row = client
        .query_opt(
            "SELECT pid, extract(epoch FROM now() - xact_start)::float8, state
               FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
              ORDER BY xact_start LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading pg_stat_activity: {e}")))?;
    let waited = format!(
        "the anchor slot was not created within {}s",
        timeout.as_secs_f64()
    );
    if let Some(r) = row {
        let pid: i32 = r.get(0);
        let age: Option<f64> = r.get(1);
        let state: Option<String> = r.get(2);
        return Ok(NotAnchored {
            reason: format!(
                "{waited}: session pid {pid} ({}) holds a transaction open for {:.0}s; the backup is not anchored",
                state.as_deref().unwrap_or("?"),
                age.unwrap_or(0.0)
            ),
            blocking_pid: Some(pid),
            blocking_seconds: age,
        });
    }
    let prepared = client
        .query_opt(
            "SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts
              ORDER BY prepared LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading pg_prepared_xacts: {e}")))?;
    Ok(match prepared {
        Some(r) => {
            let gid: String = r.get(0);
            let age: Option<f64> = r.get(1);
            NotAnchored {
                reason: format!(
                    "{waited}: prepared transaction '{gid}' is open; the backup is not anchored"
                ),
                blocking_pid: None,
                blocking_seconds: age,
            }
        }
        None => NotAnchored {
            reason: format!("{waited}; the backup is not anchored"),
            blocking_pid: None,
            blocking_seconds: None,
        },
    })
}
