//! The repository: its layout, the catalog of backups in it, and the only way to storage.
//!
//! ```text
//! <prefix>/<database>/<backup-id>/dump.zst.age
//!                                 globals.sql.zst.age
//!                                 manifest.json        (written last: the commit marker)
//! ```
//! Other kinds of objects (verifications, drills, restores, marks, job records, leases, later
//! change-stream segments) sit in their own folders beside the backups; [`keys`] lists every
//! kind. Anything the catalog does not recognise is ignored, so the layout can grow. No other
//! module builds a key or reaches the [`Store`](crate::store::Store): they name objects by
//! their typed [`Key`] and call the [`Repository`]. Commands meet only here, never in each
//! other's code.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::config::{names, Settings};
use crate::error::{Kind, PgdrError, Result};
pub use crate::store::{ByteStream, Leftover, Receipt};
use crate::store::{DynStore, ObjectInfo};

mod capture;
pub mod format;
pub mod held_triggers;
pub mod id;
pub mod inuse;
mod jobs;
mod key_checks;
pub mod keys;
pub mod labels;
pub mod leases;
pub mod locks;
pub mod manifest;
pub mod marks;
pub mod records;
pub mod replay_rate;
pub mod replayable;
mod restores;
pub mod restoring;
pub mod segments;
mod select;
pub mod sensitive;
pub mod signatures;
mod stale_lease;
mod verifications;

#[cfg(test)]
mod memory_tests;
/// Test support shared by the catalog's and the commands' unit tests.
#[cfg(test)]
pub(crate) mod testkit;

pub use id::BackupId;
pub use keys::Key;
pub use leases::Lease;
pub use manifest::Manifest;
pub use records::DrillRecord;
pub use records::{RestoreRecord, VerificationRecord};
pub use select::Pick;

pub const DUMP_FILE: &str = "dump.zst.age";
pub const GLOBALS_FILE: &str = "globals.sql.zst.age";

fn backup_dir(database: &str, id: &BackupId) -> String {
    format!("{database}/{id}")
}

/// A committed backup and what is known about it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    /// The newest verification (quick, full or chain), if any.
    pub verification: Option<VerificationRecord>,
    /// The newest verification of the backup's own dump (quick or full): a chain proof,
    /// which judges the stream after the backup, does not hide an earlier one from retention.
    pub dump_verification: Option<VerificationRecord>,
    /// The newest keep record (`pgdr keep`), or why it cannot be read; see
    /// [`Entry::keep_rule`].
    pub keep: Option<std::result::Result<labels::KeepRecord, String>>,
    /// Who signed the manifest (`signatures::Repository::signer`); None: unsigned.
    pub signer: Option<String>,
}

/// One backup as listed: its manifest, or why it could not be read.
#[derive(Debug)]
pub enum Listed {
    Ok(Box<Entry>),
    Damaged {
        database: String,
        id: BackupId,
        error: String,
    },
}

impl Listed {
    pub fn id(&self) -> &BackupId {
        match self {
            Listed::Ok(e) => &e.manifest.id,
            Listed::Damaged { id, .. } => id,
        }
    }
    pub fn database(&self) -> &str {
        match self {
            Listed::Ok(e) => &e.manifest.database,
            Listed::Damaged { database, .. } => database,
        }
    }
}

/// The repository: typed access to everything stored. Cheap to clone (the store is shared).
#[derive(Clone)]
pub struct Repository {
    store: DynStore,
    /// This host's signing key and trust keys (`signatures`).
    signing: signatures::Signing,
    /// S3 Object Lock of backups and segments (`locks`), when configured.
    lock: Option<std::sync::Arc<locks::LockPolicy>>,
}

/// The old name, kept while other modules move over.
pub type Catalog = Repository;

/// One object as listed, by what it is.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: Key,
    pub size: u64,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// The catalog as the key listing shows it, before any manifest is read.
struct Keys {
    /// (database, id) of every committed backup, oldest first.
    backups: Vec<(String, BackupId)>,
    /// Every verification record's key per backup, oldest first.
    verifications: std::collections::HashMap<(String, BackupId), Vec<String>>,
    newest_keep: std::collections::HashMap<(String, BackupId), Key>,
}

impl Repository {
    pub fn new(store: DynStore) -> Self {
        Repository {
            store,
            signing: Default::default(),
            lock: None,
        }
    }

    /// The same store, signing and checking with these keys.
    pub fn with_signing(mut self, signing: signatures::Signing) -> Self {
        self.signing = signing;
        self
    }

