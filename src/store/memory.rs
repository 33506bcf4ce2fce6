//! An in-memory repository for unit tests: S3's semantics (a sorted key space, atomic puts,
//! paged listings) without S3, PostgreSQL or a disk, plus the faults and the clock a test
//! needs to steer: fail the Nth put or a chosen delete, list in small pages, set the time
//! objects are stamped with, and plant leftovers of interrupted writes.
//!
//! Compiled for tests only: production opens a real backend (`store::open`), and a store that
//! forgets everything at exit must never be reachable from a config.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{validate_key, ByteStream, Leftover, ObjectInfo, Store};
use crate::error::{Kind, PgdrError, Result};

/// S3's ListObjectsV2 page size.
const S3_PAGE: usize = 1000;

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    modified: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Object>,
    /// `None`: the real clock.
    now: Option<DateTime<Utc>>,
    /// Put attempts so far (put and put_bytes alike).
    puts: u64,
    fail_put_at: Option<u64>,
    fail_delete: BTreeSet<String>,
    page_size: Option<usize>,
    /// Pages served by `list`, to show a listing really was paged.
    pages: u64,
    leftovers: Vec<Leftover>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }

    /// The `n`th put from now on (1 = the next one) fails, leaving nothing under its key.
    pub fn fail_put_at(&self, n: u64) {
        let mut s = self.lock();
        s.fail_put_at = Some(s.puts + n);
    }

    /// Deleting `key` fails (a permission or network error) until [`Self::heal_delete`].
    pub fn fail_delete(&self, key: &str) {
        self.lock().fail_delete.insert(key.to_string());
    }

    pub fn heal_delete(&self, key: &str) {
        self.lock().fail_delete.remove(key);
    }

    /// List in pages of `n` keys (S3 serves 1000), joined the way `S3Store::list` joins them.
    pub fn page_size(&self, n: usize) {
        assert!(n > 0, "a page holds at least one key");
        self.lock().page_size = Some(n);
    }

    /// Pages served by `list` so far.
    pub fn pages_listed(&self) -> u64 {
        self.lock().pages
    }

    /// The time new objects are stamped with, until set again.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.lock().now = Some(t);
    }

    /// An interrupted write's leftover, as a crashed upload leaves one.
    pub fn add_leftover(&self, key: &str, since: DateTime<Utc>) {
        self.lock().leftovers.push(Leftover {
            key: key.to_string(),
            since: Some(since),
            size: None,
            what: "multipart upload",
            handle: format!("upload-{}", fastrand::u32(..)),
        });
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock().objects.contains_key(key)
    }

    /// Leftovers not yet removed, whatever their age.
    pub fn leftover_keys(&self) -> Vec<String> {
        self.lock()
            .leftovers
            .iter()
            .map(|l| l.key.clone())
            .collect()
    }

    fn check_key(key: &str) -> Result<()> {
        validate_key(key).map_err(|e| PgdrError::internal(e.to_string()))
    }

    /// One page of keys under `prefix` after `token`, and the token of the next page.
    fn page(&self, prefix: &str, token: Option<&str>) -> (Vec<ObjectInfo>, Option<String>) {
        let mut s = self.lock();
        s.pages += 1;
        let size = s.page_size.unwrap_or(S3_PAGE);
        let start = token.unwrap_or(prefix);
        let mut out = Vec::new();
        let mut next = None;
        let after = s
            .objects
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .filter(|(k, _)| Some(k.as_str()) != token)
            .take_while(|(k, _)| k.starts_with(prefix));
        for (k, o) in after {
            if out.len() == size {
                next = Some(
                    out.last()
                        .map(|o: &ObjectInfo| o.key.clone())
                        .expect("full"),
                );
                break;
            }
            out.push(ObjectInfo {
                key: k.clone(),
                size: o.data.len() as u64,
                modified: Some(o.modified),
            });
        }
        (out, next)
    }
}

