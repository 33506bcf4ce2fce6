//! The local-directory repository: the embedded default.
//!
//! Writes go to a `.partial` sibling (written out as it grows, [`super::writeback`]), are
//! fsynced, then renamed into place, and the directory is fsynced, so a crash or a full disk
//! never leaves a truncated object under its real name.
//!
//! The repository holds manifests and records in clear: folders are created 0700 and files
//! 0600 (explicit modes, whatever the umask). A symbolic link anywhere below the root is
//! refused, never followed: a link planted in the tree would otherwise let `prune` delete, or
//! `backup` write, outside the repository.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio_util::io::ReaderStream;

use chrono::{DateTime, Utc};

use super::writeback::{self, WriteError};
use super::{validate_key, ByteStream, Leftover, ObjectInfo, Store};
use crate::error::{Kind, PgdrError, Result};

pub struct FsStore {
    root: PathBuf,
}

/// Suffix of in-progress files; `list` hides them and prune removes stale ones.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Name start of the write probe at the root; hidden from `list`, a stale one is a leftover.
pub const PROBE_PREFIX: &str = ".pgdr-probe";

/// Modes of what pgdr creates in a local repository: only its own user reads manifests,
/// records and (encrypted) dumps.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// `-<pid>-<random>`: unique per write attempt, so two jobs of one daemon (one pid) never
/// share a partial or probe name; the pid still tells which process left it.
pub(crate) fn attempt_suffix() -> String {
    format!("-{}-{:016x}", std::process::id(), fastrand::u64(..))
}

impl FsStore {
    pub fn new(root: PathBuf) -> Self {
        FsStore { root }
    }

