//! Object Lock in prune: the retain-until date each kept backup should have (a weekly,
//! monthly or yearly rule, or a keep rule, keeps it longer than its lock from creation), and
//! the check that skips a backup whose lock still holds. pgdr never sends a delete for a
//! locked object: on a versioned bucket S3 would answer it with a delete marker that hides
//! the backup from every listing while it still exists.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{DatabasePlan, PlannedBackup, PruneReport};
use crate::catalog::labels::KeepRule;
use crate::catalog::{BackupId, Catalog, Listed};
use crate::config::ops::RetentionPolicy;
use crate::schedule::retention::{self, BackupFacts};

/// Set `lock_until` on every kept backup: the longest of what the period rules keep it at
/// least and its keep rule (`--keep-forever`: the policy's maximum, renewed by every prune).
pub fn annotate(
    catalog: &Catalog,
    backups: &mut [PlannedBackup],
    facts: &[BackupFacts],
    policy: &RetentionPolicy,
    listed: &[Listed],
    now: DateTime<Utc>,
) {
    let Some(lock) = catalog.lock_policy() else {
        return;
    };
    let by_rules = retention::lock::kept_for(facts, policy);
    let by_keep: BTreeMap<&BackupId, KeepRule> = listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => Some((&e.manifest.id, e.keep_rule()?)),
            Listed::Damaged { .. } => None,
        })
        .collect();
    for b in backups.iter_mut().filter(|b| b.keep) {
        let rules = by_rules.get(&b.id).map(|d| now + *d);
        let keep = by_keep.get(&b.id).and_then(|r| match r {
            KeepRule::Forever => Some(now + lock.max),
            KeepRule::Until(t) if *t > now => Some(*t),
            KeepRule::Until(_) => None,
        });
        b.lock_until = rules.max(keep).map(|t| lock.until(t, now).until);
    }
}

/// Why the backup must not be deleted now, if so: a lock of one of its objects still holds,
/// or the locks could not be read (then nothing is risked either).
pub async fn held_by_lock(catalog: &Catalog, database: &str, id: &BackupId) -> Option<String> {
    match catalog
        .backup_locked_until(database, id, Utc::now())
        .await
    {
        Ok(None) => None,
        Ok(Some(t)) => Some(format!(
            "{database}/{id}: Object Lock until {}; not deleted (prune deletes it once the lock has expired)",
            t.format("%Y-%m-%d %H:%M UTC")
        )),
        Err(e) => Some(format!(
            "{database}/{id}: its Object Lock could not be read, not deleted: {}",
            e.message
        )),
    }
}

/// Extend the locks of the kept backups to their planned date (only ever later).
pub async fn extend(catalog: &Catalog, db: &DatabasePlan, r: &mut PruneReport) {
    let Some(lock) = catalog.lock_policy() else {
        return;
    };
    let now = Utc::now();
    for b in db.backups.iter().filter(|b| b.keep) {
        let Some(until) = b.lock_until else { continue };
        match catalog
            .extend_backup_lock(&db.database, &b.id, lock.until(until, now))
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                r.extended_locks += n;
                tracing::info!(database = %db.database, id = %b.id, until = %until, objects = n, "Object Lock extended");
            }
            Err(e) => r.errors.push(format!(
                "the Object Lock of backup {}/{}: {}",
                db.database, b.id, e.message
            )),
        }
    }
}
