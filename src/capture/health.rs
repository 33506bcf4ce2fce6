//! How a database's capture is doing, for `pgdr status` and the daemon's metrics and alerts:
//! lag (bytes: the server's WAL position minus pgdr's durable position; seconds: now minus
//! the newest point known durable), the slot (`wal_status`, WAL it retains), the window a
//! restore can reach ("recoverable from the oldest anchored backup to covered until") and the
//! gaps. Read from the repository (the truth of what is durable) and the server (its
//! position and slot); a server that cannot be reached is said, never guessed around.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::format::capture::CaptureState;
use crate::catalog::segments::{Gap, SegmentEntry};
use crate::catalog::{BackupId, Listed, Repository};
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::source::{self, Lsn};

/// Capture lag above this is an alert: the RPO target is minutes, and a healthy capture
/// stays within one segment age plus the upload.
pub const LAG_ALERT: Duration = Duration::from_secs(120);

/// The slot as the server shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotHealth {
    pub name: String,
    /// `reserved`, `extended`, `unreserved`, `lost`; None when the slot does not exist.
    pub wal_status: Option<String>,
    /// `pg_current_wal_lsn() - restart_lsn`: WAL the server keeps for pgdr.
    pub retained_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptureHealth {
    pub database: String,
    /// The server's WAL position now; None when it could not be asked (`server_error`).
    pub server_lsn: Option<Lsn>,
    pub server_error: Option<String>,
    pub slot: Option<SlotHealth>,
    /// Everything before it is durable in the repository (end of the newest segment).
    pub durable: Lsn,
    pub lag_bytes: Option<u64>,
    /// The newest moment known durable: the newest stored commit, or pgdr's own message
    /// (heartbeat) after it.
    pub covered_until: Option<DateTime<Utc>>,
    pub lag_seconds: Option<f64>,
    /// The oldest anchored backup whose cut the stored segments reach.
    pub recoverable_from: Option<DateTime<Utc>>,
    pub recoverable_from_backup: Option<BackupId>,
    pub gaps: Vec<Gap>,
    /// The newest backup, when it is not anchored: (id, why).
    pub not_anchored: NotAnchored,
}

/// What is wrong, one kind per alert the daemon sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    Lag,
    Slot,
    Gap,
    NotAnchored,
    Unreachable,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Lag => "lag",
            AlertKind::Slot => "slot",
            AlertKind::Gap => "gap",
            AlertKind::NotAnchored => "not-anchored",
            AlertKind::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// One line, operator words, with the fix where there is one.
    pub message: String,
}

impl CaptureHealth {
    /// Everything an operator must act on, one line each.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut push = |kind, message: String| out.push(Alert { kind, message });
        if let Some(e) = &self.server_error {
            push(
                AlertKind::Unreachable,
                format!("capture: the server cannot be asked: {e}"),
            );
        }
        if let Some(s) = self.lag_seconds.filter(|s| *s > LAG_ALERT.as_secs_f64()) {
            push(AlertKind::Lag, format!(
                "capture lags {:.0}s behind (alert above {}s){}: is the capture running (`pgdr capture run` or `pgdr daemon`)?",
                s,
                LAG_ALERT.as_secs(),
                self.lag_bytes.map(|b| format!(", {b} bytes of WAL")).unwrap_or_default()
            ));
        }
        match &self.slot {
            Some(s) if s.wal_status.is_none() => push(AlertKind::Slot, format!(
                "capture slot '{}' is missing: changes after {} are lost; run `pgdr capture enable` and `pgdr backup`",
                s.name, self.durable
            )),
            Some(s) if matches!(s.wal_status.as_deref(), Some("unreserved" | "lost")) => push(AlertKind::Slot, format!(
                "capture slot '{}' is {} (the server {} the WAL pgdr still needs); {}",
                s.name,
                s.wal_status.as_deref().unwrap_or_default(),
                if s.wal_status.as_deref() == Some("lost") { "removed" } else { "may remove" },
                "raise max_slot_wal_keep_size and make sure the capture runs"
            )),
            _ => {}
        }
        for g in &self.gaps {
            push(
                AlertKind::Gap,
                format!(
                    "capture gap from {} to {} ({}): points inside it cannot be restored",
                    g.from,
                    g.to,
                    g.detail.as_deref().unwrap_or("no detail")
                ),
            );
        }
        if let Some((id, why)) = &self.not_anchored {
            push(AlertKind::NotAnchored, format!(
                "the newest backup {id} is not anchored ({why}): the change stream cannot be replayed onto it; run `pgdr backup` again"
            ));
        }
        out
    }
}

