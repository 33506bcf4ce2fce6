//! S3 store tests against the real Garage server (see scripts/s3-server.sh).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use pgdr::config::MIN_PART_SIZE;
use pgdr::error::Kind;
use pgdr::store::s3::{S3Store, Timeouts};
use pgdr::store::{get_bytes, put_hashed, ByteStream, Store};
use sha2::{Digest, Sha256};

use crate::common::garage::{garage, unique_prefix, Garage};

const MIB: usize = 1024 * 1024;

/// Deterministic incompressible bytes (xorshift), so a mix-up of parts cannot go unnoticed.
fn pseudo_random(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// `data` cut into chunks of `chunk` bytes.
fn chunked(data: Bytes, chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = (0..data.len())
        .step_by(chunk)
        .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// `n` chunks of `chunk` bytes, one every `every`: a slow pg_dump.
fn slow(chunk: usize, n: usize, every: Duration, produced: Arc<AtomicU64>) -> ByteStream {
    let data = pseudo_random(chunk, 7);
    Box::pin(futures::stream::iter(0..n).then(move |_| {
        let data = data.clone();
        let produced = produced.clone();
        async move {
            tokio::time::sleep(every).await;
            produced.fetch_add(data.len() as u64, Ordering::SeqCst);
            Ok(data)
        }
    }))
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Poll until `f` holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn full_key(store: &S3Store, key: &str) -> String {
    let d = store.describe();
    let prefix = d.splitn(4, '/').nth(3).unwrap_or("");
    format!("{prefix}/{key}")
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_multipart_round_trip() {
    let g = garage();
    let store = g.store("roundtrip").await;
    store.check_writable().await.expect("bucket writable");
    // 23 MiB and a bit in odd-sized chunks: parts of exactly 5 MiB cut across chunk edges.
    let data = pseudo_random(23 * MIB + 12_345, 42);
    let receipt = put_hashed(&store, "db/1/dump.zst.age", chunked(data.clone(), MIB + 7))
        .await
        .expect("put");
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(receipt.sha256, hex_sha256(&data));

    // A multipart ETag ends in -<number of parts>: proves 5 parts, not one PutObject.
    let head = g
        .client()
        .head_object()
        .bucket(&g.bucket)
        .key(full_key(&store, "db/1/dump.zst.age"))
        .send()
        .await
        .expect("head");
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(etag.ends_with("-5"), "etag {etag}");
    assert_eq!(head.content_length(), Some(data.len() as i64));

    let back = get_bytes(&store, "db/1/dump.zst.age").await.expect("get");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes read back differ");

    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, "db/1/dump.zst.age");
    assert_eq!(listed[0].size, data.len() as u64);
    assert!(listed[0].modified.is_some());

    // Small objects take one PutObject (no multipart ETag suffix).
    store
        .put_bytes("db/1/manifest.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(
        get_bytes(&store, "db/1/manifest.json").await.unwrap(),
        b"{}"
    );
    let small = put_hashed(
        &store,
        "db/1/small",
        chunked(pseudo_random(MIN_PART_SIZE, 3), MIB),
    )
    .await
    .unwrap();
    assert_eq!(small.size, MIN_PART_SIZE as u64);
    assert!(store.list_incomplete_uploads().await.unwrap().is_empty());

    store.delete("db/1/manifest.json").await.unwrap();
    store
        .delete("db/1/manifest.json")
        .await
        .expect("deleting twice is fine");
    let keys: Vec<_> = store
        .list("db/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, vec!["db/1/dump.zst.age", "db/1/small"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_failed_stream_aborts_the_upload() {
    let store = garage().store("failed").await;
    let body: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(pseudo_random(4 * MIB, 1)),
        Ok(pseudo_random(4 * MIB, 2)),
        Err(io::Error::other("pg_dump died: out of shared memory")),
    ]));
    let err = store.put("db/1/dump", body).await.unwrap_err();
    assert!(
        err.message.contains("pg_dump died: out of shared memory"),
        "{}",
        err.message
    );
    assert!(store.list("").await.unwrap().is_empty());
    let left = store.list_incomplete_uploads().await.unwrap();
    assert!(left.is_empty(), "upload not aborted: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_dropped_put_aborts_the_upload() {
    let store = Arc::new(garage().store("dropped").await);
    let produced = Arc::new(AtomicU64::new(0));
    // 1 MiB every 50 ms would take 10 s; the put is dropped after ~1.5 s.
    let body = slow(MIB, 200, Duration::from_millis(50), produced.clone());
    let put = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(1500), store.put("db/1/dump", body)).await
        })
    };
    // While it runs, the multipart upload is visible as incomplete: the test is meaningful.
    let seen = eventually(Duration::from_secs(5), || {
        let store = store.clone();
        async move { !store.list_incomplete_uploads().await.unwrap().is_empty() }
    })
    .await;
    assert!(seen, "the put never started a multipart upload");
    assert!(put.await.unwrap().is_err(), "put should have timed out");
    assert!(produced.load(Ordering::SeqCst) > MIN_PART_SIZE as u64);

    let cleaned = eventually(Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.list_incomplete_uploads().await.unwrap().is_empty() }
    })
    .await;
    assert!(
        cleaned,
        "upload left behind: {:?}",
        store.list_incomplete_uploads().await.unwrap()
    );
    assert!(store.list("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_list_paginates_past_1000_keys() {
    let store = Arc::new(garage().store("many").await);
    let expected: Vec<String> = (0..1050).map(|i| format!("db/obj-{i:05}")).collect();
    futures::stream::iter(expected.clone())
        .map(|k| {
            let store = store.clone();
            async move { store.put_bytes(&k, Bytes::from(k.clone())).await }
        })
        .buffer_unordered(32)
        .for_each(|r| async move { r.expect("put_bytes") })
        .await;
    store
        .put_bytes("other/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    // A probe left by a crashed check_writable stays hidden.
    store
        .put_bytes(".pgdr-probe-1", Bytes::from_static(b"p"))
        .await
        .unwrap();

    let listed = store.list("db/").await.unwrap();
    let keys: Vec<String> = listed.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys.len(), 1050);
    assert_eq!(keys, expected, "relative, sorted, complete");
    assert!(listed.iter().all(|o| o.size == 12));

    let all = store.list("").await.unwrap();
    assert_eq!(all.len(), 1051);
    assert_eq!(all.last().unwrap().key, "other/x");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_missing_bucket_is_named() {
    let g = garage();
    let bucket = format!("pgdr-missing-{}", std::process::id());
    let store = S3Store::new(&bucket, "app", &g.settings()).await.unwrap();
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(err.kind, Kind::Repository);
    assert!(
        err.message
            .contains(&format!("bucket '{bucket}' does not exist")),
        "{}",
        err.message
    );
    assert!(
        err.hints.iter().any(|h| h.contains("create the bucket")),
        "{:?}",
        err.hints
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_second_bucket_works() {
    let g = garage();
    let bucket = format!("pgdr-second-{}", std::process::id());
    g.create_bucket(&bucket);
    let store = S3Store::new(&bucket, "", &g.settings()).await.unwrap();
    store.check_writable().await.expect("writable");
    assert_eq!(store.describe(), format!("s3://{bucket}"));
    store
        .put_bytes("top/k", Bytes::from_static(b"v"))
        .await
        .unwrap();
    let keys: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, vec!["top/k"], "no leading slash with an empty prefix");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_key_without_permission_is_denied() {
    let g = garage();
    let (id, secret) = g.key_without_permissions(&format!("pgdr-noperm-{}", std::process::id()));
    let mut s = g.settings();
    s.access_key_id = Some(pgdr::config::Secret::new(&id));
    s.secret_access_key = Some(pgdr::config::Secret::new(&secret));
    let store = S3Store::new(&g.bucket, "app", &s).await.unwrap();
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(err.kind, Kind::Repository);
    assert!(
        err.message
            .contains(&format!("access denied to bucket '{}'", g.bucket)),
        "{}",
        err.message
    );
    let text = err.to_string();
    assert!(text.contains("credentials"), "{text}");
    assert!(!text.contains(&secret), "secret leaked: {text}");

    // Object requests name the request and the key.
    let err = store
        .put_bytes("x/y", Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(err.message.contains("PutObject app/x/y"), "{}", err.message);
    assert!(err.message.contains("denied"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_unreachable_endpoint_fails_fast() {
    let g = garage();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = g.settings();
    s.endpoint = Some(format!("http://127.0.0.1:{port}"));
    s.max_attempts = 2;
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_secs(2),
    };
    let store = S3Store::with_timeouts(&g.bucket, "app", &s, timeouts)
        .await
        .unwrap();
    let start = Instant::now();
    let err = store.check_writable().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.kind, Kind::Repository);
    assert!(
        err.message
            .contains(&format!("endpoint http://127.0.0.1:{port} unreachable")),
        "{}",
        err.message
    );
    assert!(
        err.hints.iter().any(|h| h.contains("endpoint")),
        "{:?}",
        err.hints
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_missing_key_is_not_found() {
    let store = garage().store("notfound").await;
    let err = store
        .get("db/nope/manifest.json")
        .await
        .err()
        .expect("error");
    assert_eq!(err.kind, Kind::NotFound);
    assert!(
        err.message.contains("db/nope/manifest.json"),
        "{}",
        err.message
    );
}

/// The memory bound, checked structurally: whenever the input yields a chunk, the bytes read
/// so far minus the bytes the server has acknowledged (= what the store holds in memory) stay
/// within part_size × (max_parts_in_flight + 1). An input that is always ready (like a fast
/// pg_dump) would otherwise be read to the end long before Garage stores 40 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn s3_put_reads_no_further_ahead_than_the_parts_in_flight() {
    let g = garage();
    let mut s = g.settings();
    s.max_parts_in_flight = 2;
    let store = Arc::new(g.store_with("bounded", &s).await);
    let data = pseudo_random(40 * MIB, 9);
    let produced = Arc::new(AtomicU64::new(0));
    let max_lag = Arc::new(AtomicU64::new(0));
    let body: ByteStream = {
        let (store, produced, max_lag) = (store.clone(), produced.clone(), max_lag.clone());
        Box::pin(chunked(data.clone(), MIB).map(move |c| {
            if let Ok(c) = &c {
                let p = produced.fetch_add(c.len() as u64, Ordering::SeqCst) + c.len() as u64;
                let lag = p.saturating_sub(store.uploaded_bytes());
                max_lag.fetch_max(lag, Ordering::SeqCst);
            }
            c
        }))
    };
    let size = store.put("db/1/dump", body).await.expect("put");
    assert_eq!(size, data.len() as u64);
    assert_eq!(store.uploaded_bytes(), data.len() as u64);
    let bound = (MIN_PART_SIZE * (s.max_parts_in_flight + 1)) as u64;
    let lag = max_lag.load(Ordering::SeqCst);
    assert!(
        lag <= bound,
        "read {lag} bytes ahead of the server, bound {bound}"
    );
    assert!(lag > MIN_PART_SIZE as u64, "measured nothing: lag {lag}");
    assert_eq!(get_bytes(&*store, "db/1/dump").await.unwrap(), data);
}

/// A server killed mid-upload fails the put promptly and clearly; once it is back, the
/// leftover upload is visible to prune and new puts work.
#[tokio::test(flavor = "multi_thread")]
async fn s3_server_killed_mid_upload_then_restarted() {
    let dir = std::env::temp_dir().join(format!("pgdr-e2e-garage-kill-{}", std::process::id()));
    let g = Garage::start(&dir);
    let mut s = g.settings();
    s.max_attempts = 2;
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_secs(5),
    };
    let prefix = unique_prefix("killed");
    let store = Arc::new(
        S3Store::with_timeouts(&g.bucket, &prefix, &s, timeouts)
            .await
            .unwrap(),
    );

    let produced = Arc::new(AtomicU64::new(0));
    let body = slow(MIB, 400, Duration::from_millis(25), produced.clone());
    let put = {
        let store = store.clone();
        tokio::spawn(async move { store.put("db/1/dump", body).await })
    };
    // Kill once the multipart upload is well under way.
    let started = eventually(Duration::from_secs(10), || {
        let p = produced.load(Ordering::SeqCst);
        async move { p > 2 * MIN_PART_SIZE as u64 }
    })
    .await;
    assert!(started);
    assert_eq!(unsafe { libc::kill(g.pid, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();

    let res = tokio::time::timeout(Duration::from_secs(30), put)
        .await
        .expect("put finished in bounded time")
        .unwrap();
    let err = res.expect_err("put must fail when the server dies");
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(err.kind, Kind::Repository);
    assert!(err.message.contains("unreachable"), "{}", err.message);
    assert!(
        err.message.contains(&format!("s3://{}/{prefix}", g.bucket)),
        "{}",
        err.message
    );
    assert!(
        err.message.contains(&format!("{prefix}/db/1/dump")),
        "{}",
        err.message
    );

    // Same state dir: the script restarts the instance on the same port, bucket and key.
    let g2 = Garage::start(&dir);
    assert_eq!(g2.endpoint, g.endpoint);
    assert_ne!(g2.pid, g.pid);
    // The abort could not reach the dead server: the upload is left for prune to clear.
    for (key, id, _) in store.list_incomplete_uploads().await.unwrap() {
        assert_eq!(key, "db/1/dump");
        store.abort_upload(&key, &id).await.unwrap();
    }
    assert!(store.list_incomplete_uploads().await.unwrap().is_empty());
    assert!(store.list("").await.unwrap().is_empty());

    let data = pseudo_random(12 * MIB, 5);
    let size = store
        .put("db/2/dump", chunked(data.clone(), MIB))
        .await
        .expect("put after restart");
    assert_eq!(size, data.len() as u64);
    assert_eq!(get_bytes(&*store, "db/2/dump").await.unwrap(), data);
    // Close the store's pooled connections first: Garage waits for them before exiting.
    drop(store);
    g2.stop();
    assert!(!dir.exists());
}
