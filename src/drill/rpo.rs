//! RPO arithmetic over the catalog: the worst data loss of a period, the typical interval
//! between backups, and whether that interval can meet an RPO target. Pure functions.

use chrono::{DateTime, Duration, Utc};

use crate::catalog::records::{Outcome, WorstRpo};
use crate::catalog::{BackupId, Listed};
use crate::progress::human_duration;

/// One backup as far as RPO is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPoint {
    pub id: BackupId,
    pub snapshot: DateTime<Utc>,
    /// Not known bad: its newest verification passed, or it was never verified. A backup whose
    /// newest verification failed, or whose manifest cannot be read, would not have saved us.
    pub restorable: bool,
}

/// The catalog's backups as points (damaged ones, which have no readable snapshot time,
/// at the time of their id, not restorable).
pub fn points(listed: &[Listed]) -> Vec<BackupPoint> {
    listed
        .iter()
        .map(|l| match l {
            Listed::Ok(e) => BackupPoint {
                id: e.manifest.id.clone(),
                snapshot: e.manifest.snapshot.time,
                restorable: e
                    .verification
                    .as_ref()
                    .is_none_or(|v| v.outcome == Outcome::Passed),
            },
            Listed::Damaged { id, .. } => BackupPoint {
                id: id.clone(),
                snapshot: id.time(),
                restorable: false,
            },
        })
        .collect()
}

/// The worst RPO over the `window_days` before `now`: for every moment of the window, the
/// loss a failure then would have caused is the time since the newest restorable backup
/// before it, so the worst is the largest gap between consecutive restorable backups whose
/// later one falls inside the window (the earlier may be older), or the gap from the newest
/// restorable backup to `now`. A stretch before the first backup ever is not counted (the
/// database may not have existed). None when no backup is restorable.
pub fn worst_rpo(points: &[BackupPoint], now: DateTime<Utc>, window_days: u32) -> Option<WorstRpo> {
    let start = now - Duration::days(window_days as i64);
    let in_window = |p: &BackupPoint| p.snapshot >= start && p.snapshot <= now;
    let known_bad_in_window = points
        .iter()
        .filter(|p| in_window(p) && !p.restorable)
        .count();
    let mut good: Vec<&BackupPoint> = points
        .iter()
        .filter(|p| p.restorable && p.snapshot <= now)
        .collect();
    good.sort_by_key(|p| p.snapshot);
    let restorable_in_window = good.iter().filter(|p| in_window(p)).count();
    let newest = *good.last()?;
    let mut worst = WorstRpo {
        seconds: secs(now - newest.snapshot),
        window_days,
        from_backup: newest.id.clone(),
        from: newest.snapshot,
        to_backup: None,
        to: now,
        restorable_in_window,
        known_bad_in_window,
    };
    for pair in good.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.snapshot < start {
            continue;
        }
        let gap = secs(b.snapshot - a.snapshot);
        if gap > worst.seconds {
            worst.seconds = gap;
            worst.from_backup = a.id.clone();
            worst.from = a.snapshot;
            worst.to_backup = Some(b.id.clone());
            worst.to = b.snapshot;
        }
    }
    Some(worst)
}

