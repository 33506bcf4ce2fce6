//! The chain proof (`pgdr capture prove-chain`, the daemon's `chain_proof` job): restore the
//! anchored backup before N into a scratch cluster, replay the stored changes from its cut to
//! N's cut, and compare every table's rows and digest with N's fingerprint. Both are the
//! database at N's cut, so any difference means the stream (or a dump) would not give back
//! what the source held: found now, not during an emergency restore to a point.

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, Outcome, VerificationRecord, VerifyMode};
use crate::catalog::segments::{ListedSegment, SegmentEntry};
use crate::catalog::{Catalog, Listed, Manifest, Pick};
use crate::codec::{self, Identities};
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::restore::replay::{self, after, Bounds, Stop};
use crate::restore::{self, EngineOptions, EngineReport};
use crate::source::Lsn;
use crate::verify::{self, Scratch};

pub struct ChainOptions {
    pub database: Option<String>,
    /// Backup N (an id or unique prefix); the newest backup when None.
    pub backup: Option<String>,
}

/// The two backups and the segments between their cuts.
struct Link {
    prev: Manifest,
    next: Manifest,
    prev_cut: Lsn,
    next_cut: Lsn,
    segments: Vec<SegmentEntry>,
    /// How backup N was accepted (its record says so).
    signature: crate::catalog::format::signature::BackupSignature,
}

/// Run the proof and store its record beside backup N (mode `chain`). An error before the
/// restore (no previous anchored backup, a gap) is returned as such: nothing was proven.
pub async fn run(settings: &Settings, opts: &ChainOptions) -> Result<VerificationRecord> {
    crate::scratch::sweep_orphans(&settings.scratch).await;
    let ids: Identities = Arc::new(codec::require_identities(&settings.identities)?);
    let catalog = Catalog::open(settings).await?;
    let link = plan(&catalog, opts).await?;
    let db = link.next.database.clone();
    let in_prev = catalog
        .mark_in_use(&db, &link.prev.id, "chain proof")
        .await?;
    let in_next = catalog
        .mark_in_use(&db, &link.next.id, "chain proof")
        .await?;
    let started_at = Utc::now();
    let mut timer = PhaseTimer::default();
    let mut scratch = None;
    let result = prove(&catalog, settings, &link, ids, &mut timer, &mut scratch).await;
    let (outcome, differences, error) = match result {
        Ok(d) if d.is_empty() => (Outcome::Passed, d, None),
        Ok(d) => (Outcome::Failed, d, None),
        Err(e) => (Outcome::Error, Vec::new(), Some(e.to_string())),
    };
    let rec = VerificationRecord {
        backup_signature: Some(link.signature.clone()),
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: db,
        backup_id: link.next.id.clone(),
        mode: VerifyMode::Chain,
        outcome,
        started_at,
        finished_at: Utc::now(),
        phases: timer.phases,
        differences,
        error,
        scratch,
        host: records::hostname(),
    };
    if rec.outcome != Outcome::Error {
        catalog.write_verification(&rec).await?;
    }
    in_next.release().await;
    in_prev.release().await;
    Ok(rec)
}

/// Backup N (asked for, or the newest), the anchored backup with the highest cut below N's,
/// and the stored segments between the cuts; refused when a gap lies between them.
async fn plan(catalog: &Catalog, opts: &ChainOptions) -> Result<Link> {
    let db = opts.database.as_deref();
    let next = match &opts.backup {
        Some(id) => catalog.select(db, Pick::Id(id)).await?.manifest,
        None => catalog.select(db, Pick::Latest).await?.manifest,
    };
    let database = next.database.clone();
    let next_cut = next.snapshot.cut_lsn.ok_or_else(|| {
        PgdrError::usage(format!(
            "backup {} of '{database}' is not anchored in the change stream: there is no cut to replay to",
            next.id
        ))
        .hint("name an anchored backup with --backup (`pgdr list` shows the cut)")
    })?;
    let prev = catalog
        .list(Some(&database))
        .await?
        .into_iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => Some(e.manifest),
            Listed::Damaged { .. } => None,
        })
        .filter(|m| m.snapshot.cut_lsn.is_some_and(|c| c < next_cut))
        .max_by_key(|m| m.snapshot.cut_lsn)
        .ok_or_else(|| {
            PgdrError::usage(format!(
                "backup {} of '{database}' has no earlier anchored backup: the chain proof needs two",
                next.id
            ))
            .hint("take another backup while capture runs, then prove the chain")
        })?;
    let prev_cut = prev.snapshot.cut_lsn.expect("filtered");
    if let Some(g) = catalog
        .gaps(&database)
        .await?
        .into_iter()
        .find(|g| g.from < next_cut && g.to > prev_cut)
    {
        return Err(PgdrError::usage(format!(
            "the change stream of '{database}' has a gap from {} to {} between backups {} and {}: the chain cannot be proven across it",
            g.from, g.to, prev.id, next.id
        ))
        .hint("prove a later pair with --backup; `pgdr capture check` lists the gaps"));
    }
    let segments = between(catalog.segments(&database).await?, prev_cut, next_cut)?;
    // Both backups and every segment replayed between them: signed by a trusted key.
    catalog.authenticate(&prev).await?;
    let signature = catalog.authenticate(&next).await?;
    let starts: Vec<Lsn> = segments.iter().map(|e| e.start).collect();
    catalog.authenticate_segments(&database, &starts).await?;
    Ok(Link {
        signature,
        prev,
        next,
        prev_cut,
        next_cut,
        segments,
    })
}

