//! One segment on its way into the repository: frames go through a bounded channel into the
//! one streaming pipeline (sha256 → zstd → age → sha256 → store), so a segment of any size,
//! a huge transaction included, never sits in memory whole.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::segment::{encode_end, encode_frame, Header};
use crate::catalog::{Key, Receipt, Repository};
use crate::codec::{EncodeParams, EncodeStats};
use crate::error::{PgdrError, Result};
use crate::pipeline::{self, Uploaded};
use crate::source::Lsn;

/// Plain bytes gathered before they are handed to the encoder.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight: with the pipeline's own, what a segment can hold in memory.
const DEPTH: usize = 4;

/// `None` is the clean end: a writer that stops without it fails the upload, so a cut-off
/// segment is never stored as whole.
type Item = Option<Bytes>;

struct ChannelReader {
    rx: mpsc::Receiver<Item>,
    cur: Bytes,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Some(b)) => self.cur = b,
                Some(None) => self.done = true,
                None => {
                    return Err(io::Error::other(
                        "the capture stopped before the segment's end",
                    ))
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

pub struct SegmentUpload {
    tx: mpsc::Sender<Item>,
    buf: Vec<u8>,
    task: JoinHandle<Result<Uploaded<io::Sink>>>,
    /// Plain bytes written so far (header and frames).
    pub plain_bytes: u64,
    pub frames: u64,
}

impl SegmentUpload {
    /// Start storing the segment `key`; its header goes first.
    pub fn start(
        repo: &Repository,
        key: Key,
        header: Header,
        params: Arc<EncodeParams>,
    ) -> SegmentUpload {
        let (tx, rx) = mpsc::channel(DEPTH);
        let reader = ChannelReader {
            rx,
            cur: Bytes::new(),
            done: false,
        };
        let repo = repo.clone();
        let task =
            tokio::spawn(
                async move { pipeline::upload(&repo, &key, reader, params, io::sink()).await },
            );
        let buf = header.encode();
        SegmentUpload {
            tx,
            plain_bytes: buf.len() as u64,
            buf,
            task,
            frames: 0,
        }
    }

    pub async fn frame(&mut self, lsn: Lsn, data: &[u8]) -> Result<()> {
        encode_frame(&mut self.buf, lsn, data);
        self.plain_bytes += 12 + data.len() as u64;
        self.frames += 1;
        if self.buf.len() >= CHUNK {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<()> {
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        if self.tx.send(Some(chunk)).await.is_err() {
            // The upload stopped: its error is the cause.
            return Err(self.failure().await);
        }
        Ok(())
    }

    async fn failure(&mut self) -> PgdrError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => PgdrError::internal("the segment upload ended early"),
            Err(e) => PgdrError::internal(format!("segment upload task: {e}")),
        }
    }

    /// Write the end frame and wait until the object is stored.
    pub async fn finish(mut self, end: Lsn) -> Result<(Receipt, EncodeStats)> {
        self.buf.extend(encode_end(end));
        self.plain_bytes += 12;
        self.send().await?;
        if self.tx.send(None).await.is_err() {
            return Err(self.failure().await);
        }
        let up = self
            .task
            .await
            .map_err(|e| PgdrError::internal(format!("segment upload task: {e}")))??;
        Ok((up.receipt, up.stats))
    }
}
