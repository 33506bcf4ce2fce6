//! Retention decisions on hand-made catalogs.

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

/// Four days, two backups a day (02h and 14h), 2026-03-01 .. 03-04.
fn twice_daily(proofs: &dyn Fn(usize) -> Proof) -> Vec<BackupFacts> {
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
}

/// The keep rules alone.
fn rule_cases() -> Vec<Case> {
    use Proof::*;
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
    ]
}

/// Holds, known-bad backups and the proof gate on top of the rules.
fn gate_cases() -> Vec<Case> {
    use Proof::*;
    vec![
        Case {
            name: "the newest backup failed: nothing goes",
            backups: twice_daily(&|i| if i == 7 { Failed } else { Unproven }),
            policy: RetentionPolicy {
                keep_last: Some(2),
                ..policy()
            },
            // 03-04 14 failed, but it is the newest: hold.
            kept: vec![
                "03-01 02", "03-01 14", "03-02 02", "03-02 14", "03-03 02", "03-03 14", "03-04 02",
                "03-04 14",
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
                "03-01 02", "03-01 14", "03-02 02", "03-02 14", "03-03 02", "03-03 14", "03-04 02",
                "03-04 14",
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
    for c in rule_cases().into_iter().chain(gate_cases()) {
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
        "held: the newest backup 20260309T020000.000Z is 27h 00m old (max_backup_age 26h): backups have stopped, so nothing is deleted by age"
    );
    assert_eq!(d[0].reasons, vec![h]);
}

/// ~400 daily backups, 2025-01-01 .. 2026-02-04 at 02:00 UTC; every 10th one verified.
fn daily_catalog() -> Vec<BackupFacts> {
    (0..400)
        .map(|i| {
            let t = Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap() + chrono::Duration::days(i);
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
