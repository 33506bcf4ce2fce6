//! `auto_add`: tables created after `capture enable` join the publication without an
//! operator. The capture job reconciles periodically (every segment age, so at about each
//! segment boundary): tables that have a replica identity and are not yet published are added
//! with `ALTER PUBLICATION ... ADD TABLE` (through the admin connection when configured, since
//! it needs the tables' owner), then recorded in the capture state's table list and in the run
//! report. Tables without an identity are reported once with the ALTER that would include
//! them, never changed. A refused ALTER (not the owner, no admin connection) is reported with
//! the statement an operator would run; the capture itself goes on.
//!
//! Changes to a new table before it is added are not in the stream: the next anchored dump
//! holds them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use super::preflight;
use super::setup::{configured_admin, run_setup};
use crate::catalog::format::capture::{CaptureState, LeftOut};
use crate::catalog::Repository;
use crate::config::Database;
use crate::error::Result;

/// One reconcile that found something new.
#[derive(Debug, Clone, Serialize)]
pub struct AutoAdded {
    pub at: DateTime<Utc>,
    /// Tables now in the publication (empty when the statement was refused).
    pub tables: Vec<String>,
    /// The statement run, or the one an operator must run when `error` is set.
    pub statement: Option<String>,
    pub error: Option<String>,
    /// New tables left out: no replica identity; each with its fix.
    pub left_out: Vec<LeftOut>,
}

/// The reconcile's memory across rounds: what it already reported, so it says it once.
#[derive(Default)]
pub struct Reconciler {
    reported: BTreeSet<String>,
}

impl Reconciler {
    /// Add the new tables of `db` to the publication and the state in the repository.
    pub async fn round(
        &mut self,
        repo: &Repository,
        db: &Database,
        client: &Client,
    ) -> Result<Option<AutoAdded>> {
        let Some(mut state) = repo.capture_state(&db.name).await? else {
            return Ok(None);
        };
        let (tables, left_out) = preflight::tables(client).await?;
        let known: BTreeSet<&String> = state.tables.iter().collect();
        let new: Vec<String> = tables
            .into_iter()
            .filter(|t| !known.contains(t) && !self.reported.contains(t))
            .collect();
        let was_left: BTreeSet<&String> = state.left_out.iter().map(|l| &l.table).collect();
        let new_left: Vec<LeftOut> = left_out
            .into_iter()
            .filter(|l| !was_left.contains(&l.table) && !self.reported.contains(&l.table))
            .collect();
        if new.is_empty() && new_left.is_empty() {
            return Ok(None);
        }
        self.reported
            .extend(new_left.iter().map(|l| l.table.clone()));
        let mut out = AutoAdded {
            at: Utc::now(),
            tables: Vec::new(),
            statement: None,
            error: None,
            left_out: new_left.clone(),
        };
        if !new.is_empty() {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {};",
                state.publication,
                new.join(", ")
            );
            out.statement = Some(sql.clone());
            match run_setup(db, client, configured_admin(db), &[sql]).await {
                Ok(()) => out.tables = new,
                Err(e) => {
                    // Said once; the next enable (or an operator's ALTER) takes it from here.
                    self.reported.extend(new);
                    out.error = Some(e.to_string());
                    tracing::warn!(event = "capture_auto_add_refused", database = %db.name, "{e}");
                }
            }
        }
        record(repo, &mut state, &out).await?;
        Ok(Some(out))
    }
}

/// The state's lists follow the publication.
async fn record(repo: &Repository, state: &mut CaptureState, added: &AutoAdded) -> Result<()> {
    if added.tables.is_empty() && added.left_out.is_empty() {
        return Ok(());
    }
    state.tables.extend(added.tables.iter().cloned());
    state.tables.sort();
    state.tables.dedup();
    state.left_out.extend(added.left_out.iter().cloned());
    repo.save_capture_state(state).await?;
    tracing::info!(
        event = "capture_auto_add",
        database = %state.database,
        tables = ?added.tables,
        left_out = added.left_out.len(),
        "publication reconciled"
    );
    Ok(())
}
