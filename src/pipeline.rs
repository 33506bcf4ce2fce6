//! The one streaming pipeline that backup, verify, drill and restore share.
//!
//! Upload: source (AsyncRead) → blocking thread [tap, sha256, zstd, age] → bounded channel →
//! store. Download: store → sha256 check → blocking thread [age, zstd, sha256] → sink. The
//! channel holds at most `DEPTH` chunks, so a slow store pushes back on pg_dump and memory
//! does not grow with the database.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::catalog::{ByteStream, Key, Receipt, Repository};
use crate::codec::{self, DecodeStats, EncodeParams, EncodeStats};
use crate::error::{from_io, Kind, PgdrError, Result};

/// Chunks in flight between the encoder and the store.
const DEPTH: usize = 4;
/// Size of the chunks handed to the store.
const OUT_CHUNK: usize = 1024 * 1024;

/// A `Write` that hands fixed-size chunks to an async consumer. If it is dropped without
/// `finish()` (an error or a panic in the encoder), the consumer receives an error item, so a
/// truncated stream can never be mistaken for a complete one.
struct ChannelWriter {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        ChannelWriter {
            tx: Some(tx),
            buf: BytesMut::with_capacity(OUT_CHUNK),
        }
    }

    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        let tx = self.tx.as_ref().expect("not finished");
        tx.blocking_send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped reading"))
    }

    fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.tx = None;
        Ok(())
    }

    fn fail(mut self, e: &io::Error) {
        let _ = self.send(Err(io::Error::new(e.kind(), e.to_string())));
        self.tx = None;
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = OUT_CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.buf.reserve(OUT_CHUNK);
            self.send(Ok(chunk))?;
        }
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Err(io::Error::other("the encoder stopped before the end")));
        }
    }
}

fn channel_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Result of storing one object.
pub struct Uploaded<T> {
    pub receipt: Receipt,
    pub stats: EncodeStats,
    /// The tap, handed back so the caller can read what it collected.
    pub tap: T,
}

/// Encode `source` (read on a blocking thread) into `key`. `tap` sees the plaintext (e.g. the archive parser). Any error
/// of the source (pg_dump failing, a cancel) aborts the store write: nothing appears at `key`.
pub async fn upload<S, T>(
    repo: &Repository,
    key: &Key,
    source: S,
    params: Arc<EncodeParams>,
    mut tap: T,
) -> Result<Uploaded<T>>
where
    S: std::io::Read + Send + 'static,
    T: Write + Send + 'static,
{
    let (tx, rx) = mpsc::channel(DEPTH);
    let encoder = tokio::task::spawn_blocking(move || {
        let input = source;
        let mut out = ChannelWriter::new(tx);
        match codec::encode(input, &mut out, &params, &mut tap) {
            Ok((stats, _)) => out.finish().map(|_| (stats, tap)),
            Err(e) => {
                out.fail(&e);
                Err(e)
            }
        }
    });
    let put = repo.put_object(key, channel_stream(rx));
    let (put, enc) = tokio::join!(put, encoder);
    let enc = enc.map_err(|e| PgdrError::internal(format!("encoder thread: {e}")))?;
    match (put, enc) {
        (Ok(receipt), Ok((stats, tap))) => Ok(Uploaded {
            receipt,
            stats,
            tap,
        }),
        // The store failed first and the encoder only noticed: the store's error is the cause.
        (Err(pe), Err(ee)) if ee.kind() == io::ErrorKind::BrokenPipe => Err(pe),
        (_, Err(ee)) => Err(from_io(ee, format_args!("encoding {key}"), Kind::Internal)),
        (Err(pe), Ok(_)) => Err(pe),
    }
}

/// Stream `key` from the store, check its stored sha256 (when known), decrypt and decompress
/// into `sink`. The sink runs on a blocking thread.
pub async fn download<W>(
    repo: &Repository,
    key: &Key,
    expected_sha256: Option<String>,
    identities: Arc<Vec<age::x25519::Identity>>,
    mut sink: W,
) -> Result<(DecodeStats, W)>
where
    W: Write + Send + 'static,
{
    let raw = repo.get_object(key).await?;
    let checked = sha_checked(raw, key.to_string(), expected_sha256);
    let reader = StreamReader::new(checked);
    let task = tokio::task::spawn_blocking(move || {
        let input = SyncIoBridge::new(reader);
        codec::decode(input, &mut sink, &identities).map(|st| (st, sink))
    });
    let res = task
        .await
        .map_err(|e| PgdrError::internal(format!("decoder thread: {e}")))?;
    res.map_err(|e| {
        // A sink that stopped reading (a child that exited) is not damage in the object.
        let kind = if e.kind() == io::ErrorKind::BrokenPipe {
            Kind::Tool
        } else {
            Kind::Corrupt
        };
        from_io(e, format_args!("reading {key}"), kind)
    })
}

