//! The capture runner: reads a [`ChangeSource`], groups whole transactions into segments,
//! stores each through the pipeline, writes its catalog entry last and only then acknowledges
//! its end to the server ("durable in the repository" = acknowledged, never "received").
//!
//! A segment closes at a transaction boundary after `max_age` or `max_bytes`, or before a
//! transaction that brings a changed Relation (schema change). Transactions are held in memory
//! only up to [`HOLD_BYTES`] (or `max_bytes` if smaller); a larger one streams into the open
//! segment as it arrives, message by message.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::anchors::{window, AnchorTaken, AnchorWhy};
use super::pause::{Pause, PausePoint};
use super::pgoutput::{self, Message};
use super::schema::{Emitted, Schema, Seen};
use super::segment::{Header, FORMAT_VERSION};
use super::upload::SegmentUpload;
use crate::catalog::segments::{
    ClosedBy, Commit, Digest, ForeignMessage, SchemaChange, SegmentEntry, CAPTURE_FORMAT,
};
use crate::catalog::{Key, Repository};
use crate::codec::EncodeParams;
use crate::error::{PgdrError, Result};
use crate::source::changes::{Change, ChangeSource};
use crate::source::Lsn;

/// The prefix of every logical message pgdr writes (`pgdr.heartbeat`, marks).
pub const PGDR_PREFIX: &str = "pgdr";
pub const HEARTBEAT_PREFIX: &str = "pgdr.heartbeat";
/// The prefix of the sequence samples (format agreed in CDC.md, read by the replay).
pub const SEQUENCES_PREFIX: &str = "pgdr.sequences";

/// Most plain bytes of one transaction held before it streams into the open segment. Holding
/// only lets a schema change seen early in a transaction close the segment before it; the
/// transaction lands in the same segment either way. Held messages cost about twice their
/// size (the transport's buffers), so holding a whole 16 MiB segment's worth took 35 MB of
/// pgdr's 64 MiB budget (scripts/bench-capture.sh --only bigtxn: 69 MB peak, 35 MB at 1 MiB).
pub const HOLD_BYTES: u64 = 1024 * 1024;

/// When segments close and how often an idle stream is woken.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_age: Duration,
    pub max_bytes: u64,
    /// A heartbeat message is written after this long without any change.
    pub heartbeat_every: Duration,
    /// A sample of every readable sequence is written into the stream this often.
    pub sequence_sample: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_age: Duration::from_secs(10),
            max_bytes: 16 * 1024 * 1024,
            heartbeat_every: Duration::from_secs(10),
            sequence_sample: Duration::from_secs(5),
        }
    }
}

/// Writes a `pgdr.heartbeat` logical message into the stream (`pg_logical_emit_message`) and
/// returns its LSN, so the runner can tell its own messages from foreign ones.
pub trait Heartbeat: Send {
    fn emit(&mut self) -> impl Future<Output = Result<Lsn>> + Send;

    /// Write a `pgdr.sequences` sample (non-transactional) and return its LSN; None where
    /// this writer samples nothing.
    fn sample_sequences(&mut self) -> impl Future<Output = Result<Option<Lsn>>> + Send {
        async { Ok(None) }
    }
}

/// What the runner is capturing, and from where.
pub struct Target {
    pub repo: Repository,
    pub database: String,
    pub system_id: u64,
    pub timeline: u32,
    pub params: Arc<EncodeParams>,
}

/// One committed segment, as the run reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stored {
    pub start: Lsn,
    pub end: Lsn,
    pub transactions: u64,
    pub stored_bytes: u64,
    pub closed_by: ClosedBy,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    pub database: String,
    pub started_at: Lsn,
    pub durable: Lsn,
    pub segments: Vec<Stored>,
    pub heartbeats: u64,
    pub foreign_messages: Vec<ForeignMessage>,
    /// Transactions already stored by an earlier run, received again and dropped.
    pub duplicates_skipped: u64,
    /// Most plain bytes of one transaction held in memory at once.
    pub peak_buffered: u64,
    pub sequence_samples: u64,
    /// The coverage gap this run found at its start and recorded (then a new slot).
    pub gap: Option<crate::catalog::segments::Gap>,
    /// The anchored backups this run asked for (after a gap, after schema changes).
    pub anchors: Vec<AnchorTaken>,
    /// Tables the auto_add reconcile added to the publication (or found it could not).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auto_added: Vec<super::auto_add::AutoAdded>,
}

