//! The applier: one message at a time, in stream order. Runs of inserts into one table are
//! held and sent together (COPY); everything else is a prepared statement, cached per
//! (relation, operation, column set), sent without waiting for its answer (`pipe`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::memory::Trim;
use super::sql::{self, Locate, Table};
use super::target::{self, Mapped, Role};

mod pipe;
mod rows;
use super::triggers::{self, Guard, TriggerMode};
use super::{Bounds, CommitPoint, ReplayError, ReplayFailure, ReplayReport, Stop};
use crate::capture::pgoutput::{Message, Relation, Tuple, Value};
use crate::source::Lsn;
use pipe::{Outcome, Pipeline};

/// Settings pinned as the capture pins them, so every value's text reads back as written.
/// `synchronous_commit = off`: a replayed commit does not wait for its WAL flush (the largest
/// cost of a small transaction). Safe here: a crash of the target mid-replay already means a
/// failed restore, re-run from the anchor; nothing reads the target as durable before the
/// replay has finished (and the fingerprints after it read what the server holds).
const SESSION: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET bytea_output = hex; \
    SET row_security = off; SET statement_timeout = 0; SET lock_timeout = 0; \
    SET idle_in_transaction_session_timeout = 0; SET synchronous_commit = off";

/// A held run of inserts is sent once it reaches this many rows or bytes (memory bound).
const RUN_MAX_ROWS: usize = 5_000;
const RUN_MAX_BYTES: usize = 8 << 20;
/// Runs shorter than this go as prepared INSERTs (a COPY costs a round trip of its own).
const COPY_MIN_ROWS: usize = 3;

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The stop point is reached: feed no more.
    Stop,
}

/// The open source transaction.
#[derive(Debug, Clone, Copy)]
struct Txn {
    point: CommitPoint,
    /// False for a transaction before `Bounds::from`: read, not applied.
    apply: bool,
}

/// A source relation as replay knows it.
struct Rel {
    source: Relation,
    mapped: Arc<Mapped>,
}

/// A held run of inserts into one relation.
struct Run {
    relid: u32,
    mapped: Arc<Mapped>,
    rows: Vec<Tuple>,
    bytes: usize,
    lsn: Lsn,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Op {
    Insert,
    Update(Vec<usize>),
    Delete,
}

pub struct Applier<'c> {
    client: &'c Client,
    bounds: Bounds,
    role: Role,
    mode: TriggerMode,
    guard: Guard,
    types: HashMap<u32, (String, String)>,
    relations: HashMap<u32, Rel>,
    statements: HashMap<(u32, Op, Option<Locate>), Statement>,
    txn: Option<Txn>,
    run: Option<Run>,
    /// Statements sent, their answers not yet read.
    pipe: Pipeline<'c>,
    /// Tables the target's own cascades deleted from in this transaction (per-table mode).
    cascaded: HashSet<u32>,
    report: ReplayReport,
    started: Instant,
    stopped: bool,
    /// Gives freed memory back now and then (RSS stays flat over a long stream).
    trim: Trim,
}

/// A text value as a query parameter, its bytes as the source wrote them (no UTF-8 pass).
#[derive(Debug)]
struct TextParam<'a>(Option<&'a [u8]>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            None => Ok(IsNull::Yes),
            Some(b) => {
                out.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }
    to_sql_checked!();
}

/// A column's value as text, or why it cannot be one.
fn text(v: &Value, lsn: Lsn) -> Result<Option<&[u8]>, ReplayError> {
    match v {
        Value::Null => Ok(None),
        Value::Text(b) => Ok(Some(b)),
        Value::Binary(_) => Err(ReplayError::stream(
            lsn,
            "a binary column value: replay reads text values (pgoutput without 'binary')",
        )),
        Value::UnchangedToast => Err(ReplayError::stream(
            lsn,
            "an unchanged-TOAST marker where a value is required",
        )),
    }
}