/// The segments holding commits in [from, to), oldest first; contiguous, or an error naming
/// the hole (a segment missing from the repository is a finding, not a shorter proof).
fn between(listed: Vec<ListedSegment>, from: Lsn, to: Lsn) -> Result<Vec<SegmentEntry>> {
    let mut out = Vec::new();
    for s in listed {
        match s {
            ListedSegment::Ok(e) if e.end > from && e.start < to => out.push(*e),
            ListedSegment::Ok(_) => {}
            ListedSegment::Damaged { start, error } => {
                return Err(PgdrError::corrupt(format!(
                    "the entry of the segment at {start} cannot be read: {error}"
                ))
                .hint("run `pgdr capture check`"))
            }
        }
    }
    out.sort_by_key(|e| e.start);
    let mut reach = out.first().map_or(from, |e| e.start);
    if reach > from || out.last().is_none_or(|e| e.end < to) {
        return Err(PgdrError::corrupt(format!(
            "the stored segments do not cover the change stream from {from} to {to}"
        ))
        .hint("is `pgdr capture run` running? `pgdr capture check` shows what is stored"));
    }
    for e in &out {
        if e.start > reach {
            return Err(PgdrError::corrupt(format!(
                "no stored segment covers the change stream from {reach} to {}",
                e.start
            ))
            .hint("run `pgdr capture check`"));
        }
        reach = reach.max(e.end);
    }
    Ok(out)
}

/// Restore, replay and compare on a scratch cluster, torn down whatever happened.
async fn prove(
    catalog: &Catalog,
    settings: &Settings,
    link: &Link,
    ids: Identities,
    timer: &mut PhaseTimer,
    scratch: &mut Option<String>,
) -> Result<Vec<String>> {
    let sc = Scratch::open(settings, &link.prev, "chain").await?;
    *scratch = Some(sc.describe());
    timer.done("scratch");
    let r = restore_replay_compare(catalog, link, ids, &sc, timer).await;
    sc.teardown().await;
    timer.done("teardown");
    r
}

async fn restore_replay_compare(
    catalog: &Catalog,
    link: &Link,
    ids: Identities,
    sc: &Scratch,
    timer: &mut PhaseTimer,
) -> Result<Vec<String>> {
    let expected = link.next.fingerprint.as_ref().ok_or_else(|| {
        PgdrError::usage(format!(
            "backup {} has no fingerprint to compare with",
            link.next.id
        ))
    })?;
    let prev = &restore::sensitive::reveal(catalog, &link.prev, ids.clone()).await?;
    let opts = EngineOptions {
        single_transaction: sc.single_transaction(),
        ..Default::default()
    };
    let mut report = EngineReport::default();
    restore::restore_with(
        catalog,
        prev,
        ids.clone(),
        &sc.target,
        &opts,
        None,
        timer,
        &mut report,
    )
    .await?;
    let client = crate::source::connect(&sc.target.database()).await?;
    let stream = crate::capture::stream::messages(catalog.clone(), link.segments.clone(), ids);
    // The dump at a cut holds the transactions committed before it: replay those of
    // [cut(N-1), cut(N)), so the result is what backup N's dump holds.
    let bounds = Bounds {
        from: Some(link.prev_cut),
        stop: Stop::Lsn(Lsn(link.next_cut.0 - 1)),
    };
    replay::replay(&client, stream, bounds).await.map_err(|f| {
        PgdrError::from(f.error).context(format!(
            "replaying from backup {} to the cut of {}",
            link.prev.id, link.next.id
        ))
    })?;
    after::refresh_matviews(&client).await?;
    timer.done("replay");
    // Large objects are not in the change stream (`capture enable` says so): tables only.
    let mut tables = expected.data.clone();
    tables.large_objects.clear();
    let actual = verify::recompute_data(&sc.target, &tables, 2).await?;
    let where_ = format!(
        "after replaying from backup {} to the cut {} of backup {}",
        link.prev.id, link.next_cut, link.next.id
    );
    let d = verify::compare_data(&tables, &actual, &where_);
    timer.done("compare");
    Ok(d)
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
