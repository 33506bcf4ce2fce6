//! The transport of the change stream (logical decoding), behind pgdr's own trait: the capture
//! runner and the tests see raw pgoutput messages with their WAL positions, whatever crate speaks
//! the replication protocol underneath (swappable without touching the stored format).

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::Lsn;
use crate::error::Result;

/// One item of the change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One pgoutput (protocol version 1) message, byte for byte as pgoutput encodes it
    /// (Begin, Commit and logical Message included, even where the transport crate parsed
    /// them), with the WAL position the server sent it at (XLogData's `wal_start`).
    Message { lsn: Lsn, data: Bytes },
    /// The server is alive and has sent everything before `wal_end`: an idle stream still
    /// moves "covered until" forward.
    KeepAlive {
        wal_end: Lsn,
        server_time: DateTime<Utc>,
    },
}

/// A stream of changes from one logical replication slot, started at a position pgdr chose
/// (its durable position in the repository).
pub trait ChangeSource: Send {
    /// The next change; `None` when the server ended the stream.
    fn next(&mut self) -> impl Future<Output = Result<Option<Change>>> + Send;

    /// Everything before `durable` is stored in the repository: the server may release the
    /// WAL for it. Called only after the segment's catalog entry is written, never on receipt.
    fn ack(&mut self, durable: Lsn);
}
