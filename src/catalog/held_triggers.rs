//! Triggers a managed restore holds disabled (`<db>/restores/triggers/<digest>.json`), one
//! record per target server and database: written before they are disabled, removed once
//! they are back, so a run killed in between leaves the exact previous states for the next.

use sha2::Digest;

use super::format::held_triggers::StoredHeldTriggers;
use super::{Catalog, Key};
use crate::error::{Kind, PgdrError, Result};

/// The key for `database` on `server`: a digest, since names may hold any character.
fn key(repo_db: &str, server: &str, database: &str) -> Key {
    let d = sha2::Sha256::digest(format!("{server}\n{database}").as_bytes());
    Key::HeldTriggers {
        database: repo_db.to_string(),
        digest: hex::encode(d)[..32].to_string(),
    }
}

impl Catalog {
    pub async fn write_held_triggers(&self, repo_db: &str, h: &StoredHeldTriggers) -> Result<()> {
        self.put_json(&key(repo_db, &h.server, &h.database), h)
            .await
    }

    /// The record for `database` on `server`, if any. An unreadable one is an error: the
    /// states it held would otherwise be lost.
    pub async fn held_triggers(
        &self,
        repo_db: &str,
        server: &str,
        database: &str,
    ) -> Result<Option<StoredHeldTriggers>> {
        let k = key(repo_db, server, database);
        match self.get_bytes(&k).await {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                PgdrError::corrupt(format!("{k}: not a record of held triggers: {e}"))
                    .hint("read it by hand and put the triggers it names back; then delete it")
            }),
            Err(e) if e.kind == Kind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_held_triggers(
        &self,
        repo_db: &str,
        server: &str,
        database: &str,
    ) -> Result<()> {
        match self.delete(&key(repo_db, server, database)).await {
            Err(e) if e.kind != Kind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