/// Look at the capture of `db` now. `max_age` is the segment age the runner uses: the
/// heartbeat in the newest segment is at most that much older than the segment's entry.
pub async fn observe(
    repo: &Repository,
    name: &str,
    db: Option<&Database>,
    state: &CaptureState,
    listed: &[Listed],
    max_age: Duration,
    now: DateTime<Utc>,
) -> Result<CaptureHealth> {
    let newest = repo.newest_segment(name).await?;
    let oldest_start = oldest_segment_start(repo, name).await?;
    let gaps = repo.gaps(name).await?;
    let durable = newest.as_ref().map_or(state.start_lsn, |e| e.end);
    // A database known only from the repository is not asked: lag in bytes and the slot
    // stay unknown (said so), lag in seconds is the repository's own.
    let (server_lsn, slot, server_error) = match db {
        None => (None, None, None),
        Some(db) => match server(db, &state.slot).await {
            Ok((lsn, slot)) => (Some(lsn), Some(slot), None),
            Err(e) => (None, None, Some(e.message)),
        },
    };
    let covered_until = newest.as_ref().and_then(|e| covered_at(e, max_age));
    let (anchor, not_anchored) = anchors(listed, oldest_start.unwrap_or(state.start_lsn), &gaps);
    Ok(CaptureHealth {
        database: name.to_string(),
        lag_bytes: server_lsn.map(|s| s.0.saturating_sub(durable.0)),
        lag_seconds: covered_until
            .or(Some(state.enabled_at))
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        server_lsn,
        server_error,
        slot,
        durable,
        covered_until,
        recoverable_from: anchor.as_ref().map(|a| a.1),
        recoverable_from_backup: anchor.map(|a| a.0),
        gaps,
        not_anchored,
    })
}

/// The newest moment the segment proves durable: its last commit, or when it holds pgdr's
/// own messages (heartbeats, written while nothing else happened), the oldest time they can
/// have been written (the segment was open at most `max_age` before its entry).
pub fn covered_at(e: &SegmentEntry, max_age: Duration) -> Option<DateTime<Utc>> {
    let commit = e.last_commit.as_ref().map(|c| c.time);
    let heartbeat = e
        .pgdr_messages
        .iter()
        .any(|m| e.last_commit.as_ref().is_none_or(|c| *m > c.lsn))
        .then(|| e.written_at - chrono::Duration::from_std(max_age).unwrap_or_default());
    commit.max(heartbeat)
}

/// The newest backup when it is not anchored: (id, why).
pub type NotAnchored = Option<(BackupId, String)>;

/// The oldest anchored backup the stored stream reaches (its cut at or after the oldest
/// segment and after every gap), and the newest backup if it is not anchored.
pub fn anchors(
    listed: &[Listed],
    oldest: Lsn,
    gaps: &[Gap],
) -> (Option<(BackupId, DateTime<Utc>)>, NotAnchored) {
    let after_gaps = gaps.iter().map(|g| g.to).max().unwrap_or(Lsn(0));
    let manifests = listed.iter().filter_map(|l| match l {
        Listed::Ok(e) => Some(&e.manifest),
        Listed::Damaged { .. } => None,
    });
    let anchor = manifests
        .clone()
        .filter(|m| {
            m.snapshot
                .cut_lsn
                .is_some_and(|c| c >= oldest && c >= after_gaps)
        })
        .min_by_key(|m| m.snapshot.time)
        .map(|m| (m.id.clone(), m.snapshot.time));
    let not_anchored = manifests.max_by_key(|m| m.snapshot.time).and_then(|m| {
        if m.snapshot.cut_lsn.is_some() {
            return None;
        }
        let why = m.snapshot.not_anchored.as_ref().map_or_else(
            || "taken without an anchor".to_string(),
            |n| n.reason.clone(),
        );
        Some((m.id.clone(), why))
    });
    (anchor, not_anchored)
}

/// The start of the oldest committed segment (keys only: no entry is read).
async fn oldest_segment_start(repo: &Repository, database: &str) -> Result<Option<Lsn>> {
    Ok(repo
        .objects(database)
        .await?
        .into_iter()
        .filter_map(|o| match o.key {
            crate::catalog::Key::SegmentEntry { start, .. } => Some(start),
            _ => None,
        })
        .min())
}