    /// The file of a key: inside the root (no `..`, not absolute) and reached through no
    /// symbolic link below the root.
    async fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)
            .map_err(|e| PgdrError::usage(format!("repository {}: {e}", self.root.display())))?;
        let (root, rel) = (self.root.clone(), key.to_string());
        let found = tokio::task::spawn_blocking(move || first_link(&root, &rel))
            .await
            .map_err(|e| PgdrError::internal(e.to_string()))?;
        match found {
            Ok(None) => Ok(self.root.join(key)),
            Ok(Some(link)) => Err(self.link_err(&link)),
            Err(e) => Err(self.err("checking the path of", key, e)),
        }
    }

    fn link_err(&self, link: &Path) -> PgdrError {
        PgdrError::repository(format!(
            "repository {}: {} is a symbolic link; pgdr never follows links inside the repository",
            self.root.display(),
            link.display()
        ))
        .hint("replace the link with the real folder or file, or point --repo at the real location; nothing was read or changed through it")
    }

    fn walk_err(&self, e: WalkError) -> PgdrError {
        match e {
            WalkError::Link(p) => self.link_err(&p),
            WalkError::Io(e) => self.err("listing", "", e),
        }
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
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64> {
        let path = self.path(key).await?;
        let dir = path.parent().expect("key has a parent").to_path_buf();
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .await
            .map_err(|e| self.err("creating the folder for", key, e))?;
        let partial = PathBuf::from(format!(
            "{}{PARTIAL_SUFFIX}{}",
            path.display(),
            attempt_suffix()
        ));
        // Removes the partial file unless disarmed: covers errors and a dropped future alike.
        let mut guard = RemoveOnDrop(None);
        // create_new (O_EXCL) never follows a link at the partial's name.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&partial)
            .await
            .map_err(|e| self.err("creating", key, e))?;
        guard.0 = Some(partial.clone());
        let size = match writeback::write_synced(file.into_std().await, body).await {
            Ok(size) => size,
            Err(WriteError::Body(e)) => {
                return Err(crate::error::from_io(
                    e,
                    format_args!("producing {key}"),
                    Kind::Internal,
                ))
            }
            Err(WriteError::File(e)) => return Err(self.err("writing", key, e)),
        };
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
        let path = self.path(key).await?;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .await
            .map_err(|e| self.err("opening", key, e))?;
        Ok(Box::pin(ReaderStream::with_capacity(file, 256 * 1024)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        if let Some(i) = prefix.rfind('/') {
            validate_key(&prefix[..i]).map_err(|_| {
                PgdrError::usage(format!(
                    "repository {}: '{prefix}' is not a folder inside the repository",
                    self.root.display()
                ))
            })?;
        }
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let found = tokio::task::spawn_blocking(move || walk(&root, &prefix))
            .await
            .map_err(|e| PgdrError::internal(e.to_string()))?;
        found.map_err(|e| {
            let not_found = matches!(&e, WalkError::Io(e) if e.kind() == io::ErrorKind::NotFound);
            let err = self.walk_err(e);
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
        let path = self.path(key).await?;
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
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.root)
            .await
            .map_err(|e| self.err("creating", "", e))?;
        let key = format!("{PROBE_PREFIX}{}", attempt_suffix());
        self.put_bytes(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    /// `.partial-<pid>-<n>` and probe files last written before `older_than` (a killed pgdr
    /// leaves them; a running one keeps writing to its own, so a recent one is never touched).
    async fn leftovers(&self, older_than: DateTime<Utc>) -> Result<Vec<Leftover>> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || walk_partials(&root))
            .await
            .map_err(|e| PgdrError::internal(e.to_string()))?
            .map_err(|e| self.walk_err(e))?;
        Ok(found
            .into_iter()
            .filter(|o| o.modified.is_some_and(|m| m < older_than))
            .map(|o| {
                let (key, what) = match o.key.rfind(PARTIAL_SUFFIX) {
                    Some(i) => (o.key[..i].to_string(), "partial file"),
                    None => (o.key.clone(), "probe file"),
                };
                Leftover {
                    key,
                    since: o.modified,
                    size: Some(o.size),
                    what,
                    handle: o.key,
                }
            })
            .collect())
    }

    async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        if !is_leftover_name(&leftover.handle) {
            return Err(PgdrError::internal(format!(
                "'{}' is not a partial file",
                leftover.handle
            )));
        }
        self.delete(&leftover.handle).await
    }
}

/// A partial file anywhere, or a probe at the root: what an interrupted write leaves.
fn is_leftover_name(key: &str) -> bool {
    key.contains(&format!("{PARTIAL_SUFFIX}-")) || key.starts_with(&format!("{PROBE_PREFIX}-"))
}

/// Why the tree could not be walked: an I/O error, or a symbolic link (never followed).
enum WalkError {
    Io(io::Error),
    Link(PathBuf),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

/// The first symbolic link on the way from `root` to `rel` (the root itself may be one: the
/// operator chose it). Stops at the first missing component: what does not exist yet is
/// created by pgdr as a real folder.
fn first_link(root: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
    let mut p = root.to_path_buf();
    for seg in rel.split('/').filter(|s| !s.is_empty()) {
        p.push(seg);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Some(p)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Every regular file under `root/start_rel` (keys relative to the root), refusing any
/// symbolic link on the way or in the tree.
fn walk_tree(root: &Path, start_rel: &str) -> Result<Vec<ObjectInfo>, WalkError> {
    if let Some(link) = first_link(root, start_rel)? {
        return Err(WalkError::Link(link));
    }
    let start = root.join(start_rel);
    let mut out = Vec::new();
    if !start.exists() {
        return Ok(out);
    }
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            if let Some(o) = listed(root, entry?, &mut stack)? {
                out.push(o);
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Removed or renamed since its folder was read: another process writes the repository while
/// it is listed (a `.partial` file renamed into its object, a folder left empty removed).
/// Not there is the right answer; failing the whole list made `capture check` exit 2 now and
/// then while a capture runner wrote.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// One directory entry of the walk: a file as an object, a folder onto `stack`, nothing for
/// what vanished in between.
fn listed(
    root: &Path,
    entry: std::fs::DirEntry,
    stack: &mut Vec<PathBuf>,
) -> Result<Option<ObjectInfo>, WalkError> {
    let path = entry.path();
    let ft = match entry.file_type() {
        Ok(ft) => ft,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if ft.is_symlink() {
        return Err(WalkError::Link(path));
    }
    if ft.is_dir() {
        stack.push(path);
        return Ok(None);
    }
    if !ft.is_file() {
        return Ok(None);
    }
    let meta = match entry.metadata() {
        Ok(m) => m,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let rel = path
        .strip_prefix(root)
        .expect("under root")
        .to_string_lossy()
        .replace('\\', "/");
    Ok(Some(ObjectInfo {
        key: rel,
        size: meta.len(),
        modified: meta.modified().ok().map(Into::into),
    }))
}

/// Every partial file and probe under the root (keys relative to it).
fn walk_partials(root: &Path) -> Result<Vec<ObjectInfo>, WalkError> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut all = walk_tree(root, "")?;
    all.retain(|o| is_leftover_name(&o.key));
    Ok(all)
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, WalkError> {
    if !root.exists() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no such folder").into());
    }
    // Start at the deepest folder the prefix names, so listing one database is cheap.
    let start_rel = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let mut out = walk_tree(root, start_rel)?;
    out.retain(|o| {
        o.key.starts_with(prefix)
            && !o.key.contains(PARTIAL_SUFFIX)
            && !o.key.starts_with(PROBE_PREFIX)
    });
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

    #[test]
    fn a_file_renamed_while_listed_is_left_out_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("app/capture/segments");
        std::fs::create_dir_all(&seg).unwrap();
        let partial = seg.join("0-1.json.partial-7-1");
        std::fs::write(&partial, b"{}").unwrap();
        // The folder is read, then the writer renames its partial file into place.
        let entries: Vec<_> = std::fs::read_dir(&seg).unwrap().collect();
        std::fs::rename(&partial, seg.join("0-1.json")).unwrap();
        let mut stack = Vec::new();
        for e in entries {
            let got = listed(dir.path(), e.unwrap(), &mut stack);
            assert!(matches!(got, Ok(None)), "the vanished partial file");
        }
        let keys: Vec<String> = walk_tree(dir.path(), "app")
            .ok()
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["app/capture/segments/0-1.json"]);
    }

    #[tokio::test]
    async fn concurrent_probes_of_one_process_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FsStore::new(dir.path().join("repo")));
        // Many at once: with one probe name per process, one run deletes the other's probe
        // (NotFound) or renames over it.
        let runs: Vec<_> = (0..16)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.check_writable().await })
            })
            .collect();
        for r in runs {
            r.await.unwrap().unwrap();
        }
        assert!(files_in(&dir.path().join("repo")).is_empty());
    }

    fn files_in(root: &Path) -> Vec<PathBuf> {
        walk_tree(root, "")
            .ok()
            .unwrap()
            .into_iter()
            .map(|o| root.join(o.key))
            .collect()
    }

    #[tokio::test]
    async fn keys_outside_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("repo"));
        store.check_writable().await.unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", "a//b"] {
            assert!(store.get(bad).await.is_err(), "{bad}");
            assert!(store.delete(bad).await.is_err(), "{bad}");
        }
        for bad in ["/etc/", "../", "a/../../"] {
            let e = store.list(bad).await.unwrap_err();
            assert!(
                e.message.contains("is not a folder inside"),
                "{}",
                e.message
            );
        }
    }

    #[tokio::test]
    async fn symlinks_in_the_tree_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("1")).unwrap();
        std::fs::write(outside.join("1/dump"), b"keep me").unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("app")).unwrap();
        let store = FsStore::new(root.clone());
        let link = root.join("app").display().to_string();
        for e in [
            store.list("").await.unwrap_err(),
            store.list("app/").await.unwrap_err(),
            store.delete("app/1/dump").await.unwrap_err(),
            store.get("app/1/dump").await.err().unwrap(),
            store
                .put_bytes("app/2/x", Bytes::from_static(b"x"))
                .await
                .unwrap_err(),
            store.leftovers(Utc::now()).await.unwrap_err(),
        ] {
            assert!(
                e.message.contains(&format!("{link} is a symbolic link")),
                "{}",
                e.message
            );
        }
        assert_eq!(std::fs::read(outside.join("1/dump")).unwrap(), b"keep me");
        assert!(!outside.join("2").exists());
        // A link to a file is refused too, even where the folder is real.
        std::fs::remove_file(root.join("app")).unwrap();
        std::fs::create_dir_all(root.join("app/1")).unwrap();
        std::os::unix::fs::symlink(outside.join("1/dump"), root.join("app/1/dump")).unwrap();
        assert!(store.get("app/1/dump").await.is_err());
        assert!(store.list("app/").await.is_err());
    }

    #[tokio::test]
    async fn created_files_and_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let store = FsStore::new(root.clone());
        // Under the usual umask (022) the defaults would be 0755/0644. The umask is not
        // changed here: it is process-wide and other tests run in parallel (the e2e test
        // runs pgdr under an explicit umask).
        store
            .put_bytes("app/1/manifest.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("app")), 0o700);
        assert_eq!(mode(&root.join("app/1")), 0o700);
        assert_eq!(mode(&root.join("app/1/manifest.json")), 0o600);
    }
}