impl<'c> Applier<'c> {
    /// Pin the session, choose how triggers are kept quiet. The client must not be inside a
    /// transaction.
    pub async fn start(client: &'c Client, bounds: Bounds) -> Result<Applier<'c>, ReplayError> {
        client
            .batch_execute(SESSION)
            .await
            .map_err(|e| ReplayError::db("setting up the replay session", None, &e))?;
        let role = Role::read(client).await?;
        let mode = triggers::choose_mode(client).await?;
        Ok(Applier {
            client,
            bounds,
            role,
            mode,
            guard: Guard::default(),
            types: HashMap::new(),
            relations: HashMap::new(),
            statements: HashMap::new(),
            txn: None,
            run: None,
            pipe: Pipeline::default(),
            cascaded: HashSet::new(),
            report: ReplayReport {
                trigger_mode: Some(mode),
                ..Default::default()
            },
            started: Instant::now(),
            stopped: false,
            trim: Trim::default(),
        })
    }

    pub fn trigger_mode(&self) -> TriggerMode {
        self.mode
    }

    /// The report so far.
    pub fn report(&self) -> &ReplayReport {
        &self.report
    }

    /// Apply one message of the stream, at WAL position `lsn`.
    pub async fn apply(&mut self, lsn: Lsn, msg: Message) -> Result<Flow, ReplayError> {
        if self.stopped {
            return Ok(Flow::Stop);
        }
        self.trim.tick();
        if !matches!(msg, Message::Insert { .. }) {
            self.flush_run().await?;
        }
        match msg {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let point = CommitPoint {
                    lsn: final_lsn,
                    xid,
                    time: commit_time,
                };
                return self.begin(lsn, point).await;
            }
            Message::Commit { commit_lsn, .. } => self.commit(lsn, commit_lsn).await?,
            Message::Relation(rel) => self.relation(rel).await?,
            Message::Type {
                oid,
                namespace,
                name,
            } => {
                self.types.insert(oid, (namespace, name));
            }
            Message::Insert { relid, new } => {
                if self.applying(lsn)? {
                    self.insert(lsn, relid, new).await?;
                }
            }
            Message::Update { relid, old, new } => {
                if self.applying(lsn)? {
                    self.update(lsn, relid, old, new).await?;
                }
            }
            Message::Delete { relid, old } => {
                if self.applying(lsn)? {
                    self.delete(lsn, relid, old).await?;
                }
            }
            Message::Truncate { options, relids } => {
                if self.applying(lsn)? {
                    self.truncate(lsn, options, &relids).await?;
                }
            }
            // Marks and heartbeats are the caller's; origins do not change what to apply.
            Message::LogicalMessage { .. } | Message::Origin { .. } => {}
        }
        Ok(Flow::Continue)
    }

    /// Whether the open transaction is applied; a change outside one is not pgoutput's.
    fn applying(&self, lsn: Lsn) -> Result<bool, ReplayError> {
        match self.txn {
            Some(t) => Ok(t.apply),
            None => Err(ReplayError::stream(lsn, "a change outside a transaction")),
        }
    }

    async fn begin(&mut self, lsn: Lsn, point: CommitPoint) -> Result<Flow, ReplayError> {
        if let Some(open) = self.txn {
            return Err(ReplayError::stream(
                lsn,
                format!(
                    "transaction {} begins inside transaction {}",
                    point.xid, open.point.xid
                ),
            ));
        }
        let past = match self.bounds.stop {
            Stop::End => false,
            Stop::Lsn(l) => point.lsn > l,
            Stop::Time(t) => point.time > t,
        };
        if past {
            self.stopped = true;
            self.report.first_not_applied = Some(point);
            return Ok(Flow::Stop);
        }
        let apply = self.bounds.from.is_none_or(|from| point.lsn >= from);
        if apply {
            let client = self.client;
            let begin = async move {
                client
                    .batch_execute("BEGIN")
                    .await
                    .map_err(|e| ReplayError::db("BEGIN", Some(lsn), &e))?;
                Ok(Outcome::Begun)
            };
            self.send(begin.boxed(), 0).await?;
        }
        self.txn = Some(Txn { point, apply });
        Ok(Flow::Continue)
    }

