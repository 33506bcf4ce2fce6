//! The decisions: hold (nothing is deleted), the keep rules, the proof gate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{kept_by_rules, show_duration, BackupFacts, Decision, Proof, RetentionPolicy, Rule};
use crate::catalog::BackupId;
use crate::progress::human_age;

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

/// Per backup: kept, and every reason.
type Marks<'a> = BTreeMap<&'a BackupId, (bool, Vec<String>)>;

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
    let mut out: Marks = order.iter().map(|b| (&b.id, (false, Vec::new()))).collect();

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
        apply_rules(&order, policy, &mut out);
    }
    proof_gate(&order, policy, &mut out);
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

/// The keep rules, each over the good backups (known-bad ones take no period's slot).
fn apply_rules(order: &[&BackupFacts], policy: &RetentionPolicy, out: &mut Marks) {
    for k in kept_by_rules(order, policy) {
        let e = out.get_mut(&k.backup.id).expect("present");
        e.0 = true;
        e.1.push(match k.rule {
            Rule::Last => format!("last {}/{}", k.rank, k.n),
            _ => format!("{} {}/{} ({})", k.rule.name(), k.rank, k.n, k.period),
        });
    }
}

/// The proof gate holds whatever the rules said: the newest `min_verified` passed backups.
fn proof_gate(order: &[&BackupFacts], policy: &RetentionPolicy, out: &mut Marks) {
    let mut verified = 0u32;
    for b in order {
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
}
