//! Events of the change capture that need a person: a coverage gap opened (changes lost), a
//! schema change left a window that cannot be replayed. Each is logged at once where it
//! happens (`capture run` or the daemon) and can be turned into a webhook notification; the
//! metrics of capture belong to `status`/`metrics`, not here.

use chrono::{DateTime, Utc};

use super::webhook::Notification;
use crate::source::Lsn;

/// Changes between `from` and `to` are not in the repository: the capture went on from a new
/// slot, and a new anchored backup makes later points restorable again.
#[derive(Debug, Clone)]
pub struct CaptureGapOpened {
    pub database: String,
    pub from: Lsn,
    pub to: Lsn,
    /// The gap's cause as stored (`slot-missing`, `slot-lost`, `slot-ahead`).
    pub cause: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

impl CaptureGapOpened {
    pub fn emit(&self) {
        tracing::error!(
            database = %self.database,
            from = %self.from,
            to = %self.to,
            cause = %self.cause,
            detail = %self.detail,
            "ALERT capture gap: changes in this range are lost; capturing again from a new slot, a new anchored backup follows"
        );
    }

    /// The webhook body: a failed capture job, with the range and cause.
    pub fn notification(&self) -> Notification {
        Notification {
            source: "pgdr",
            database: self.database.clone(),
            job: "capture".into(),
            outcome: "failed",
            error: Some(format!(
                "capture gap {} to {}: {} ({})",
                self.from, self.to, self.cause, self.detail
            )),
            summary: Some("capturing again from a new slot; a new anchored backup follows".into()),
            started_at: self.at,
            finished_at: self.at,
            duration_seconds: 0.0,
            host: crate::catalog::records::hostname(),
        }
    }
}

/// Points from `from` to the next anchor are not replayable (a schema change, or an anchored
/// backup that could not be taken).
#[derive(Debug, Clone)]
pub struct CaptureNotReplayable {
    pub database: String,
    pub from: Lsn,
    pub to: Option<Lsn>,
    pub reason: String,
}

impl CaptureNotReplayable {
    pub fn emit(&self) {
        match self.to {
            Some(to) => tracing::warn!(
                database = %self.database, from = %self.from, to = %to, reason = %self.reason,
                "points in this range are not replayable; later ones are (a new anchor)"
            ),
            None => tracing::error!(
                database = %self.database, from = %self.from, reason = %self.reason,
                "ALERT points after this position are not replayable until an anchored backup succeeds: run `pgdr backup`"
            ),
        }
    }
}