    /// Open the repository named in the settings (with its signing key and trust keys).
    pub async fn open(settings: &Settings) -> Result<Self> {
        let signing = signatures::Signing::load(&settings.signing)?;
        Ok(Repository::new(crate::store::open(settings).await?)
            .with_signing(signing)
            .with_lock(locks::LockPolicy::from_settings(settings)))
    }

    /// For messages: `/var/backups/pgdr` or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Prove the repository is reachable and writable.
    pub async fn check_writable(&self) -> Result<()> {
        self.store.check_writable().await
    }

    /// Store a stream under `key`, hashed on the way; nothing appears on an error.
    pub async fn put_object(&self, key: &Key, body: ByteStream) -> Result<Receipt> {
        self.put_stream_locked(key, body).await
    }

    /// Stream an object's bytes. A missing one is a `Kind::NotFound` error.
    pub async fn get_object(&self, key: &Key) -> Result<ByteStream> {
        self.store.get(&key.render()).await
    }

    /// Remove one object (prune: an old record, an object of an uncommitted folder), and
    /// its signature if it has one.
    pub async fn remove(&self, key: &Key) -> Result<()> {
        self.refuse_locked(key).await?;
        self.store.delete(&key.render()).await?;
        if !matches!(key, Key::Signature { .. }) {
            self.store.delete(&key.signature().render()).await?;
        }
        Ok(())
    }

    async fn get_bytes(&self, key: &Key) -> Result<Vec<u8>> {
        crate::store::get_bytes(self.store.as_ref(), &key.render()).await
    }

    async fn put_bytes(&self, key: &Key, data: Bytes) -> Result<()> {
        self.put_bytes_locked(key, data).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.store.delete(&key.render()).await
    }

    async fn put_json<T: serde::Serialize>(&self, key: &Key, value: &T) -> Result<()> {
        let body =
            serde_json::to_vec_pretty(value).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_bytes(key, Bytes::from(body)).await
    }