/// Re-encrypt `from` into `to` for `recipients` (rekey): stored bytes checked against
/// `expected_sha256` on the way in, never decompressed, streamed with bounded memory.
pub async fn reencrypt(
    repo: &Repository,
    from: &Key,
    to: &Key,
    expected_sha256: String,
    identities: Arc<Vec<age::x25519::Identity>>,
    recipients: Arc<Vec<age::x25519::Recipient>>,
) -> Result<Receipt> {
    let raw = repo.get_object(from).await?;
    let reader = StreamReader::new(sha_checked(raw, from.to_string(), Some(expected_sha256)));
    let (tx, rx) = mpsc::channel(DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx);
        let r = codec::reencrypt(
            SyncIoBridge::new(reader),
            &mut out,
            &identities,
            &recipients,
        );
        match r {
            Ok(_) => out.finish(),
            Err(e) => {
                out.fail(&e);
                Err(e)
            }
        }
    });
    let (put, enc) = tokio::join!(repo.put_object(to, channel_stream(rx)), task);
    let enc = enc.map_err(|e| PgdrError::internal(format!("rekey thread: {e}")))?;
    match (put, enc) {
        (Ok(receipt), Ok(())) => Ok(receipt),
        (Err(pe), Err(ee)) if ee.kind() == io::ErrorKind::BrokenPipe => Err(pe),
        (_, Err(ee)) => Err(from_io(
            ee,
            format_args!("re-encrypting {from}"),
            Kind::Crypto,
        )),
        (Err(pe), Ok(())) => Err(pe),
    }
}

/// Like [`download`], into an async writer (a child's stdin, a file).
pub async fn download_to<W>(
    repo: &Repository,
    key: &Key,
    expected_sha256: Option<String>,
    identities: Arc<Vec<age::x25519::Identity>>,
    sink: W,
) -> Result<DecodeStats>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let bridge = SyncIoBridge::new(sink);
    let (stats, mut bridge) = download(repo, key, expected_sha256, identities, bridge).await?;
    tokio::task::spawn_blocking(move || bridge.shutdown())
        .await
        .map_err(|e| PgdrError::internal(e.to_string()))?
        .map_err(|e| from_io(e, format_args!("writing {key}"), Kind::Internal))?;
    Ok(stats)
}

/// Pass chunks through, and at the end fail the stream if the bytes do not hash to what the
/// manifest recorded: corruption in the repository is named as such, not as a decrypt error.
fn sha_checked(raw: ByteStream, key: String, expected: Option<String>) -> ByteStream {
    let Some(expected) = expected else {
        return raw;
    };
    struct St {
        raw: ByteStream,
        sha: Option<Sha256>,
        key: String,
        expected: String,
    }
    let st = St {
        raw,
        sha: Some(Sha256::new()),
        key,
        expected,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        let sha = st.sha.as_mut()?;
        match st.raw.next().await {
            Some(Ok(c)) => {
                sha.update(&c);
                Some((Ok(c), st))
            }
            Some(Err(e)) => {
                st.sha = None;
                Some((Err(e), st))
            }
            None => {
                let got = hex::encode(st.sha.take().expect("present").finalize());
                if got == st.expected {
                    None
                } else {
                    let e = PgdrError::corrupt(format!(
                        "object {}: sha256 mismatch (stored {}..., computed {}...)",
                        st.key,
                        &st.expected[..12.min(st.expected.len())],
                        &got[..12]
                    ))
                    .hint("the object changed after it was written; use another backup and check the storage");
                    Some((Err(crate::error::to_io(e)), st))
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    /// A full disk under the sink (here /dev/full) reaches the caller as
    /// `io::ErrorKind::StorageFull`, so the restore spool can say where room is needed
    /// without reading the message; the message stays the operating system's.
    #[tokio::test]
    async fn a_full_sink_keeps_its_io_kind() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::catalog::Repository::new(Arc::new(crate::store::fs::FsStore::new(
            dir.path().to_path_buf(),
        )));
        let key = crate::catalog::Key::object(
            "db",
            &crate::catalog::BackupId::from_time(chrono::Utc::now()),
            "dump",
        );
        let id = age::x25519::Identity::generate();
        let params = Arc::new(EncodeParams {
            compression: Compression {
                level: 1,
                threads: 0,
            },
            recipients: vec![id.to_public()],
        });
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let up = upload(&repo, &key, std::io::Cursor::new(data), params, io::sink())
            .await
            .unwrap();
        let full = tokio::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .await
            .unwrap();
        let e = download_to(
            &repo,
            &key,
            Some(up.receipt.sha256),
            Arc::new(vec![id]),
            full,
        )
        .await
        .unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
        assert!(e.message.contains("No space left on device"), "{e}");
    }
}
