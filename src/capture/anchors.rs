//! The anchored backups the capture asks for while it streams: after a coverage gap (the new
//! slot's changes need a base), after a schema change (points after it replay only onto a
//! dump with the new schema) and after `auto_add` added tables (their earlier rows). A task beside the runner, so the stream never waits for a dump;
//! it runs the backup engine (`crate::backup`, anchored because capture is enabled) and closes
//! the schema change's not-replayable window at the new anchor's cut.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backup::{self, BackupOptions};
use crate::catalog::replayable::NotReplayable;
use crate::catalog::segments::SchemaChange;
use crate::catalog::Repository;
use crate::config::Settings;
use crate::error::Result;
use crate::source::Lsn;
use crate::telemetry::capture_events::CaptureNotReplayable;

/// Why an anchor is wanted.
#[derive(Debug, Clone)]
pub enum AnchorWhy {
    /// A gap ended here: the capture goes on from a new slot.
    Gap(Lsn),
    /// A segment closed with this schema-change marker (its window is recorded, open).
    SchemaChange(SchemaChange),
    /// `auto_add` put these tables into the publication: their earlier rows are only in a
    /// dump taken from now on.
    TablesAdded(Vec<String>),
}

/// One anchored backup the capture took, as the run reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnchorTaken {
    pub reason: String,
    pub backup_id: Option<String>,
    pub cut_lsn: Option<Lsn>,
    pub error: Option<String>,
}

pub struct Anchors {
    tx: mpsc::UnboundedSender<AnchorWhy>,
    task: JoinHandle<Vec<AnchorTaken>>,
}

impl Anchors {
    pub fn start(settings: Settings, repo: Repository, database: String) -> Anchors {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(settings, repo, database, rx));
        Anchors { tx, task }
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<AnchorWhy> {
        self.tx.clone()
    }

    /// Wait for the backups asked for so far (the runner has stopped asking).
    pub async fn finish(self) -> Vec<AnchorTaken> {
        drop(self.tx);
        self.task.await.unwrap_or_default()
    }
}

/// One backup for every request waiting when it starts: its cut is after all of them.
async fn serve(
    settings: Settings,
    repo: Repository,
    database: String,
    mut rx: mpsc::UnboundedReceiver<AnchorWhy>,
) -> Vec<AnchorTaken> {
    let mut taken = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut why = vec![first];
        while let Ok(w) = rx.try_recv() {
            why.push(w);
        }
        let reason = why
            .iter()
            .map(|w| match w {
                AnchorWhy::Gap(at) => format!("gap ending at {at}"),
                AnchorWhy::SchemaChange(c) => {
                    format!("schema change of {}.{} at {}", c.namespace, c.name, c.lsn)
                }
                AnchorWhy::TablesAdded(t) => {
                    format!("tables added to the capture: {}", t.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(database = %database, reason = %reason, "capture: taking an anchored backup");
        let t = match anchored_backup(&settings, &database).await {
            Ok((id, cut)) => AnchorTaken {
                reason,
                backup_id: Some(id),
                cut_lsn: cut,
                error: None,
            },
            Err(e) => AnchorTaken {
                reason,
                backup_id: None,
                cut_lsn: None,
                error: Some(e.message),
            },
        };
        if let Err(e) = close_windows(&repo, &database, &why, &t).await {
            tracing::error!(database = %database, error = %e.message, "capture: could not close a not-replayable window");
        }
        taken.push(t);
    }
    taken
}

async fn anchored_backup(settings: &Settings, database: &str) -> Result<(String, Option<Lsn>)> {
    let opts = BackupOptions {
        database: Some(database.to_string()),
        show_progress: false,
        lock_source: true,
        labelling: Default::default(),
    };
    let report = backup::run(settings, &opts, CancellationToken::new()).await?;
    let (_, r) = report.results.into_iter().next().ok_or_else(|| {
        crate::error::PgdrError::internal(format!("no backup of '{database}' was attempted"))
    })?;
    let m = r?;
    Ok((m.id.to_string(), m.snapshot.cut_lsn))
}

/// A schema change's window ends at the new anchor's cut; without an anchored backup it stays
/// open, and that needs a person.
async fn close_windows(
    repo: &Repository,
    database: &str,
    why: &[AnchorWhy],
    t: &AnchorTaken,
) -> Result<()> {
    for w in why {
        let AnchorWhy::SchemaChange(c) = w else {
            continue;
        };
        let detail = format!("{}.{}", c.namespace, c.name);
        let event = CaptureNotReplayable {
            database: database.to_string(),
            from: c.lsn,
            to: t.cut_lsn,
            reason: format!("schema change of {detail}"),
        };
        event.emit();
        let Some(cut) = t.cut_lsn else { continue };
        repo.write_not_replayable(&window(database, c, Some((cut, t.backup_id.clone()))))
            .await?;
    }
    Ok(())
}

/// The window of a schema change: open (`anchor` None) or closed at an anchor's cut.
pub fn window(
    database: &str,
    c: &SchemaChange,
    anchor: Option<(Lsn, Option<String>)>,
) -> NotReplayable {
    let (to, anchor_backup) = anchor.map_or((None, None), |(cut, id)| (Some(cut), id));
    NotReplayable {
        format_version: crate::catalog::format::replayable::NOT_REPLAYABLE_FORMAT,
        database: database.to_string(),
        from: c.lsn,
        to,
        reason: crate::catalog::replayable::NotReplayableReason::SchemaChange,
        detail: format!("{}.{}", c.namespace, c.name),
        anchor_backup,
        recorded_at: chrono::Utc::now(),
    }
}
