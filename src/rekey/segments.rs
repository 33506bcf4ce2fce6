//! Rekey of a database's change-capture segments, the way backups are rekeyed: each segment
//! object is streamed through age decrypt/encrypt into `<start>.k<tag>.seg.zst.age` beside
//! the old; then its entry is replaced (format 2, naming the tag and the recipients) and
//! re-signed; only then is the old object removed. Killed before the entry, the segment
//! still reads with the old key (the next run writes the new object again); killed after,
//! with the new key (the next run removes the old object). An entry already naming exactly
//! the current recipients is left as is. A segment whose entry has no recipients (written by
//! the capture, which does not record them) is re-encrypted once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::recipients_tag;
use crate::catalog::segments::{Digest, ListedSegment, Rekeyed, REKEYED_FORMAT};
use crate::catalog::{Catalog, Key};
use crate::codec;
use crate::error::{PgdrError, Result};
use crate::pipeline;
use crate::source::Lsn;

/// The keys a rekey works with.
pub(super) struct Keys<'a> {
    pub ids: codec::Identities,
    pub recipients: Arc<Vec<age::x25519::Recipient>>,
    /// The recipients as configured (what the entries record).
    pub wanted: &'a [String],
}

/// One database's segments as rekey left them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SegmentsRekeyed {
    pub database: String,
    /// Segments re-encrypted by this run.
    pub reencrypted: usize,
    /// Segments already encrypted to exactly the current recipients.
    pub unchanged: usize,
    /// Old segment objects removed by this run.
    pub removed: Vec<String>,
    /// Old segment objects an Object Lock still holds: they stay until that date.
    pub kept_locked: Vec<(String, DateTime<Utc>)>,
}

pub(super) async fn rekey(
    catalog: &Catalog,
    database: &str,
    k: Keys<'_>,
) -> Result<SegmentsRekeyed> {
    let mut out = SegmentsRekeyed {
        database: database.to_string(),
        ..Default::default()
    };
    let wanted: BTreeSet<&String> = k.wanted.iter().collect();
    let mut current: BTreeMap<Lsn, Key> = BTreeMap::new();
    for listed in catalog.segments(database).await? {
        let e = match listed {
            ListedSegment::Ok(e) => *e,
            ListedSegment::Damaged { start, error } => {
                return Err(PgdrError::corrupt(format!(
                    "segment {database}/{start}: {error}; rekey stopped before it"
                ))
                .hint("run `pgdr capture check` to see the damage"));
            }
        };
        let done = e
            .rekeyed
            .as_ref()
            .is_some_and(|r| r.recipients.iter().collect::<BTreeSet<_>>() == wanted);
        if done {
            out.unchanged += 1;
            current.insert(e.start, e.object_key());
            continue;
        }
        // Re-signing proves nothing unless the entry was checked first (as for manifests).
        if !catalog.has_trust_keys() {
            return Err(PgdrError::usage(format!(
                "segments of {database}: rekey re-signs their entries, and no trust key is configured to check them first"
            ))
            .hint("pass --trust-key (the key of the capture host)"));
        }
        catalog.authenticate_segments(database, &[e.start]).await?;
        let tag = recipients_tag(k.wanted);
        let from = e.object_key();
        let to = Key::Segment {
            database: database.to_string(),
            start: e.start,
            tag: Some(tag.clone()),
        };
        let receipt = pipeline::reencrypt(
            catalog,
            &from,
            &to,
            e.stored.sha256.clone(),
            k.ids.clone(),
            k.recipients.clone(),
        )
        .await?;
        super::pause_hook("segment").await;
        let mut new = e.clone();
        new.format_version = REKEYED_FORMAT;
        new.stored = Digest {
            bytes: receipt.size,
            sha256: receipt.sha256,
        };
        new.rekeyed = Some(Rekeyed {
            tag,
            recipients: k.wanted.to_vec(),
            at: Utc::now(),
        });
        catalog.commit_segment(&new).await?;
        out.reencrypted += 1;
        current.insert(new.start, to);
    }
    remove_old(catalog, database, &current, &mut out).await?;
    Ok(out)
}

/// Segment objects of a committed segment that its entry no longer names: the old objects of
/// a finished (or killed after its entry) rekey. Objects of segments without an entry (an
/// upload the capture has not committed yet) are not touched; locked ones stay.
async fn remove_old(
    catalog: &Catalog,
    database: &str,
    current: &BTreeMap<Lsn, Key>,
    out: &mut SegmentsRekeyed,
) -> Result<()> {
    for o in catalog.objects(database).await? {
        let Key::Segment { start, .. } = &o.key else {
            continue;
        };
        if current.get(start).is_none_or(|named| *named == o.key) {
            continue;
        }
        match catalog.remove_unless_locked(&o.key).await? {
            None => out.removed.push(o.key.to_string()),
            Some(until) => out.kept_locked.push((o.key.to_string(), until)),
        }
    }
    Ok(())
}
