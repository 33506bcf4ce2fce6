//! Running the capture: pinned session settings, the queries, sequence positions.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::Client;

use super::queries::{self, SEQUENCES};
use super::SchemaFingerprint;
use crate::error::PgdrError;
use crate::sql::quote_ident;

/// Session settings that change deparsed text, pinned while capturing.
const PINNED: &[(&str, &str)] = &[
    ("search_path", "pg_catalog"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("quote_all_identifiers", "off"),
    ("standard_conforming_strings", "on"),
];

/// Run inside the caller's transaction (the backup's snapshot, or a restored scratch DB).
///
/// The settings in `PINNED` are set for the session while the queries run and restored
/// afterwards (inside a transaction, an abort undoes both anyway). The caller must not use
/// the same connection concurrently meanwhile.
///
/// Catalog caveat (as for pg_dump): the `pg_get_*def` functions read the current catalog, not
/// the snapshot, and sequence positions are read as of now, not as of the snapshot.
pub async fn capture(client: &Client) -> Result<SchemaFingerprint, PgdrError> {
    let names: Vec<&str> = PINNED.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = PINNED.iter().map(|(_, v)| *v).collect();
    let saved: Vec<String> = client
        .query(
            "SELECT pg_catalog.current_setting(s.n) FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS s(n, i) ORDER BY s.i",
            &[&names],
        )
        .await
        .map_err(|e| db_error("reading session settings", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    set_all(client, &names, &values)
        .await
        .map_err(|e| db_error("pinning session settings", &e))?;
    let result = capture_pinned(client).await;
    let saved_refs: Vec<&str> = saved.iter().map(String::as_str).collect();
    let restored = set_all(client, &names, &saved_refs).await;
    let fp = result?;
    restored.map_err(|e| db_error("restoring session settings", &e))?;
    Ok(fp)
}

async fn set_all(
    client: &Client,
    names: &[&str],
    values: &[&str],
) -> Result<(), tokio_postgres::Error> {
    client
        .query(
            "SELECT pg_catalog.set_config(s.n, s.v, false) FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS s(n, v)",
            &[&names, &values],
        )
        .await
        .map(|_| ())
}

fn db_error(doing: &str, e: &tokio_postgres::Error) -> PgdrError {
    let msg = match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => {
            let mut m = e.to_string();
            if let Some(s) = std::error::Error::source(e) {
                m = format!("{m}: {s}");
            }
            m
        }
    };
    PgdrError::database(format!("schema fingerprint: {doing}: {msg}"))
}

async fn capture_pinned(client: &Client) -> Result<SchemaFingerprint, PgdrError> {
    let version: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| db_error("reading the server version", &e))?
        .get(0);

    let queries = queries::queries(version);
    let mut fp = SchemaFingerprint::default();
    for (section, sql) in &queries {
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .map_err(|e| db_error(&format!("reading {}", section.replace('_', " ")), &e))?;
        let map = fp.sections.entry(section.to_string()).or_default();
        for row in rows {
            map.insert(row.get::<_, String>(0), row.get::<_, Value>(1));
        }
    }
    let sequences = capture_sequences(client).await?;
    fp.sections.insert("sequences".into(), sequences);
    Ok(fp)
}

/// Sequence definitions from pg_sequence, positions from the sequence relations themselves
/// (`SELECT last_value, is_called FROM seq`, as pg_dump reads them), batched into UNION ALL
/// queries so a database with many sequences costs a few round trips.
async fn capture_sequences(client: &Client) -> Result<BTreeMap<String, Value>, PgdrError> {
    let rows = client
        .query(SEQUENCES, &[])
        .await
        .map_err(|e| db_error("reading sequences", &e))?;
    // A role without SUPERUSER (a managed target's admin) may not read every sequence (the
    // platform's): those keep their definition, without a position. None for a superuser.
    let unreadable: std::collections::BTreeSet<(String, String)> = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege(c.oid, 'SELECT') END",
            &[],
        )
        .await
        .map_err(|e| db_error("reading sequence privileges", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut seqs: Vec<(String, String, String, Value)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .filter(|s: &(String, String, String, Value)| {
            !unreadable.contains(&(s.1.clone(), s.2.clone()))
        })
        .collect();
    for (chunk_no, chunk) in seqs.chunks_mut(200).enumerate() {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, nsp, rel, _))| {
                format!(
                    "SELECT {i}::int4, last_value::int8, is_called FROM {}.{}",
                    quote_ident(nsp),
                    quote_ident(rel)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = client.query(sql.as_str(), &[]).await.map_err(|e| {
            db_error(
                &format!("reading sequence positions (batch {})", chunk_no + 1),
                &e,
            )
        })?;
        for r in rows {
            let i: i32 = r.get(0);
            let last: i64 = r.get(1);
            let called: bool = r.get(2);
            if let Some((_, _, _, Value::Object(props))) = chunk.get_mut(i as usize) {
                props.insert("last_value".into(), last.into());
                props.insert("is_called".into(), called.into());
            }
        }
    }
    Ok(seqs.into_iter().map(|(k, _, _, v)| (k, v)).collect())
}