    async fn commit(&mut self, lsn: Lsn, commit_lsn: Lsn) -> Result<(), ReplayError> {
        // The transaction stays open until its statements are checked: a failure before
        // then rolls it back (`abort`).
        let Some(txn) = self.txn else {
            return Err(ReplayError::stream(lsn, "a Commit without its Begin"));
        };
        if commit_lsn != txn.point.lsn {
            return Err(ReplayError::stream(
                lsn,
                format!(
                    "transaction {} commits at {commit_lsn}, its Begin said {}",
                    txn.point.xid, txn.point.lsn
                ),
            ));
        }
        if !txn.apply {
            self.txn = None;
            self.report.skipped_transactions += 1;
            return Ok(());
        }
        // Every statement's answer is checked (a missing row is divergence) before COMMIT
        // goes out; its own answer is read with the next transaction's.
        self.drain().await?;
        self.txn = None;
        self.cascaded.clear();
        let client = self.client;
        let commit = async move {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| ReplayError::db("COMMIT", Some(lsn), &e))?;
            Ok(Outcome::Committed(txn.point))
        };
        self.send(commit.boxed(), 0).await
    }

    /// Map (or re-map, when it changed) a source relation onto its target table.
    async fn relation(&mut self, rel: Relation) -> Result<(), ReplayError> {
        if self
            .relations
            .get(&rel.oid)
            .is_some_and(|r| r.source == rel)
        {
            return Ok(());
        }
        self.drain().await?;
        let mapped = target::map(self.client, &rel, &self.types, self.role).await?;
        self.guard
            .silence(
                self.client,
                mapped.table.oid,
                &mapped.table.display,
                self.mode,
            )
            .await?;
        if self.mode == TriggerMode::PerTable {
            // The target's own cascades run in this mode: a delete here fires the triggers of
            // the tables it reaches, before the stream names them.
            for (oid, display) in &mapped.cascade_children {
                self.guard
                    .silence(self.client, *oid, display, self.mode)
                    .await?;
            }
        }
        self.statements.retain(|k, _| k.0 != rel.oid);
        self.relations.insert(
            rel.oid,
            Rel {
                source: rel,
                mapped: Arc::new(mapped),
            },
        );
        Ok(())
    }

    fn mapped(&self, lsn: Lsn, relid: u32) -> Result<Arc<Mapped>, ReplayError> {
        self.relations
            .get(&relid)
            .map(|r| r.mapped.clone())
            .ok_or_else(|| {
                ReplayError::stream(
                    lsn,
                    format!("a change to relation {relid} before its Relation message"),
                )
            })
    }

    /// The cached prepared statement for (relation, operation, columns).
    async fn statement(
        &mut self,
        lsn: Lsn,
        relid: u32,
        table: &Table,
        op: Op,
        locate: Option<Locate>,
    ) -> Result<Statement, ReplayError> {
        let key = (relid, op, locate);
        if let Some(s) = self.statements.get(&key) {
            return Ok(s.clone());
        }
        self.drain().await?;
        let (text, params) = match (&key.1, &key.2) {
            (Op::Insert, _) => (sql::insert(table), table.columns.len()),
            (Op::Update(set), Some(loc)) => (
                sql::update(table, set, loc),
                set.len() + loc.columns().len(),
            ),
            (Op::Delete, Some(loc)) => (sql::delete(table, loc), loc.columns().len()),
            _ => unreachable!("updates and deletes always locate a row"),
        };
        let types = vec![Type::TEXT; params];
        let s = self
            .client
            .prepare_typed(&text, &types)
            .await
            .map_err(|e| {
                ReplayError::db(
                    &format!("preparing a statement on {}", table.display),
                    Some(lsn),
                    &e,
                )
            })?;
        self.statements.insert(key, s.clone());
        Ok(s)
    }

    /// Hold an insert; a run of them goes to the server together.
    async fn insert(&mut self, lsn: Lsn, relid: u32, new: Tuple) -> Result<(), ReplayError> {
        if self.run.as_ref().is_some_and(|r| r.relid != relid) {
            self.flush_run().await?;
        }
        let mapped = self.mapped(lsn, relid)?;
        if new.len() != mapped.table.columns.len() {
            return Err(ReplayError::stream(
                lsn,
                format!(
                    "an insert into {} with {} columns, its Relation has {}",
                    mapped.table.display,
                    new.len(),
                    mapped.table.columns.len()
                ),
            ));
        }
        let size: usize = new
            .iter()
            .map(|v| match v {
                Value::Text(b) | Value::Binary(b) => b.len() + 1,
                _ => 3,
            })
            .sum();
        let run = self.run.get_or_insert_with(|| Run {
            relid,
            mapped,
            rows: Vec::new(),
            bytes: 0,
            lsn,
        });
        run.rows.push(new);
        run.bytes += size;
        if run.rows.len() >= RUN_MAX_ROWS || run.bytes >= RUN_MAX_BYTES {
            self.flush_run().await?;
        }
        Ok(())
    }
}

