//! Labelled backups and keep rules: the label rule, "which backup has this label", and the
//! keep records `pgdr keep` writes beside a manifest (`<db>/<id>/keep/<time>.json`).
//!
//! A label is typed wherever a backup id is (`show`, `verify`, `restore --backup`, ...), so it
//! must never be readable as an id or an id prefix. Ids are UTC times
//! (`20261126T020000.123Z`) and always start with a digit; a label starts with a letter. It
//! must also hold a character outside `0-9a-f`, so it never looks like a hex digest either
//! (`deadbeef`, `cafe`): those name objects elsewhere in the repository and in messages.

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::format::keep::{StoredKeepChange, StoredKeepRule, KEEP_FORMAT};
use super::{BackupId, Entry, Key, Listed, Repository};
use crate::error::{Kind, PgdrError, Result};

pub use super::format::keep::StoredKeepRecord as KeepRecord;

/// Said in every refusal of a label.
pub const LABEL_RULE: &str = "1 to 63 characters a-z, 0-9, '.', '_', '-', starting with a letter \
and with at least one character outside 0-9a-f (so it can never be read as a backup id, which \
starts with a digit, nor as a hex digest)";

/// Folder (inside a backup's folder) of its keep records.
pub const KEEP_DIR: &str = "keep";

/// Check a label typed by the user (or read from a manifest).
pub fn check_label(label: &str) -> Result<()> {
    let ok = (1..=63).contains(&label.len())
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && !label.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(PgdrError::usage(format!(
            "label '{}' is not allowed: {LABEL_RULE}",
            label.escape_debug()
        ))
        .hint("for example --label pre-migration-42"))
    }
}

/// Whether a typed backup reference is meant as a label: ids start with a digit, labels with
/// a letter, so the first character decides and nothing is ever guessed.
pub fn is_label(typed: &str) -> bool {
    typed.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// How long retention must keep a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepRule {
    Forever,
    Until(DateTime<Utc>),
}

impl KeepRule {
    /// Whether it still keeps the backup at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        match self {
            KeepRule::Forever => true,
            KeepRule::Until(t) => now < *t,
        }
    }

    /// "keep-forever" / "until 2027-01-04 03:40 UTC".
    pub fn describe(&self) -> String {
        match self {
            KeepRule::Forever => "keep-forever".into(),
            KeepRule::Until(t) => format!("until {}", t.format("%Y-%m-%d %H:%M UTC")),
        }
    }
}

impl From<&KeepRule> for StoredKeepRule {
    fn from(k: &KeepRule) -> Self {
        match k {
            KeepRule::Forever => StoredKeepRule::Forever,
            KeepRule::Until(t) => StoredKeepRule::Until(*t),
        }
    }
}

impl From<StoredKeepRule> for KeepRule {
    fn from(k: StoredKeepRule) -> Self {
        match k {
            StoredKeepRule::Forever => KeepRule::Forever,
            StoredKeepRule::Until(t) => KeepRule::Until(t),
        }
    }
}

/// What `pgdr keep` sets: a rule, or none (`--release`).
pub fn change_of(rule: Option<KeepRule>) -> StoredKeepChange {
    match rule {
        Some(KeepRule::Forever) => StoredKeepChange::Forever,
        Some(KeepRule::Until(t)) => StoredKeepChange::Until(t),
        None => StoredKeepChange::Released,
    }
}

impl KeepRecord {
    /// The rule it sets; None: released.
    pub fn rule(&self) -> Option<KeepRule> {
        match self.keep {
            StoredKeepChange::Forever => Some(KeepRule::Forever),
            StoredKeepChange::Until(t) => Some(KeepRule::Until(t)),
            StoredKeepChange::Released => None,
        }
    }
}

impl Entry {
    /// The keep rule in force: the newest keep record's, else the manifest's. A newest keep
    /// record that cannot be read keeps the backup (as an unreadable manifest does) until a
    /// readable one is written (`pgdr keep ... --release` or a new rule).
    pub fn keep_rule(&self) -> Option<KeepRule> {
        match &self.keep {
            Some(Ok(r)) => r.rule(),
            Some(Err(_)) => Some(KeepRule::Forever),
            None => self.manifest.keep,
        }
    }

    /// Why the backup is kept, for prune and `show`: "label X, keep-forever", "until ...";
    /// None if no rule holds at `now`.
    pub fn kept_because(&self, now: DateTime<Utc>) -> Option<String> {
        let rule = self.keep_rule().filter(|r| r.holds_at(now))?;
        let label = self
            .manifest
            .label
            .as_ref()
            .map(|l| format!("label {l}, "))
            .unwrap_or_default();
        Some(match &self.keep {
            Some(Err(e)) => format!("{label}its newest keep record cannot be read ({e})"),
            _ => format!("{label}{}", rule.describe()),
        })
    }
}

