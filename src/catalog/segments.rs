//! The change capture in the repository: segment objects, their catalog entries (written last,
//! the commit marker) and coverage gaps. A segment object without an entry is an interrupted
//! upload: never listed, overwritten by the next run from the same position.

use futures::StreamExt;

use super::{database_prefix, Key, Repository};
use crate::error::{PgdrError, Result};
use crate::source::Lsn;

pub use super::format::segments::{
    StoredClosedBy as ClosedBy, StoredCommit as Commit, StoredDigest as Digest,
    StoredForeignMessage as ForeignMessage, StoredGap as Gap, StoredGapCause as GapCause,
    StoredRekeyed as Rekeyed, StoredRelation as RelationUsed, StoredSchemaChange as SchemaChange,
    StoredSegmentEntry as SegmentEntry, CAPTURE_FORMAT, REKEYED_FORMAT,
};

/// A segment entry as listed: read, or why not.
#[derive(Debug)]
pub enum ListedSegment {
    Ok(Box<SegmentEntry>),
    Damaged { start: Lsn, error: String },
}

impl ListedSegment {
    pub fn start(&self) -> Lsn {
        match self {
            ListedSegment::Ok(e) => e.start,
            ListedSegment::Damaged { start, .. } => *start,
        }
    }
}

impl SegmentEntry {
    /// The segment object this entry commits.
    pub fn object_key(&self) -> Key {
        Key::Segment {
            database: self.database.clone(),
            start: self.start,
            tag: self.rekeyed.as_ref().map(|r| r.tag.clone()),
        }
    }
}

impl Repository {
    /// Commit a segment: its entry, written after the object it describes.
    pub async fn commit_segment(&self, e: &SegmentEntry) -> Result<()> {
        let key = Key::SegmentEntry {
            database: e.database.clone(),
            start: e.start,
        };
        // Signed by the capture host when it has a key, like a manifest.
        let body = serde_json::to_vec_pretty(e).map_err(|x| PgdrError::internal(x.to_string()))?;
        self.put_signed(&key, bytes::Bytes::from(body)).await
    }

    /// The start positions of a database's committed segments, oldest first (keys only).
    async fn segment_starts(&self, database: &str) -> Result<Vec<Lsn>> {
        let prefix = database_prefix(Some(database))?;
        let mut starts: Vec<Lsn> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| match Key::parse(&o.key)? {
                Key::SegmentEntry { start, .. } => Some(start),
                _ => None,
            })
            .collect();
        starts.sort();
        Ok(starts)
    }

    async fn read_segment_entry(&self, database: &str, start: Lsn) -> Result<SegmentEntry> {
        let key = Key::SegmentEntry {
            database: database.to_string(),
            start,
        };
        let bytes = self.get_bytes(&key).await?;
        let e: SegmentEntry = serde_json::from_slice(&bytes)
            .map_err(|e| PgdrError::corrupt(format!("{key}: not a segment entry: {e}")))?;
        if e.format_version > REKEYED_FORMAT {
            return Err(PgdrError::corrupt(format!(
                "{key}: segment entry format {} is newer than this pgdr reads ({REKEYED_FORMAT})",
                e.format_version
            ))
            .hint("upgrade pgdr"));
        }
        // The tag reaches the object's key: nothing but what rekey writes.
        if let Some(r) = &e.rekeyed {
            if !super::keys::rekey_tag(&r.tag) {
                return Err(PgdrError::corrupt(format!(
                    "{key}: rekeyed object tag '{}' was not written by pgdr",
                    r.tag
                )));
            }
        }
        if e.start != start || e.database != database {
            return Err(PgdrError::corrupt(format!(
                "{key}: the entry describes {}/{}, not this key",
                e.database, e.start
            )));
        }
        Ok(e)
    }

    /// Every committed segment of a database, oldest first.
    pub async fn segments(&self, database: &str) -> Result<Vec<ListedSegment>> {
        let starts = self.segment_starts(database).await?;
        Ok(futures::stream::iter(starts)
            .map(|s| async move {
                match self.read_segment_entry(database, s).await {
                    Ok(e) => ListedSegment::Ok(Box::new(e)),
                    Err(e) => ListedSegment::Damaged {
                        start: s,
                        error: e.message,
                    },
                }
            })
            .buffered(8)
            .collect()
            .await)
    }

    /// The newest committed segment: the capture resumes at its end. A damaged newest entry
    /// is an error, never passed over (resuming before it would capture twice, or skip).
    pub async fn newest_segment(&self, database: &str) -> Result<Option<SegmentEntry>> {
        match self.segment_starts(database).await?.last() {
            None => Ok(None),
            Some(s) => self.read_segment_entry(database, *s).await.map(Some),
        }
    }

    /// Record a coverage gap.
    pub async fn write_gap(&self, g: &Gap) -> Result<()> {
        let key = Key::Gap {
            database: g.database.clone(),
            from: g.from,
        };
        self.put_json(&key, g).await
    }

    /// The recorded gaps of a database, oldest first. An unreadable one is an error: a gap
    /// must never go unreported.
    pub async fn gaps(&self, database: &str) -> Result<Vec<Gap>> {
        let mut out: Vec<Gap> = self
            .read_all_of(database, |k| matches!(k, Key::Gap { .. }), "a gap record")
            .await?;
        out.sort_by_key(|g| g.from);
        Ok(out)
    }

    /// Every object of one key kind of a database, parsed: the capture's small records (gaps,
    /// not-replayable windows). One unreadable object fails the whole read.
    pub(super) async fn read_all_of<T: serde::de::DeserializeOwned>(
        &self,
        database: &str,
        kind: fn(&Key) -> bool,
        what: &str,
    ) -> Result<Vec<T>> {
        let prefix = database_prefix(Some(database))?;
        let keys: Vec<Key> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| Key::parse(&o.key))
            .filter(kind)
            .collect();
        let mut out = Vec::new();
        for k in keys {
            let b = self.get_bytes(&k).await?;
            out.push(
                serde_json::from_slice::<T>(&b)
                    .map_err(|e| PgdrError::corrupt(format!("{k}: not {what}: {e}")))?,
            );
        }
        Ok(out)
    }
}
