//! `pgdr capture check`: is the stored change stream complete? Segments contiguous (each starts
//! where the previous ended), one system identifier and timeline, every checksum good (each
//! segment re-read through the pipeline), every transaction exactly once (commit LSNs strictly
//! increasing across segments); gaps listed with their cause. A command returns this report;
//! the CLI renders it and exits 1 when it is not clean.

use std::sync::Arc;

use serde::Serialize;

use super::read::{read_segment, TxnSeen};
use crate::catalog::segments::{
    ForeignMessage, GapCause, ListedSegment, SchemaChange, SegmentEntry,
};
use crate::catalog::Repository;
use crate::error::Result;
use crate::source::Lsn;

#[derive(Debug, Clone, Serialize)]
pub struct GapReport {
    pub from: Lsn,
    pub to: Lsn,
    /// The recorded cause, or `unrecorded` for a hole nobody explained.
    pub cause: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentProblem {
    pub start: Lsn,
    pub problem: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub database: String,
    pub segments: u64,
    pub transactions: u64,
    /// The stream covers [from, until) apart from the gaps.
    pub from: Option<Lsn>,
    pub until: Option<Lsn>,
    pub system_identifier: Option<String>,
    pub timeline: Option<u32>,
    pub gaps: Vec<GapReport>,
    pub problems: Vec<SegmentProblem>,
    pub schema_changes: Vec<SchemaChange>,
    pub foreign_messages: Vec<ForeignMessage>,
    /// Every stored transaction in stream order (with `--list-transactions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_list: Option<Vec<TxnSeen>>,
}

impl CheckReport {
    /// Clean: no gap, no problem.
    pub fn ok(&self) -> bool {
        self.gaps.is_empty() && self.problems.is_empty()
    }
}

fn cause_name(c: GapCause) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Check every stored segment of `database`.
pub async fn check(
    repo: &Repository,
    database: &str,
    identities: Arc<Vec<age::x25519::Identity>>,
    list_transactions: bool,
) -> Result<CheckReport> {
    let mut r = CheckReport {
        database: database.to_string(),
        transaction_list: list_transactions.then(Vec::new),
        ..Default::default()
    };
    let recorded = repo.gaps(database).await?;
    for g in &recorded {
        r.gaps.push(GapReport {
            from: g.from,
            to: g.to,
            cause: cause_name(g.cause),
            detail: g.detail.clone(),
        });
    }
    let mut last_commit: Option<Lsn> = None;
    for listed in repo.segments(database).await? {
        let e = match listed {
            ListedSegment::Ok(e) => e,
            ListedSegment::Damaged { start, error } => {
                r.problems.push(SegmentProblem {
                    start,
                    problem: error,
                });
                continue;
            }
        };
        let problem = |p: String| SegmentProblem {
            start: e.start,
            problem: p,
        };
        r.segments += 1;
        match r.until {
            None => r.from = Some(e.start),
            Some(prev) if prev == e.start => {}
            Some(prev) if prev < e.start => {
                if !recorded.iter().any(|g| g.from <= prev && g.to >= e.start) {
                    r.gaps.push(GapReport {
                        from: prev,
                        to: e.start,
                        cause: "unrecorded".into(),
                        detail: Some("no segment and no recorded gap covers it".into()),
                    });
                }
            }
            Some(prev) => r.problems.push(problem(format!(
                "starts at {} inside the previous segment (which ends at {prev})",
                e.start
            ))),
        }
        r.until = Some(r.until.map_or(e.end, |u| u.max(e.end)));
        let sys = r
            .system_identifier
            .get_or_insert(e.system_identifier.clone());
        if *sys != e.system_identifier {
            r.problems.push(problem(format!(
                "system identifier {} differs from {sys}: another cluster's changes",
                e.system_identifier
            )));
        }
        let tli = *r.timeline.get_or_insert(e.timeline);
        if tli != e.timeline {
            r.problems.push(problem(format!(
                "timeline {} differs from {tli}",
                e.timeline
            )));
        }
        segment(repo, &e, identities.clone(), &mut r, &mut last_commit).await;
    }
    Ok(r)
}

/// Read one segment back and check what it holds against its entry and the stream so far.
async fn segment(
    repo: &Repository,
    e: &SegmentEntry,
    identities: Arc<Vec<age::x25519::Identity>>,
    r: &mut CheckReport,
    last_commit: &mut Option<Lsn>,
) {
    let problem = |p: String| SegmentProblem {
        start: e.start,
        problem: p,
    };
    r.schema_changes.extend(e.schema_change.clone());
    r.foreign_messages
        .extend(e.foreign_messages.iter().cloned());
    let content = match read_segment(repo, e, identities).await {
        Ok(c) => c,
        Err(err) => {
            r.problems.push(problem(err.to_string()));
            return;
        }
    };
    r.problems
        .extend(content.problems.into_iter().map(&problem));
    for t in content.transactions {
        if last_commit.is_some_and(|l| t.commit_lsn <= l) {
            r.problems.push(problem(format!(
                "transaction {} (commit {}) is not after the previous one ({}): stored twice or out of order",
                t.xid,
                t.commit_lsn,
                last_commit.expect("set")
            )));
        }
        if t.commit_lsn < e.start || t.commit_lsn >= e.end {
            r.problems.push(problem(format!(
                "transaction {} commits at {}, outside the segment's {}..{}",
                t.xid, t.commit_lsn, e.start, e.end
            )));
        }
        *last_commit = Some(t.commit_lsn);
        r.transactions += 1;
        if let Some(l) = r.transaction_list.as_mut() {
            l.push(t);
        }
    }
}
