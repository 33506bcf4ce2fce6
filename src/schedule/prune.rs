//! Pruning, the engine of `pgdr prune` and of the daemon's prune job: apply the retention
//! plan, remove what interrupted runs left behind, and trim the records of drills, restores
//! and verifications to their own limits.
//!
//! Plan and act are split: [`plan`] reads the repository and decides everything (that is all
//! `--dry-run` does), [`apply`] deletes what the plan says, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::inuse::InUseMark;
use crate::catalog::{BackupId, Catalog, Key, Leftover, Listed, Stored};
use crate::config::ops::DatabaseOps;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::schedule::retention::{self, Decision, Proof};

pub struct PruneOptions {
    pub database: Option<String>,
    pub dry_run: bool,
}

/// One backup in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBackup {
    pub id: BackupId,
    pub snapshot_time: DateTime<Utc>,
    pub proof: Proof,
    pub keep: bool,
    pub reasons: Vec<String>,
    /// The Object Lock date prune gives this kept backup (`prune_locks`), when locking.
    pub lock_until: Option<DateTime<Utc>>,
}

/// Objects of a backup folder without a manifest: a backup that was interrupted (killed) before
/// it committed, or a deletion that was.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub id: BackupId,
    pub keys: Vec<Key>,
    pub bytes: u64,
    pub last_written: Option<DateTime<Utc>>,
}

/// A record beyond its kind's limit.
#[derive(Debug, Clone, Serialize)]
pub struct OldRecord {
    pub key: Key,
    /// "drill", "restore", "verification".
    pub kind: &'static str,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabasePlan {
    pub database: String,
    /// Which retention section decided (the database's own, the global, the built-in).
    pub policy: String,
    /// Why nothing is deleted by age, if so (outage, failed newest backup).
    pub hold: Option<String>,
    /// Every backup, oldest first.
    pub backups: Vec<PlannedBackup>,
    pub leftovers: Vec<Leftover>,
    pub orphans: Vec<Orphan>,
    pub records: Vec<OldRecord>,
    /// The change capture's segments and gaps before the oldest kept anchor.
    pub capture: segments::SegmentPlan,
}

