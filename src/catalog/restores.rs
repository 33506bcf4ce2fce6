//! The restore records of a database (full restores and `restore --table`), for `show`.

use futures::StreamExt;

use super::records::RestoreRecord;
use super::{database_prefix, Key, Repository};
use crate::catalog::id::BackupId;
use crate::error::Result;

impl Repository {
    /// The restores of one backup, oldest first, each with its key. Unreadable records are
    /// skipped (and logged), as everywhere records are listed.
    pub async fn restores_of(
        &self,
        database: &str,
        id: &BackupId,
    ) -> Result<Vec<(String, RestoreRecord)>> {
        let prefix = database_prefix(Some(database))?;
        let mut keys: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| {
                matches!(Key::parse(&o.key), Some(Key::Restore { file, .. }) if file.ends_with(".json"))
            })
            .map(|o| o.key)
            .collect();
        // Named by their start time.
        keys.sort();
        let loaded: Vec<(String, Option<RestoreRecord>)> = futures::stream::iter(keys)
            .map(|k| async move { (k.clone(), self.load_record::<RestoreRecord>(&k).await) })
            .buffered(4)
            .collect()
            .await;
        Ok(loaded
            .into_iter()
            .filter_map(|(k, r)| r.filter(|r| r.backup_id == *id).map(|r| (k, r)))
            .collect())
    }
}
