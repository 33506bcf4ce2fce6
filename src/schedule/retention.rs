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

/// Why age-based deletion is stopped, if it is: the newest backup failed or is too old.
pub fn hold(
    backups: &[BackupFacts],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Option<String> {
    let newest = backups.iter().max_by_key(|b| (b.time, b.id.clone()))?;
    match newest.proof {
        Proof::Failed => {
            return Some(format!(
                "held: the newest backup {} failed verification; nothing is deleted until a newer backup passes",
                newest.id
            ))
        }
        Proof::Unreadable => {
            return Some(format!(
                "held: the newest backup {} cannot be read; nothing is deleted until a readable backup is newer",
                newest.id
            ))
        }
        _ => {}
    }
    let age = now.signed_duration_since(newest.time);
    let max = chrono::Duration::from_std(policy.max_backup_age).unwrap_or(chrono::Duration::MAX);
    if age > max {
        return Some(format!(
            "held: the newest backup {} is {} old (max_backup_age {}): backups have stopped, so nothing is deleted by age",
            newest.id,
            human_age(age),
            show_duration(policy.max_backup_age)
        ));
    }
    None
}

/// Decide, for every backup, keep or delete and why. Decisions come oldest first.
pub fn plan(
    backups: &[BackupFacts],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut order: Vec<&BackupFacts> = backups.iter().collect();
    // Newest first; ties (same snapshot time) by id.
    order.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
    let held = hold(backups, policy, now);
    let mut out: BTreeMap<&BackupId, (bool, Vec<String>)> =
        order.iter().map(|b| (&b.id, (false, Vec::new()))).collect();

    for b in &order {
        if b.proof == Proof::Unreadable {
            let e = out.get_mut(&b.id).expect("present");
            e.0 = true;
            e.1.push("unreadable manifest: never deleted by prune; inspect it".into());
        }
    }
    if let Some(h) = &held {
        for (_, e) in out.iter_mut() {
            e.0 = true;
            e.1.insert(0, h.clone());
        }
    } else if policy.is_empty() {
        for (_, e) in out.iter_mut() {
            if !e.0 {
                e.0 = true;
                e.1.push("no keep_* rule is configured: nothing is deleted".into());
            }
        }
    } else {
        let good: Vec<&&BackupFacts> = order
            .iter()
            .filter(|b| matches!(b.proof, Proof::Passed | Proof::Unproven))
            .collect();
        for (rule, n) in policy.rules() {
            let n = n.unwrap_or(0) as usize;
            if n == 0 {
                continue;
            }
            let mut count = 0usize;
            let mut last: Option<String> = None;
            for (i, b) in good.iter().enumerate() {
                if count == n {
                    break;
                }
                let period = rule.period(b.time.with_timezone(&policy.timezone), i);
                if last.as_ref() == Some(&period) {
                    continue;
                }
                count += 1;
                let e = out.get_mut(&b.id).expect("present");
                e.0 = true;
                e.1.push(match rule {
                    Rule::Last => format!("last {count}/{n}"),
                    _ => format!("{} {count}/{n} ({period})", rule.name()),
                });
                last = Some(period);
            }
        }
    }
    // The proof gate holds whatever the rules said.
    let mut verified = 0u32;
    for b in &order {
        if verified >= policy.min_verified {
            break;
        }
        if b.proof == Proof::Passed {
            verified += 1;
            let e = out.get_mut(&b.id).expect("present");
            e.0 = true;
            e.1.push(format!(
                "proof: newest verified {verified}/{}",
                policy.min_verified
            ));
        }
    }
    for b in &order {
        let e = out.get_mut(&b.id).expect("present");
        if !e.0 {
            e.1.push(match b.proof {
                Proof::Failed => "failed verification: no rule keeps a known-bad backup".into(),
                _ => "no rule keeps it".into(),
            });
        }
    }
    order
        .iter()
        .rev()
        .map(|b| {
            let (keep, reasons) = out.remove(&b.id).expect("present");
            Decision {
                id: b.id.clone(),
                keep,
                reasons,
            }
        })
        .collect()
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

/// "27h 0m", "3d 4h", "12m".
pub fn human_age(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    if secs >= 2 * 86400 {
        format!("{}d {}h", secs / 86400, (secs % 86400) / 3600)
    } else if secs >= 3600 {
        format!("{}h {}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}m", secs / 60)
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
                let v = e.verification.as_ref().and_then(|v| match v.outcome {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn b(time: &str, proof: Proof) -> BackupFacts {
        let t = at(time);
        BackupFacts {
            id: BackupId::from_time(t),
            time: t,
            proof,
        }
    }

    /// "kept ids (as dates)" for compact expectations.
    fn kept(d: &[Decision]) -> Vec<String> {
        d.iter()
            .filter(|x| x.keep)
            .map(|x| x.id.time().format("%m-%d %H").to_string())
            .collect()
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy::default()
    }

    /// One table case: backups, a policy, the kept set for two clocks (both inside
    /// max_backup_age, so the result must not depend on the clock).
    struct Case {
        name: &'static str,
        backups: Vec<BackupFacts>,
        policy: RetentionPolicy,
        kept: Vec<&'static str>,
    }

    fn cases() -> Vec<Case> {
        use Proof::*;
        // Four days, two backups a day (02h and 14h), 2026-03-01 .. 03-04.
        let twice_daily = |proofs: &dyn Fn(usize) -> Proof| -> Vec<BackupFacts> {
            (0..8)
                .map(|i| {
                    let t = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
                        + chrono::Duration::hours(12 * i as i64);
                    BackupFacts {
                        id: BackupId::from_time(t),
                        time: t,
                        proof: proofs(i),
                    }
                })
                .collect()
        };
        vec![
            Case {
                name: "keep-last-3",
                backups: twice_daily(&|_| Unproven),
                policy: RetentionPolicy {
                    keep_last: Some(3),
                    min_verified: 0,
                    ..policy()
                },
                kept: vec!["03-03 14", "03-04 02", "03-04 14"],
            },
            Case {
                name: "keep-daily-3: the newest of each day",
                backups: twice_daily(&|_| Unproven),
                policy: RetentionPolicy {
                    keep_daily: Some(3),
                    ..policy()
                },
                kept: vec!["03-02 14", "03-03 14", "03-04 14"],
            },
            Case {
                name: "keep-daily in America/Los_Angeles: 02h UTC is the evening before there",
                backups: twice_daily(&|_| Unproven),
                policy: RetentionPolicy {
                    keep_daily: Some(2),
                    timezone: chrono_tz::America::Los_Angeles,
                    ..policy()
                },
                kept: vec!["03-04 02", "03-04 14"],
            },
            Case {
                name: "rules overlap: union",
                backups: twice_daily(&|_| Unproven),
                policy: RetentionPolicy {
                    keep_last: Some(2),
                    keep_daily: Some(2),
                    ..policy()
                },
                kept: vec!["03-03 14", "03-04 02", "03-04 14"],
            },
            Case {
                name: "the newest backup failed: nothing goes",
                backups: twice_daily(&|i| if i == 7 { Failed } else { Unproven }),
                policy: RetentionPolicy {
                    keep_last: Some(2),
                    ..policy()
                },
                // 03-04 14 failed, but it is the newest: hold.
                kept: vec![
                    "03-01 02", "03-01 14", "03-02 02", "03-02 14", "03-03 02", "03-03 14",
                    "03-04 02", "03-04 14",
                ],
            },
            Case {
                name: "an older failed backup takes no slot and goes",
                backups: twice_daily(&|i| if i == 6 { Failed } else { Unproven }),
                policy: RetentionPolicy {
                    keep_last: Some(2),
                    ..policy()
                },
                kept: vec!["03-03 14", "03-04 14"],
            },
            Case {
                name: "proof gate: the newest 2 verified survive keep_last 1",
                backups: twice_daily(&|i| if i % 3 == 0 { Passed } else { Unproven }),
                policy: RetentionPolicy {
                    keep_last: Some(1),
                    ..policy()
                },
                // Passed: 0 (03-01 02), 3 (03-02 14), 6 (03-04 02).
                kept: vec!["03-02 14", "03-04 02", "03-04 14"],
            },
            Case {
                name: "no rule: nothing deleted",
                backups: twice_daily(&|_| Unproven),
                policy: policy(),
                kept: vec![
                    "03-01 02", "03-01 14", "03-02 02", "03-02 14", "03-03 02", "03-03 14",
                    "03-04 02", "03-04 14",
                ],
            },
            Case {
                name: "unreadable backups stay",
                backups: twice_daily(&|i| if i == 1 { Unreadable } else { Unproven }),
                policy: RetentionPolicy {
                    keep_last: Some(1),
                    ..policy()
                },
                kept: vec!["03-01 14", "03-04 14"],
            },
            Case {
                name: "weekly and monthly reach across gaps",
                backups: vec![
                    b("2026-01-05T02:00:00Z", Unproven), // Mon, W02
                    b("2026-01-11T02:00:00Z", Unproven), // Sun, W02
                    b("2026-02-20T02:00:00Z", Unproven), // W08
                    b("2026-03-02T02:00:00Z", Unproven), // W10
                    b("2026-03-04T02:00:00Z", Unproven), // W10
                ],
                policy: RetentionPolicy {
                    keep_weekly: Some(3),
                    keep_monthly: Some(3),
                    ..policy()
                },
                kept: vec!["01-11 02", "02-20 02", "03-04 02"],
            },
        ]
    }

    #[test]
    fn table() {
        for c in cases() {
            let newest = c.backups.iter().map(|b| b.time).max().unwrap();
            for now in [
                newest + chrono::Duration::minutes(5),
                newest + chrono::Duration::hours(25),
            ] {
                let d = plan(&c.backups, &c.policy, now);
                assert_eq!(d.len(), c.backups.len(), "{}", c.name);
                assert_eq!(kept(&d), c.kept, "case '{}' at {now}", c.name);
                for x in &d {
                    assert!(!x.reasons.is_empty(), "{}: {} has no reason", c.name, x.id);
                }
            }
        }
    }

    #[test]
    fn reasons_name_the_rule_and_period() {
        let backups = vec![
            b("2026-03-01T02:00:00Z", Proof::Passed),
            b("2026-03-02T02:00:00Z", Proof::Unproven),
            b("2026-03-03T02:00:00Z", Proof::Unproven),
        ];
        let p = RetentionPolicy {
            keep_last: Some(1),
            keep_daily: Some(2),
            min_verified: 1,
            ..policy()
        };
        let d = plan(&backups, &p, at("2026-03-03T03:00:00Z"));
        let shown: Vec<String> = d
            .iter()
            .map(|x| {
                format!(
                    "{} {} {}",
                    x.id,
                    if x.keep { "keep" } else { "delete" },
                    x.reasons.join("; ")
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "20260301T020000.000Z keep proof: newest verified 1/1",
                "20260302T020000.000Z keep daily 2/2 (2026-03-02)",
                "20260303T020000.000Z keep last 1/1; daily 1/2 (2026-03-03)",
            ]
        );
        let p = RetentionPolicy {
            keep_last: Some(1),
            min_verified: 0,
            ..policy()
        };
        let d = plan(&backups, &p, at("2026-03-03T03:00:00Z"));
        assert_eq!(d[0].reasons, vec!["no rule keeps it"]);
        assert!(!d[0].keep && !d[1].keep && d[2].keep);
    }

    #[test]
    fn an_outage_stops_deletion() {
        let backups: Vec<_> = (1..=9)
            .map(|d| b(&format!("2026-03-0{d}T02:00:00Z"), Proof::Unproven))
            .collect();
        let p = RetentionPolicy {
            keep_last: Some(2),
            ..policy()
        };
        // 25h after the newest: within 26h, rules apply.
        let d = plan(&backups, &p, at("2026-03-10T03:00:00Z"));
        assert_eq!(d.iter().filter(|x| x.keep).count(), 2);
        assert!(hold(&backups, &p, at("2026-03-10T03:00:00Z")).is_none());
        // 27h: backups have stopped; nothing goes.
        let now = at("2026-03-10T05:00:00Z");
        let d = plan(&backups, &p, now);
        assert!(d.iter().all(|x| x.keep));
        let h = hold(&backups, &p, now).unwrap();
        assert_eq!(
            h,
            "held: the newest backup 20260309T020000.000Z is 27h 0m old (max_backup_age 26h): backups have stopped, so nothing is deleted by age"
        );
        assert_eq!(d[0].reasons, vec![h]);
    }

    /// ~400 daily backups, 2025-01-01 .. 2026-02-04 at 02:00 UTC; every 10th one verified.
    fn daily_catalog() -> Vec<BackupFacts> {
        (0..400)
            .map(|i| {
                let t =
                    Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap() + chrono::Duration::days(i);
                BackupFacts {
                    id: BackupId::from_time(t),
                    time: t,
                    proof: if i % 10 == 0 {
                        Proof::Passed
                    } else {
                        Proof::Unproven
                    },
                }
            })
            .collect()
    }

    /// The expected kept set of [`daily_catalog`] under keep_last 3, keep_daily 7,
    /// keep_weekly 4, keep_monthly 12, keep_yearly 3, min_verified 2. Shared with the e2e test
    /// of `pgdr prune` (tests/e2e/schedule.rs writes the same list).
    pub const DAILY_KEPT: [&str; 21] = [
        "2025-03-31",
        "2025-04-30",
        "2025-05-31",
        "2025-06-30",
        "2025-07-31",
        "2025-08-31",
        "2025-09-30",
        "2025-10-31",
        "2025-11-30",
        "2025-12-31", // monthly
        "2026-01-16", // proof 2/2 (day 380)
        "2026-01-18",
        "2026-01-25", // weekly W03, W04
        "2026-01-26", // proof 1/2 (day 390)
        "2026-01-29",
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
        "2026-02-02",
        "2026-02-03",
        "2026-02-04", // daily 7 (and last 3, weekly W05 W06, monthly, yearly)
    ];

    #[test]
    fn four_hundred_daily_backups() {
        let backups = daily_catalog();
        let p = RetentionPolicy {
            keep_last: Some(3),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(3),
            min_verified: 2,
            ..policy()
        };
        for now in [at("2026-02-04T02:30:00Z"), at("2026-02-05T03:00:00Z")] {
            let d = plan(&backups, &p, now);
            let kept: Vec<String> = d
                .iter()
                .filter(|x| x.keep)
                .map(|x| x.id.time().format("%Y-%m-%d").to_string())
                .collect();
            assert_eq!(kept, DAILY_KEPT, "at {now}");
            assert_eq!(d.iter().filter(|x| !x.keep).count(), 379);
            // The newest verified backup is kept, and says why.
            let newest_verified = d.iter().find(|x| x.id.as_str() == "20260126T020000.000Z");
            assert_eq!(
                newest_verified.unwrap().reasons,
                vec!["proof: newest verified 1/2"]
            );
            // 2025-12-31 is kept by two rules.
            let dec31 = d
                .iter()
                .find(|x| x.id.as_str() == "20251231T020000.000Z")
                .unwrap();
            assert_eq!(
                dec31.reasons,
                vec!["monthly 3/12 (2025-12)", "yearly 2/3 (2025)"]
            );
        }
        // With a policy that keeps almost nothing, the newest verified still stay.
        let p = RetentionPolicy {
            keep_last: Some(1),
            ..policy()
        };
        let d = plan(&backups, &p, at("2026-02-04T03:00:00Z"));
        let kept: Vec<&str> = d.iter().filter(|x| x.keep).map(|x| x.id.as_str()).collect();
        assert_eq!(
            kept,
            vec![
                "20260116T020000.000Z",
                "20260126T020000.000Z",
                "20260204T020000.000Z"
            ]
        );
        // 30h after the newest: an outage; all 400 stay.
        let d = plan(&backups, &p, at("2026-02-05T08:00:00Z"));
        assert!(d.iter().all(|x| x.keep));
    }
}