/// A transaction being received.
struct Txn {
    commit_lsn: Lsn,
    xid: u32,
    /// Messages not yet written (all of them, until the transaction outgrows `max_bytes`).
    held: Vec<(Lsn, Bytes)>,
    held_bytes: u64,
    /// Part of it is already in the open segment.
    spilled: bool,
    /// Its commit LSN is before the durable position: stored by an earlier run.
    duplicate: bool,
    /// Row changes (insert, update, delete) in it.
    rows: u64,
    pgdr_messages: Vec<Lsn>,
    foreign: Vec<ForeignMessage>,
}

/// The segment being written.
struct Open {
    upload: SegmentUpload,
    start: Lsn,
    opened: Instant,
    emitted: Emitted,
    transactions: u64,
    rows: u64,
    first_commit: Option<Commit>,
    last_commit: Option<Commit>,
    pgdr_messages: Vec<Lsn>,
    foreign: Vec<ForeignMessage>,
    schema_change: Option<SchemaChange>,
}

pub struct Runner<S: ChangeSource, H: Heartbeat> {
    target: Target,
    limits: Limits,
    source: S,
    heartbeat: H,
    schema: Schema,
    /// Everything before it is committed in the repository (and acknowledged).
    durable: Lsn,
    /// Everything before it has been received (commits, keepalives outside a transaction).
    covered: Lsn,
    seg: Option<Open>,
    txn: Option<Txn>,
    /// LSNs of the messages pgdr wrote that the stream has not shown yet.
    ours: BTreeSet<Lsn>,
    /// A schema change seen while no segment was open: it goes into the next one.
    pending_change: Option<SchemaChange>,
    last_change: Instant,
    last_sample: Option<Instant>,
    /// Where anchored backups are asked for (after a schema change); None in unit tests.
    anchors: Option<tokio::sync::mpsc::UnboundedSender<AnchorWhy>>,
    pause: Option<Pause>,
    report: RunReport,
}

impl<S: ChangeSource, H: Heartbeat> Runner<S, H> {
    /// A runner that goes on from `start` (the end of the newest segment, or the slot's
    /// position for a new capture), after the segment `previous` if there is one.
    pub fn new(
        target: Target,
        limits: Limits,
        source: S,
        heartbeat: H,
        start: Lsn,
        previous: Option<&SegmentEntry>,
    ) -> Self {
        let mut schema = Schema::default();
        if let Some(p) = previous {
            schema.resume_after(&p.relations);
        }
        let report = RunReport {
            database: target.database.clone(),
            started_at: start,
            durable: start,
            ..Default::default()
        };
        Runner {
            target,
            limits,
            source,
            heartbeat,
            schema,
            durable: start,
            covered: start,
            seg: None,
            txn: None,
            ours: BTreeSet::new(),
            pending_change: None,
            last_change: Instant::now(),
            last_sample: None,
            anchors: None,
            pause: None,
            report,
        }
    }

    /// Ask `tx` for an anchored backup whenever a segment closes with a schema change.
    pub fn ask_anchors(&mut self, tx: tokio::sync::mpsc::UnboundedSender<AnchorWhy>) {
        self.anchors = Some(tx);
    }

    /// The crash tests' hook ([`Pause`]).
    pub fn pause_at(&mut self, pause: Option<Pause>) {
        self.pause = pause;
    }

    /// A message pgdr itself wrote elsewhere (a mark): not foreign when it shows up.
    pub fn expect_message(&mut self, lsn: Lsn) {
        self.ours.insert(lsn);
    }

