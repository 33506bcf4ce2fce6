//! Point-in-time restore, the replay onto a restored anchor: the stored segments up to the
//! point, then sequences and materialized views. Shared by `pgdr restore --at*` and by drills
//! of a random point; the proof of the result (rows and digests) is the caller's, since it
//! needs `verify`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::capture::pgoutput::Message;
use crate::catalog::format::replayed::{StoredReplayed, StoredTableState};
use crate::catalog::segments::{Commit, ListedSegment};
use crate::catalog::Catalog;
use crate::codec::Identities;
use crate::error::{PgdrError, Result};
use crate::restore::replay::{self, after, Bounds, ReplayReport, Stop};
use crate::source::Lsn;

use super::PointPlan;

/// Sequence samples (`pgdr.sequences` messages) seen in the replayed stream: (LSN, content).
type Samples = Arc<Mutex<Vec<(Lsn, Vec<u8>)>>>;

/// What the replay did, before the caller proves the result.
pub struct PointReplay {
    pub report: ReplayReport,
    /// How sequences were set (for the record).
    pub sequences: String,
    /// For the operator: triggers to put back by hand, views refreshed, no sample.
    pub notes: Vec<String>,
}

/// Which sequence sample holds the sequences as they were at the point: taken at or after the
/// point (sequences are not transactional: a `nextval` between the last applied commit and the
/// point counts), never one before the last applied commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRule {
    /// The sample's LSN is at least this.
    pub from: Lsn,
    /// For `--at TIME`: the sample's LSN is past the last commit and it was taken at or after
    /// this time.
    pub taken_at_or_after: Option<DateTime<Utc>>,
}

impl SampleRule {
    /// The rule for a replay to `stop` whose last applied commit (or the anchor's cut) is
    /// `last`.
    pub fn new(stop: Stop, last: Lsn) -> SampleRule {
        match stop {
            Stop::Lsn(l) => SampleRule {
                from: l.max(last),
                taken_at_or_after: None,
            },
            Stop::Time(t) => SampleRule {
                from: Lsn(last.0.saturating_add(1)),
                taken_at_or_after: Some(t),
            },
            Stop::End => SampleRule {
                from: last,
                taken_at_or_after: None,
            },
        }
    }

    pub fn accepts(&self, lsn: Lsn, s: &after::Sample) -> bool {
        lsn >= self.from
            && self
                .taken_at_or_after
                .is_none_or(|t| DateTime::parse_from_rfc3339(&s.sampled_at).is_ok_and(|at| at >= t))
    }
}

/// Replay `point` onto `database` (the anchor restored and proven there), then set sequences
/// and refresh materialized views.
pub async fn replay_to(
    catalog: &Catalog,
    ids: Identities,
    point: &PointPlan,
    database: &crate::config::Database,
) -> Result<PointReplay> {
    let client = crate::source::connect(database).await?;
    let samples: Samples = Arc::default();
    let tap = samples.clone();
    let stream =
        crate::capture::stream::messages(catalog.clone(), point.segments.clone(), ids.clone())
            .inspect(move |item| match item {
                Ok((
                    _,
                    Message::LogicalMessage {
                        lsn,
                        prefix,
                        content,
                        ..
                    },
                )) if prefix == after::SEQUENCES_PREFIX => {
                    tap.lock().expect("samples").push((*lsn, content.clone()));
                }
                Ok((_, Message::Commit { commit_lsn, .. })) => {
                    prune_samples(&mut tap.lock().expect("samples"), *commit_lsn);
                }
                _ => {}
            });
    let bounds = Bounds {
        from: Some(point.anchor.cut),
        stop: point.stop,
    };
    let report = replay::replay(&client, stream, bounds)
        .await
        .map_err(|f| PgdrError::from(f.error).context(format!("replaying to {}", point.point)))?;
    let mut notes: Vec<String> = report
        .triggers_not_restored
        .iter()
        .map(|s| format!("a trigger could not be put back after the replay: run `{s}`"))
        .collect();
    let last = report.last_applied.map_or(point.anchor.cut, |c| c.lsn);
    let rule = SampleRule::new(point.stop, last);
    let mut samples = samples.lock().expect("samples").clone();
    if after::pick_by(&samples, |l, s| rule.accepts(l, s)).is_none() {
        // The replay stops at the first commit past the point; the sample that holds the
        // sequences as they were there comes after it, so read on until it shows.
        samples.extend(next_sample(catalog, ids, point, &rule).await?);
    }
    let sequences = match after::pick_by(&samples, |l, s| rule.accepts(l, s))
        .or_else(|| after::pick(&samples, last))
    {
        Some((lsn, s)) => {
            let n = after::apply_sample(&client, &s).await?;
            let raised = after::raise_to_owned_columns(&client).await?;
            format!("from the sample at {lsn} ({n} set), {raised} raised to their column's maximum")
        }
        None => {
            let raised = after::raise_to_owned_columns(&client).await?;
            notes.push("no sequence sample in the replayed changes: each sequence owned by a column is set to at least the column's maximum + 1; others keep the dump's value".into());
            format!("no sample: {raised} raised to their column's maximum")
        }
    };
    let views = after::refresh_matviews(&client).await?;
    if !views.is_empty() {
        notes.push(format!("refreshed {} materialized view(s)", views.len()));
    }
    Ok(PointReplay {
        report,
        sequences,
        notes,
    })
}

