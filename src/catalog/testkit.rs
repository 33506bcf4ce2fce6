//! Test support: a repository on a [`MemoryStore`] filled with real, self-checking manifests at
//! chosen times, and settings from a config text, so catalog, selection, retention, prune and
//! daemon tests stay short and need no PostgreSQL, S3 or disk.
//!
//! Every call into the catalog's API goes through a method here, so a change of that API is
//! adapted in one place.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::catalog::keys::MANIFEST_FILE;
use crate::catalog::records::{Outcome, VerificationRecord, VerifyMode, RECORD_FORMAT_VERSION};
use crate::catalog::{self, BackupId, Catalog, Listed, Manifest};
use crate::config::{Overrides, Settings};
use crate::store::memory::MemoryStore;
use crate::store::Store;

/// The key string of a backup's object, as the repository stores it (tests plant and inspect
/// raw objects of the memory store by it).
pub fn object_key(database: &str, id: &BackupId, file: &str) -> String {
    catalog::Key::object(database, id, file).to_string()
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a test time")
}

/// A valid manifest of `database` whose snapshot (and id) is `t`.
pub fn manifest(database: &str, t: DateTime<Utc>) -> Manifest {
    let mut m = catalog::manifest::tests::sample();
    m.id = BackupId::from_time(t);
    // The id keeps milliseconds only: the snapshot is the id's time, as in a real backup.
    let t = m.id.time();
    m.database = database.to_string();
    m.source.database = database.to_string();
    m.snapshot.time = t;
    m.started_at = t;
    m.finished_at = t + chrono::Duration::seconds(3);
    m
}

/// Settings from a config text (databases, retention, schedule), repository aside.
pub fn settings(toml: &str) -> Settings {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pgdr.toml");
    std::fs::write(&path, toml).expect("config written");
    Settings::load(&Overrides {
        config: Some(path),
        repo: Some("/nonexistent/pgdr-test-repo".into()),
        ..Default::default()
    })
    .expect("test config loads")
}

pub struct Repo {
    pub store: Arc<MemoryStore>,
    pub catalog: Catalog,
}

impl Repo {
    pub fn new() -> Repo {
        let store = Arc::new(MemoryStore::new());
        Repo {
            catalog: Catalog::new(store.clone()),
            store,
        }
    }

    pub async fn put(&self, key: &str, body: &[u8]) {
        self.store
            .put_bytes(key, Bytes::copy_from_slice(body))
            .await
            .expect("put");
    }

    /// A committed backup taken at `t`: its dump, then its manifest, both stamped `t`.
    pub async fn backup(&self, database: &str, t: DateTime<Utc>) -> BackupId {
        let m = manifest(database, t);
        self.store.set_now(t);
        self.put(&object_key(database, &m.id, catalog::DUMP_FILE), b"dump")
            .await;
        self.catalog.commit(&m).await.expect("commit");
        m.id
    }

    /// Backups of `database` at each of `times`, their ids in the same order.
    pub async fn backups(&self, database: &str, times: &[DateTime<Utc>]) -> Vec<BackupId> {
        let mut ids = Vec::new();
        for t in times {
            ids.push(self.backup(database, *t).await);
        }
        ids
    }

    /// A backup interrupted before its commit: a dump without a manifest, stamped `t`.
    pub async fn uncommitted(&self, database: &str, t: DateTime<Utc>) -> BackupId {
        let id = BackupId::from_time(t);
        self.store.set_now(t);
        self.put(&object_key(database, &id, catalog::DUMP_FILE), b"part")
            .await;
        id
    }

    /// Overwrite a backup's manifest with bytes that do not read as one.
    pub async fn damage(&self, database: &str, id: &BackupId) {
        self.put(
            &object_key(database, id, MANIFEST_FILE),
            b"{\"format_version\": 2, \"checksum\": \"0\"}",
        )
        .await;
    }

    /// A verification of a backup with this outcome, at `t`.
    pub async fn verified(
        &self,
        database: &str,
        id: &BackupId,
        outcome: Outcome,
        t: DateTime<Utc>,
    ) {
        self.verified_as(database, id, VerifyMode::Quick, outcome, t)
            .await
    }

    /// A verification of a backup in this mode with this outcome, at `t`.
    pub async fn verified_as(
        &self,
        database: &str,
        id: &BackupId,
        mode: VerifyMode,
        outcome: Outcome,
        t: DateTime<Utc>,
    ) {
        let r = VerificationRecord {
            backup_signature: None,
            format_version: RECORD_FORMAT_VERSION,
            pgdr_version: "0.1.0".into(),
            database: database.to_string(),
            backup_id: id.clone(),
            mode,
            outcome,
            started_at: t,
            finished_at: t,
            phases: Vec::new(),
            differences: match outcome {
                Outcome::Failed => vec!["table t: rows differ".into()],
                _ => Vec::new(),
            },
            error: None,
            scratch: None,
            host: "test".into(),
        };
        self.catalog.write_verification(&r).await.expect("record");
    }

    pub async fn list(&self, database: Option<&str>) -> Vec<Listed> {
        self.catalog.list(database).await.expect("list")
    }

    /// `database/id` of every listed backup, damaged ones marked, oldest first.
    pub async fn listed(&self, database: Option<&str>) -> Vec<String> {
        self.list(database)
            .await
            .iter()
            .map(|l| match l {
                Listed::Ok(_) => format!("{}/{}", l.database(), l.id()),
                Listed::Damaged { .. } => format!("{}/{} (damaged)", l.database(), l.id()),
            })
            .collect()
    }
}

/// `database/id` for comparisons with [`Repo::listed`].
pub fn named(database: &str, ids: &[BackupId]) -> Vec<String> {
    ids.iter().map(|id| format!("{database}/{id}")).collect()
}
