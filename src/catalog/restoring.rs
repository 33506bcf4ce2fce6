//! Marks of restores in progress: `<database>/restores/in-progress/<digest>.json`, one per
//! target server and database name. `pgdr restore --swap/--clean` writes one before it
//! creates `<name>_restoring` and removes it once that database is renamed into place or
//! dropped; a later run drops a leftover `<name>_restoring` only when such a mark names it,
//! so a database of that name that pgdr did not make is never dropped.

use chrono::{DateTime, Utc};
use sha2::Digest;

use super::{Catalog, Key};
use crate::error::{Kind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoringMark {
    /// `host:port` of the target server, as `pgdr restore` normalises it.
    pub server: String,
    /// The database the restore creates (`<name>_restoring`).
    pub database: String,
    /// Its OID once known (after the engine created it); a leftover with another OID is a
    /// different database of the same name.
    pub oid: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
}

impl RestoringMark {
    /// Whether a database of this server, name and OID is the one this mark describes.
    pub fn names(&self, server: &str, database: &str, oid: u32) -> bool {
        self.server == server && self.database == database && self.oid.is_none_or(|o| o == oid)
    }
}

/// The key of the mark of `database` on `server`: a digest, since names may hold any
/// character and keys must not.
fn key(repo_db: &str, server: &str, database: &str) -> Key {
    let d = sha2::Sha256::digest(format!("{server}\n{database}").as_bytes());
    Key::Restoring {
        database: repo_db.to_string(),
        digest: hex::encode(d)[..32].to_string(),
    }
}

impl Catalog {
    pub async fn write_restoring_mark(&self, repo_db: &str, m: &RestoringMark) -> Result<()> {
        self.put_json(&key(repo_db, &m.server, &m.database), m)
            .await
    }

    /// The mark of `database` on `server`, if any (an unreadable mark counts as none).
    pub async fn restoring_mark(
        &self,
        repo_db: &str,
        server: &str,
        database: &str,
    ) -> Result<Option<RestoringMark>> {
        let k = key(repo_db, server, database);
        match self.get_bytes(&k).await {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind == Kind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Best effort: a mark left behind only lets a later run drop what this one made.
    pub async fn delete_restoring_mark(&self, repo_db: &str, server: &str, database: &str) {
        let k = key(repo_db, server, database);
        if let Err(e) = self.delete(&k).await {
            if e.kind != Kind::NotFound {
                tracing::warn!(key = %k, error = %e, "could not remove the restore-in-progress mark");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_names_only_its_own_database() {
        let m = RestoringMark {
            server: "db:5432".into(),
            database: "app_restoring".into(),
            oid: Some(42),
            started_at: Utc::now(),
            host: "h".into(),
            pid: 1,
        };
        assert!(m.names("db:5432", "app_restoring", 42));
        assert!(
            !m.names("db:5432", "app_restoring", 43),
            "recreated by someone else"
        );
        assert!(!m.names("db:5433", "app_restoring", 42));
        assert!(!m.names("db:5432", "other_restoring", 42));
        let unknown = RestoringMark { oid: None, ..m };
        assert!(unknown.names("db:5432", "app_restoring", 7));
        let k = key("app", "db:5432", "app_restoring").to_string();
        assert!(
            k.starts_with("app/restores/in-progress/") && k.ends_with(".json"),
            "{k}"
        );
    }
}
