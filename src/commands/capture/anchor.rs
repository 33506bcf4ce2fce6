//! The one decision the backup engine asks of capture: anchor this backup's snapshot or not.
//! The repository decides (an enabled capture state), not a config file, so every host's
//! backups of the database are anchored.

use std::time::Duration;

use tokio_postgres::Client;

use crate::catalog::Repository;
use crate::config::{Database, Settings};
use crate::error::Result;
use crate::source::snapshot::{ExportedSnapshot, Snapshot, SnapshotSource};

pub async fn open_snapshot(settings: &Settings, db: &Database, client: Client) -> Result<Snapshot> {
    let repo = Repository::open(settings).await?;
    match repo.capture_state(&db.name).await? {
        Some(s) if s.enabled() => {
            let timeout = Duration::from_secs(s.anchor_timeout_seconds.max(1));
            crate::source::anchor::open(db, client, timeout).await
        }
        _ => ExportedSnapshot.open(client).await,
    }
}
