//! Pipelining: the statements of a source transaction go out without waiting for each answer
//! (tokio-postgres sends a request when its future is first polled, and the server runs them
//! in that order); their answers are read in stream order at the next sync point, at the latest
//! before COMMIT goes out. A transaction costs one round trip instead of one per statement,
//! and a COMMIT's own answer is read together with the next transaction's statements.
//!
//! Every semantic of the one-at-a-time applier holds: an UPDATE or DELETE that found no row
//! fails when its answer is read, which is before its transaction's COMMIT is sent, so the
//! transaction is rolled back whole; answers are read in order, so the first failing statement
//! is the one reported (a later one may fail only because of it). Anything else the applier
//! asks the server drains the pipeline first: tokio-postgres hands each answer to its own
//! future through a small channel, and an answer nobody reads would stall the connection.

use std::collections::VecDeque;
use std::task::Poll;

use futures::future::BoxFuture;

use super::Applier;
use crate::restore::replay::{CommitPoint, ReplayError};

/// What a sent statement did, once its answer is read.
#[derive(Debug)]
pub(super) enum Outcome {
    Begun,
    Inserted(u64),
    Updated(u64),
    Deleted(u64),
    /// A DELETE found no row that the target's own ON DELETE CASCADE had removed.
    DeleteDoneByCascade,
    Committed(CommitPoint),
}

/// A statement sent, its answer not yet read (and checked: the future holds the check).
pub(super) type Sent<'c> = BoxFuture<'c, Result<Outcome, ReplayError>>;

/// At most this many statements, or bytes of row values, wait for their answers: the rows are
/// held until then (memory bound); the pipeline is drained to make room.
const MAX_SENT: usize = 1024;
const MAX_SENT_BYTES: usize = 8 << 20;

/// Statements sent, in stream order.
#[derive(Default)]
pub(super) struct Pipeline<'c> {
    sent: VecDeque<Sent<'c>>,
    bytes: usize,
}

impl<'c> Pipeline<'c> {
    fn is_full(&self) -> bool {
        self.sent.len() >= MAX_SENT || self.bytes >= MAX_SENT_BYTES
    }

    /// Poll once (this sends the request), keep it for its answer. A future that is ready at
    /// once (it failed before sending) waits its turn like the others.
    async fn push(&mut self, mut sent: Sent<'c>, bytes: usize) {
        if let Poll::Ready(r) = futures::poll!(sent.as_mut()) {
            sent = Box::pin(std::future::ready(r));
        }
        self.sent.push_back(sent);
        self.bytes += bytes;
    }

    /// Forget what was sent (after a failure: the transaction is rolled back; the server
    /// still runs the requests, the connection drops their answers).
    pub(super) fn clear(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }
}

impl<'c> Applier<'c> {
    /// Send a statement (its answer read later, in order); `bytes` is what it holds in memory.
    pub(super) async fn send(&mut self, sent: Sent<'c>, bytes: usize) -> Result<(), ReplayError> {
        if self.pipe.is_full() {
            self.drain().await?;
        }
        self.pipe.push(sent, bytes).await;
        Ok(())
    }

    /// Read every answer, in order, counting what each did; the first failure stops and is
    /// returned (the rest is forgotten).
    pub(super) async fn drain(&mut self) -> Result<(), ReplayError> {
        while let Some(sent) = self.pipe.sent.pop_front() {
            match sent.await {
                Ok(outcome) => self.account(outcome),
                Err(e) => {
                    self.pipe.clear();
                    return Err(e);
                }
            }
        }
        self.pipe.bytes = 0;
        Ok(())
    }

    fn account(&mut self, outcome: Outcome) {
        let r = &mut self.report;
        match outcome {
            Outcome::Begun => {}
            Outcome::Inserted(n) => r.rows_inserted += n,
            Outcome::Updated(n) => r.rows_updated += n,
            Outcome::Deleted(n) => r.rows_deleted += n,
            Outcome::DeleteDoneByCascade => r.deletes_done_by_cascade += 1,
            Outcome::Committed(point) => {
                r.transactions += 1;
                r.last_applied = Some(point);
            }
        }
    }
}
