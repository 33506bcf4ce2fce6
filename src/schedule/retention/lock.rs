//! How long the rules will keep a backup at least, for S3 Object Lock: a lock must never
//! outlast what retention wants (prune could not delete the backup), so these are lower bounds.

use std::collections::BTreeMap;

use chrono::Duration;

use super::{kept_by_rules, BackupFacts, RetentionPolicy, Rule};
use crate::catalog::BackupId;

/// The shortest length of one period of a rule (a month: 28 days); `None` for `keep_last`.
fn period_len(rule: Rule) -> Option<Duration> {
    match rule {
        Rule::Last => None,
        Rule::Hourly => Some(Duration::hours(1)),
        Rule::Daily => Some(Duration::days(1)),
        Rule::Weekly => Some(Duration::weeks(1)),
        Rule::Monthly => Some(Duration::days(28)),
        Rule::Yearly => Some(Duration::days(365)),
    }
}

/// Per backup a period rule keeps: how long from now the rules keep it at least. The k-th
/// newest period of `keep_x = n` is kept until n-k+1 newer periods with a backup exist, and
/// each takes at least one period to come. The same walk as prune's plan (`kept_by_rules`).
pub fn kept_for(backups: &[BackupFacts], policy: &RetentionPolicy) -> BTreeMap<BackupId, Duration> {
    let mut order: Vec<&BackupFacts> = backups.iter().collect();
    order.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
    let mut out: BTreeMap<BackupId, Duration> = BTreeMap::new();
    for k in kept_by_rules(&order, policy) {
        let Some(len) = period_len(k.rule) else {
            continue;
        };
        let d = len * (k.n - k.rank + 1) as i32;
        let e = out.entry(k.backup.id.clone()).or_insert(d);
        *e = (*e).max(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::retention::Proof;
    use chrono::{TimeZone, Utc};

    fn facts(days_ago: &[i64]) -> Vec<BackupFacts> {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        days_ago
            .iter()
            .map(|d| {
                let time = now - Duration::days(*d);
                BackupFacts {
                    id: BackupId::from_time(time),
                    time,
                    proof: Proof::Unproven,
                }
            })
            .collect()
    }

    #[test]
    fn a_weekly_backup_is_kept_for_the_weeks_left_in_its_rule() {
        let p = RetentionPolicy {
            keep_daily: Some(2),
            keep_weekly: Some(4),
            ..Default::default()
        };
        // 2026-11-30 is a Monday: 0 days ago is this week, 7 and 14 the two before.
        let f = facts(&[0, 7, 14]);
        let k = kept_for(&f, &p);
        assert_eq!(k[&f[0].id], Duration::weeks(4));
        assert_eq!(k[&f[1].id], Duration::weeks(3));
        assert_eq!(k[&f[2].id], Duration::weeks(2));
    }
}
