//! In-use marks: whatever reads a backup (verify, drill, restore, cat) says so in the
//! repository, `<database>/in-use/<backup-id>/<holder>.json`, and refreshes the mark's
//! heartbeat while it reads; `prune` never deletes a backup with a fresh mark.
//!
//! Why a heartbeat and not a lock: object stores have no locks, and a reader that dies
//! (SIGKILL, a lost host) cannot remove its mark. A mark whose heartbeat is older than a few
//! intervals is stale and ignored, so a dead reader delays a deletion by minutes, never for
//! ever. The marks sit outside the backup's folder, so a late heartbeat never recreates a
//! folder prune removed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{BackupId, Catalog, Key};
use crate::error::{Kind, Result};

/// How often a reader refreshes its mark.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A mark is fresh while its heartbeat is younger than this (a few missed beats allowed).
pub const FRESH_FOR: Duration = Duration::from_secs(4 * 30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUseMark {
    /// "verify", "drill", "restore", "cat".
    pub purpose: String,
    pub host: String,
    pub pid: u32,
    pub since: DateTime<Utc>,
    pub heartbeat: DateTime<Utc>,
}

impl InUseMark {
    /// Whether the holder is alive as far as the repository can tell.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        let age = now - self.heartbeat;
        // A heartbeat from the future (clock skew between hosts) counts as fresh.
        age < chrono::Duration::from_std(FRESH_FOR).expect("small")
    }

    /// "in use by verify on host X pid Y since Z".
    pub fn describe(&self) -> String {
        format!(
            "in use by {} on host {} pid {} since {}",
            self.purpose,
            self.host,
            self.pid,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held mark: refreshed in the background until released (or dropped).
pub struct InUse {
    repo: Catalog,
    key: Key,
    beat: tokio::task::JoinHandle<()>,
    released: bool,
}

impl InUse {
    /// Stop the heartbeat and remove the mark.
    pub async fn release(mut self) {
        self.released = true;
        self.beat.abort();
        if let Err(e) = self.repo.delete(&self.key).await {
            if e.kind != Kind::NotFound {
                tracing::warn!(key = %self.key, error = %e, "could not remove the in-use mark; it goes stale by itself");
            }
        }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        // Released or not, the heartbeat stops. Dropped without a release (an early return,
        // a cancelled job): remove the mark in the background; if that cannot finish (the
        // process exits), the mark goes stale by itself.
        self.beat.abort();
        if self.released {
            return;
        }
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let (s, k) = (self.repo.clone(), self.key.clone());
            h.spawn(async move {
                let _ = s.delete(&k).await;
            });
        }
    }
}

impl Catalog {
    /// Mark a backup in use by this process for `purpose` until the returned guard is
    /// released.
    pub async fn mark_in_use(&self, database: &str, id: &BackupId, purpose: &str) -> Result<InUse> {
        let now = Utc::now();
        let mut mark = InUseMark {
            purpose: purpose.to_string(),
            host: super::records::hostname(),
            pid: std::process::id(),
            since: now,
            heartbeat: now,
        };
        let holder = format!("{}-{}-{:08x}", purpose, mark.pid, fastrand::u32(..));
        let key = Key::InUse {
            database: database.to_string(),
            id: id.clone(),
            holder,
        };
        self.put_json(&key, &mark).await?;
        let (s, k) = (self.clone(), key.clone());
        let beat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                mark.heartbeat = Utc::now();
                if let Err(e) = s.put_json(&k, &mark).await {
                    tracing::warn!(key = %k, error = %e, "could not refresh the in-use mark");
                }
            }
        });
        Ok(InUse {
            repo: self.clone(),
            key,
            beat,
            released: false,
        })
    }

    /// The fresh in-use marks of a database's backups.
    pub async fn in_use(
        &self,
        database: &str,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<BackupId, Vec<InUseMark>>> {
        let mut out: BTreeMap<BackupId, Vec<InUseMark>> = BTreeMap::new();
        for o in self.objects(database).await? {
            let Key::InUse { id, .. } = &o.key else {
                continue;
            };
            let id = id.clone();
            let Ok(bytes) = self.get_bytes(&o.key).await else {
                continue; // removed while listing: released
            };
            match serde_json::from_slice::<InUseMark>(&bytes) {
                Ok(m) if m.is_fresh(now) => out.entry(id).or_default().push(m),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(key = %o.key, error = %e, "unreadable in-use mark ignored")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(heartbeat: DateTime<Utc>) -> InUseMark {
        InUseMark {
            purpose: "verify".into(),
            host: "h1".into(),
            pid: 7,
            since: heartbeat - chrono::Duration::hours(1),
            heartbeat,
        }
    }

    #[test]
    fn a_mark_is_fresh_for_a_few_heartbeats_then_stale() {
        let now = Utc::now();
        let s = |n: i64| chrono::Duration::seconds(n);
        assert!(mark(now).is_fresh(now));
        assert!(mark(now - s(HEARTBEAT.as_secs() as i64 * 3)).is_fresh(now));
        assert!(!mark(now - s(FRESH_FOR.as_secs() as i64)).is_fresh(now));
        assert!(!mark(now - s(3600)).is_fresh(now));
        assert!(
            mark(now + s(60)).is_fresh(now),
            "a clock ahead is not stale"
        );
        assert!(FRESH_FOR >= HEARTBEAT * 3);
        assert!(mark(now)
            .describe()
            .starts_with("in use by verify on host h1 pid 7 since "));
    }

    #[tokio::test]
    async fn marks_are_listed_while_held_and_gone_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let fs = std::sync::Arc::new(crate::store::fs::FsStore::new(dir.path().to_path_buf()));
        let catalog = Catalog::new(fs);
        let id = BackupId::from_time(Utc::now());
        let held = catalog.mark_in_use("app", &id, "verify").await.unwrap();
        let marks = catalog.in_use("app", Utc::now()).await.unwrap();
        assert_eq!(marks[&id].len(), 1);
        assert_eq!(marks[&id][0].purpose, "verify");
        assert!(catalog
            .in_use("other", Utc::now())
            .await
            .unwrap()
            .is_empty());
        // Seen from the future, the same mark is stale.
        let later = Utc::now() + chrono::Duration::from_std(FRESH_FOR).unwrap();
        assert!(catalog.in_use("app", later).await.unwrap().is_empty());
        held.release().await;
        assert!(catalog.in_use("app", Utc::now()).await.unwrap().is_empty());
    }
}