/// Forget the samples no rule can choose once the stream reached a commit at `commit`: the
/// replay applies (or skips as the dump's) every transaction whose Commit it is handed, so its
/// last commit, and with it every rule's lower bound, is at least `commit`. The newest sample
/// stays (the fallback when none follows the point). Without this a day's stream held a
/// sample every 5 s, each naming every sequence: memory that grew with the stream.
fn prune_samples(samples: &mut Vec<(Lsn, Vec<u8>)>, commit: Lsn) {
    let newest = samples.len().saturating_sub(1);
    let mut i = 0;
    samples.retain(|(lsn, _)| {
        let keep = *lsn >= commit || i == newest;
        i += 1;
        keep
    });
}

/// The first sample the rule accepts in the stored stream past the replayed segments, if the
/// stream holds one.
async fn next_sample(
    catalog: &Catalog,
    ids: Identities,
    point: &PointPlan,
    rule: &SampleRule,
) -> Result<Option<(Lsn, Vec<u8>)>> {
    let Some(database) = point.segments.first().map(|s| s.database.clone()) else {
        return Ok(None);
    };
    let later: Vec<_> = catalog
        .segments(&database)
        .await?
        .into_iter()
        .filter_map(|s| match s {
            ListedSegment::Ok(e) if e.end > rule.from => Some(*e),
            _ => None,
        })
        .collect();
    let stream = crate::capture::stream::messages(catalog.clone(), later, ids);
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        if let (
            _,
            Message::LogicalMessage {
                lsn,
                prefix,
                content,
                ..
            },
        ) = item?
        {
            let wanted = prefix == after::SEQUENCES_PREFIX
                && after::parse(&content).is_some_and(|s| rule.accepts(lsn, &s));
            if wanted {
                return Ok(Some((lsn, content)));
            }
        }
    }
    Ok(None)
}