impl DatabasePlan {
    pub fn to_delete(&self) -> impl Iterator<Item = &PlannedBackup> {
        self.backups.iter().filter(|b| !b.keep)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub now: DateTime<Utc>,
    pub databases: Vec<DatabasePlan>,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub deleted_backups: usize,
    pub removed_leftovers: usize,
    pub removed_orphans: usize,
    pub removed_records: usize,
    /// One line per thing that could not be removed; prune goes on with the rest.
    pub errors: Vec<String>,
    /// Backups the plan would delete that a reader marked in use, or a keep record kept,
    /// after the plan was made.
    pub kept_in_use: Vec<String>,
    /// Capture segments (and segment objects without an entry) removed, and old gaps.
    pub removed_segments: usize,
    pub removed_gaps: usize,
    /// Backups the plan would delete that an Object Lock still holds (or whose lock could
    /// not be read): skipped, never a delete request.
    pub locked: Vec<String>,
    /// Objects whose lock was extended because a longer rule keeps their backup.
    pub extended_locks: usize,
}

/// Plan (and unless `dry_run`, apply) for the selected databases.
pub async fn run(
    settings: &Settings,
    opts: &PruneOptions,
    now: DateTime<Utc>,
) -> Result<(PrunePlan, Option<PruneReport>)> {
    let catalog = Catalog::open(settings).await?;
    let names = database_names(settings, &catalog, opts.database.as_deref()).await?;
    let p = plan(&catalog, settings, &names, now).await?;
    if opts.dry_run {
        return Ok((p, None));
    }
    let r = apply(&catalog, &p).await;
    Ok((p, Some(r)))
}

/// The databases a repository-wide command looks at: the named one; else the configured ones;
/// else every database found in the repository.
pub async fn database_names(
    settings: &Settings,
    catalog: &Catalog,
    named: Option<&str>,
) -> Result<Vec<String>> {
    if let Some(n) = named {
        return Ok(vec![n.to_string()]);
    }
    if !settings.databases.is_empty() {
        return Ok(settings.databases.iter().map(|d| d.name.clone()).collect());
    }
    let names = catalog.databases().await?;
    if names.is_empty() {
        return Err(PgdrError::not_found(format!(
            "no database and no backup in {}",
            catalog.describe()
        ))
        .hint("check --repo, or name the database with --database NAME"));
    }
    Ok(names)
}

pub async fn plan(
    catalog: &Catalog,
    settings: &Settings,
    names: &[String],
    now: DateTime<Utc>,
) -> Result<PrunePlan> {
    let mut databases = Vec::new();
    // Leftovers are found once for the whole store, then filed by database.
    let oldest_cutoff = names
        .iter()
        .map(|n| cutoff(now, &settings.ops.database(n)))
        .max()
        .unwrap_or(now);
    let leftovers = catalog.leftovers(oldest_cutoff).await?;
    for name in names {
        let ops = settings.ops.database(name);
        databases.push(plan_database(catalog, name, &ops, &leftovers, now).await?);
    }
    Ok(PrunePlan { now, databases })
}

fn cutoff(now: DateTime<Utc>, ops: &DatabaseOps) -> DateTime<Utc> {
    now - chrono::Duration::from_std(ops.leftover_age).unwrap_or(chrono::Duration::MAX)
}

async fn plan_database(
    catalog: &Catalog,
    name: &str,
    ops: &DatabaseOps,
    leftovers: &[Leftover],
    now: DateTime<Utc>,
) -> Result<DatabasePlan> {
    let listed = catalog.list(Some(name)).await?;
    let drills = catalog.drills(Some(name)).await?;
    let facts = retention::facts(&listed, &drills);
    let hold = retention::hold(&facts, &ops.retention, now);
    let decisions: BTreeMap<BackupId, Decision> = retention::plan(&facts, &ops.retention, now)
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    // A backup being read (verify, drill, restore, cat) is never deleted under its reader.
    let in_use = catalog.in_use(name, now).await?;
    let kept = kept_by_rule(&listed, now);
    let mut backups = plan_backups(&facts, &decisions, &in_use, &kept);
    locks::annotate(catalog, &mut backups, &facts, &ops.retention, &listed, now);
    let deleted: BTreeSet<&BackupId> = backups.iter().filter(|b| !b.keep).map(|b| &b.id).collect();

    let before = cutoff(now, ops);
    let leftovers: Vec<Leftover> = leftovers
        .iter()
        .filter(|l| Catalog::leftover_of(l, name) && l.since.is_some_and(|s| s < before))
        .cloned()
        .collect();

    let objects = catalog.objects(name).await?;
    let capture = capture_plan(catalog, name, &listed, &decisions, &objects).await?;
    let committed: BTreeSet<&BackupId> = listed.iter().map(Listed::id).collect();
    let sorted = sort_objects(&objects, &committed, before);
    let records = old_records(ops, &deleted, &committed, sorted.records);
    Ok(DatabasePlan {
        database: name.to_string(),
        policy: ops.policy.clone(),
        hold,
        backups,
        leftovers,
        orphans: sorted.orphans,
        records,
        capture,
    })
}

/// The capture's part of the plan: only databases with stored segments or gaps read more.
async fn capture_plan(
    catalog: &Catalog,
    name: &str,
    listed: &[Listed],
    decisions: &BTreeMap<BackupId, Decision>,
    objects: &[Stored],
) -> Result<segments::SegmentPlan> {
    let has_capture = objects.iter().any(|o| {
        matches!(
            o.key,
            Key::SegmentEntry { .. } | Key::Segment { .. } | Key::Gap { .. }
        )
    });
    if !has_capture {
        return Ok(segments::SegmentPlan::default());
    }
    // Retention's own decision: an in-use mark (added later) keeps the backup, not the stream.
    let kept: BTreeSet<&BackupId> = decisions
        .values()
        .filter(|d| d.keep)
        .map(|d| &d.id)
        .collect();
    let gaps = catalog.gaps(name).await?;
    Ok(segments::plan(
        &segments::anchors(listed, &kept),
        objects,
        &gaps,
    ))
}

/// The backups a keep rule (`--keep-forever`, `--keep-for`, `pgdr keep`) holds at `now`, and
/// why. Applied after retention, like in-use marks: a kept backup keeps itself, and not the
/// change segments after it (the capture's plan follows retention's own decisions).
fn kept_by_rule(listed: &[Listed], now: DateTime<Utc>) -> BTreeMap<BackupId, String> {
    listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => Some((e.manifest.id.clone(), e.kept_because(now)?)),
            Listed::Damaged { .. } => None,
        })
        .collect()
}

