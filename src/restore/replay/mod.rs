//! Replay: apply a decoded change stream (pgoutput v1, in commit order) onto a target
//! database, one target transaction per source transaction, up to a stop point. The input is
//! any stream of `(Lsn, Message)`; where the messages come from (segments in the repository,
//! a test's slot) is the caller's business.
//!
//! Guarantees: rows are located by replica identity and a change that finds no row is
//! divergence (the target is not the source's past: stop, naming where); triggers do not fire
//! twice (`triggers`); the stop rule is PostgreSQL's `recovery_target_*` inclusive rule on
//! pgoutput's `commit_lsn` / commit time.

use std::fmt;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio_postgres::Client;

use crate::capture::pgoutput::Message;
use crate::error::{Cause, PgdrError};
use crate::source::Lsn;

pub mod after;
mod apply;
mod memory;
pub mod sql;
mod target;
pub mod triggers;

pub use apply::{Applier, Flow};
pub use triggers::TriggerMode;

/// Which transactions to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// Skip transactions whose commit LSN is below this (an anchored dump's cut: the dump
    /// holds exactly those). Their Relation and Type messages still count.
    pub from: Option<Lsn>,
    pub stop: Stop,
}

/// Where to stop: before the first transaction that commits after the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stop {
    /// Everything the stream holds.
    #[default]
    End,
    /// Transactions whose `commit_lsn` is at most this (the commit record at L included).
    Lsn(Lsn),
    /// Transactions whose commit time is at most this.
    Time(DateTime<Utc>),
}

/// A source transaction's commit, as the stream names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CommitPoint {
    pub lsn: Lsn,
    pub xid: u32,
    pub time: DateTime<Utc>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The last transaction applied (committed on the target).
    pub last_applied: Option<CommitPoint>,
    /// The first transaction left out by the stop rule, when the stream went past the point.
    pub first_not_applied: Option<CommitPoint>,
    pub transactions: u64,
    /// Transactions before `Bounds::from` (already in the dump).
    pub skipped_transactions: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub tables_truncated: u64,
    /// Stream deletes whose row the target's own ON DELETE CASCADE had already removed
    /// (per-table trigger mode only, where foreign-key cascades still run).
    pub deletes_done_by_cascade: u64,
    pub elapsed_secs: f64,
    pub trigger_mode: Option<TriggerMode>,
    /// Statements that would put triggers back and failed: the operator must run them.
    pub triggers_not_restored: Vec<String>,
}

impl ReplayReport {
    pub fn rows(&self) -> u64 {
        self.rows_inserted + self.rows_updated + self.rows_deleted
    }
    pub fn rows_per_sec(&self) -> f64 {
        self.rows() as f64 / self.elapsed_secs.max(1e-6)
    }
    pub fn transactions_per_sec(&self) -> f64 {
        self.transactions as f64 / self.elapsed_secs.max(1e-6)
    }
}

/// Why replay stopped early; the code that reacts (restore, the chain proof) matches the
/// variant.
#[derive(Debug, Clone)]
pub enum ReplayError {
    /// An UPDATE or DELETE found no row: the target is not the source at that point.
    Divergence {
        lsn: Lsn,
        table: String,
        key: String,
        operation: &'static str,
    },
    /// A relation the stream names does not match the target (missing table or column,
    /// another type): a schema change the dump does not hold.
    Schema {
        table: String,
        detail: String,
    },
    /// The applying role may not do what replay requires.
    Refused {
        what: String,
        fix: String,
    },
    /// The stream itself is not what pgoutput sends (a change outside a transaction, an
    /// unknown relation, binary values).
    Stream {
        lsn: Option<Lsn>,
        detail: String,
    },
    /// The input stream failed (reading a segment).
    Input(PgdrError),
    Database {
        lsn: Option<Lsn>,
        error: PgdrError,
    },
}

impl ReplayError {
    pub(crate) fn db(doing: &str, lsn: Option<Lsn>, e: &tokio_postgres::Error) -> ReplayError {
        let mut error = PgdrError::database(format!("{doing}: {}", super::db_message(e)));
        if let Some(c) = e.code() {
            error = error.caused_by(Cause::Sql(c.clone()));
        }
        ReplayError::Database { lsn, error }
    }

    pub(crate) fn stream(lsn: Lsn, detail: impl Into<String>) -> ReplayError {
        ReplayError::Stream {
            lsn: Some(lsn),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Divergence {
                lsn,
                table,
                key,
                operation,
            } => write!(
                f,
                "divergence at LSN {lsn}, table {table}, key {key}: the {operation} found no row on the target"
            ),
            ReplayError::Schema { table, detail } => {
                write!(f, "replay cannot apply changes to table {table}: {detail}")
            }
            ReplayError::Refused { what, fix } => write!(f, "replay refused: {what}; {fix}"),
            ReplayError::Stream {
                lsn: Some(lsn),
                detail,
            } => write!(f, "change stream at LSN {lsn}: {detail}"),
            ReplayError::Stream { lsn: None, detail } => write!(f, "change stream: {detail}"),
            ReplayError::Input(e) => write!(f, "reading the change stream: {e}"),
            ReplayError::Database {
                lsn: Some(lsn),
                error,
            } => write!(f, "replay at LSN {lsn}: {error}"),
            ReplayError::Database { lsn: None, error } => write!(f, "replay: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<ReplayError> for PgdrError {
    fn from(e: ReplayError) -> PgdrError {
        let msg = e.to_string();
        match e {
            ReplayError::Divergence { .. } => PgdrError::corrupt(msg).hint(
                "the target was changed after the dump, or the dump and the stream do not belong together: restore the anchor again and replay onto it untouched",
            ),
            ReplayError::Schema { .. } => PgdrError::corrupt(msg).hint(
                "the source's schema changed after the anchor: replay from the next anchored backup",
            ),
            ReplayError::Refused { .. } => PgdrError::database(msg),
            ReplayError::Stream { .. } => PgdrError::corrupt(msg),
            ReplayError::Input(mut inner) => {
                inner.message = msg;
                inner
            }
            ReplayError::Database { error, .. } => {
                let mut out = PgdrError::database(msg);
                out.cause = error.cause;
                out
            }
        }
    }
}

/// A replay that stopped early: why, and what it had done (the transactions before the
/// failure stay committed on the target; triggers were put back, see the report).
#[derive(Debug, Clone)]
pub struct ReplayFailure {
    pub error: ReplayError,
    pub report: ReplayReport,
}

impl fmt::Display for ReplayFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for ReplayFailure {}

/// Apply `changes` onto the target behind `client` within `bounds`: the whole replay, triggers
/// put back at the end, also after a failure.
pub async fn replay<S>(
    client: &Client,
    changes: S,
    bounds: Bounds,
) -> Result<ReplayReport, ReplayFailure>
where
    S: Stream<Item = Result<(Lsn, Message), PgdrError>>,
{
    let mut applier = Applier::start(client, bounds)
        .await
        .map_err(|error| ReplayFailure {
            error,
            report: ReplayReport::default(),
        })?;
    let mut changes = std::pin::pin!(changes);
    while let Some(item) = changes.next().await {
        let step = match item {
            Ok((lsn, m)) => applier.apply(lsn, m).await,
            Err(e) => Err(ReplayError::Input(e)),
        };
        match step {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => break,
            Err(e) => return Err(applier.abort(e).await),
        }
    }
    applier.finish().await
}
