//! The change capture's objects: a segment's catalog entry
//! (`<db>/capture/segments/<start>.json`, written after its segment object: the commit marker)
//! and a coverage gap (`<db>/capture/gaps/<from>.json`). Format 1. These stored structs are
//! also the runtime types (`catalog::segments` re-exports them): nothing else holds them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::source::Lsn;

/// The format of segment entries and gaps written today.
pub const CAPTURE_FORMAT: u32 = 1;
/// The format of an entry `pgdr rekey` rewrote (it names a tagged object, which a reader of
/// format 1 would not find): readers read up to this one.
pub const REKEYED_FORMAT: u32 = 2;

/// One stored segment: what it covers and how to prove its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSegmentEntry {
    pub format_version: u32,
    pub database: String,
    /// The framing version inside the object (`capture::segment`).
    pub segment_format: u32,
    /// The segment covers the WAL in [start, end): every transaction whose commit lies there.
    pub start: Lsn,
    pub end: Lsn,
    pub first_commit: Option<StoredCommit>,
    pub last_commit: Option<StoredCommit>,
    pub transactions: u64,
    /// Rows inserted, updated and deleted by those transactions (a point plan's count to
    /// replay). Absent in entries written before pgdr counted them: readers of format 1 take
    /// it as unknown, and it is not written when unknown, so those entries stay byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The source cluster (`pg_control_system()`), decimal: a u64 that JSON readers keep exact.
    pub system_identifier: String,
    pub timeline: u32,
    pub plain: StoredDigest,
    pub stored: StoredDigest,
    /// Every relation the segment describes (it re-emits their Relation messages).
    pub relations: Vec<StoredRelation>,
    pub closed_by: StoredClosedBy,
    /// Set when the segment closed because the next change came with a changed Relation:
    /// points from `lsn` on are not replayable onto the previous schema.
    pub schema_change: Option<StoredSchemaChange>,
    /// LSNs of the `pgdr`-prefixed logical messages pgdr wrote (heartbeats, marks) seen here.
    pub pgdr_messages: Vec<Lsn>,
    /// `pgdr`-prefixed messages pgdr did not write: ignored for coverage, reported.
    pub foreign_messages: Vec<StoredForeignMessage>,
    pub written_at: DateTime<Utc>,
    /// Set by `pgdr rekey` (format 2): the object is `<start>.k<tag>.seg.zst.age`, encrypted
    /// to these recipients. Absent as the capture writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekeyed: Option<StoredRekeyed>,
}

/// A segment re-encrypted by `pgdr rekey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRekeyed {
    /// Eight hex digits naming the recipient set, in the object's name.
    pub tag: String,
    pub recipients: Vec<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCommit {
    pub lsn: Lsn,
    pub time: DateTime<Utc>,
    pub xid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDigest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRelation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// sha256 of the Relation message: a later one that differs is a schema change.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredClosedBy {
    Size,
    Age,
    SchemaChange,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchemaChange {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// The changed Relation's position (where the next segment, or this one, goes on).
    pub lsn: Lsn,
    /// The changed Relation came inside a transaction already streamed into this segment.
    pub inside: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredForeignMessage {
    pub lsn: Lsn,
    pub prefix: String,
}

/// Changes between `from` and `to` are not in the repository, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGap {
    pub format_version: u32,
    pub database: String,
    pub from: Lsn,
    pub to: Lsn,
    pub cause: StoredGapCause,
    pub detail: Option<String>,
    pub detected_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredGapCause {
    /// The slot was gone when the capture (re)started.
    SlotMissing,
    /// The slot's confirmed position was past pgdr's durable position.
    SlotAhead,
    /// The server invalidated the slot (`wal_status = lost`).
    SlotLost,
    /// The source cluster changed (system identifier or timeline).
    SourceChanged,
}
