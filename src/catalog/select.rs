//! "Which backup?": one answer for every command that reads one (verify, drill, restore, cat,
//! show), so an id prefix, "the latest" and "before a time" mean the same everywhere.

use chrono::{DateTime, Utc};

use super::{Entry, Listed, Repository};
use crate::error::{PgdrError, Result};

/// How a backup is picked.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// An id or a unique prefix of one, in one database or across all.
    Id(&'a str),
    /// The newest readable backup of the database.
    Latest,
    /// The newest readable backup whose snapshot is at or before the time.
    Before(DateTime<Utc>),
}

impl Repository {
    /// The backup `pick` names. `Latest` and `Before` need the database.
    pub async fn select(&self, database: Option<&str>, pick: Pick<'_>) -> Result<Entry> {
        let db = match (pick, database) {
            (Pick::Id(typed), _) => return self.find_entry(database, typed).await,
            (_, Some(db)) => db,
            (_, None) => {
                return Err(PgdrError::usage("which database's backup?").hint("add --database NAME"))
            }
        };
        let all = self.readable(db).await?;
        match pick {
            Pick::Before(t) => before(all, db, t),
            _ => Ok(all.into_iter().next_back().expect("non-empty")),
        }
    }

    /// Every readable backup of a database, oldest first; at least one.
    async fn readable(&self, db: &str) -> Result<Vec<Entry>> {
        let v: Vec<Entry> = self
            .list(Some(db))
            .await?
            .into_iter()
            .filter_map(|l| match l {
                Listed::Ok(e) => Some(*e),
                Listed::Damaged { .. } => None,
            })
            .collect();
        if v.is_empty() {
            return Err(PgdrError::not_found(format!(
                "no backup of database '{db}' in {}",
                self.describe()
            ))
            .hint("check --repo and --database; `pgdr list` shows what the repository holds"));
        }
        Ok(v)
    }
}

fn before(all: Vec<Entry>, db: &str, t: DateTime<Utc>) -> Result<Entry> {
    let pick = all
        .iter()
        .filter(|e| e.manifest.snapshot.time <= t)
        .max_by_key(|e| (e.manifest.snapshot.time, e.manifest.id.clone()));
    if let Some(e) = pick {
        return Ok(e.clone());
    }
    let oldest = all
        .iter()
        .min_by_key(|e| e.manifest.snapshot.time)
        .expect("non-empty");
    Err(PgdrError::not_found(format!(
        "no backup of '{db}' has a snapshot at or before {}; the oldest is {} (snapshot {})",
        t.format("%Y-%m-%d %H:%M:%S UTC"),
        oldest.manifest.id,
        oldest
            .manifest
            .snapshot
            .time
            .format("%Y-%m-%d %H:%M:%S UTC")
    ))
    .hint(format!(
        "give a later --before, or restore the oldest with --backup {}",
        oldest.manifest.id
    )))
}
