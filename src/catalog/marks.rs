//! Marks: named points in the change stream (`pgdr mark`), `<db>/capture/marks/<name>.json`.

use futures::StreamExt;

use super::{database_prefix, Key, Repository};
use crate::config::names;
use crate::error::{Kind, PgdrError, Result};

pub use super::format::mark::{StoredMark as Mark, MARK_FORMAT, MARK_PREFIX};

/// A mark's name becomes a key and a message: the repository's plain-name rule.
pub fn check_name(name: &str) -> Result<()> {
    names::database_name(name, "mark name").map_err(|e| {
        PgdrError::usage(e.to_string()).hint("name marks with letters, digits, '_', '-', '.'")
    })
}

fn key(database: &str, name: &str) -> Key {
    Key::Mark {
        database: database.to_string(),
        name: name.to_string(),
    }
}

impl Repository {
    /// Signed when this host has a signing key, like every record: a mark is a stop point
    /// `restore --at-mark` trusts.
    pub async fn write_mark(&self, m: &Mark) -> Result<()> {
        check_name(&m.name)?;
        let body = serde_json::to_vec_pretty(m).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_signed(&key(&m.database, &m.name), bytes::Bytes::from(body))
            .await
    }

    /// The mark of this name; None if there is none.
    pub async fn mark(&self, database: &str, name: &str) -> Result<Option<Mark>> {
        Ok(self.read_mark(database, name).await?.map(|(m, _)| m))
    }

    /// The mark of this name and how its signature stands (see `authenticate_mark`): for
    /// `restore --at-mark`, which refuses one a trusted key did not sign.
    pub async fn authenticated_mark(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<(Mark, String)>> {
        let Some((m, bytes)) = self.read_mark(database, name).await? else {
            return Ok(None);
        };
        let signature = self.authenticate_mark(&key(database, name), &bytes).await?;
        Ok(Some((m, signature)))
    }

    /// The mark and its exact bytes.
    async fn read_mark(&self, database: &str, name: &str) -> Result<Option<(Mark, Vec<u8>)>> {
        check_name(name)?;
        let k = key(database, name);
        let bytes = match self.get_bytes(&k).await {
            Ok(b) => b,
            Err(e) if e.kind == Kind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let m: Mark = serde_json::from_slice(&bytes)
            .map_err(|e| PgdrError::corrupt(format!("{k}: not a mark: {e}")))?;
        if m.format_version > MARK_FORMAT {
            return Err(PgdrError::corrupt(format!(
                "{k}: mark format {} is newer than this pgdr reads ({MARK_FORMAT})",
                m.format_version
            ))
            .hint("upgrade pgdr"));
        }
        if m.name != name || m.database != database {
            return Err(PgdrError::corrupt(format!(
                "{k}: the object names {}/{}, not this key",
                m.database, m.name
            )));
        }
        Ok(Some((m, bytes)))
    }

    /// Every mark of a database, oldest first (unreadable ones are errors: a mark the
    /// operator relies on must not silently vanish).
    pub async fn marks(&self, database: &str) -> Result<Vec<Mark>> {
        let prefix = database_prefix(Some(database))?;
        let names: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| match Key::parse(&o.key)? {
                Key::Mark { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let read: Vec<Result<Option<Mark>>> = futures::stream::iter(names)
            .map(|n| async move { self.mark(database, &n).await })
            .buffered(8)
            .collect()
            .await;
        let mut out = Vec::new();
        for m in read {
            out.extend(m?);
        }
        out.sort_by_key(|m| m.created_at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_key_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert_eq!(check_name(bad).unwrap_err().kind, Kind::Usage, "{bad:?}");
        }
        check_name("pre-migration_2026.11").unwrap();
    }
}
