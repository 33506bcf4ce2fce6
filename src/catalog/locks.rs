//! S3 Object Lock of backups and change segments (`[repository.s3] object_lock`): every
//! object of a backup and of a change segment is written with a retain-until date, prune
//! extends it for backups a longer rule keeps and never deletes a locked object.
//!
//! The date at creation is what retention keeps any new backup anyway (`keep_daily = 8`: 8
//! days); a longer lock would stop prune from deleting what retention drops. Records, leases
//! and state objects are never locked: pgdr rewrites or removes them.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{backup_dir, BackupId, Key, Repository};
use crate::config::ops::{OpsSettings, RetentionPolicy};
use crate::config::{LockMode, RepositoryUrl, Settings};
use crate::error::{PgdrError, Result};
use crate::store::{ByteStream, Receipt, Retention};

/// How this repository locks what it writes.
#[derive(Debug, Clone)]
pub struct LockPolicy {
    pub mode: LockMode,
    /// The longest lock pgdr sets (a `--keep-forever` backup's).
    pub max: Duration,
    /// Each database's retention decides the lock of its new objects.
    ops: Arc<OpsSettings>,
}

impl LockPolicy {
    /// The policy of the settings, if they ask for Object Lock on an S3 repository.
    pub fn from_settings(settings: &Settings) -> Option<LockPolicy> {
        let mode = settings.s3.object_lock?;
        if !matches!(settings.repository, RepositoryUrl::S3 { .. }) {
            return None;
        }
        Some(LockPolicy {
            mode,
            max: Duration::from_std(settings.s3.object_lock_max).unwrap_or(Duration::MAX),
            ops: Arc::new(settings.ops.clone()),
        })
    }

    /// The retention of an object of `database` written at `now`, if it gets one.
    pub fn for_new(&self, database: &str, now: DateTime<Utc>) -> Option<Retention> {
        let d = initial_lock(&self.ops.database(database).retention).min(self.max);
        (d > Duration::zero()).then(|| Retention {
            mode: self.mode,
            until: now + d,
        })
    }

    /// A retention until `until`, cut to `max` from now.
    pub fn until(&self, until: DateTime<Utc>, now: DateTime<Utc>) -> Retention {
        Retention {
            mode: self.mode,
            until: until.min(now + self.max),
        }
    }
}

/// The lock of a new backup: what the hourly and daily rules keep any new backup anyway
/// (`keep_daily = 8`: 8 days). A new backup is the newest of its week and month too, but a
/// newer one may take that place, so the longer rules count only once prune sees it kept.
pub fn initial_lock(policy: &RetentionPolicy) -> Duration {
    let hourly = Duration::hours(policy.keep_hourly.unwrap_or(0).into());
    let daily = Duration::days(policy.keep_daily.unwrap_or(0).into());
    hourly.max(daily)
}

/// The objects pgdr locks: a backup's (manifest, dump, signatures) and a segment's.
pub fn lockable(key: &Key) -> bool {
    match key {
        Key::Manifest { .. } | Key::Object { .. } | Key::Segment { .. } => true,
        Key::SegmentEntry { .. } => true,
        Key::Signature { of } => lockable(of),
        _ => false,
    }
}

impl Repository {
    /// The same repository, locking what it writes by `policy`.
    pub fn with_lock(mut self, policy: Option<LockPolicy>) -> Self {
        self.lock = policy.map(Arc::new);
        self
    }

    pub fn lock_policy(&self) -> Option<&LockPolicy> {
        self.lock.as_deref()
    }

    fn retention_for(&self, key: &Key) -> Option<Retention> {
        let p = self.lock.as_deref()?;
        lockable(key)
            .then(|| p.for_new(key.database(), Utc::now()))
            .flatten()
    }

    pub(super) async fn put_stream_locked(&self, key: &Key, body: ByteStream) -> Result<Receipt> {
        let lock = self.retention_for(key);
        crate::store::put_hashed_with(self.store.as_ref(), &key.render(), body, lock).await
    }

    pub(super) async fn put_bytes_locked(&self, key: &Key, data: Bytes) -> Result<()> {
        match self.retention_for(key) {
            Some(r) => self.store.put_bytes_retained(&key.render(), data, r).await,
            None => self.store.put_bytes(&key.render(), data).await,
        }
    }