/// Retention's decision per backup, overruled to keep a backup some reader has marked in use
/// (the reasons then name the readers) or a keep rule holds (named first).
fn plan_backups(
    facts: &[retention::BackupFacts],
    decisions: &BTreeMap<BackupId, Decision>,
    in_use: &BTreeMap<BackupId, Vec<InUseMark>>,
    kept: &BTreeMap<BackupId, String>,
) -> Vec<PlannedBackup> {
    facts
        .iter()
        .map(|f| {
            let d = &decisions[&f.id];
            let mut b = PlannedBackup {
                id: f.id.clone(),
                snapshot_time: f.time,
                proof: f.proof,
                keep: d.keep,
                reasons: d.reasons.clone(),
                lock_until: None,
            };
            if let Some(why) = kept.get(&f.id) {
                if !b.keep {
                    b.reasons.clear();
                }
                b.keep = true;
                b.reasons.insert(0, format!("kept: {why}"));
            }
            if let (false, Some(marks)) = (b.keep, in_use.get(&f.id)) {
                b.keep = true;
                b.reasons = marks
                    .iter()
                    .map(|m| format!("kept: {}", m.describe()))
                    .collect();
            }
            b
        })
        .collect()
}

/// A database's stored objects sorted by what they belong to.
struct Sorted {
    /// Folders named like a backup, with objects but no manifest, older than the cutoff.
    orphans: Vec<Orphan>,
    /// The record keys of each kind, still to be trimmed to their limits.
    records: RecordKeys,
}

/// Record keys by kind: drills, restores, and verifications per backup.
struct RecordKeys {
    verifications: BTreeMap<BackupId, Vec<Key>>,
    drills: Vec<Key>,
    restores: Vec<Key>,
}

/// One pass over the listing: records by kind, and the objects of uncommitted backups
/// grouped into orphan folders (only those entirely older than `before`, so a backup being
/// written is never taken for one).
fn sort_objects(
    objects: &[Stored],
    committed: &BTreeSet<&BackupId>,
    before: DateTime<Utc>,
) -> Sorted {
    // Folders named like a backup that have objects but no manifest.
    let mut folders: BTreeMap<BackupId, Orphan> = BTreeMap::new();
    let mut verifications: BTreeMap<BackupId, Vec<Key>> = BTreeMap::new();
    let mut drill_keys = Vec::new();
    let mut restore_keys = Vec::new();
    for o in objects {
        let id = match &o.key {
            Key::Drill { .. } => {
                drill_keys.push(o.key.clone());
                continue;
            }
            Key::Restore { .. } => {
                restore_keys.push(o.key.clone());
                continue;
            }
            Key::Verification { id, .. } => {
                verifications
                    .entry(id.clone())
                    .or_default()
                    .push(o.key.clone());
                id.clone()
            }
            Key::Manifest { id, .. } | Key::Object { id, .. } | Key::Keep { id, .. } => id.clone(),
            // A manifest's signature written before a commit that never came.
            Key::Signature { of } => match of.as_ref() {
                Key::Manifest { id, .. } => id.clone(),
                _ => continue,
            },
            _ => continue,
        };
        if committed.contains(&id) {
            continue;
        }
        let f = folders.entry(id.clone()).or_insert_with(|| Orphan {
            id,
            keys: Vec::new(),
            bytes: 0,
            last_written: None,
        });
        f.keys.push(o.key.clone());
        f.bytes += o.size;
        f.last_written = f.last_written.max(o.modified);
    }
    let orphans: Vec<Orphan> = folders
        .into_values()
        .filter(|f| f.id.time() < before && f.last_written.is_none_or(|t| t < before))
        .collect();
    Sorted {
        orphans,
        records: RecordKeys {
            verifications,
            drills: drill_keys,
            restores: restore_keys,
        },
    }
}

/// The records beyond each kind's limit, oldest first; the verifications of a backup that
/// goes (or has no manifest) are left to that backup's own deletion.
fn old_records(
    ops: &DatabaseOps,
    deleted: &BTreeSet<&BackupId>,
    committed: &BTreeSet<&BackupId>,
    keys: RecordKeys,
) -> Vec<OldRecord> {
    let RecordKeys {
        verifications,
        drills: mut drill_keys,
        restores: mut restore_keys,
    } = keys;
    let mut records = Vec::new();
    let mut beyond = |keys: &mut Vec<Key>, kind: &'static str, limit: u32| {
        keys.sort();
        let n = keys.len().saturating_sub(limit as usize);
        for k in keys.drain(..n) {
            records.push(OldRecord {
                key: k,
                kind,
                limit,
            });
        }
    };
    beyond(&mut drill_keys, "drill", ops.keep_drills);
    beyond(&mut restore_keys, "restore", ops.keep_restores);
    for (id, mut keys) in verifications {
        // A deleted backup takes its records along.
        if deleted.contains(&id) || !committed.contains(&id) {
            continue;
        }
        beyond(&mut keys, "verification", ops.keep_verifications);
    }
    records
}