impl<'c> Applier<'c> {
    /// Send the held run of inserts: COPY for a run, a prepared INSERT for a row or two.
    async fn flush_run(&mut self) -> Result<(), ReplayError> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        if run.rows.len() >= COPY_MIN_ROWS {
            self.drain().await?;
            copy_run(self.client, &run).await?;
            self.report.rows_inserted += run.rows.len() as u64;
            return Ok(());
        }
        let st = self
            .statement(run.lsn, run.relid, &run.mapped.table, Op::Insert, None)
            .await?;
        let (lsn, bytes) = (run.lsn, run.bytes / run.rows.len());
        for row in run.rows {
            let (client, st, mapped) = (self.client, st.clone(), run.mapped.clone());
            let insert = async move {
                let params = row
                    .iter()
                    .map(|v| text(v, lsn).map(TextParam))
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let n = client.execute(&st, &refs).await.map_err(|e| {
                    let doing = format!("inserting into {}", mapped.table.display);
                    ReplayError::db(&doing, Some(lsn), &e)
                })?;
                Ok(Outcome::Inserted(n))
            };
            self.send(insert.boxed(), bytes).await?;
        }
        Ok(())
    }

    fn close_report(&mut self) {
        self.report.elapsed_secs = self.started.elapsed().as_secs_f64();
    }

    /// The stream ended (or the stop point was reached): put the triggers back, report.
    pub async fn finish(mut self) -> Result<super::ReplayReport, ReplayFailure> {
        if let Err(e) = self.flush_run().await {
            return Err(self.abort(e).await);
        }
        if let Err(e) = self.drain().await {
            return Err(self.abort(e).await);
        }
        if let Some(t) = self.txn {
            let e = ReplayError::Stream {
                lsn: None,
                detail: format!(
                    "the stream ended inside transaction {} (commit {}): it was not applied",
                    t.point.xid, t.point.lsn
                ),
            };
            return Err(self.abort(e).await);
        }
        self.report.triggers_not_restored = self.guard.restore(self.client).await;
        reset_session(self.client).await;
        self.close_report();
        Ok(self.report)
    }

    /// Stop after a failure: roll back the open transaction, put the triggers back.
    pub async fn abort(mut self, error: ReplayError) -> ReplayFailure {
        self.pipe.clear();
        if self.txn.is_some_and(|t| t.apply) {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        self.run = None;
        self.report.triggers_not_restored = self.guard.restore(self.client).await;
        reset_session(self.client).await;
        self.close_report();
        ReplayFailure {
            error,
            report: self.report,
        }
    }
}

/// Back to the session's defaults, then one durable commit: WAL is flushed in order, so every
/// replayed commit (made with `synchronous_commit = off`) is on disk once it is.
async fn reset_session(client: &Client) {
    let _ = client
        .batch_execute(
            "RESET session_replication_role; RESET synchronous_commit; \
             SELECT pg_catalog.txid_current()",
        )
        .await;
}

/// A run of inserts through COPY (one statement, however many rows).
async fn copy_run(client: &Client, run: &Run) -> Result<(), ReplayError> {
    use futures::SinkExt;
    let t = &run.mapped.table;
    let mut buf = Vec::with_capacity(run.bytes + run.rows.len());
    for row in &run.rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            sql::copy_value(&mut buf, text(v, run.lsn)?);
        }
        buf.push(b'\n');
    }
    let db = |e: tokio_postgres::Error| {
        ReplayError::db(
            &format!("copying rows into {}", t.display),
            Some(run.lsn),
            &e,
        )
    };
    let sink = client
        .copy_in::<_, bytes::Bytes>(&sql::copy_in(t))
        .await
        .map_err(db)?;
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from(buf)).await.map_err(db)?;
    sink.as_mut().finish().await.map_err(db)?;
    Ok(())
}