    /// Run until the stream ends or `stop` resolves; the open segment is then committed if it
    /// ends at a transaction boundary. The source's `next` must be cancel-safe.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> Result<RunReport> {
        tokio::pin!(stop);
        let tick_every = self
            .limits
            .heartbeat_every
            .min(self.limits.max_age)
            .min(self.limits.sequence_sample)
            / 2;
        let mut tick = tokio::time::interval(tick_every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                c = self.source.next() => match c? {
                    Some(c) => self.on_change(c).await?,
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await?,
            }
        }
        if self.txn.is_none() && self.seg.is_some() {
            self.close(ClosedBy::Stop).await?;
        }
        Ok(self.report)
    }

    async fn on_tick(&mut self) -> Result<()> {
        if self.txn.is_none() {
            if let Some(s) = &self.seg {
                if s.opened.elapsed() >= self.limits.max_age {
                    self.close(ClosedBy::Age).await?;
                }
            }
        }
        if self.last_change.elapsed() >= self.limits.heartbeat_every {
            let lsn = self.heartbeat.emit().await?;
            self.ours.insert(lsn);
            self.report.heartbeats += 1;
            self.last_change = Instant::now();
        }
        if self
            .last_sample
            .is_none_or(|t| t.elapsed() >= self.limits.sequence_sample)
        {
            self.last_sample = Some(Instant::now());
            if let Some(lsn) = self.heartbeat.sample_sequences().await? {
                self.ours.insert(lsn);
                self.report.sequence_samples += 1;
            }
        }
        Ok(())
    }

    async fn on_change(&mut self, c: Change) -> Result<()> {
        self.last_change = Instant::now();
        let (lsn, data) = match c {
            Change::KeepAlive { wal_end, .. } => {
                if self.txn.is_none() {
                    self.covered = self.covered.max(wal_end);
                }
                return Ok(());
            }
            Change::Message { lsn, data } => (lsn, data),
        };
        let msg = pgoutput::decode(&data).map_err(|e| {
            PgdrError::tool(format!("change stream at {lsn}: {e}"))
                .hint("the server sent something pgdr cannot store; nothing after the last segment was acknowledged")
        })?;
        match msg {
            Message::Begin { final_lsn, xid, .. } => {
                self.begin(final_lsn, xid)?;
                self.hold(lsn, data).await
            }
            Message::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => {
                self.hold(lsn, data).await?;
                self.commit(commit_lsn, end_lsn, commit_time).await
            }
            Message::LogicalMessage {
                transactional: false,
                lsn: mlsn,
                prefix,
                content,
            } => {
                // A mark (`pgdr mark`) is pgdr's own when its name has a mark object.
                if super::marks::is_mark(
                    &self.target.repo,
                    &self.target.database,
                    &prefix,
                    &content,
                )
                .await
                {
                    self.expect_message(mlsn);
                }
                self.loose_message(lsn, data, mlsn, &prefix).await
            }
            Message::Relation(rel) => {
                if self.txn.as_ref().is_some_and(|t| t.duplicate) {
                    // Not stored again, but later transactions rely on it.
                    self.schema.record(rel, data, None);
                    return Ok(());
                }
                if self.schema.compare(rel.oid, &data) == Seen::Changed {
                    self.schema_changed(&rel).await?;
                }
                self.hold(lsn, data).await
            }
            Message::Type { oid, .. } if self.txn.as_ref().is_some_and(|t| t.duplicate) => {
                self.schema.record_type(oid, data, None);
                Ok(())
            }
            Message::LogicalMessage {
                lsn: mlsn, prefix, ..
            } => {
                self.sort_message(mlsn, &prefix, true);
                self.hold(lsn, data).await
            }
            Message::Insert { .. } | Message::Update { .. } | Message::Delete { .. } => {
                if let Some(t) = self.txn.as_mut() {
                    t.rows += 1;
                }
                self.hold(lsn, data).await
            }
            _ => self.hold(lsn, data).await,
        }
    }

    fn begin(&mut self, final_lsn: Lsn, xid: u32) -> Result<()> {
        if self.txn.is_some() {
            return Err(PgdrError::tool(format!(
                "change stream: Begin of transaction {xid} inside another transaction"
            )));
        }
        self.txn = Some(Txn {
            commit_lsn: final_lsn,
            xid,
            held: Vec::new(),
            held_bytes: 0,
            spilled: false,
            duplicate: final_lsn < self.durable,
            rows: 0,
            pgdr_messages: Vec::new(),
            foreign: Vec::new(),
        });
        Ok(())
    }

    /// A message of the current transaction: held, or streamed once the transaction is big
    /// (then every later message of it goes straight through).
    async fn hold(&mut self, lsn: Lsn, data: Bytes) -> Result<()> {
        let max = self.limits.max_bytes.min(HOLD_BYTES);
        let txn = self.txn.as_mut().ok_or_else(|| {
            PgdrError::tool(format!(
                "change stream at {lsn}: a transaction's message outside Begin/Commit"
            ))
        })?;
        if txn.duplicate {
            return Ok(());
        }
        txn.held_bytes += data.len() as u64;
        txn.held.push((lsn, data));
        self.report.peak_buffered = self.report.peak_buffered.max(txn.held_bytes);
        if txn.held_bytes > max || txn.spilled {
            self.spill().await?;
        }
        Ok(())
    }

    /// Write the held part of the current transaction into the open segment.
    async fn spill(&mut self) -> Result<()> {
        let mut txn = self.txn.take().expect("in a transaction");
        self.ensure_open();
        let seg = self.seg.as_mut().expect("open");
        seg.pgdr_messages.append(&mut txn.pgdr_messages);
        seg.foreign.append(&mut txn.foreign);
        for (lsn, data) in txn.held.drain(..) {
            write(&mut self.schema, seg, lsn, data).await?;
        }
        txn.held_bytes = 0;
        txn.spilled = true;
        self.txn = Some(txn);
        Ok(())
    }

    async fn commit(
        &mut self,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let txn = self.txn.as_ref().expect("in a transaction");
        if txn.commit_lsn != commit_lsn {
            return Err(PgdrError::tool(format!(
                "change stream: Commit at {commit_lsn} ends the transaction that began for {}",
                txn.commit_lsn
            )));
        }
        if txn.duplicate {
            self.txn = None;
            self.report.duplicates_skipped += 1;
            return Ok(());
        }
        let (xid, rows) = (txn.xid, txn.rows);
        self.spill().await?;
        self.txn = None;
        let seg = self.seg.as_mut().expect("open");
        let c = Commit {
            lsn: commit_lsn,
            time,
            xid,
        };
        seg.first_commit.get_or_insert_with(|| c.clone());
        seg.last_commit = Some(c);
        seg.transactions += 1;
        seg.rows += rows;
        self.covered = self.covered.max(end_lsn);
        if seg.upload.plain_bytes >= self.limits.max_bytes {
            self.close(ClosedBy::Size).await?;
        } else if seg.opened.elapsed() >= self.limits.max_age {
            self.close(ClosedBy::Age).await?;
        }
        Ok(())
    }

    /// A logical message outside any transaction: a unit on its own.
    async fn loose_message(
        &mut self,
        lsn: Lsn,
        data: Bytes,
        mlsn: Lsn,
        prefix: &str,
    ) -> Result<()> {
        if self.txn.is_some() {
            return Err(PgdrError::tool(format!(
                "change stream at {lsn}: a non-transactional message inside a transaction"
            )));
        }
        if mlsn < self.durable {
            self.report.duplicates_skipped += 1;
            return Ok(());
        }
        self.ensure_open();
        self.sort_message(mlsn, prefix, false);
        let seg = self.seg.as_mut().expect("open");
        write(&mut self.schema, seg, lsn, data).await?;
        self.covered = self.covered.max(mlsn);
        Ok(())
    }

    /// A `pgdr`-prefixed message is pgdr's own only if pgdr recorded writing it.
    fn sort_message(&mut self, mlsn: Lsn, prefix: &str, in_txn: bool) {
        if !prefix.starts_with(PGDR_PREFIX) {
            return;
        }
        let ours = self.ours.remove(&mlsn);
        if !ours {
            tracing::warn!(lsn = %mlsn, prefix, "a pgdr-prefixed message pgdr did not write: ignored for coverage");
            self.report.foreign_messages.push(ForeignMessage {
                lsn: mlsn,
                prefix: prefix.to_string(),
            });
        }
        let (mine, foreign) = match (in_txn, self.txn.as_mut(), self.seg.as_mut()) {
            (true, Some(t), _) => (&mut t.pgdr_messages, &mut t.foreign),
            (_, _, Some(s)) => (&mut s.pgdr_messages, &mut s.foreign),
            _ => return,
        };
        if ours {
            mine.push(mlsn);
        } else {
            foreign.push(ForeignMessage {
                lsn: mlsn,
                prefix: prefix.to_string(),
            });
        }
    }

    /// A changed Relation arrived in the current transaction: close the segment before the
    /// transaction if none of it is stored yet, else mark the segment it is in.
    /// The marker's position is the transaction's commit LSN: the transport gives Relation
    /// messages no position of their own.
    async fn schema_changed(&mut self, rel: &pgoutput::Relation) -> Result<()> {
        let spilled = self.txn.as_ref().is_some_and(|t| t.spilled);
        let lsn = self.txn.as_ref().map_or(self.covered, |t| t.commit_lsn);
        let change = SchemaChange {
            oid: rel.oid,
            namespace: rel.namespace.clone(),
            name: rel.name.clone(),
            lsn,
            inside: spilled,
        };
        tracing::info!(relation = %rel.name, %lsn, "schema change: the next anchored dump makes later points replayable");
        match self.seg.as_mut() {
            Some(s) if spilled => {
                s.schema_change.get_or_insert(change);
            }
            Some(s) => {
                s.schema_change = Some(change);
                self.close(ClosedBy::SchemaChange).await?;
            }
            None => {
                self.pending_change = Some(SchemaChange {
                    inside: true,
                    ..change
                })
            }
        }
        Ok(())
    }

    fn ensure_open(&mut self) {
        if self.seg.is_some() {
            return;
        }
        let t = &self.target;
        let key = Key::Segment {
            database: t.database.clone(),
            start: self.durable,
            tag: None,
        };
        let header = Header::new(self.durable, t.system_id, t.timeline);
        self.seg = Some(Open {
            upload: SegmentUpload::start(&t.repo, key, header, t.params.clone()),
            start: self.durable,
            opened: Instant::now(),
            emitted: Emitted::default(),
            transactions: 0,
            rows: 0,
            first_commit: None,
            last_commit: None,
            pgdr_messages: Vec::new(),
            foreign: Vec::new(),
            schema_change: self.pending_change.take(),
        });
    }

    /// Store the open segment, commit its entry, then acknowledge its end.
    async fn close(&mut self, closed_by: ClosedBy) -> Result<()> {
        let seg = self.seg.take().expect("open");
        let end = self.covered;
        let relations = self.schema.used(&seg.emitted);
        let (receipt, stats) = seg.upload.finish(end).await?;
        Pause::at(&self.pause, PausePoint::AfterUpload).await;
        let t = &self.target;
        let change = seg.schema_change.clone();
        let entry = SegmentEntry {
            format_version: CAPTURE_FORMAT,
            database: t.database.clone(),
            segment_format: FORMAT_VERSION,
            start: seg.start,
            end,
            first_commit: seg.first_commit,
            last_commit: seg.last_commit,
            transactions: seg.transactions,
            rows: Some(seg.rows),
            system_identifier: t.system_id.to_string(),
            timeline: t.timeline,
            plain: Digest {
                bytes: stats.plain_bytes,
                sha256: stats.plain_sha256,
            },
            stored: Digest {
                bytes: receipt.size,
                sha256: receipt.sha256,
            },
            relations,
            closed_by,
            schema_change: seg.schema_change,
            pgdr_messages: seg.pgdr_messages,
            foreign_messages: seg.foreign,
            written_at: chrono::Utc::now(),
            rekeyed: None,
        };
        t.repo.commit_segment(&entry).await?;
        if let Some(c) = change {
            // Open until the anchor closes it: a crash before the anchor leaves it open.
            t.repo
                .write_not_replayable(&window(&t.database, &c, None))
                .await?;
            if let Some(tx) = &self.anchors {
                let _ = tx.send(AnchorWhy::SchemaChange(c));
            }
        }
        Pause::at(&self.pause, PausePoint::AfterEntry).await;
        self.source.ack(end);
        self.durable = end;
        self.report.durable = end;
        self.report.segments.push(Stored {
            start: entry.start,
            end,
            transactions: entry.transactions,
            stored_bytes: entry.stored.bytes,
            closed_by,
        });
        Ok(())
    }
}