/// The record of a replay: the point, the last applied commit and its distance to the point,
/// the tables as the caller measured them.
pub fn replayed(
    point: &PointPlan,
    r: &ReplayReport,
    sequences: String,
    tables: Vec<StoredTableState>,
) -> StoredReplayed {
    let last = r.last_applied.map(|c| Commit {
        lsn: c.lsn,
        time: c.time,
        xid: c.xid,
    });
    let (distance_seconds, distance_bytes) = match point.stop {
        Stop::Time(t) => {
            let from = last.as_ref().map_or(point.anchor.time, |c| c.time);
            (Some((t - from).num_milliseconds() as f64 / 1000.0), None)
        }
        Stop::Lsn(l) => {
            let from = last.as_ref().map_or(point.anchor.cut, |c| c.lsn);
            (None, Some(l.0.saturating_sub(from.0)))
        }
        Stop::End => (None, None),
    };
    StoredReplayed {
        point: point.point.clone(),
        anchor_cut_lsn: point.anchor.cut,
        segments: point.segment_starts.clone(),
        last_commit: last,
        distance_seconds,
        distance_bytes,
        transactions: r.transactions,
        rows: r.rows(),
        replay_seconds: r.elapsed_secs,
        sequences,
        tables,
        at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: &str, v: i64) -> Vec<u8> {
        format!(r#"{{"v":1,"sampled_at":"{at}","sequences":[{{"schema":"public","name":"s","last_value":{v},"is_called":true}}]}}"#).into_bytes()
    }

    fn chosen(samples: &[(Lsn, Vec<u8>)], rule: SampleRule) -> Option<(Lsn, i64)> {
        after::pick_by(samples, |l, s| rule.accepts(l, s))
            .map(|(l, s)| (l, s.sequences[0].last_value))
    }

    #[test]
    fn a_time_takes_the_first_sample_taken_at_or_after_it_past_the_last_commit() {
        let t: DateTime<Utc> = "2026-12-05T10:00:05Z".parse().unwrap();
        let samples = vec![
            // Before the last applied commit (LSN 100): never, whatever its time.
            (Lsn(90), sample("2026-12-05T10:00:06Z", 1)),
            // After the commit but taken before the time: nextval calls between it and the
            // time would be missed.
            (Lsn(110), sample("2026-12-05T10:00:04Z", 2)),
            (Lsn(120), sample("2026-12-05T10:00:05Z", 3)),
            (Lsn(130), sample("2026-12-05T10:00:09Z", 4)),
        ];
        let rule = SampleRule::new(Stop::Time(t), Lsn(100));
        assert_eq!(chosen(&samples, rule), Some((Lsn(120), 3)));
        // A sample exactly at the last commit's LSN is not after it.
        let at_commit = vec![(Lsn(100), sample("2026-12-05T10:00:07Z", 5))];
        assert_eq!(chosen(&at_commit, rule), None);
        // The old rule (first sample at or after the last commit) took the one at 110.
        assert_eq!(
            after::pick(&samples, Lsn(100)).map(|(l, _)| l),
            Some(Lsn(110))
        );
    }

    /// Pruning at each commit leaves every rule the sample it would choose from the whole list.
    #[test]
    fn pruned_samples_give_every_rule_the_same_choice() {
        let t = |s: u32| format!("2026-12-05T10:00:{s:02}Z");
        let all: Vec<(Lsn, Vec<u8>)> = (1..=9)
            .map(|i| (Lsn(i * 100), sample(&t(i as u32 * 2), i as i64)))
            .collect();
        for commit in [50, 100, 250, 900, 950] {
            let mut kept = all.clone();
            prune_samples(&mut kept, Lsn(commit));
            let below = all.iter().filter(|(l, _)| *l < Lsn(commit)).count();
            assert_eq!(kept.len(), 9 - below.min(8), "{commit}");
            // The replay's last commit is at least the commit the pruning saw.
            for last in [commit, commit + 30, 1000] {
                for stop in [
                    Stop::End,
                    Stop::Lsn(Lsn(last + 120)),
                    Stop::Time(t(13).parse().unwrap()),
                ] {
                    let rule = SampleRule::new(stop, Lsn(last));
                    assert_eq!(
                        chosen(&kept, rule),
                        chosen(&all, rule),
                        "{commit} {last} {stop:?}"
                    );
                    let fallback = |s: &[(Lsn, Vec<u8>)]| after::pick(s, Lsn(last)).map(|(l, _)| l);
                    assert_eq!(fallback(&kept), fallback(&all), "{commit} {last}");
                }
            }
        }
    }

    #[test]
    fn an_lsn_takes_the_first_sample_at_or_after_the_point_itself() {
        let samples = vec![
            (Lsn(110), sample("2026-12-05T10:00:04Z", 2)),
            (Lsn(150), sample("2026-12-05T10:00:05Z", 3)),
        ];
        let rule = SampleRule::new(Stop::Lsn(Lsn(140)), Lsn(100));
        assert_eq!(chosen(&samples, rule), Some((Lsn(150), 3)));
        let rule = SampleRule::new(Stop::End, Lsn(100));
        assert_eq!(chosen(&samples, rule), Some((Lsn(110), 2)));
    }
}