    /// Every object of a database the catalog recognises, by kind.
    pub async fn objects(&self, database: &str) -> Result<Vec<Stored>> {
        let prefix = database_prefix(Some(database))?;
        Ok(self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                Some(Stored {
                    key: Key::parse(&o.key)?,
                    size: o.size,
                    modified: o.modified,
                })
            })
            .collect())
    }

    /// The databases the repository holds backups of, sorted: from the key listing alone, no
    /// manifest is read.
    pub async fn databases(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .keys(None)
            .await?
            .backups
            .into_iter()
            .map(|(db, _)| db)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Leftovers of interrupted writes from before `older_than`, for every database.
    pub async fn leftovers(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Leftover>> {
        self.store.leftovers(older_than).await
    }

    /// Whether a leftover is one of `database`'s.
    pub fn leftover_of(l: &Leftover, database: &str) -> bool {
        l.key.starts_with(&format!("{database}/"))
    }

    pub async fn remove_leftover(&self, l: &Leftover) -> Result<()> {
        self.store.remove_leftover(l).await
    }

    /// Every committed backup (one with a manifest), oldest first; per database if given.
    pub async fn list(&self, database: Option<&str>) -> Result<Vec<Listed>> {
        let keys = self.keys(database).await?;
        let keys = &keys;
        let mut listed: Vec<Listed> = futures::stream::iter(keys.backups.iter().cloned())
            .map(|(db, id)| async move { self.load_listed(keys, db, id).await })
            .buffer_unordered(8)
            .collect()
            .await;
        listed.sort_by(|a, b| (a.id(), a.database()).cmp(&(b.id(), b.database())));
        Ok(listed)
    }

    /// What the key listing alone says: committed backups and their newest verification
    /// record. Finding one backup needs no other manifest than its own.
    async fn keys(&self, database: Option<&str>) -> Result<Keys> {
        let prefix = database_prefix(database)?;
        let objects = self.store.list(&prefix).await?;
        let mut backups: Vec<(String, BackupId)> =
            objects.iter().filter_map(manifest_key).collect();
        for (db, id) in &backups {
            checked_folder(db, &Key::manifest(db, id).render())?;
        }
        backups.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        // Verification records per backup: keys sort by time.
        let mut verifications: std::collections::HashMap<_, Vec<String>> = Default::default();
        let mut newest_keep = std::collections::HashMap::new();
        for o in &objects {
            if let Some(k) = verification_key(o) {
                verifications.entry(k).or_default().push(o.key.clone());
            }
            if let Some(Key::Keep { database, id, file }) = Key::parse(&o.key) {
                let k = Key::Keep {
                    database: database.clone(),
                    id: id.clone(),
                    file,
                };
                let slot = newest_keep
                    .entry((database, id))
                    .or_insert_with(|| k.clone());
                if k > *slot {
                    *slot = k;
                }
            }
        }
        Ok(Keys {
            backups,
            verifications: verifications
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort();
                    (k, v)
                })
                .collect(),
            newest_keep,
        })
    }

    async fn load_listed(&self, keys: &Keys, db: String, id: BackupId) -> Listed {
        let (verification, dump_verification) = self.verifications(keys, &db, &id).await;
        let keep = match keys.newest_keep.get(&(db.clone(), id.clone())) {
            Some(key) => labels::newest_keep(self.load_keep(key).await),
            None => None,
        };
        let signer = self.signer(&Key::manifest(&db, &id)).await;
        match self.load_exact(&db, &id).await {
            Ok(manifest) => Listed::Ok(Box::new(Entry {
                manifest,
                verification,
                dump_verification,
                keep,
                signer,
            })),
            Err(e) => Listed::Damaged {
                database: db,
                id,
                error: e.message,
            },
        }
    }

    /// Read one manifest by exact database and id.
    pub async fn load_exact(&self, database: &str, id: &BackupId) -> Result<Manifest> {
        let key = Key::manifest(database, id).render();
        let bytes = crate::store::get_bytes(self.store.as_ref(), &key).await?;
        let m = Manifest::from_json(&bytes, &key)?;
        if m.id != *id || m.database != database {
            return Err(PgdrError::corrupt(format!(
                "{key}: the manifest describes {}/{}, not this folder",
                m.database, m.id
            )));
        }
        check_manifest_names(&m, &key)?;
        Ok(m)
    }

    async fn load_record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = crate::store::get_bytes(self.store.as_ref(), key)
            .await
            .ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(key, error = %e, "unreadable record ignored");
                None
            }
        }
    }

    /// Store a verification record beside its backup.
    pub async fn write_verification(&self, r: &VerificationRecord) -> Result<()> {
        let key = Key::Verification {
            database: r.database.clone(),
            id: r.backup_id.clone(),
            file: records::record_file(r.started_at),
        };
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_signed(&key, Bytes::from(body)).await
    }

    /// Store the record of a restore: `<database>/restores/<start>.json`.
    pub async fn write_restore(&self, r: &RestoreRecord) -> Result<String> {
        let key = Key::Restore {
            database: r.database.clone(),
            file: records::record_file(r.started_at),
        };
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_signed(&key, Bytes::from(body)).await?;
        Ok(key.to_string())
    }

    /// Store the record of a drill: `<database>/drills/<start>.json`.
    pub async fn write_drill(&self, r: &DrillRecord) -> Result<String> {
        let key = Key::Drill {
            database: r.database.clone(),
            file: records::record_file(r.started_at),
        };
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.put_signed(&key, Bytes::from(body)).await?;
        Ok(key.to_string())
    }

    /// Drill records, oldest first; of one database or of all. Unreadable ones are skipped
    /// with a warning.
    pub async fn drills(&self, database: Option<&str>) -> Result<Vec<DrillRecord>> {
        let prefix = database_prefix(database)?;
        let keys: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| drill_key(&o.key))
            .map(|o| o.key)
            .collect();
        let mut out: Vec<DrillRecord> = futures::stream::iter(keys)
            .map(|k| async move { self.load_record::<DrillRecord>(&k).await })
            .buffered(8)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        out.sort_by(|a, b| (a.started_at, &a.database).cmp(&(b.started_at, &b.database)));
        Ok(out)
    }

    /// Find a backup by id, unique id prefix or label, in one database or across all.
    async fn find_entry(&self, database: Option<&str>, typed: &str) -> Result<Entry> {
        if labels::is_label(typed) {
            return self.find_label(database, typed).await;
        }
        let keys = self.keys(database).await?;
        let id = id::resolve(typed, keys.backups.iter().map(|(_, id)| id))?;
        let hits: Vec<&(String, BackupId)> =
            keys.backups.iter().filter(|(_, i)| *i == id).collect();
        if hits.len() > 1 {
            return Err(
                PgdrError::usage(format!("backup id '{id}' exists for several databases"))
                    .hint("add --database NAME"),
            );
        }
        match self.load_listed(&keys, hits[0].0.clone(), id).await {
            Listed::Ok(e) => Ok(*e),
            Listed::Damaged { error, .. } => Err(PgdrError::corrupt(error)),
        }
    }

    /// The newest committed backup of a database (a damaged manifest is passed over).
    pub async fn latest(&self, database: &str) -> Result<Manifest> {
        let keys = self.keys(Some(database)).await?;
        for (db, id) in keys.backups.iter().rev() {
            if let Ok(m) = self.load_exact(db, id).await {
                return Ok(m);
            }
        }
        Err(PgdrError::not_found(format!(
            "no backup of database '{database}' in {}",
            self.store.describe()
        ))
        .hint("run `pgdr backup` first, or check --repo and --database"))
    }

    /// Commit a backup: its manifest is the last object written (after its signature, when
    /// this host signs).
    pub async fn commit(&self, m: &Manifest) -> Result<()> {
        let key = Key::manifest(&m.database, &m.id);
        self.put_signed(&key, Bytes::from(m.to_json()?)).await
    }

    /// Remove every object of a backup folder, manifest first, so a half-deleted backup is
    /// never listed as whole.
    pub async fn delete_backup(&self, database: &str, id: &BackupId) -> Result<()> {
        let dir = format!("{}/", backup_dir(database, id));
        let (manifest, keys): (Vec<String>, Vec<String>) = self
            .store
            .list(&dir)
            .await?
            .into_iter()
            .map(|o| o.key)
            .partition(|k| k.ends_with(keys::MANIFEST_FILE));
        // Alone and first: were it deleted beside the others, a failure of its delete could
        // leave a listed backup whose dump is gone.
        for k in manifest {
            self.store.delete(&k).await?;
        }
        futures::stream::iter(keys)
            .map(|k| async move { self.store.delete(&k).await })
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Best-effort removal of objects written by a run that then failed.
    pub async fn discard(&self, keys: &[Key]) {
        for k in keys {
            if let Err(e) = self.delete(k).await {
                if e.kind != Kind::NotFound {
                    tracing::warn!(key = %k, error = %e, "could not remove an object of the failed run; prune removes it later");
                }
            }
        }
    }
}

