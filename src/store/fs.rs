//! The local-directory repository: the embedded default.
//!
//! Writes go to a `.partial` sibling, are fsynced, then renamed into place, and the directory
//! is fsynced, so a crash or a full disk never leaves a truncated object under its real name.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use chrono::{DateTime, Utc};

use super::{validate_key, ByteStream, Leftover, ObjectInfo, Store};
use crate::error::{Kind, PgdrError, Result};

pub struct FsStore {
    root: PathBuf,
}

/// Suffix of in-progress files; `list` hides them and prune removes stale ones.
pub const PARTIAL_SUFFIX: &str = ".partial";

impl FsStore {
    pub fn new(root: PathBuf) -> Self {
        FsStore { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key).map_err(|e| PgdrError::internal(e.to_string()))?;
        Ok(self.root.join(key))
    }

    fn err(&self, doing: &str, key: &str, e: io::Error) -> PgdrError {
        let base = format!(
            "repository {}: {doing} {key}: {}",
            self.root.display(),
            io_reason(&e)
        );
        let err = match e.kind() {
            io::ErrorKind::NotFound => PgdrError::new(Kind::NotFound, base),
            _ => PgdrError::repository(base),
        };
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => err.hint(format!(
                "free space on the file system of {} or point --repo elsewhere; nothing was kept from this run",
                self.root.display()
            )),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => err.hint(format!(
                "make {} writable by the user running pgdr",
                self.root.display()
            )),
            _ => err,
        }
    }
}

/// io::Error's Display adds "(os error 28)"; operators want the words.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = tokio::fs::File::open(dir).await?;
    d.sync_all().await
}

#[async_trait::async_trait]
impl Store for FsStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64> {
        let path = self.path(key)?;
        let dir = path.parent().expect("key has a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| self.err("creating the folder for", key, e))?;
        let partial = PathBuf::from(format!(
            "{}{PARTIAL_SUFFIX}-{}",
            path.display(),
            std::process::id()
        ));
        // Removes the partial file unless disarmed: covers errors and a dropped future alike.
        let mut guard = RemoveOnDrop(Some(partial.clone()));
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| self.err("creating", key, e))?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                crate::error::from_io(e, format_args!("producing {key}"), Kind::Internal)
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|e| self.err("writing", key, e))?;
            size += chunk.len() as u64;
        }
        file.flush()
            .await
            .map_err(|e| self.err("writing", key, e))?;
        file.sync_all()
            .await
            .map_err(|e| self.err("syncing", key, e))?;
        drop(file);
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| self.err("renaming into place", key, e))?;
        guard.0 = None;
        sync_dir(&dir)
            .await
            .map_err(|e| self.err("syncing the folder of", key, e))?;
        Ok(size)
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<()> {
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
        self.put(key, body).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.err("opening", key, e))?;
        Ok(Box::pin(ReaderStream::with_capacity(file, 256 * 1024)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let found = tokio::task::spawn_blocking(move || walk(&root, &prefix))
            .await
            .map_err(|e| PgdrError::internal(e.to_string()))?;
        found.map_err(|e| {
            let not_found = e.kind() == io::ErrorKind::NotFound;
            let err = self.err("listing", "", e);
            if not_found {
                err.hint(
                    "check --repo / [repository] url; the folder is created by the first backup",
                )
            } else {
                err
            }
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err("deleting", key, e)),
        }
        // Remove folders left empty, up to the root, so deleted backups leave no husks.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn check_writable(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| self.err("creating", "", e))?;
        let key = format!(".pgdr-probe-{}", std::process::id());
        self.put_bytes(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    /// `.partial-<pid>` files last written before `older_than` (a killed pgdr leaves them; a
    /// running one keeps writing to its own, so a recent one is never touched).
    async fn leftovers(&self, older_than: DateTime<Utc>) -> Result<Vec<Leftover>> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || walk_partials(&root))
            .await
            .map_err(|e| PgdrError::internal(e.to_string()))?
            .map_err(|e| self.err("listing", "", e))?;
        Ok(found
            .into_iter()
            .filter(|o| o.modified.is_some_and(|m| m < older_than))
            .map(|o| Leftover {
                key: o.key[..o.key.rfind(PARTIAL_SUFFIX).expect("a partial")].to_string(),
                since: o.modified,
                size: Some(o.size),
                what: "partial file",
                handle: o.key,
            })
            .collect())
    }

    async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        if !leftover.handle.contains(PARTIAL_SUFFIX) {
            return Err(PgdrError::internal(format!(
                "'{}' is not a partial file",
                leftover.handle
            )));
        }
        self.delete(&leftover.handle).await
    }
}

/// Every `.partial-*` file under the root (keys relative to it).
fn walk_partials(root: &Path) -> io::Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if !rel.contains(&format!("{PARTIAL_SUFFIX}-")) {
                continue;
            }
            let meta = entry.metadata()?;
            out.push(ObjectInfo {
                key: rel,
                size: meta.len(),
                modified: meta.modified().ok().map(Into::into),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn walk(root: &Path, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
    // Start at the deepest folder the prefix names, so listing one database is cheap.
    let start_rel = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let start = root.join(start_rel);
    let mut out = Vec::new();
    if !root.exists() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no such folder"));
    }
    if !start.exists() {
        return Ok(out);
    }
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if !rel.starts_with(prefix)
                || rel.contains(PARTIAL_SUFFIX)
                || rel.starts_with(".pgdr-probe")
            {
                continue;
            }
            let meta = entry.metadata()?;
            out.push(ObjectInfo {
                key: rel,
                size: meta.len(),
                modified: meta.modified().ok().map(Into::into),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failed_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("pg_dump died")),
        ]));
        let err = store.put("db/1/dump", body).await.unwrap_err();
        assert!(err.message.contains("pg_dump died"), "{}", err.message);
        assert!(store.list("").await.unwrap().is_empty());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("db/1"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "partial file left behind");
    }

    #[tokio::test]
    async fn old_partial_files_are_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        std::fs::create_dir_all(dir.path().join("app/1")).unwrap();
        std::fs::write(dir.path().join("app/1/dump.zst.age.partial-42"), b"half").unwrap();
        std::fs::write(dir.path().join("app/1/globals.sql.zst.age"), b"whole").unwrap();
        let later = Utc::now() + chrono::Duration::seconds(5);
        assert!(store
            .leftovers(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap()
            .is_empty());
        let l = store.leftovers(later).await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].key, "app/1/dump.zst.age");
        assert_eq!(l[0].handle, "app/1/dump.zst.age.partial-42");
        assert_eq!(l[0].size, Some(4));
        store.remove_leftover(&l[0]).await.unwrap();
        assert!(store.leftovers(later).await.unwrap().is_empty());
        assert_eq!(store.list("").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        store
            .put_bytes("a/b/c.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        store
            .put_bytes("a/x", Bytes::from_static(b"12345"))
            .await
            .unwrap();
        let l = store.list("a/").await.unwrap();
        assert_eq!(
            l.iter()
                .map(|o| (o.key.as_str(), o.size))
                .collect::<Vec<_>>(),
            vec![("a/b/c.json", 2), ("a/x", 5)]
        );
        assert_eq!(
            super::super::get_bytes(&store, "a/x").await.unwrap(),
            b"12345"
        );
        store.delete("a/b/c.json").await.unwrap();
        assert!(!dir.path().join("a/b").exists(), "empty folder removed");
        let e = store.get("a/b/c.json").await.err().unwrap();
        assert_eq!(e.kind, Kind::NotFound);
    }
}
