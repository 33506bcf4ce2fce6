//! After a replay: sequences (they are not in the change stream) and materialized views (their
//! contents are not either). Sequences come from the runner's `pgdr.sequences` samples
//! (CDC.md's agreed format) and are in any case raised to at least their owning column's
//! maximum: never lower than a value the target already holds or a replayed row uses.

use serde::Deserialize;
use tokio_postgres::Client;

use crate::error::{PgdrError, Result};
use crate::restore::db_message;
use crate::source::Lsn;

/// The logical message prefix of a sequence sample.
pub const SEQUENCES_PREFIX: &str = "pgdr.sequences";

#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    pub v: u32,
    pub sampled_at: String,
    pub sequences: Vec<SampledSequence>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SampledSequence {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// A sample's content, when it is in a format this pgdr reads.
pub fn parse(content: &[u8]) -> Option<Sample> {
    serde_json::from_slice::<Sample>(content)
        .ok()
        .filter(|s| s.v == 1)
}

/// The sample to use for a replay whose last applied commit is `last`: the first at or after
/// it, else the newest.
pub fn pick(samples: &[(Lsn, Vec<u8>)], last: Lsn) -> Option<(Lsn, Sample)> {
    pick_by(samples, |l, _| l >= last).or_else(|| {
        samples
            .iter()
            .rev()
            .find_map(|(l, c)| Some((*l, parse(c)?)))
    })
}

/// The first readable sample that `wanted` accepts (samples in stream order).
pub fn pick_by(
    samples: &[(Lsn, Vec<u8>)],
    wanted: impl Fn(Lsn, &Sample) -> bool,
) -> Option<(Lsn, Sample)> {
    samples
        .iter()
        .filter_map(|(l, c)| Some((*l, parse(c)?)))
        .find(|(l, s)| wanted(*l, s))
}

fn db(doing: &str, e: &tokio_postgres::Error) -> PgdrError {
    PgdrError::database(format!("{doing}: {}", db_message(e)))
}

/// The next value a sequence would hand out, on the target.
async fn next_value(c: &Client, schema: &str, name: &str) -> Result<Option<(i64, i64)>> {
    let row = c
        .query_opt(
            "SELECT last_value, increment_by, start_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2",
            &[&schema, &name],
        )
        .await
        .map_err(|e| db("reading a sequence", &e))?;
    Ok(row.map(|r| {
        let inc: i64 = r.get(1);
        let next = match r.get::<_, Option<i64>>(0) {
            Some(l) => l + inc,
            None => r.get(2),
        };
        (next, inc)
    }))
}

/// Set sequences from a sample, never lower than the target's own value. Returns how many.
pub async fn apply_sample(c: &Client, s: &Sample) -> Result<usize> {
    let mut n = 0;
    for q in &s.sequences {
        let Some((target_next, inc)) = next_value(c, &q.schema, &q.name).await? else {
            continue;
        };
        let source_next = if q.is_called {
            q.last_value + inc
        } else {
            q.last_value
        };
        let higher = if inc > 0 {
            source_next > target_next
        } else {
            source_next < target_next
        };
        if higher {
            c.execute(
                "SELECT setval(format('%I.%I', $1::text, $2::text)::regclass, $3, $4)",
                &[&q.schema, &q.name, &q.last_value, &q.is_called],
            )
            .await
            .map_err(|e| db("setting a sequence", &e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Raise every ascending sequence owned by a column to at least that column's maximum.
/// Returns how many were raised.
pub async fn raise_to_owned_columns(c: &Client) -> Result<usize> {
    let owned = c
        .query(
            "SELECT sn.nspname, s.relname, format('%I.%I', tn.nspname, t.relname), quote_ident(a.attname)
               FROM pg_depend d
               JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_class t ON t.oid = d.refobjid
               JOIN pg_namespace tn ON tn.oid = t.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i')",
            &[],
        )
        .await
        .map_err(|e| db("listing owned sequences", &e))?;
    let mut n = 0;
    for r in owned {
        let (schema, name, table, column): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some((target_next, inc)) = next_value(c, &schema, &name).await? else {
            continue;
        };
        let max: Option<i64> = c
            .query_one(&format!("SELECT max({column})::bigint FROM {table}"), &[])
            .await
            .map_err(|e| db(&format!("reading max({column}) of {table}"), &e))?
            .get(0);
        if let Some(m) = max.filter(|m| inc > 0 && *m >= target_next) {
            c.execute(
                "SELECT setval(format('%I.%I', $1::text, $2::text)::regclass, $3, true)",
                &[&schema, &name, &m],
            )
            .await
            .map_err(|e| db("setting a sequence", &e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Refresh every populated materialized view (their contents are not in the stream).
pub async fn refresh_matviews(c: &Client) -> Result<Vec<String>> {
    let views: Vec<String> = c
        .query(
            "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews WHERE ispopulated ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| db("listing materialized views", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for v in &views {
        c.batch_execute(&format!("REFRESH MATERIALIZED VIEW {v}"))
            .await
            .map_err(|e| db(&format!("refreshing {v}"), &e))?;
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(v: i64) -> Vec<u8> {
        format!(r#"{{"v":1,"sampled_at":"2026-12-05T00:00:00Z","sequences":[{{"schema":"public","name":"s","last_value":{v},"is_called":true}}]}}"#).into_bytes()
    }

    #[test]
    fn the_first_sample_at_or_after_the_last_commit_else_the_newest() {
        let s = vec![
            (Lsn(10), sample(1)),
            (Lsn(20), sample(2)),
            (Lsn(30), sample(3)),
        ];
        let v = |last| pick(&s, Lsn(last)).map(|(l, x)| (l, x.sequences[0].last_value));
        assert_eq!(v(15), Some((Lsn(20), 2)));
        assert_eq!(v(20), Some((Lsn(20), 2)));
        assert_eq!(v(5), Some((Lsn(10), 1)));
        assert_eq!(v(31), Some((Lsn(30), 3)));
        assert!(pick(&[], Lsn(1)).is_none());
        // A format this pgdr does not know is passed over.
        let newer = vec![(
            Lsn(20),
            br#"{"v":2,"sampled_at":"x","sequences":[]}"#.to_vec(),
        )];
        assert!(pick(&newer, Lsn(1)).is_none());
    }
}