/// Every request waits once, as a network or disk request does, so requests a caller runs
/// concurrently really overlap (and a bug in how it joins them can show).
async fn round_trip() {
    tokio::task::yield_now().await;
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64> {
        Self::check_key(key)?;
        let attempt = {
            let mut s = self.lock();
            s.puts += 1;
            s.puts
        };
        // Read it all first: like a PutObject or a completed multipart upload, the object
        // appears whole or not at all.
        round_trip().await;
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                crate::error::from_io(e, format_args!("producing {key}"), Kind::Internal)
            })?;
            data.extend_from_slice(&chunk);
        }
        let mut s = self.lock();
        if s.fail_put_at == Some(attempt) {
            return Err(PgdrError::repository(format!(
                "memory: writing {key}: injected failure of put #{attempt}"
            )));
        }
        let modified = s.now.unwrap_or_else(Utc::now);
        let size = data.len() as u64;
        s.objects.insert(
            key.to_string(),
            Object {
                data: data.freeze(),
                modified,
            },
        );
        Ok(size)
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<()> {
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
        self.put(key, body).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        Self::check_key(key)?;
        round_trip().await;
        let data = self.lock().objects.get(key).map(|o| o.data.clone());
        match data {
            Some(d) => Ok(Box::pin(futures::stream::once(async move { Ok(d) }))),
            None => Err(PgdrError::not_found(format!(
                "memory: reading {key}: no such object"
            ))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // Page by page, the lock released between pages as S3 serves them, so an object
        // written or deleted meanwhile shows or not as it would there.
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            round_trip().await;
            let (page, next) = self.page(prefix, token.as_deref());
            out.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        Self::check_key(key)?;
        round_trip().await;
        let mut s = self.lock();
        if s.fail_delete.contains(key) {
            return Err(PgdrError::repository(format!(
                "memory: deleting {key}: injected failure"
            )));
        }
        s.objects.remove(key);
        Ok(())
    }

    async fn check_writable(&self) -> Result<()> {
        let key = format!(".pgdr-probe-{:016x}", fastrand::u64(..));
        self.put_bytes(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        "memory://".into()
    }

    async fn leftovers(&self, older_than: DateTime<Utc>) -> Result<Vec<Leftover>> {
        Ok(self
            .lock()
            .leftovers
            .iter()
            .filter(|l| l.since.is_some_and(|t| t < older_than))
            .cloned()
            .collect())
    }

    async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        self.lock()
            .leftovers
            .retain(|l| l.handle != leftover.handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{get_bytes, put_hashed};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn put(s: &MemoryStore, key: &str) {
        s.put_bytes(key, Bytes::from(key.to_string()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn objects_round_trip_with_size_and_the_set_time() {
        let s = MemoryStore::new();
        s.set_now(at("2026-01-01T00:00:00Z"));
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cde")),
        ]));
        let r = put_hashed(&s, "app/x/dump", body).await.unwrap();
        assert_eq!(r.size, 5);
        assert_eq!(get_bytes(&s, "app/x/dump").await.unwrap(), b"abcde");
        let l = s.list("app/").await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].size, l[0].modified),
            (5, Some(at("2026-01-01T00:00:00Z")))
        );
        let e = s.get("app/missing").await.err().unwrap();
        assert_eq!(e.kind, Kind::NotFound);
        assert!(s.put_bytes("../out", Bytes::new()).await.is_err());
        s.delete("app/x/dump").await.unwrap();
        s.delete("app/x/dump").await.unwrap();
        assert!(s.keys().is_empty());
    }

    #[tokio::test]
    async fn a_failed_stream_or_an_injected_failure_leaves_nothing() {
        let s = MemoryStore::new();
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("pg_dump died")),
        ]));
        assert!(s.put("a/b", body).await.is_err());
        assert!(!s.contains("a/b"));
        put(&s, "a/1").await;
        s.fail_put_at(2);
        put(&s, "a/2").await;
        let e = s
            .put_bytes("a/3", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("injected failure of put"),
            "{}",
            e.message
        );
        put(&s, "a/4").await;
        assert_eq!(s.keys(), ["a/1", "a/2", "a/4"]);
        s.fail_delete("a/1");
        assert!(s.delete("a/1").await.is_err());
        s.heal_delete("a/1");
        s.delete("a/1").await.unwrap();
        s.check_writable().await.unwrap();
        assert_eq!(s.keys(), ["a/2", "a/4"]);
    }

    #[tokio::test]
    async fn paged_listing_joins_to_the_whole_sorted_prefix() {
        let s = MemoryStore::new();
        for k in ["b/3", "a/1", "b/1", "ab/1", "b/2", "b0", "b/10", "c/1"] {
            put(&s, k).await;
        }
        let whole = s.list("b/").await.unwrap();
        let keys = |l: &[ObjectInfo]| l.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&whole), ["b/1", "b/10", "b/2", "b/3"]);
        for n in 1..=5 {
            s.page_size(n);
            let before = s.pages_listed();
            assert_eq!(s.list("b/").await.unwrap(), whole, "pages of {n}");
            assert_eq!(
                s.pages_listed() - before,
                4_u64.div_ceil(n as u64),
                "pages of {n}"
            );
        }
        assert_eq!(s.list("").await.unwrap().len(), 8);
        assert!(s.list("d").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn leftovers_older_than_the_cutoff_until_removed() {
        let s = MemoryStore::new();
        s.add_leftover("app/x/dump", at("2026-01-01T00:00:00Z"));
        s.add_leftover("app/y/dump", at("2026-01-03T00:00:00Z"));
        let old = s.leftovers(at("2026-01-02T00:00:00Z")).await.unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].key, "app/x/dump");
        s.remove_leftover(&old[0]).await.unwrap();
        assert_eq!(s.leftover_keys(), ["app/y/dump"]);
    }
}
