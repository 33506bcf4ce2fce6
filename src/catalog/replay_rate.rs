//! The last recorded replay rate of a database: what a point plan's estimate of the replay
//! time rests on. Every restore record with a replay, and every drill of a point, carries
//! the rows, transactions and seconds it took; the newest one with something replayed wins
//! (the machine and the data it measured are the nearest to today's).

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;

use super::format::replayed::StoredReplayed;
use super::{database_prefix, Key, Repository};
use crate::error::Result;

/// A measured replay: rows and transactions per second, and which record measured it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplayRate {
    pub rows_per_second: f64,
    pub transactions_per_second: f64,
    /// `app/restores/20261205T101500Z.json`
    pub record: String,
    pub at: DateTime<Utc>,
}

/// The part of a restore or drill record the rate needs (other fields are not read).
#[derive(Deserialize)]
struct WithReplay {
    replay: Option<StoredReplayed>,
}

impl Repository {
    /// The newest replay recorded for `database` by a restore or a drill, if any took time.
    pub async fn last_replay_rate(&self, database: &str) -> Result<Option<ReplayRate>> {
        let prefix = database_prefix(Some(database))?;
        let mut keys: Vec<(String, String)> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| match Key::parse(&o.key)? {
                Key::Restore { file, .. } | Key::Drill { file, .. } if file.ends_with(".json") => {
                    Some((file, o.key))
                }
                _ => None,
            })
            .collect();
        // Record files are named by their start time: newest first.
        keys.sort();
        keys.reverse();
        let mut records = futures::stream::iter(keys)
            .map(|(_, k)| async move { (self.load_record::<WithReplay>(&k).await, k) })
            .buffered(4)
            .boxed();
        while let Some((r, key)) = records.next().await {
            let Some(r) = r.and_then(|r| r.replay) else {
                continue;
            };
            if r.replay_seconds > 0.0 && r.transactions > 0 {
                return Ok(Some(ReplayRate {
                    rows_per_second: r.rows as f64 / r.replay_seconds,
                    transactions_per_second: r.transactions as f64 / r.replay_seconds,
                    record: key,
                    at: r.at,
                }));
            }
        }
        Ok(None)
    }
}
