//! The stored change stream as a stream of decoded messages, segment after segment, for
//! replay: each segment read through the pipeline (stored sha256, age, zstd) and checked against
//! its entry, never whole in memory (a bounded channel between the decoding thread and the
//! consumer).

use std::io::{self, Write};
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;

use super::pgoutput::{self, Message};
use super::segment::Decoder;
use crate::catalog::segments::SegmentEntry;
use crate::catalog::Repository;
use crate::error::{PgdrError, Result};
use crate::pipeline;
use crate::source::Lsn;

type Item = Result<(Lsn, Message)>;

/// Decodes frames as the bytes arrive and hands each message on; a consumer that went away
/// ends the download (BrokenPipe).
struct Sink {
    decoder: Decoder,
    tx: mpsc::Sender<Item>,
    key: String,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let tx = &self.tx;
        let key = &self.key;
        self.decoder.feed(data, &mut |f| {
            let item = pgoutput::decode(&f.data)
                .map(|m| (f.lsn, m))
                .map_err(|e| PgdrError::corrupt(format!("{key}: message at {}: {e}", f.lsn)));
            tx.blocking_send(item)
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
        })?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every message of `entries` (contiguous segments, oldest first), in stream order.
pub fn messages(
    repo: Repository,
    entries: Vec<SegmentEntry>,
    identities: Arc<Vec<age::x25519::Identity>>,
) -> impl Stream<Item = Item> {
    let (tx, rx) = mpsc::channel::<Item>(1024);
    tokio::spawn(async move {
        for e in entries {
            if let Err(err) = one(&repo, &e, identities.clone(), tx.clone()).await {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
}

async fn one(
    repo: &Repository,
    entry: &SegmentEntry,
    identities: Arc<Vec<age::x25519::Identity>>,
    tx: mpsc::Sender<Item>,
) -> Result<()> {
    let key = entry.object_key();
    let sink = Sink {
        decoder: Decoder::new(),
        tx,
        key: key.to_string(),
    };
    let (stats, sink) = pipeline::download(
        repo,
        &key,
        Some(entry.stored.sha256.clone()),
        identities,
        sink,
    )
    .await?;
    let (header, end) = sink
        .decoder
        .finish()
        .map_err(|e| PgdrError::corrupt(format!("{key}: {e}")))?;
    if stats.plain_sha256 != entry.plain.sha256 || header.start != entry.start || end != entry.end {
        return Err(PgdrError::corrupt(format!(
            "{key}: the object does not match its entry (run `pgdr capture check`)"
        )));
    }
    Ok(())
}