    /// The bucket's versioning and Object Lock state (None for a local repository).
    pub async fn protection(&self) -> Result<Option<crate::store::Protection>> {
        self.store.protection().await
    }

    /// A `Cause::Locked` error when an Object Lock still holds `key`: the delete is never
    /// sent (on a versioned bucket it would only hide the object behind a delete marker).
    pub(super) async fn refuse_locked(&self, key: &Key) -> Result<()> {
        if self.lock.is_none() || !lockable(key) {
            return Ok(());
        }
        let until = match self.store.retention(&key.render()).await {
            Ok(r) => r.map(|r| r.until).filter(|u| *u > Utc::now()),
            Err(e) if e.kind == crate::error::Kind::NotFound => None,
            Err(e) => return Err(e),
        };
        match until {
            None => Ok(()),
            Some(t) => Err(PgdrError::repository(format!(
                "{key}: Object Lock until {}; not deleted",
                t.format("%Y-%m-%d %H:%M UTC")
            ))
            .caused_by(crate::error::Cause::Locked(t))),
        }
    }

    /// Remove `key` (and its signature) unless an Object Lock still holds it, asking the
    /// object itself whatever this host's configuration says (rekey runs on a workstation
    /// that may not carry the bucket's lock settings); a held object stays and its
    /// retain-until date is returned. No delete is ever sent for it.
    pub async fn remove_unless_locked(&self, key: &Key) -> Result<Option<DateTime<Utc>>> {
        if lockable(key) {
            let until = match self.store.retention(&key.render()).await {
                Ok(r) => r.map(|r| r.until).filter(|u| *u > Utc::now()),
                Err(e) if e.kind == crate::error::Kind::NotFound => None,
                Err(e) => return Err(e),
            };
            if until.is_some() {
                return Ok(until);
            }
        }
        match self.remove(key).await {
            Ok(()) => Ok(None),
            Err(e) => match e.locked_until() {
                Some(t) => Ok(Some(t)),
                None => Err(e),
            },
        }
    }

    /// The latest retain-until date among a backup's locked objects, if it is after `now`:
    /// deleting the backup now would fail (or, on a versioned bucket, only hide it).
    pub async fn backup_locked_until(
        &self,
        database: &str,
        id: &BackupId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        if self.lock.is_none() {
            return Ok(None);
        }
        let keys = self.backup_object_keys(database, id).await?;
        let dates: Vec<Option<Retention>> = futures::stream::iter(keys)
            .map(|k| async move { self.store.retention(&k).await })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(dates
            .into_iter()
            .flatten()
            .map(|r| r.until)
            .filter(|u| *u > now)
            .max())
    }

    /// Extend the lock of every object of a backup to `until` (never shortening one);
    /// returns how many objects were extended.
    pub async fn extend_backup_lock(
        &self,
        database: &str,
        id: &BackupId,
        until: Retention,
    ) -> Result<usize> {
        let keys = self.backup_object_keys(database, id).await?;
        let done: Vec<bool> = futures::stream::iter(keys)
            .map(|k| async move {
                let current = self.store.retention(&k).await?;
                if current.is_some_and(|c| c.until >= until.until) {
                    return Ok::<_, PgdrError>(false);
                }
                // A compliance lock stays compliance: S3 refuses to weaken it.
                let mode = match current {
                    Some(c) if c.mode == LockMode::Compliance => LockMode::Compliance,
                    _ => until.mode,
                };
                self.store
                    .extend_retention(&k, Retention { mode, ..until })
                    .await?;
                Ok(true)
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(done.into_iter().filter(|d| *d).count())
    }

    /// The store keys of a backup's lockable objects (records in its folder are not locked).
    async fn backup_object_keys(&self, database: &str, id: &BackupId) -> Result<Vec<String>> {
        let dir = format!("{}/", backup_dir(database, id));
        Ok(self
            .store
            .list(&dir)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| Key::parse(k).is_some_and(|k| lockable(&k)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_backup_is_locked_for_the_daily_and_hourly_rules_only() {
        let p = RetentionPolicy {
            keep_daily: Some(8),
            keep_hourly: Some(48),
            keep_weekly: Some(10),
            ..Default::default()
        };
        assert_eq!(initial_lock(&p), Duration::days(8));
        let p = RetentionPolicy {
            keep_last: Some(5),
            keep_weekly: Some(10),
            ..Default::default()
        };
        assert_eq!(initial_lock(&p), Duration::zero());
    }
}