/// One message into the segment, after the Type and Relation messages it needs.
async fn write(schema: &mut Schema, seg: &mut Open, lsn: Lsn, data: Bytes) -> Result<()> {
    match data.first() {
        Some(b'R') => {
            if let Ok(Message::Relation(rel)) = pgoutput::decode(&data) {
                schema.record(rel, data.clone(), Some(&mut seg.emitted));
            }
        }
        Some(b'Y') => {
            if let Ok(Message::Type { oid, .. }) = pgoutput::decode(&data) {
                schema.record_type(oid, data.clone(), Some(&mut seg.emitted));
            }
        }
        Some(b'I' | b'U' | b'D') if data.len() >= 5 => {
            let relid = u32::from_be_bytes(data[1..5].try_into().expect("4"));
            for pre in schema.preamble(&[relid], &mut seg.emitted) {
                seg.upload.frame(lsn, &pre).await?;
            }
        }
        Some(b'T') => {
            let relids = pgoutput::decode(&data)
                .map(|m| pgoutput::relid_of(&m))
                .unwrap_or_default();
            for pre in schema.preamble(&relids, &mut seg.emitted) {
                seg.upload.frame(lsn, &pre).await?;
            }
        }
        _ => {}
    }
    seg.upload.frame(lsn, &data).await
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "runner_seq_tests.rs"]
mod seq_tests;
