//! The repository layout and the catalog of backups in it.
//!
//! ```text
//! <prefix>/<database>/<backup-id>/dump.zst.age
//!                                 globals.sql.zst.age
//!                                 manifest.json        (written last: the commit marker)
//! ```
//! Other kinds of objects (verifications, drills, restores, later change-stream segments)
//! sit in their own folders beside the backups; anything the catalog does not recognise is
//! ignored, so the layout can grow. Commands meet only here, never in each other's code.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::config::names;
use crate::error::{Kind, PgdrError, Result};
use crate::store::{DynStore, ObjectInfo};

pub mod format;
pub mod id;
pub mod inuse;
pub mod manifest;
pub mod records;
pub mod restoring;

#[cfg(test)]
mod memory_tests;

pub use id::BackupId;
pub use manifest::Manifest;
pub use records::DrillRecord;
pub use records::{RestoreRecord, VerificationRecord};

pub const DUMP_FILE: &str = "dump.zst.age";
pub const GLOBALS_FILE: &str = "globals.sql.zst.age";
pub const MANIFEST_FILE: &str = "manifest.json";
/// Folder (inside a backup's folder) of its verification records.
pub const VERIFICATIONS_DIR: &str = "verifications";
/// Folder (inside a database's folder) of the records of real restores.
pub const RESTORES_DIR: &str = "restores";

/// Folder (inside a database's folder) of its drill records.
pub const DRILLS_DIR: &str = "drills";

pub fn backup_dir(database: &str, id: &BackupId) -> String {
    format!("{database}/{id}")
}

pub fn object_key(database: &str, id: &BackupId, file: &str) -> String {
    format!("{database}/{id}/{file}")
}

/// A committed backup and what is known about it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    /// The newest verification (quick or full), if any.
    pub verification: Option<VerificationRecord>,
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

pub struct Catalog {
    store: DynStore,
}

/// The catalog as the key listing shows it, before any manifest is read.
struct Keys {
    /// (database, id) of every committed backup, oldest first.
    backups: Vec<(String, BackupId)>,
    newest_verification: std::collections::HashMap<(String, BackupId), String>,
}

impl Catalog {
    pub fn new(store: DynStore) -> Self {
        Catalog { store }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
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
            checked_folder(db, &object_key(db, id, MANIFEST_FILE))?;
        }
        backups.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        // Newest verification record per backup: keys sort by time.
        let mut newest = std::collections::HashMap::new();
        for o in &objects {
            if let Some(k) = verification_key(o) {
                newest.insert(k, o.key.clone());
            }
        }
        Ok(Keys {
            backups,
            newest_verification: newest,
        })
    }

    async fn load_listed(&self, keys: &Keys, db: String, id: BackupId) -> Listed {
        let verification = match keys.newest_verification.get(&(db.clone(), id.clone())) {
            Some(key) => self.load_record(key).await,
            None => None,
        };
        match self.load_exact(&db, &id).await {
            Ok(manifest) => Listed::Ok(Box::new(Entry {
                manifest,
                verification,
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
        let key = object_key(database, id, MANIFEST_FILE);
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
        let key = format!(
            "{}/{VERIFICATIONS_DIR}/{}",
            backup_dir(&r.database, &r.backup_id),
            records::record_file(r.started_at)
        );
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.store.put_bytes(&key, Bytes::from(body)).await
    }

    /// Store the record of a restore: `<database>/restores/<start>.json`.
    pub async fn write_restore(&self, r: &RestoreRecord) -> Result<String> {
        let key = format!(
            "{}/{RESTORES_DIR}/{}",
            r.database,
            records::record_file(r.started_at)
        );
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.store.put_bytes(&key, Bytes::from(body)).await?;
        Ok(key)
    }

    /// Store the record of a drill: `<database>/drills/<start>.json`.
    pub async fn write_drill(&self, r: &DrillRecord) -> Result<String> {
        let key = format!(
            "{}/{DRILLS_DIR}/{}",
            r.database,
            records::record_file(r.started_at)
        );
        let body = serde_json::to_vec_pretty(r).map_err(|e| PgdrError::internal(e.to_string()))?;
        self.store.put_bytes(&key, Bytes::from(body)).await?;
        Ok(key)
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

    /// Find a backup by id or unique id prefix, in one database or across all.
    pub async fn find(&self, database: Option<&str>, typed: &str) -> Result<Manifest> {
        self.find_entry(database, typed).await.map(|e| e.manifest)
    }

    pub async fn find_entry(&self, database: Option<&str>, typed: &str) -> Result<Entry> {
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

    /// Commit a backup: its manifest is the last object written.
    pub async fn commit(&self, m: &Manifest) -> Result<()> {
        let key = object_key(&m.database, &m.id, MANIFEST_FILE);
        self.store.put_bytes(&key, Bytes::from(m.to_json()?)).await
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
            .partition(|k| k.ends_with(MANIFEST_FILE));
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
    pub async fn discard(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.store.delete(k).await {
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
    let mut parts = o.key.split('/');
    let (db, id, dir, _file) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || dir != VERIFICATIONS_DIR {
        return None;
    }
    Some((db.to_string(), id.parse().ok()?))
}

/// `<db>/drills/<time>.json`
fn drill_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 3 && parts[1] == DRILLS_DIR && parts[2].ends_with(".json")
}

/// `<db>/<id>/manifest.json` → (db, id)
fn manifest_key(o: &ObjectInfo) -> Option<(String, BackupId)> {
    let mut parts = o.key.split('/');
    let (db, id, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || file != MANIFEST_FILE {
        return None;
    }
    Some((db.to_string(), id.parse().ok()?))
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
}
