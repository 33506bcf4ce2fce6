//! Retention: which backups to keep. A pure function of the backups, the policy and the clock
//! (passed in, never read here), so every decision can be tested and shown by `--dry-run`.
//!
//! # Semantics (restic's `forget`)
//! Backups are walked newest first. Each rule keeps the newest backup of each of the N most
//! recent periods that have a backup:
//! - `keep_last = N`: the N newest backups;
//! - `keep_hourly`, `keep_daily`, `keep_weekly` (ISO weeks, Monday to Sunday), `keep_monthly`,
//!   `keep_yearly = N`: the newest backup of each of the N most recent calendar hours, days,
//!   weeks, months, years that have one. Periods without a backup are skipped, not counted,
//!   so a week without backups does not shorten the history kept. Calendar periods are
//!   counted in the policy's time zone (default UTC).
//!
//! A backup is kept if any rule keeps it; every rule that keeps it is named in its reasons.
//! Backups known to be bad (their newest verification or drill found differences) take no
//! period's slot: the rule reaches further back for a good one, and the bad one is deleted.
//! A backup whose manifest cannot be read is never deleted here (the cause may be a passing
//! repository error): it is kept and named, for an operator to look at.
//!
//! # Proof gates, on top of the rules
//! - The newest `min_verified` backups whose newest verification or drill passed are always
//!   kept, whatever the rules say: deleting the last proven backups is never right.
//! - If the newest backup failed its verification (or cannot be read), or is older than
//!   `max_backup_age` (backups have stopped: an outage), nothing is deleted at all. Deleting by
//!   age during an outage of backups is how other tools have aged out the last good ones.
//! - Without any `keep_*` rule nothing is deleted.

//!
//! Files: this one (the policy and the facts it is applied to), `plan.rs` (the decisions),
//! `tests.rs`.

pub mod lock;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::catalog::records::Outcome;
use crate::catalog::{BackupId, DrillRecord, Listed};
use crate::config::ops::RetentionPolicy;

/// What retention needs to know about one backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupFacts {
    pub id: BackupId,
    /// The point in time the backup restores to (its snapshot time).
    pub time: DateTime<Utc>,
    pub proof: Proof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// Its newest verification or drill passed.
    Passed,
    /// Its newest verification or drill found differences: known bad.
    Failed,
    /// Never verified (or only by runs that could not finish).
    Unproven,
    /// Its manifest cannot be read.
    Unreadable,
}

impl RetentionPolicy {
    /// No `keep_*` rule: nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(_, n)| n.unwrap_or(0) == 0)
    }

    fn rules(&self) -> [(Rule, Option<u32>); 6] {
        [
            (Rule::Last, self.keep_last),
            (Rule::Hourly, self.keep_hourly),
            (Rule::Daily, self.keep_daily),
            (Rule::Weekly, self.keep_weekly),
            (Rule::Monthly, self.keep_monthly),
            (Rule::Yearly, self.keep_yearly),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: BackupId,
    pub keep: bool,
    /// Every rule or gate that keeps it, or why it goes.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The period a time falls in, as a label that differs between periods.
    fn period(self, t: DateTime<Tz>, index: usize) -> String {
        match self {
            Rule::Last => format!("#{index}"),
            Rule::Hourly => t.format("%Y-%m-%d %Hh").to_string(),
            Rule::Daily => t.format("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => format!("{}-{:02}", t.year(), t.month()),
            Rule::Yearly => format!("{}", t.year()),
        }
    }
}

pub use plan::{hold, plan};

/// One backup a keep rule keeps: the first (newest) of one of the rule's newest `n` periods,
/// `rank` counting those periods from 1.
struct Kept<'a> {
    rule: Rule,
    n: u32,
    rank: u32,
    backup: &'a BackupFacts,
    period: String,
}

/// The keep rules' walk over the backups, newest first, that may fill a period (passed or
/// unproven; a known-bad one takes no period's slot). Prune's plan and the Object Lock length
/// both come from this one walk, so a lock can never be longer than what the rules keep.
fn kept_by_rules<'a>(newest_first: &[&'a BackupFacts], policy: &RetentionPolicy) -> Vec<Kept<'a>> {
    let good: Vec<&'a BackupFacts> = newest_first
        .iter()
        .copied()
        .filter(|b| matches!(b.proof, Proof::Passed | Proof::Unproven))
        .collect();
    let mut out = Vec::new();
    for (rule, n) in policy.rules() {
        let n = n.unwrap_or(0);
        let mut last: Option<String> = None;
        let mut rank = 0u32;
        for (i, b) in good.iter().enumerate() {
            if rank == n {
                break;
            }
            let period = rule.period(b.time.with_timezone(&policy.timezone), i);
            if last.as_ref() == Some(&period) {
                continue;
            }
            rank += 1;
            last = Some(period.clone());
            out.push(Kept {
                rule,
                n,
                rank,
                backup: b,
                period,
            });
        }
    }
    out
}

/// "26h", "90m", "45s": config-style.
pub fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The facts of every listed backup: the newest verification or drill (by finish time) that
/// says something about the backup decides its proof. A verification that could not run says
/// nothing; nor does a failed drill without fingerprint differences (a missed RTO target
/// does not make the backup bad).
pub fn facts(listed: &[Listed], drills: &[DrillRecord]) -> Vec<BackupFacts> {
    let mut drill_proof: BTreeMap<(String, BackupId), (DateTime<Utc>, Proof)> = BTreeMap::new();
    for d in drills {
        let Some(b) = &d.backup else { continue };
        let p = match d.outcome {
            Outcome::Passed => Proof::Passed,
            Outcome::Failed if !d.differences.is_empty() => Proof::Failed,
            _ => continue,
        };
        let k = (d.database.clone(), b.id.clone());
        if drill_proof.get(&k).is_none_or(|(t, _)| d.finished_at >= *t) {
            drill_proof.insert(k, (d.finished_at, p));
        }
    }
    listed
        .iter()
        .map(|l| match l {
            Listed::Ok(e) => {
                let m = &e.manifest;
                // A chain proof judges the stream between two backups, not this backup's
                // dump: a failed one must not make prune delete it, nor a newer one hide an
                // earlier proof of the dump.
                let v = e.dump_verification.as_ref();
                let v = v.and_then(|v| match v.outcome {
                    Outcome::Passed => Some((v.finished_at, Proof::Passed)),
                    Outcome::Failed => Some((v.finished_at, Proof::Failed)),
                    Outcome::Error => None,
                });
                let d = drill_proof
                    .get(&(m.database.clone(), m.id.clone()))
                    .copied();
                let proof = match (v, d) {
                    (Some(a), Some(b)) => {
                        if b.0 > a.0 {
                            b.1
                        } else {
                            a.1
                        }
                    }
                    (Some(a), None) | (None, Some(a)) => a.1,
                    (None, None) => Proof::Unproven,
                };
                BackupFacts {
                    id: m.id.clone(),
                    time: m.snapshot.time,
                    proof,
                }
            }
            Listed::Damaged { id, .. } => BackupFacts {
                id: id.clone(),
                time: id.time(),
                proof: Proof::Unreadable,
            },
        })
        .collect()
}