/// The listing prefix of one database (or of all): a name from a command line, a drill file
/// or a record is checked here too, so no caller can list outside the repository.
fn database_prefix(database: Option<&str>) -> Result<String> {
    match database {
        None => Ok(String::new()),
        Some(d) => {
            names::database_name(d, "database").map_err(|e| PgdrError::usage(e.to_string()))?;
            Ok(format!("{d}/"))
        }
    }
}

/// A database folder found in the repository: pgdr only ever writes plain names, so any
/// other is damage or tampering, refused by name before it becomes a path or a message.
fn checked_folder(db: &str, key: &str) -> Result<()> {
    names::database_name(db, format!("repository object {key}: database folder"))
        .map_err(|e| PgdrError::corrupt(e.to_string()))
        .map_err(|e| e.hint("remove or rename the folder; pgdr never writes such a name"))
}

/// Every name in a manifest that reaches a path, a connection or SQL: a checksum proves
/// nothing against whoever can write the repository, so the values themselves are checked.
fn check_manifest_names(m: &Manifest, key: &str) -> Result<()> {
    let corrupt = |e: names::BadName| {
        PgdrError::corrupt(e.to_string())
            .hint("the manifest was not written by pgdr; this backup cannot be trusted")
    };
    names::pg_database_name(&m.source.database, format!("{key}: source.database"))
        .map_err(corrupt)?;
    names::pg_role_name(
        &m.source.database_owner,
        format!("{key}: source.database_owner"),
    )
    .map_err(corrupt)?;
    if let Some(l) = &m.label {
        labels::check_label(l).map_err(|e| {
            PgdrError::corrupt(format!("{key}: label: {}", e.message))
                .hint("the manifest was not written by pgdr; this backup cannot be trusted")
        })?;
    }
    for o in &m.objects {
        names::database_name(&o.file, format!("{key}: object file")).map_err(|e| {
            PgdrError::corrupt(format!(
                "{e}; an object file is one plain name in its backup folder"
            ))
        })?;
    }
    Ok(())
}

/// `<db>/<id>/verifications/<time>.json` → (db, id)
fn verification_key(o: &ObjectInfo) -> Option<(String, BackupId)> {
    match Key::parse(&o.key)? {
        Key::Verification { database, id, .. } => Some((database, id)),
        _ => None,
    }
}

/// `<db>/drills/<time>.json`
fn drill_key(key: &str) -> bool {
    matches!(Key::parse(key), Some(Key::Drill { file, .. }) if file.ends_with(".json"))
}

