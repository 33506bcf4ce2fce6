//! Leases: which daemon runs a drill or a prune of a database (`<database>/jobs/<job>.lease`).
//! Moved here from the daemon so that the catalog alone builds the key and touches the store.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;

use super::{Key, Repository};
use crate::error::Result;

/// How long a lease lasts without renewal, and how often it is renewed.
const LEASE_TTL: Duration = Duration::from_secs(15 * 60);
const LEASE_RENEW: Duration = Duration::from_secs(5 * 60);
/// How long to wait after writing a lease before reading it back: two daemons that wrote at
/// the same moment then both see the one write that won.
const LEASE_SETTLE: Duration = Duration::from_millis(500);

/// The lease's JSON is a stored format like every other (`catalog::format::jobs`).
type LeaseBody = super::format::jobs::StoredLease;

/// A lease object in the repository (`<database>/jobs/<job>.lease`), for the jobs that do not
/// touch the source (drill, prune), so a source outage does not stop them. Object stores offer
/// no compare-and-swap everywhere, so it is write, wait, read back: the last writer wins and
/// the others back off. It is renewed while the job runs and expires if its holder dies. A
/// rare double run is harmless for these jobs (a second prune finds nothing more to delete, a
/// second drill costs time), and the slot check after it catches most.
pub struct Lease {
    repo: Repository,
    key: Key,
    owner: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Repository {
    /// Take the lease of `job` on `database` for `owner` (`host:pid:random`).
    /// `Ok(Err(why))`: held by another daemon.
    pub async fn acquire_lease(
        &self,
        database: &str,
        job: &str,
        owner: &str,
    ) -> Result<std::result::Result<Lease, String>> {
        let key = Key::Lease {
            database: database.to_string(),
            job: job.to_string(),
        };
        if let Some(b) = read_lease(self, &key).await {
            if b.owner != owner && b.expires_at > Utc::now() {
                return Ok(Err(format!(
                    "another pgdr ({}) holds the {job} lease until {}",
                    b.host, b.expires_at
                )));
            }
        }
        write_lease(self, &key, owner).await?;
        tokio::time::sleep(LEASE_SETTLE).await;
        match read_lease(self, &key).await {
            Some(b) if b.owner == owner => {}
            Some(b) => {
                return Ok(Err(format!(
                    "another pgdr ({}) took the {job} lease at the same moment",
                    b.host
                )))
            }
            None => return Ok(Err(format!("the {job} lease vanished while taking it"))),
        }
        let (r, k, o) = (self.clone(), key.clone(), owner.to_string());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEW).await;
                if let Err(e) = write_lease(&r, &k, &o).await {
                    tracing::warn!(key = %k, error = %e, "could not renew the lease");
                }
            }
        });
        Ok(Ok(Lease {
            repo: self.clone(),
            key,
            owner: owner.to_string(),
            renew,
        }))
    }
}

impl Lease {
    pub async fn release(self) {
        self.renew.abort();
        if read_lease(&self.repo, &self.key)
            .await
            .is_some_and(|b| b.owner == self.owner)
        {
            let _ = self.repo.delete(&self.key).await;
        }
    }
}

async fn read_lease(repo: &Repository, key: &Key) -> Option<LeaseBody> {
    let b = repo.get_bytes(key).await.ok()?;
    serde_json::from_slice(&b).ok()
}

async fn write_lease(repo: &Repository, key: &Key, owner: &str) -> Result<()> {
    let now = Utc::now();
    let body = LeaseBody {
        owner: owner.to_string(),
        host: super::records::hostname(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(LEASE_TTL).expect("small"),
    };
    repo.put_bytes(
        key,
        Bytes::from(serde_json::to_vec_pretty(&body).expect("json")),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_lease_is_held_by_one_owner_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::new(Arc::new(crate::store::fs::FsStore::new(
            dir.path().to_path_buf(),
        )));
        let a = repo
            .acquire_lease("app", "prune", "a")
            .await
            .unwrap()
            .unwrap();
        assert!(dir.path().join("app/jobs/prune.lease").exists());
        let refused = repo.acquire_lease("app", "prune", "b").await.unwrap();
        let why = refused.err().expect("held by a");
        assert!(why.contains("holds the prune lease until"), "{why}");
        // Another job's lease is another object.
        let d = repo
            .acquire_lease("app", "drill", "b")
            .await
            .unwrap()
            .unwrap();
        a.release().await;
        assert!(!dir.path().join("app/jobs/prune.lease").exists());
        let b = repo
            .acquire_lease("app", "prune", "b")
            .await
            .unwrap()
            .unwrap();
        b.release().await;
        d.release().await;
    }

    const LEASE: &str = "app/jobs/prune.lease";

    fn memory() -> (Arc<crate::store::memory::MemoryStore>, Repository) {
        let store = Arc::new(crate::store::memory::MemoryStore::new());
        (store.clone(), Repository::new(store))
    }

    fn key() -> Key {
        Key::Lease {
            database: "app".into(),
            job: "prune".into(),
        }
    }

    #[tokio::test]
    async fn a_stale_lease_is_taken_over_and_a_release_leaves_anothers_lease_alone() {
        let (store, repo) = memory();
        // A holder that died: its lease expired a minute ago.
        let past = Utc::now() - chrono::Duration::minutes(1);
        let dead = LeaseBody {
            owner: "host-c:3:cc".into(),
            host: "host-c".into(),
            acquired_at: past - chrono::Duration::minutes(15),
            expires_at: past,
        };
        repo.put_bytes(&key(), Bytes::from(serde_json::to_vec(&dead).unwrap()))
            .await
            .unwrap();
        let taken = repo
            .acquire_lease("app", "prune", "host-b:2:bb")
            .await
            .unwrap()
            .expect("stale lease taken over");
        let body = read_lease(&repo, &key()).await.unwrap();
        assert_eq!(body.owner, "host-b:2:bb");
        assert!(body.expires_at > Utc::now() + chrono::Duration::minutes(14));
        // Taken by another meanwhile: a release leaves the other's lease alone.
        write_lease(&repo, &key(), "host-a:1:aa").await.unwrap();
        taken.release().await;
        assert_eq!(
            read_lease(&repo, &key()).await.unwrap().owner,
            "host-a:1:aa"
        );
        assert!(store.contains(LEASE));
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_written_is_an_error_not_a_lease() {
        let (store, repo) = memory();
        store.fail_put_at(1);
        assert!(repo.acquire_lease("app", "prune", "a").await.is_err());
        assert!(!store.contains(LEASE));
    }
}
