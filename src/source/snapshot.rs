//! The consistent snapshot a backup represents.
//!
//! Kept behind a trait so the way the snapshot is taken can change (a temporary replication
//! slot, for point-in-time recovery later) without touching the rest of the backup.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::error::{PgdrError, Result};

/// An open snapshot. The exporting transaction stays open (and the snapshot importable) until
/// `release`; everything pgdr reads during the backup goes through `client` inside it.
pub struct Snapshot {
    /// The id pg_dump imports with `--snapshot`.
    pub id: String,
    /// `now()` inside the snapshot: the moment the backup represents (the RPO anchor).
    pub time: DateTime<Utc>,
    /// How it was taken, recorded in the manifest.
    pub method: &'static str,
    pub client: Client,
    /// Change capture: where the dump cuts the change stream, or why it could not be cut.
    /// None for a database without capture.
    pub cut: Option<Cut>,
    /// Change capture: how long the anchor slot's creation waited (for the transactions that
    /// held an xid, up to the anchor timeout), the backup's own phase beside its snapshot.
    pub slot_wait: Option<std::time::Duration>,
}

/// The anchor of a backup of a database with change capture (see `source::anchor`).
pub enum Cut {
    /// The slot's consistent point; `guard` keeps the replication session (and with it the
    /// exported snapshot and the temporary slot) until the snapshot is released.
    Anchored {
        lsn: super::Lsn,
        guard: super::walsender::Walsender,
    },
    NotAnchored(NotAnchored),
}

/// Why a backup of a database with capture has no cut, and who blocked it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotAnchored {
    pub reason: String,
    pub blocking_pid: Option<i32>,
    pub blocking_seconds: Option<f64>,
}

impl Snapshot {
    /// End the transaction, then (anchored) the replication session: pg_dump is done with
    /// the snapshot by now.
    pub async fn release(self) -> Result<()> {
        let r = self
            .client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| PgdrError::database(format!("closing the snapshot transaction: {e}")));
        drop(self.cut);
        r
    }

    /// The cut position, for the manifest.
    pub fn cut_lsn(&self) -> Option<super::Lsn> {
        match &self.cut {
            Some(Cut::Anchored { lsn, .. }) => Some(*lsn),
            _ => None,
        }
    }

    pub fn not_anchored(&self) -> Option<&NotAnchored> {
        match &self.cut {
            Some(Cut::NotAnchored(n)) => Some(n),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
pub trait SnapshotSource: Send + Sync {
    async fn open(&self, client: Client) -> Result<Snapshot>;
}

/// `pg_export_snapshot()` in a REPEATABLE READ, READ ONLY transaction: works on any server
/// and on hot standbys, needs no privileges.
pub struct ExportedSnapshot;

#[async_trait::async_trait]
impl SnapshotSource for ExportedSnapshot {
    async fn open(&self, client: Client) -> Result<Snapshot> {
        ExportedSnapshot::begin(client).await
    }
}

impl ExportedSnapshot {
    pub async fn begin(client: Client) -> Result<Snapshot> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| PgdrError::database(format!("opening the snapshot transaction: {e}")))?;
        let row = client
            .query_one("SELECT pg_export_snapshot(), now()", &[])
            .await
            .map_err(|e| PgdrError::database(format!("exporting a snapshot: {e}")))?;
        Ok(Snapshot {
            id: row.get(0),
            time: row.get(1),
            method: "pg_export_snapshot",
            client,
            cut: None,
            slot_wait: None,
        })
    }
}
