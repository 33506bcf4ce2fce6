//! Retention of the change capture: the stored stream is kept from the cut of the oldest
//! anchored backup the retention rules keep (a replay starts at an anchor, so nothing before
//! the oldest kept one can ever be applied). A backup kept only because a reader marked it in
//! use keeps itself, not the segments after it.
//!
//! Removal order, and why: oldest segment first, and within a segment its ENTRY before its
//! object. The entry is the commit marker: without it the object is an interrupted upload
//! that no reader lists, so an interrupted prune leaves either a whole segment or an
//! invisible object (removed by the next prune), never an entry whose object is gone (which
//! `capture check` and a replay would read as damage). Oldest first, and stopping at the first
//! failure, keeps what stays contiguous: a prune that stops half way leaves no hole.
//! Recorded gaps that end before the kept stream are removed last (they describe nothing a
//! restore can reach).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog::segments::Gap;
use crate::catalog::{BackupId, Catalog, Key, Listed, Stored};
use crate::source::Lsn;

/// What prune does to one database's capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SegmentPlan {
    /// The cut of the oldest anchored backup the rules keep: the stream is kept from the
    /// segment holding it. None: no such backup, nothing is removed.
    pub keep_from: Option<Lsn>,
    pub anchor: Option<BackupId>,
    /// Segments to remove, oldest first: (entry, its object if stored).
    pub segments: Vec<(Key, Option<Key>)>,
    /// Segment objects without an entry, older than the kept stream.
    pub orphans: Vec<Key>,
    pub gaps: Vec<Key>,
}

/// One anchored backup as retention sees it.
pub struct Anchor {
    pub id: BackupId,
    pub cut: Lsn,
    /// Kept by the retention rules (a keep rule, the proof gate or a hold), not merely by
    /// an in-use mark.
    pub kept_by_rules: bool,
}

/// The anchored backups of a listing, with retention's own decision.
pub fn anchors(listed: &[Listed], kept_by_rules: &BTreeSet<&BackupId>) -> Vec<Anchor> {
    listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => e.manifest.snapshot.cut_lsn.map(|cut| Anchor {
                id: e.manifest.id.clone(),
                cut,
                kept_by_rules: kept_by_rules.contains(&e.manifest.id),
            }),
            Listed::Damaged { .. } => None,
        })
        .collect()
}

/// Decide, from the anchors and the stored keys (no segment is read).
pub fn plan(anchors: &[Anchor], objects: &[Stored], gaps: &[Gap]) -> SegmentPlan {
    let Some(oldest) = anchors
        .iter()
        .filter(|a| a.kept_by_rules)
        .min_by_key(|a| a.cut)
    else {
        return SegmentPlan::default();
    };
    let cut = oldest.cut;
    let mut entries: Vec<(Lsn, &Key)> = Vec::new();
    let mut seg_objects: Vec<(Lsn, &Key)> = Vec::new();
    for o in objects {
        match &o.key {
            Key::SegmentEntry { start, .. } => entries.push((*start, &o.key)),
            Key::Segment { start, .. } => seg_objects.push((*start, &o.key)),
            _ => {}
        }
    }
    entries.sort_by_key(|e| e.0);
    // A segment ends at or before the next one's start: wholly before the cut when the next
    // starts at or before it. The newest segment always stays.
    let gone = entries.windows(2).take_while(|w| w[1].0 <= cut).count();
    let kept_start = entries.get(gone).map_or(cut, |e| e.0);
    let with_entry: BTreeSet<Lsn> = entries.iter().map(|e| e.0).collect();
    let object_of = |s: Lsn| seg_objects.iter().find(|o| o.0 == s).map(|o| o.1.clone());
    SegmentPlan {
        keep_from: Some(kept_start),
        anchor: Some(oldest.id.clone()),
        segments: entries[..gone]
            .iter()
            .map(|(s, k)| ((*k).clone(), object_of(*s)))
            .collect(),
        // Without an entry, or a second object of a segment (the old one of a killed rekey).
        orphans: seg_objects
            .iter()
            .filter(|(s, k)| {
                *s < kept_start && (!with_entry.contains(s) || object_of(*s).as_ref() != Some(*k))
            })
            .map(|(_, k)| (*k).clone())
            .collect(),
        gaps: objects
            .iter()
            .filter_map(|o| match &o.key {
                Key::Gap { from, .. } => gaps
                    .iter()
                    .find(|g| g.from == *from && g.to <= kept_start)
                    .map(|_| o.key.clone()),
                _ => None,
            })
            .collect(),
    }
}

/// What was removed; errors are (key, message).
#[derive(Debug, Default)]
pub struct Removed {
    pub segments: usize,
    pub orphans: usize,
    pub gaps: usize,
    pub errors: Vec<String>,
    /// Objects an Object Lock still holds: skipped, removed by a later prune.
    pub locked: Vec<String>,
}

/// Remove what the plan says, in the order the module explains; stop at the first segment
/// that cannot be removed (the rest stays contiguous).
pub async fn apply(catalog: &Catalog, p: &SegmentPlan) -> Removed {
    let mut r = Removed::default();
    for (entry, object) in &p.segments {
        if let Err(e) = catalog.remove(entry).await {
            // Oldest first: the segments after a locked one are locked too.
            match e.locked_until() {
                Some(_) => r.locked.push(e.message),
                None => r.errors.push(format!("{entry}: {}", e.message)),
            }
            return r;
        }
        if let Some(object) = object {
            if let Err(e) = catalog.remove(object).await {
                // The entry is gone: the object is invisible, the next prune removes it.
                r.errors.push(format!("{object}: {}", e.message));
            }
        }
        r.segments += 1;
    }
    for (list, n) in [(&p.orphans, &mut r.orphans), (&p.gaps, &mut r.gaps)] {
        for k in list {
            match catalog.remove(k).await {
                Ok(()) => *n += 1,
                Err(e) if e.locked_until().is_some() => r.locked.push(e.message),
                Err(e) => r.errors.push(format!("{k}: {}", e.message)),
            }
        }
    }
    r
}
