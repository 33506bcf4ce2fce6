//! Before a run streams: does the slot still hold everything after pgdr's durable position?
//! A slot that is gone, invalidated (`wal_status = lost`) or ahead of it lost changes. Then
//! the capture never resumes silently: it records the gap (from, to, cause), drops what is
//! left of the old slot, creates a new one as `capture enable` does, alerts, and goes on from
//! the new slot's start; the caller takes a new anchored backup so later points restore.

use tokio_postgres::Client;

use crate::catalog::segments::{Gap, GapCause, CAPTURE_FORMAT};
use crate::catalog::Repository;
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::source::walsender::Walsender;
use crate::source::{self, Lsn};
use crate::telemetry::capture_events::CaptureGapOpened;

/// What was wrong with the slot.
struct Broken {
    cause: GapCause,
    detail: String,
    /// The old slot is still there (invalidated or ahead) and must go first.
    exists: bool,
}

/// Check `slot` against `durable`; on loss, recover and return the recorded gap (whose `to` is
/// the new slot's start, where the run goes on). None: the slot is sound.
pub async fn check_and_recover(
    repo: &Repository,
    db: &Database,
    slot: &str,
    durable: Lsn,
) -> Result<Option<Gap>> {
    let client = source::connect(db).await?;
    let Some(b) = diagnose(&client, slot, durable).await? else {
        return Ok(None);
    };
    tracing::error!(database = %db.name, %durable, detail = %b.detail, "capture slot lost changes");
    if b.exists {
        drop_slot(&client, slot).await?;
    }
    let mut ws = Walsender::open(db).await?;
    let created = ws.create_slot(slot, false, false).await.map_err(|e| {
        e.hint("the gap is not recorded yet; fix the cause and run `pgdr capture run` again")
    })?;
    drop(ws);
    let gap = Gap {
        format_version: CAPTURE_FORMAT,
        database: db.name.clone(),
        from: durable,
        to: created.consistent_point,
        cause: b.cause,
        detail: Some(format!("{}; capturing again from a new slot", b.detail)),
        detected_at: chrono::Utc::now(),
    };
    repo.write_gap(&gap).await?;
    CaptureGapOpened {
        database: db.name.clone(),
        from: gap.from,
        to: gap.to,
        cause: cause_name(b.cause),
        detail: b.detail,
        at: gap.detected_at,
    }
    .emit();
    Ok(Some(gap))
}

fn cause_name(c: GapCause) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn diagnose(client: &Client, slot: &str, durable: Lsn) -> Result<Option<Broken>> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, coalesce(wal_status, '') \
             FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(|e| PgdrError::database(format!("reading slot '{slot}': {e}")))?;
    let Some(r) = row else {
        return Ok(Some(Broken {
            cause: GapCause::SlotMissing,
            detail: format!("slot '{slot}' does not exist"),
            exists: false,
        }));
    };
    if r.get::<_, String>(1) == "lost" {
        return Ok(Some(Broken {
            cause: GapCause::SlotLost,
            detail: format!("slot '{slot}' was invalidated (wal_status lost)"),
            exists: true,
        }));
    }
    let confirmed: Option<String> = r.get(0);
    Ok(match confirmed.map(|c| c.parse::<Lsn>()).transpose()? {
        Some(c) if c > durable => Some(Broken {
            cause: GapCause::SlotAhead,
            detail: format!("slot '{slot}' confirmed {c}, past pgdr's durable {durable}"),
            exists: true,
        }),
        _ => None,
    })
}

async fn drop_slot(client: &Client, slot: &str) -> Result<()> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|e| {
            let err = PgdrError::database(format!("dropping the broken slot '{slot}': {e}"));
            match e.code().map(|c| c.code()) {
                Some("55006") => err.hint("another session streams from it: stop it first"),
                _ => err,
            }
        })?;
    Ok(())
}