/// The server's WAL position and the slot.
async fn server(db: &Database, slot: &str) -> Result<(Lsn, SlotHealth)> {
    let client = source::connect(db).await?;
    let q = |e: tokio_postgres::Error| PgdrError::database(format!("reading slot '{slot}': {e}"));
    let now: Lsn = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(q)?
        .get::<_, String>(0)
        .parse()?;
    let row = client
        .query_opt(
            "SELECT wal_status, restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(q)?;
    let (wal_status, restart) = match row {
        Some(r) => (
            Some(r.get::<_, Option<String>>(0).unwrap_or_default()),
            r.get::<_, Option<String>>(1)
                .map(|s| s.parse::<Lsn>())
                .transpose()?,
        ),
        None => (None, None),
    };
    Ok((
        now,
        SlotHealth {
            name: slot.to_string(),
            wal_status,
            retained_bytes: restart.map(|r| now.0.saturating_sub(r.0)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::segments::{Commit, GapCause};
    use crate::catalog::testkit::{at, manifest};
    use crate::catalog::Entry;

    fn entry() -> SegmentEntry {
        let golden = format!(
            "{}/tests/fixtures/format/segment-entry-v1.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap()
    }

    #[test]
    fn covered_until_is_the_last_commit_or_a_later_heartbeat_bounded_by_the_segment_age() {
        let mut e = entry();
        e.pgdr_messages.clear();
        e.last_commit = Some(Commit {
            lsn: Lsn(0x200),
            time: at("2026-03-10T12:00:00Z"),
            xid: 9,
        });
        e.written_at = at("2026-03-10T12:00:30Z");
        let age = Duration::from_secs(10);
        assert_eq!(covered_at(&e, age), Some(at("2026-03-10T12:00:00Z")));
        // A heartbeat after the commit: the segment was open at most 10 s before its entry.
        e.pgdr_messages = vec![Lsn(0x300)];
        assert_eq!(covered_at(&e, age), Some(at("2026-03-10T12:00:20Z")));
        // One before the commit proves nothing newer.
        e.pgdr_messages = vec![Lsn(0x100)];
        assert_eq!(covered_at(&e, age), Some(at("2026-03-10T12:00:00Z")));
        e.last_commit = None;
        e.pgdr_messages.clear();
        assert_eq!(covered_at(&e, age), None);
    }

    fn listed(t: &str, cut: Option<u64>) -> Listed {
        let mut m = manifest("app", at(t));
        m.snapshot.cut_lsn = cut.map(Lsn);
        Listed::Ok(Box::new(Entry {
            manifest: m,
            verification: None,
            dump_verification: None,
            keep: None,
            signer: None,
        }))
    }

    #[test]
    fn the_window_starts_at_the_oldest_anchor_the_stream_reaches_after_every_gap() {
        let l = vec![
            listed("2026-03-07T02:00:00Z", Some(0x500)),
            listed("2026-03-08T02:00:00Z", Some(0x1500)),
            listed("2026-03-09T02:00:00Z", Some(0x2500)),
        ];
        let (a, not) = anchors(&l, Lsn(0x1000), &[]);
        assert_eq!(
            a.unwrap().1,
            at("2026-03-08T02:00:00Z"),
            "the stream starts after the first cut"
        );
        assert!(not.is_none());
        let gap = Gap {
            format_version: 1,
            database: "app".into(),
            from: Lsn(0x1800),
            to: Lsn(0x2000),
            cause: GapCause::SlotLost,
            detail: None,
            detected_at: at("2026-03-09T00:00:00Z"),
        };
        let (a, _) = anchors(&l, Lsn(0x1000), &[gap]);
        assert_eq!(
            a.unwrap().1,
            at("2026-03-09T02:00:00Z"),
            "nothing before a gap replays past it"
        );
        let mut l = l;
        l.push(listed("2026-03-10T02:00:00Z", None));
        let (_, not) = anchors(&l, Lsn(0x1000), &[]);
        assert_eq!(not.unwrap().1, "taken without an anchor");
    }

    #[test]
    fn alerts_name_lag_over_two_minutes_a_bad_slot_a_gap_and_an_unanchored_backup() {
        let mut h = CaptureHealth {
            database: "app".into(),
            server_lsn: Some(Lsn(0x2000)),
            server_error: None,
            slot: Some(SlotHealth {
                name: "pgdr_app".into(),
                wal_status: Some("reserved".into()),
                retained_bytes: Some(10),
            }),
            durable: Lsn(0x1000),
            lag_bytes: Some(0x1000),
            covered_until: None,
            lag_seconds: Some(119.0),
            recoverable_from: None,
            recoverable_from_backup: None,
            gaps: vec![],
            not_anchored: None,
        };
        assert!(h.alerts().is_empty(), "{:?}", h.alerts());
        h.lag_seconds = Some(121.0);
        let kinds = |h: &CaptureHealth| h.alerts().iter().map(|a| a.kind).collect::<Vec<_>>();
        assert_eq!(kinds(&h), [AlertKind::Lag]);
        assert!(h.alerts()[0]
            .message
            .starts_with("capture lags 121s behind (alert above 120s), 4096 bytes of WAL"));
        h.lag_seconds = Some(1.0);
        for (status, alert) in [("extended", false), ("unreserved", true), ("lost", true)] {
            h.slot.as_mut().unwrap().wal_status = Some(status.into());
            assert_eq!(kinds(&h) == [AlertKind::Slot], alert, "{status}");
        }
        h.slot.as_mut().unwrap().wal_status = None;
        assert!(h.alerts()[0].message.contains("slot 'pgdr_app' is missing"));
        h.slot = None;
        h.server_error = Some("connection refused".into());
        h.gaps.push(Gap {
            format_version: 1,
            database: "app".into(),
            from: Lsn(1),
            to: Lsn(2),
            cause: GapCause::SlotMissing,
            detail: Some("slot gone".into()),
            detected_at: at("2026-03-09T00:00:00Z"),
        });
        h.not_anchored = Some((
            crate::catalog::BackupId::from_time(at("2026-03-09T00:00:00Z")),
            "blocked".into(),
        ));
        assert_eq!(
            kinds(&h),
            [
                AlertKind::Unreachable,
                AlertKind::Gap,
                AlertKind::NotAnchored
            ]
        );
    }
}
