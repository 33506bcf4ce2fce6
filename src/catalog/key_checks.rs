//! Key-check records: written by `pgdr drill --key-check`, read by `status` (which recipients
//! were proven, and when). The record is its stored struct (`format::key_check`): nothing in
//! it needs a runtime shape of its own.

use bytes::Bytes;
use futures::StreamExt;

use super::format::key_check::StoredKeyCheck;
use super::{database_prefix, records, Catalog, Key};
use crate::error::{PgdrError, Result};

impl Catalog {
    /// Store a key-check record: `<database>/key-checks/<start>.json` (signed when a signing
    /// key is given). Returns its key.
    pub async fn write_key_check(&self, r: &StoredKeyCheck) -> Result<String> {
        let key = Key::KeyCheck {
            database: r.database.clone(),
            file: records::record_file(r.started_at),
        };
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_signed(&key, Bytes::from(body)).await?;
        Ok(key.to_string())
    }

    /// A database's key-check records, oldest first; unreadable ones skipped with a warning.
    pub async fn key_checks(&self, database: &str) -> Result<Vec<StoredKeyCheck>> {
        let prefix = database_prefix(Some(database))?;
        let keys: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| {
                matches!(Key::parse(&o.key), Some(Key::KeyCheck { file, .. }) if file.ends_with(".json"))
            })
            .map(|o| o.key)
            .collect();
        let mut out: Vec<StoredKeyCheck> = futures::stream::iter(keys)
            .map(|k| async move { self.load_record::<StoredKeyCheck>(&k).await })
            .buffered(8)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        out.sort_by_key(|r| r.started_at);
        Ok(out)
    }
}