impl Repository {
    /// The backup of `database` (or of any database) labelled `label`.
    pub(super) async fn find_label(&self, database: Option<&str>, label: &str) -> Result<Entry> {
        check_label(label)?;
        let mut hits: Vec<Entry> = self
            .list(database)
            .await?
            .into_iter()
            .filter_map(|l| match l {
                Listed::Ok(e) if e.manifest.label.as_deref() == Some(label) => Some(*e),
                _ => None,
            })
            .collect();
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(PgdrError::not_found(format!(
                "no backup labelled '{label}'{} in {}",
                database
                    .map(|d| format!(" of database '{d}'"))
                    .unwrap_or_default(),
                self.describe()
            ))
            .hint("`pgdr list` shows every backup with its label")),
            _ => Err(PgdrError::usage(format!(
                "label '{label}' exists for several databases: {}",
                hits.iter()
                    .map(|e| format!("{} ({})", e.manifest.database, e.manifest.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .hint("add --database NAME")),
        }
    }

    /// The backup of `database` that already carries `label`, if any: a label is unique per
    /// database. A damaged manifest cannot say, so it does not block (it is `list`'s finding).
    pub async fn labelled(&self, database: &str, label: &str) -> Result<Option<BackupId>> {
        Ok(self
            .list(Some(database))
            .await?
            .into_iter()
            .find_map(|l| match l {
                Listed::Ok(e) if e.manifest.label.as_deref() == Some(label) => Some(e.manifest.id),
                _ => None,
            }))
    }

    /// Store a keep record beside its backup; the backup must exist.
    pub async fn write_keep(&self, r: &KeepRecord) -> Result<Key> {
        self.load_exact(&r.database, &r.backup_id).await?;
        let key = Key::Keep {
            database: r.database.clone(),
            id: r.backup_id.clone(),
            file: super::records::record_file(r.written_at),
        };
        self.put_json(&key, r).await?;
        Ok(key)
    }

    /// Read one keep record; an unreadable or foreign one is an error (a keep the operator
    /// relies on must not silently vanish).
    pub(super) async fn load_keep(&self, key: &Key) -> Result<KeepRecord> {
        let bytes = self.get_bytes(key).await?;
        let r: KeepRecord = serde_json::from_slice(&bytes)
            .map_err(|e| PgdrError::corrupt(format!("{key}: not a keep record: {e}")))?;
        if r.format_version > KEEP_FORMAT {
            return Err(PgdrError::corrupt(format!(
                "{key}: keep record format {} is newer than this pgdr reads ({KEEP_FORMAT})",
                r.format_version
            ))
            .hint("upgrade pgdr"));
        }
        match key {
            Key::Keep { database, id, .. } if *database == r.database && *id == r.backup_id => {
                Ok(r)
            }
            _ => Err(PgdrError::corrupt(format!(
                "{key}: the record names {}/{}, not this backup",
                r.database, r.backup_id
            ))),
        }
    }

    /// Every keep record of a backup, oldest first (one listing of its `keep/` folder).
    pub async fn keep_records(&self, database: &str, id: &BackupId) -> Result<Vec<KeepRecord>> {
        super::database_prefix(Some(database))?;
        let prefix = format!("{database}/{id}/{KEEP_DIR}/");
        let mut keys: Vec<Key> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| Key::parse(&o.key))
            .filter(|k| matches!(k, Key::Keep { .. }))
            .collect();
        keys.sort();
        let read: Vec<Result<KeepRecord>> = futures::stream::iter(keys)
            .map(|k| async move { self.load_keep(&k).await })
            .buffered(8)
            .collect()
            .await;
        read.into_iter().collect()
    }

    /// Whether a keep record written since `prune` planned keeps the backup now (asked again
    /// just before a deletion, as in-use marks are). An unreadable record keeps it.
    pub async fn kept_by_record(&self, database: &str, id: &BackupId, now: DateTime<Utc>) -> bool {
        match self.keep_records(database, id).await {
            Ok(v) => v
                .last()
                .and_then(KeepRecord::rule)
                .is_some_and(|r| r.holds_at(now)),
            Err(_) => true,
        }
    }
}

/// What a listing knows of a backup's newest keep record: a not-found one reads as none (the
/// listing raced a prune); any other failure is kept, so the backup stays kept.
pub(super) fn newest_keep(
    r: Result<KeepRecord>,
) -> Option<std::result::Result<KeepRecord, String>> {
    match r {
        Ok(r) => Some(Ok(r)),
        Err(e) if e.kind == Kind::NotFound => None,
        Err(e) => {
            tracing::warn!(error = %e.message, "unreadable keep record: the backup stays kept");
            Some(Err(e.message))
        }
    }
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
