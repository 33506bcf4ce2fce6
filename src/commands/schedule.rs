//! `pgdr schedule`: every scheduled job with its next runs and its last result, as the
//! repository knows it (the daemon's job records, else the newest backup, verification or
//! drill), so it answers the same on any host.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::records::Outcome;
use crate::catalog::{Catalog, Listed};
use crate::config::ops::{JobKind, VerifyAfter};
use crate::config::Settings;
use crate::error::Result;
use crate::schedule::state::{self, RunOutcome};

#[derive(Debug, Clone, Serialize)]
pub struct ScheduledJob {
    pub database: String,
    /// "backup", "verify", "drill", "prune".
    pub job: String,
    /// The cron expression, or for verify "after each backup (quick)".
    pub schedule: String,
    pub timezone: Option<String>,
    pub jitter_seconds: u64,
    pub next_runs: Vec<DateTime<Utc>>,
    pub last: Option<LastResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastResult {
    pub at: DateTime<Utc>,
    /// "succeeded", "failed", "cancelled", "passed", "error".
    pub outcome: String,
    pub detail: Option<String>,
    /// "daemon record" or "repository".
    pub from: &'static str,
}

pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    now: DateTime<Utc>,
    upcoming: usize,
) -> Result<Vec<ScheduledJob>> {
    let catalog = Catalog::open(settings).await?;
    let names = crate::schedule::prune::database_names(settings, &catalog, database).await?;
    let mut out = Vec::new();
    for name in names {
        let ops = settings.ops.database(&name);
        let listed = catalog.list(Some(&name)).await?;
        let drills = catalog.drills(Some(&name)).await?;
        for j in &ops.jobs {
            let mut last = state::load(&catalog, &name, j.kind)
                .await?
                .and_then(|s| s.last_run)
                .map(|r| LastResult {
                    at: r.started_at,
                    outcome: word(&r.outcome),
                    detail: match r.outcome {
                        RunOutcome::Succeeded => r.summary,
                        _ => r.error,
                    },
                    from: "daemon record",
                });
            if last.is_none() {
                last = match j.kind {
                    JobKind::Backup => newest_backup(&listed),
                    JobKind::Drill => drills.last().map(|d| LastResult {
                        at: d.started_at,
                        outcome: word(&d.outcome),
                        detail: (!d.failures.is_empty()).then(|| d.failures.join("; ")),
                        from: "repository",
                    }),
                    JobKind::Prune | JobKind::ChainProof => None,
                };
            }
            out.push(ScheduledJob {
                database: name.clone(),
                job: j.kind.to_string(),
                schedule: j.schedule.expr.clone(),
                timezone: Some(j.schedule.tz.name().to_string()),
                jitter_seconds: j.jitter.as_secs(),
                next_runs: j.schedule.upcoming(now, upcoming),
                last,
            });
            if j.kind == JobKind::Backup && ops.verify_after != VerifyAfter::Off {
                out.push(ScheduledJob {
                    database: name.clone(),
                    job: "verify".into(),
                    schedule: format!("after each backup ({})", word(&ops.verify_after)),
                    timezone: None,
                    jitter_seconds: 0,
                    next_runs: Vec::new(),
                    last: newest_verification(&listed),
                });
            }
        }
    }
    Ok(out)
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn newest_backup(listed: &[Listed]) -> Option<LastResult> {
    listed.iter().rev().find_map(|l| match l {
        Listed::Ok(e) => Some(LastResult {
            at: e.manifest.started_at,
            outcome: "succeeded".into(),
            detail: Some(format!("backup {}", e.manifest.id)),
            from: "repository",
        }),
        Listed::Damaged { .. } => None,
    })
}

fn newest_verification(listed: &[Listed]) -> Option<LastResult> {
    listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => e.verification.as_ref(),
            _ => None,
        })
        .max_by_key(|v| v.finished_at)
        .map(|v| LastResult {
            at: v.started_at,
            outcome: word(&v.outcome),
            detail: Some(match v.outcome {
                Outcome::Failed => format!(
                    "backup {}: {} difference(s)",
                    v.backup_id,
                    v.differences.len()
                ),
                _ => format!("backup {}", v.backup_id),
            }),
            from: "repository",
        })
}
