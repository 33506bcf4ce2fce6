//! Proving a backup: the engine shared by `verify`, `drill` and `restore`.
//!
//! Quick proof needs no database: every object is fetched, its stored sha256 checked,
//! decrypted (age's MAC catches tampering), decompressed, and the archive parsed to its end
//! with the data digests recomputed. Full proof restores into a database and recomputes the
//! fingerprint there (data through `COPY ... TO STDOUT`, schema through the catalog).

use std::io;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::catalog::{self, Manifest};
use crate::error::{Kind, PgdrError, Result};
use crate::fingerprint::archive::{large_object_digest, ArchiveParser, ArchiveSummary};
use crate::fingerprint::rows::CopyRowSplitter;
use crate::fingerprint::schema;
use crate::pipeline;
use crate::store::Store;

pub use crate::restore::Identities;

/// sha256 of an object as stored, for naming a mismatch precisely.
async fn stored_sha256(store: &dyn Store, key: &str) -> Result<String> {
    let mut s = store.get(key).await?;
    let mut h = Sha256::new();
    while let Some(c) = s.next().await {
        let c = c.map_err(|e| PgdrError::repository(format!("reading {key}: {e}")))?;
        h.update(&c);
    }
    Ok(hex::encode(h.finalize()))
}

/// Quick proof. Returns the differences found (empty = proven).
pub async fn quick(store: &dyn Store, m: &Manifest, ids: Identities) -> Result<Vec<String>> {
    let mut diffs = Vec::new();
    for rec in &m.objects {
        let key = catalog::object_key(&m.database, &m.id, &rec.file);
        let sink = if rec.name == "dump" {
            Sink::Parser(Box::default())
        } else {
            Sink::Discard
        };
        let sink = match pipeline::download(
            store,
            &key,
            Some(rec.sha256_stored.clone()),
            ids.clone(),
            sink,
        )
        .await
        {
            Ok((stats, sink)) => {
                if stats.plain_sha256 != rec.sha256_plain {
                    diffs.push(format!(
                        "object {}: decrypted content sha256 {}... differs from the manifest's {}...",
                        rec.file,
                        &stats.plain_sha256[..12],
                        &rec.sha256_plain[..12.min(rec.sha256_plain.len())]
                    ));
                }
                sink
            }
            Err(e) if e.kind == Kind::NotFound => {
                diffs.push(format!("object {}: missing from the repository", rec.file));
                continue;
            }
            Err(e) if e.kind == Kind::Corrupt => {
                // Name a checksum mismatch when there is one: the clearest account of damage.
                match stored_sha256(store, &key).await {
                    Ok(got) if got != rec.sha256_stored => diffs.push(format!(
                        "object {}: sha256 mismatch (stored {}..., computed {}...)",
                        rec.file,
                        &rec.sha256_stored[..12.min(rec.sha256_stored.len())],
                        &got[..12]
                    )),
                    _ => diffs.push(format!("object {}: {}", rec.file, e.message)),
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Sink::Parser(parser) = sink {
            match parser.finish() {
                Ok(summary) => {
                    if let Some(fp) = &m.fingerprint {
                        diffs.extend(compare_data(
                            &fp.data,
                            &summary_digests(&summary),
                            "in the stored archive",
                        ));
                    }
                }
                Err(e) => diffs.push(format!("object {}: {e}", rec.file)),
            }
        }
    }
    Ok(diffs)
}

/// Where decrypted bytes go in a quick proof: the dump into the archive parser.
enum Sink {
    Parser(Box<ArchiveParser>),
    Discard,
}

impl io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Parser(p) => p.write(b),
            Sink::Discard => Ok(b.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Per table (schema, name) → (rows, digest); large objects keyed by oid.
#[derive(Debug, Default, PartialEq)]
pub struct DataDigests {
    pub tables: std::collections::BTreeMap<(String, String), (u64, String)>,
    pub large_objects: std::collections::BTreeMap<u32, String>,
}

pub fn summary_digests(s: &ArchiveSummary) -> DataDigests {
    DataDigests {
        tables: s
            .tables
            .iter()
            .map(|t| {
                (
                    (t.schema.clone(), t.name.clone()),
                    (t.rows, t.digest.clone()),
                )
            })
            .collect(),
        large_objects: s
            .large_objects
            .iter()
            .map(|l| (l.oid, l.digest.clone()))
            .collect(),
    }
}

fn qi(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The session settings pg_dump uses, plus the ones it inherits from its environment that pgdr
/// fixes (PGTZ=UTC): the same rows then give the same COPY text.
pub const COPY_SESSION: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET search_path = ''; \
    SET bytea_output = 'hex'; SET client_encoding = 'UTF8'; SET row_security = off";

/// Recompute the data digests of the tables the archive had, on a restored database.
pub async fn recompute_data(client: &Client, expected: &ArchiveSummary) -> Result<DataDigests> {
    client
        .batch_execute(COPY_SESSION)
        .await
        .map_err(|e| PgdrError::database(format!("preparing the fingerprint session: {e}")))?;
    let mut out = DataDigests::default();
    for t in &expected.tables {
        let cols: Vec<String> = t.columns.iter().map(|c| qi(c)).collect();
        let sql = if cols.is_empty() {
            format!("COPY {}.{} TO STDOUT", qi(&t.schema), qi(&t.name))
        } else {
            format!(
                "COPY {}.{} ({}) TO STDOUT",
                qi(&t.schema),
                qi(&t.name),
                cols.join(", ")
            )
        };
        let stream = match client.copy_out(sql.as_str()).await {
            Ok(s) => s,
            Err(e) if e.as_db_error().is_some() => continue, // missing: named by compare_data
            Err(e) => return Err(PgdrError::database(format!("{}.{}: {e}", t.schema, t.name))),
        };
        futures::pin_mut!(stream);
        let mut split = CopyRowSplitter::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                PgdrError::database(format!("reading {}.{}: {e}", t.schema, t.name))
            })?;
            split.feed(&chunk);
        }
        let d = split
            .finish()
            .map_err(|e| PgdrError::database(format!("{}.{}: {e}", t.schema, t.name)))?;
        out.tables
            .insert((t.schema.clone(), t.name.clone()), (d.rows, d.hex()));
    }
    for lo in &expected.large_objects {
        // The oid is a number from the archive; a missing object is a database error, which
        // compare_data reports as missing.
        match client
            .query_one(&format!("SELECT lo_get({}::oid)", lo.oid), &[])
            .await
        {
            Ok(r) => {
                let bytes: Vec<u8> = r.get(0);
                out.large_objects
                    .insert(lo.oid, large_object_digest(&bytes));
            }
            Err(e) if e.as_db_error().is_some() => {}
            Err(e) => return Err(PgdrError::database(format!("large object {}: {e}", lo.oid))),
        }
    }
    Ok(out)
}

/// Differences between the manifest's data fingerprint and what was found `where_`.
pub fn compare_data(expected: &ArchiveSummary, actual: &DataDigests, where_: &str) -> Vec<String> {
    let mut diffs = Vec::new();
    for t in &expected.tables {
        let name = format!("{}.{}", t.schema, t.name);
        match actual.tables.get(&(t.schema.clone(), t.name.clone())) {
            None => diffs.push(format!("{name}: missing {where_}")),
            Some((rows, _)) if *rows != t.rows => diffs.push(format!(
                "{name}: {} rows in backup, {rows} {where_}",
                t.rows
            )),
            Some((_, digest)) if *digest != t.digest => diffs.push(format!(
                "{name}: same row count ({}) but different content {where_}",
                t.rows
            )),
            Some(_) => {}
        }
    }
    for lo in &expected.large_objects {
        match actual.large_objects.get(&lo.oid) {
            None => diffs.push(format!("large object {}: missing {where_}", lo.oid)),
            Some(d) if *d != lo.digest => {
                diffs.push(format!("large object {}: content differs {where_}", lo.oid))
            }
            Some(_) => {}
        }
    }
    diffs
}

/// Recompute and compare on a restored database: rows through COPY, the catalog through the
/// same queries the backup ran inside its snapshot.
pub async fn compare_restored(db: &crate::config::Database, m: &Manifest) -> Result<Vec<String>> {
    let Some(fp) = &m.fingerprint else {
        return Ok(vec![
            "the manifest has no fingerprint to compare with".into()
        ]);
    };
    let client = crate::source::connect(db).await?;
    let mut diffs = Vec::new();
    if let Some(expected) = &fp.schema {
        let actual = schema::capture(&client).await?;
        let opts = schema::DiffOptions {
            // Database-level settings are replayed by the restore engine only when it restores
            // under the original name with their help; compared where they were replayed.
            database_properties: false,
            // Roles without passwords (managed services) still compare by attributes.
            ..Default::default()
        };
        diffs.extend(schema::diff(expected, &actual, &opts));
    }
    let actual = recompute_data(&client, &fp.data).await?;
    diffs.extend(compare_data(&fp.data, &actual, "after restore"));
    Ok(diffs)
}
