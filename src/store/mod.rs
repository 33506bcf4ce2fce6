//! Where bytes live: a small async object-store interface with a local-directory and an S3
//! backend.
//!
//! A store moves bytes under keys (`app/20261126T020000.000Z/dump.zst.age`) and knows nothing
//! of PostgreSQL, backups or encryption; the catalog decides the layout. Keys are relative to
//! the repository root (an S3 prefix or a directory).

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

pub use crate::config::LockMode;
use crate::config::{RepositoryUrl, Settings};
use crate::error::Result;

pub mod fs;
#[cfg(test)]
pub mod memory;
pub mod s3;
mod writeback;

/// A stream of chunks. An `Err` item means the producer failed: the store must then discard
/// what it received and leave nothing visible under the key.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// Something an interrupted write left behind, invisible to `list`: a `.partial-*` file of the
/// local store or an incomplete multipart upload on S3. Only `prune` looks at these.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// The key the write was meant to create.
    pub key: String,
    /// When the write started (or last wrote), if known.
    pub since: Option<DateTime<Utc>>,
    pub size: Option<u64>,
    /// "partial file" or "multipart upload".
    pub what: &'static str,
    /// The backend's handle on it: the partial file's key, or the upload id.
    pub handle: String,
}

/// An S3 Object Lock retention: the object cannot be deleted or overwritten before `until`
/// (compliance: by nobody; governance: only with a bypass permission pgdr never uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

/// How a bucket protects its objects, as `config check` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    /// "Enabled", "Suspended", or "never enabled".
    pub versioning: String,
    pub object_lock: bool,
    /// The bucket's default retention ("governance for 7 days"), if it has one.
    pub default_retention: Option<String>,
}

/// What was stored: the size and sha256 of the bytes exactly as they sit in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub size: u64,
    pub sha256: String,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Store a stream under `key`. The object appears atomically when the stream ends cleanly;
    /// on an error item, a dropped future or a failed write nothing is left under `key`.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64>;
    /// Store a small object in one request (manifests, records).
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<()>;
    /// Stream an object's bytes. A missing key is a `Kind::NotFound` error.
    async fn get(&self, key: &str) -> Result<ByteStream>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Prove the repository is reachable and writable (writes and removes a probe object).
    async fn check_writable(&self) -> Result<()>;
    /// For messages: `/var/backups/pgdr` or `s3://bucket/prefix`.
    fn describe(&self) -> String;
    /// Leftovers of interrupted writes from before `older_than`. A backend that cannot leave
    /// any has none.
    async fn leftovers(&self, older_than: DateTime<Utc>) -> Result<Vec<Leftover>> {
        let _ = older_than;
        Ok(Vec::new())
    }
    /// Remove one leftover; one already gone is not an error.
    async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        let _ = leftover;
        Ok(())
    }
    /// `put` with an Object Lock retention on the object. Only S3 can.
    async fn put_retained(&self, key: &str, body: ByteStream, lock: Retention) -> Result<u64> {
        let _ = (key, body, lock);
        Err(no_lock(&self.describe()))
    }
    /// `put_bytes` with an Object Lock retention on the object.
    async fn put_bytes_retained(&self, key: &str, data: Bytes, lock: Retention) -> Result<()> {
        let _ = (key, data, lock);
        Err(no_lock(&self.describe()))
    }
    /// The object's retention, if it has one (expired ones included). A missing key is a
    /// `Kind::NotFound` error.
    async fn retention(&self, key: &str) -> Result<Option<Retention>> {
        let _ = key;
        Ok(None)
    }
    /// Move the object's retain-until date later (never earlier: a lock only lengthens).
    async fn extend_retention(&self, key: &str, lock: Retention) -> Result<()> {
        let _ = (key, lock);
        Err(no_lock(&self.describe()))
    }
    /// The bucket's versioning and Object Lock state; `None` for a store without buckets.
    async fn protection(&self) -> Result<Option<Protection>> {
        Ok(None)
    }
}

fn no_lock(store: &str) -> crate::error::PgdrError {
    crate::error::PgdrError::config(format!("{store} cannot lock objects (S3 Object Lock)"))
        .hint("remove [repository.s3] object_lock, or use an s3:// repository")
}

pub type DynStore = Arc<dyn Store>;

/// Open the repository named in the settings.
pub async fn open(settings: &Settings) -> Result<DynStore> {
    Ok(match &settings.repository {
        RepositoryUrl::Local(p) => Arc::new(fs::FsStore::new(p.clone())),
        RepositoryUrl::S3 { bucket, prefix } => {
            Arc::new(s3::S3Store::new(bucket, prefix, &settings.s3).await?)
        }
    })
}

/// Store a stream and hash it on the way, so every object's stored sha256 is computed the
/// same way whatever the backend.
pub async fn put_hashed(store: &dyn Store, key: &str, body: ByteStream) -> Result<Receipt> {
    put_hashed_with(store, key, body, None).await
}

/// [`put_hashed`], with an Object Lock retention on the object when `lock` is given.
pub async fn put_hashed_with(
    store: &dyn Store,
    key: &str,
    body: ByteStream,
    lock: Option<Retention>,
) -> Result<Receipt> {
    let hasher = Arc::new(std::sync::Mutex::new((Sha256::new(), 0u64)));
    let h = hasher.clone();
    let body: ByteStream = Box::pin(body.map(move |chunk| {
        if let Ok(c) = &chunk {
            let mut g = h.lock().expect("hash lock");
            g.0.update(c);
            g.1 += c.len() as u64;
        }
        chunk
    }));
    let size = match lock {
        Some(r) => store.put_retained(key, body, r).await?,
        None => store.put(key, body).await?,
    };
    let (sha, counted) = {
        let g = hasher.lock().expect("hash lock");
        (hex::encode(g.0.clone().finalize()), g.1)
    };
    debug_assert_eq!(size, counted);
    Ok(Receipt { size, sha256: sha })
}

/// Read a whole (small) object.
pub async fn get_bytes(store: &dyn Store, key: &str) -> Result<Vec<u8>> {
    let mut s = store.get(key).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        let c = c.map_err(|e| {
            crate::error::from_io(
                e,
                format_args!("reading {key} from {}", store.describe()),
                crate::error::Kind::Repository,
            )
        })?;
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// Keys must stay inside the repository: no absolute paths, no `..`, no empty segments.
pub fn validate_key(key: &str) -> io::Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid object key '{key}'"),
        ))
    } else {
        Ok(())
    }
}
