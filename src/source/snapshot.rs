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
}

impl Snapshot {
    pub async fn release(self) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| PgdrError::database(format!("closing the snapshot transaction: {e}")))
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
        })
    }
}