/// `<db>/<id>/manifest.json` → (db, id)
fn manifest_key(o: &ObjectInfo) -> Option<(String, BackupId)> {
    match Key::parse(&o.key)? {
        Key::Manifest { database, id } => Some((database, id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            modified: None,
        }
    }

    #[test]
    fn only_backup_manifests_are_backups() {
        let m = manifest_key(&obj("app/20260101T000000.000Z/manifest.json")).unwrap();
        assert_eq!(m.0, "app");
        assert_eq!(m.1.as_str(), "20260101T000000.000Z");
        // Records beside backups are not backups, whatever their file name.
        for k in [
            "app/drills/20260101T000000.000Z.json",
            "app/drills/manifest.json",
            "app/restores/manifest.json",
            "app/20260101T000000.000Z/verifications/20260101T000100.000Z.json",
        ] {
            assert!(manifest_key(&obj(k)).is_none(), "{k}");
        }
        assert!(drill_key("app/drills/20260101T000000.000Z.json"));
        assert!(!drill_key("app/20260101T000000.000Z/manifest.json"));
        assert!(!drill_key("app/drills/x/20260101T000000.000Z.json"));
    }

    #[tokio::test]
    async fn databases_come_from_backup_keys_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fs = std::sync::Arc::new(crate::store::fs::FsStore::new(dir.path().to_path_buf()));
        let repo = Repository::new(fs.clone());
        let put = |k: &'static str, body: &'static [u8]| {
            let fs = fs.clone();
            async move {
                use crate::store::Store;
                fs.put_bytes(k, Bytes::from_static(body)).await.unwrap()
            }
        };
        // A manifest that does not parse still names its database: the listing alone decides.
        put("zeta/20260101T000000.000Z/manifest.json", b"not json").await;
        put("app/20260102T000000.000Z/manifest.json", b"{}").await;
        put("app/20260101T000000.000Z/manifest.json", b"{}").await;
        // Everything else is no backup: records, marks, job state, leases, uncommitted
        // folders, foreign files.
        for k in [
            "drillsonly/drills/20260101T000000.000Z.json",
            "restored/restores/20260101T000000.000Z.json",
            "jobs1/jobs/backup.json",
            "jobs1/jobs/drill.lease",
            "marked/in-use/20260101T000000.000Z/verify-1-0.json",
            "uncommitted/20260101T000000.000Z/dump.zst.age",
            "verified/20260101T000000.000Z/verifications/20260101T000000.000Z.json",
            "notes/readme.txt",
        ] {
            put(k, b"{}").await;
        }
        assert_eq!(repo.databases().await.unwrap(), vec!["app", "zeta"]);
        let none = tempfile::tempdir().unwrap();
        let empty = Repository::new(std::sync::Arc::new(crate::store::fs::FsStore::new(
            none.path().to_path_buf(),
        )));
        assert!(empty.databases().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn select_picks_by_prefix_latest_and_before() {
        let dir = tempfile::tempdir().unwrap();
        let fs = std::sync::Arc::new(crate::store::fs::FsStore::new(dir.path().to_path_buf()));
        let repo = Repository::new(fs);
        let mut ids = Vec::new();
        for day in 1..=3 {
            let mut m = manifest::tests::sample();
            let t: chrono::DateTime<chrono::Utc> =
                format!("2026-01-0{day}T02:00:00Z").parse().unwrap();
            m.id = BackupId::from_time(t);
            m.snapshot.time = t;
            repo.commit(&m).await.unwrap();
            ids.push(m.id);
        }
        let db = manifest::tests::sample().database;
        let got = |e: Entry| e.manifest.id;
        assert_eq!(
            got(repo.select(None, Pick::Id("20260102")).await.unwrap()),
            ids[1]
        );
        assert_eq!(
            got(repo.select(Some(&db), Pick::Latest).await.unwrap()),
            ids[2]
        );
        let t = "2026-01-02T12:00:00Z".parse().unwrap();
        assert_eq!(
            got(repo.select(Some(&db), Pick::Before(t)).await.unwrap()),
            ids[1]
        );
        let early = "2025-12-31T00:00:00Z".parse().unwrap();
        let e = repo
            .select(Some(&db), Pick::Before(early))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("has a snapshot at or before"),
            "{}",
            e.message
        );
        let e = repo.select(Some("other"), Pick::Latest).await.unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        assert!(repo.select(None, Pick::Latest).await.is_err());
        // The newest readable: a damaged newest manifest is passed over.
        let newest = BackupId::from_time("2026-01-04T02:00:00Z".parse().unwrap());
        repo.put_bytes(&Key::manifest(&db, &newest), Bytes::from_static(b"{"))
            .await
            .unwrap();
        assert_eq!(
            got(repo.select(Some(&db), Pick::Latest).await.unwrap()),
            ids[2]
        );
    }
}