fn secs(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// How often backups are taken, as the repository shows it: the median gap between
/// consecutive backups among the newest `last` (all backups, good or bad: this is the
/// schedule, not its success). Returns (seconds, number of gaps) or None for fewer than two.
pub fn typical_interval(points: &[BackupPoint], last: usize) -> Option<(f64, usize)> {
    let mut t: Vec<DateTime<Utc>> = points.iter().map(|p| p.snapshot).collect();
    t.sort();
    let t = &t[t.len().saturating_sub(last)..];
    let mut gaps: Vec<f64> = t.windows(2).map(|w| secs(w[1] - w[0])).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(|a, b| a.total_cmp(b));
    let n = gaps.len();
    let median = if n % 2 == 1 {
        gaps[n / 2]
    } else {
        (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0
    };
    Some((median, n))
}

/// Whether the backup schedule can meet the RPO target, in one plain paragraph.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScheduleVerdict {
    /// False when the schedule cannot meet the target (or cannot be judged).
    pub meets_target: bool,
    pub typical_interval_seconds: Option<f64>,
    pub gaps_considered: usize,
    pub rpo_target_seconds: f64,
    pub sentence: String,
}

pub fn schedule_verdict(
    typical: Option<(f64, usize)>,
    worst: Option<&WorstRpo>,
    rpo_target: f64,
) -> ScheduleVerdict {
    let target = human_duration(rpo_target);
    let every = every_minutes(rpo_target);
    let remedy = format!(
        "To meet it, take backups {every} (`pgdr backup` from a timer; practical only while a \
         backup takes well under {target}), or use continuous archiving (WAL archiving / the \
         change-stream feature), which bounds the loss to seconds."
    );
    let (meets, sentence) = match typical {
        None => (
            false,
            format!(
                "The RPO target of {target} cannot be judged against the backup schedule: the \
                 repository holds fewer than two backups, and the loss grows by the minute until \
                 the next one (a nightly backup means an RPO of up to ~24 h). {remedy}"
            ),
        ),
        Some((gap, n)) if gap > rpo_target => (
            false,
            format!(
                "The RPO target of {target} cannot be met by the backup schedule: backups are \
                 taken about every {} (median of the last {n} gaps between backups), so a \
                 failure just before the next backup loses up to ~{} of changes. {remedy}",
                human_duration(gap),
                human_duration(gap)
            ),
        ),
        Some((gap, _)) => match worst {
            Some(w) if w.seconds > rpo_target => (
                true,
                format!(
                    "The backup schedule (about every {}) can meet the RPO target of {target}, \
                     but over the last {} days it did not: the worst RPO was {} (from backup {} \
                     to {}). Look for missed or failed backups in that stretch.",
                    human_duration(gap),
                    w.window_days,
                    human_duration(w.seconds),
                    w.from_backup,
                    w.to_backup
                        .as_ref()
                        .map_or("the drill".to_string(), |b| format!("backup {b}"))
                ),
            ),
            _ => (
                true,
                format!(
                    "The backup schedule (about every {}) meets the RPO target of {target}{}.",
                    human_duration(gap),
                    worst.map_or(String::new(), |w| format!(
                        "; the worst RPO over the last {} days was {}",
                        w.window_days,
                        human_duration(w.seconds)
                    ))
                ),
            ),
        },
    };
    ScheduleVerdict {
        meets_target: meets,
        typical_interval_seconds: typical.map(|t| t.0),
        gaps_considered: typical.map_or(0, |t| t.1),
        rpo_target_seconds: rpo_target,
        sentence,
    }
}

/// "every 5 minutes or more often", "every 30 seconds or more often", "every 2 hours ..."
fn every_minutes(target: f64) -> String {
    if target >= 2.0 * 3600.0 && target % 3600.0 == 0.0 {
        format!("every {} hours or more often", (target / 3600.0) as u64)
    } else if target >= 120.0 {
        format!(
            "every {} minutes or more often",
            (target / 60.0).floor() as u64
        )
    } else if target >= 60.0 {
        "every minute or more often".into()
    } else {
        format!(
            "every {} seconds or more often",
            target.floor().max(1.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn p(t: &str, restorable: bool) -> BackupPoint {
        BackupPoint {
            id: BackupId::from_time(at(t)),
            snapshot: at(t),
            restorable,
        }
    }

    #[test]
    fn worst_rpo_is_the_largest_gap_or_the_age_of_the_newest() {
        let now = at("2026-03-31T12:00:00Z");
        // Nightly at 02:00, one night missed (03-10), one backup known bad (03-20).
        let mut pts = Vec::new();
        for d in 1..=31 {
            if d == 10 {
                continue;
            }
            pts.push(p(&format!("2026-03-{d:02}T02:00:00Z"), d != 20));
        }
        let w = worst_rpo(&pts, now, 30).unwrap();
        // 03-09 → 03-11 (missed night) and 03-19 → 03-21 (the bad one does not count) are both
        // 48 h; the first is named.
        assert_eq!(w.seconds, 48.0 * 3600.0);
        assert_eq!(w.from, at("2026-03-09T02:00:00Z"));
        assert_eq!(w.to, at("2026-03-11T02:00:00Z"));
        assert_eq!(
            w.to_backup,
            Some(BackupId::from_time(at("2026-03-11T02:00:00Z")))
        );
        assert_eq!(w.known_bad_in_window, 1);
        assert_eq!(w.restorable_in_window, 28); // 03-02 .. 03-31 minus 03-10 and 03-20

        // Only the age of the newest: a recent backup, nothing wrong before.
        let pts = vec![
            p("2026-03-31T02:00:00Z", true),
            p("2026-03-31T06:00:00Z", true),
        ];
        let w = worst_rpo(&pts, now, 30).unwrap();
        assert_eq!(w.seconds, 6.0 * 3600.0);
        assert_eq!(w.to_backup, None);
        assert_eq!(w.to, now);
        assert_eq!(w.from_backup, pts[1].id);

        // A gap that starts before the window and ends inside it counts in full.
        let pts = vec![
            p("2026-01-01T00:00:00Z", true),
            p("2026-03-30T00:00:00Z", true),
        ];
        let w = worst_rpo(&pts, now, 30).unwrap();
        assert_eq!(w.from, at("2026-01-01T00:00:00Z"));
        assert_eq!(w.to, at("2026-03-30T00:00:00Z"));
        assert_eq!(w.restorable_in_window, 1);

        // A gap wholly before the window does not.
        let pts = vec![
            p("2025-06-01T00:00:00Z", true),
            p("2026-01-01T00:00:00Z", true),
            p("2026-03-31T11:00:00Z", true),
        ];
        let w = worst_rpo(&pts, now, 30).unwrap();
        assert_eq!(w.from, at("2026-01-01T00:00:00Z"));
        assert_eq!(w.to_backup, Some(pts[2].id.clone()));

        // Nothing restorable: no RPO at all. Backups after `now` are ignored.
        assert_eq!(
            worst_rpo(&[p("2026-03-30T00:00:00Z", false)], now, 30),
            None
        );
        assert_eq!(worst_rpo(&[], now, 30), None);
        let w = worst_rpo(
            &[
                p("2026-03-31T11:00:00Z", true),
                p("2026-03-31T13:00:00Z", true),
            ],
            now,
            30,
        )
        .unwrap();
        assert_eq!(w.seconds, 3600.0);
    }

    #[test]
    fn typical_interval_is_the_median_gap() {
        let pts: Vec<BackupPoint> = (1..=9)
            .map(|d| p(&format!("2026-03-0{d}T02:00:00Z"), true))
            .chain([p("2026-03-09T02:05:00Z", true)]) // one manual run in between
            .collect();
        let (gap, n) = typical_interval(&pts, 30).unwrap();
        assert_eq!(n, 9);
        assert_eq!(gap, 24.0 * 3600.0);
        assert_eq!(typical_interval(&pts[..1], 30), None);
        let (gap, n) = typical_interval(&pts, 2).unwrap();
        assert_eq!((gap, n), (300.0, 1));
    }

    #[test]
    fn schedule_verdicts_say_what_would_meet_the_target() {
        let v = schedule_verdict(Some((86400.0, 29)), None, 300.0);
        assert!(!v.meets_target);
        assert!(
            v.sentence.starts_with(
                "The RPO target of 5m 00s cannot be met by the backup schedule: backups are taken about every 24h 00m"
            ),
            "{}",
            v.sentence
        );
        assert!(
            v.sentence.contains("every 5 minutes or more often"),
            "{}",
            v.sentence
        );
        assert!(
            v.sentence.contains("continuous archiving"),
            "{}",
            v.sentence
        );

        let v = schedule_verdict(Some((120.0, 3)), None, 300.0);
        assert!(v.meets_target);
        assert_eq!(
            v.sentence,
            "The backup schedule (about every 2m 00s) meets the RPO target of 5m 00s."
        );

        let pts = vec![
            p("2026-03-31T00:00:00Z", true),
            p("2026-03-31T00:02:00Z", true),
        ];
        let w = worst_rpo(&pts, at("2026-03-31T01:00:00Z"), 30).unwrap();
        let v = schedule_verdict(Some((120.0, 1)), Some(&w), 300.0);
        assert!(v.meets_target);
        assert!(
            v.sentence
                .contains("but over the last 30 days it did not: the worst RPO was 58m 00s"),
            "{}",
            v.sentence
        );

        let v = schedule_verdict(None, None, 86400.0);
        assert!(!v.meets_target);
        assert!(
            v.sentence.contains("fewer than two backups"),
            "{}",
            v.sentence
        );
        assert!(
            v.sentence.contains("every 24 hours or more often"),
            "{}",
            v.sentence
        );
        assert_eq!(every_minutes(30.0), "every 30 seconds or more often");
    }
}