/// Why a backup the plan deletes must stay after all: a reader marked it in use, or a keep
/// record (`pgdr keep`) was written since the plan was made.
async fn held_since_plan(
    catalog: &Catalog,
    database: &str,
    id: &BackupId,
    in_use: &BTreeMap<BackupId, Vec<InUseMark>>,
) -> Option<String> {
    if let Some(marks) = in_use.get(id) {
        let why = marks.iter().map(|m| m.describe()).collect::<Vec<_>>();
        return Some(why.join("; "));
    }
    catalog
        .kept_by_record(database, id, chrono::Utc::now())
        .await
        .then(|| "keep record written since the plan".to_string())
}

/// Delete what the plan says. Failures are collected, not fatal: the rest still goes.
pub async fn apply(catalog: &Catalog, plan: &PrunePlan) -> PruneReport {
    let mut r = PruneReport::default();
    for db in &plan.databases {
        // Asked again: a reader may have started since the plan was made.
        let in_use = match catalog.in_use(&db.database, chrono::Utc::now()).await {
            Ok(m) => m,
            Err(e) => {
                r.errors.push(format!(
                    "database {}: could not read the in-use marks, no backup deleted: {}",
                    db.database, e.message
                ));
                continue;
            }
        };
        for b in db.to_delete() {
            if let Some(why) = held_since_plan(catalog, &db.database, &b.id, &in_use).await {
                tracing::info!(database = %db.database, id = %b.id, why = %why, "backup kept");
                r.kept_in_use
                    .push(format!("{}/{}: {why}", db.database, b.id));
                continue;
            }
            if let Some(why) = locks::held_by_lock(catalog, &db.database, &b.id).await {
                tracing::info!(database = %db.database, id = %b.id, why = %why, "backup kept");
                r.locked.push(why);
                continue;
            }
            match catalog.delete_backup(&db.database, &b.id).await {
                Ok(()) => {
                    r.deleted_backups += 1;
                    tracing::info!(database = %db.database, id = %b.id, reason = %b.reasons.join("; "), "backup deleted");
                }
                Err(e) => r
                    .errors
                    .push(format!("backup {}/{}: {}", db.database, b.id, e.message)),
            }
        }
        locks::extend(catalog, db, &mut r).await;
        for l in &db.leftovers {
            match catalog.remove_leftover(l).await {
                Ok(()) => {
                    r.removed_leftovers += 1;
                    tracing::info!(key = %l.key, what = l.what, "leftover removed");
                }
                Err(e) => r
                    .errors
                    .push(format!("{} of {}: {}", l.what, l.key, e.message)),
            }
        }
        for o in &db.orphans {
            let mut ok = true;
            for k in &o.keys {
                if let Err(e) = catalog.remove(k).await {
                    ok = false;
                    match e.locked_until() {
                        Some(_) => r.locked.push(e.message),
                        None => r.errors.push(format!("{k}: {}", e.message)),
                    }
                }
            }
            if ok {
                r.removed_orphans += 1;
                tracing::info!(database = %db.database, id = %o.id, objects = o.keys.len(), "uncommitted backup folder removed");
            }
        }
        // After the backups: the stream before the oldest kept anchor.
        let removed = segments::apply(catalog, &db.capture).await;
        r.removed_segments += removed.segments + removed.orphans;
        r.removed_gaps += removed.gaps;
        r.errors.extend(removed.errors);
        r.locked.extend(removed.locked);
        for rec in &db.records {
            match catalog.remove(&rec.key).await {
                Ok(()) => r.removed_records += 1,
                Err(e) => r.errors.push(format!("{}: {}", rec.key, e.message)),
            }
        }
    }
    r
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod memory_tests;

#[path = "prune_segments.rs"]
pub mod segments;

#[path = "prune_locks.rs"]
mod locks;

#[cfg(test)]
#[path = "prune_segments_tests.rs"]
mod segments_tests;

#[cfg(test)]
#[path = "prune_keep_tests.rs"]
mod keep_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::manifest::tests::sample;
    use bytes::Bytes;
    use std::sync::Arc;

    async fn put(store: &dyn crate::store::Store, key: &str, body: &[u8]) {
        store
            .put_bytes(key, Bytes::copy_from_slice(body))
            .await
            .unwrap();
    }

    fn dump_key(id: &BackupId) -> String {
        Key::object("app", id, "dump.zst.age").to_string()
    }

    /// Ten committed backups a day apart, the newest an hour old; their ids, oldest first.
    async fn ten_daily_backups(
        fs: &crate::store::fs::FsStore,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let hours = |h: i64| now - chrono::Duration::hours(h);
        let mut ids = Vec::new();
        for d in (0..10).rev() {
            let mut m = sample();
            let t = BackupId::from_time(hours(1 + 24 * d)).time();
            m.id = BackupId::from_time(t);
            m.snapshot.time = t;
            m.started_at = t;
            m.finished_at = t;
            put(fs, &dump_key(&m.id), b"x").await;
            catalog.commit(&m).await.unwrap();
            ids.push(m.id.to_string());
        }
        ids
    }

    /// Interrupted backups: objects, no manifest. One from a month ago (written three days
    /// ago), and one started ten minutes ago (it may still be running). Returns (old, fresh).
    async fn interrupted_backups(
        fs: &crate::store::fs::FsStore,
        root: &std::path::Path,
        now: DateTime<Utc>,
    ) -> (BackupId, BackupId) {
        let old = BackupId::from_time(now - chrono::Duration::hours(30 * 24));
        let fresh = BackupId::from_time(now - chrono::Duration::minutes(10));
        let old_dump = dump_key(&old);
        put(fs, &old_dump, b"old").await;
        put(fs, &dump_key(&fresh), b"run").await;
        std::fs::File::options()
            .write(true)
            .open(root.join(&old_dump))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400))
            .unwrap();
        (old, fresh)
    }

    /// Database `app` with keep_last 3 and keep_drills 2.
    fn app_ops() -> DatabaseOps {
        let file = crate::config::parse_file(
            "[retention]\nkeep_last = 3\nkeep_drills = 2\n[[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n",
            "t.toml",
        )
        .unwrap();
        let ops = crate::config::ops::OpsSettings::resolve(&file, &["app".to_string()]).unwrap();
        ops.database("app")
    }

    #[tokio::test]
    async fn plans_backups_orphans_records_and_applies_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(crate::store::fs::FsStore::new(dir.path().to_path_buf()));
        let catalog = Catalog::new(fs.clone());
        let now = Utc::now();
        let ids = ten_daily_backups(&fs, &catalog, now).await;
        let (old, fresh) = interrupted_backups(&fs, dir.path(), now).await;
        // Three drill records; keep 2.
        for d in 1..=3 {
            put(
                fs.as_ref(),
                &format!("app/drills/2026030{d}T040000.000Z.json"),
                b"{}",
            )
            .await;
        }
        let dbops = app_ops();
        let plan_db = plan_database(&catalog, "app", &dbops, &[], now)
            .await
            .unwrap();
        assert!(plan_db.hold.is_none());
        assert_eq!(plan_db.backups.len(), 10);
        assert_eq!(plan_db.to_delete().count(), 7);
        assert_eq!(
            plan_db
                .orphans
                .iter()
                .map(|o| o.id.clone())
                .collect::<Vec<_>>(),
            vec![old.clone()],
            "the folder written in the last 24h may be a running backup"
        );
        assert_eq!(plan_db.records.len(), 1);
        assert_eq!(
            plan_db.records[0].key.to_string(),
            "app/drills/20260301T040000.000Z.json"
        );
        let plan = PrunePlan {
            now,
            databases: vec![plan_db],
        };
        let r = apply(&catalog, &plan).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.deleted_backups, 7);
        assert_eq!(r.removed_orphans, 1);
        assert_eq!(r.removed_records, 1);
        let left: Vec<String> = catalog
            .list(Some("app"))
            .await
            .unwrap()
            .iter()
            .map(|l| l.id().to_string())
            .collect();
        assert_eq!(left, ids[7..].to_vec());
        assert!(!dir.path().join(format!("app/{old}")).exists());
        assert!(dir.path().join(format!("app/{fresh}")).exists());
    }
}
