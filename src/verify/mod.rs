//! Proving a backup: the engine shared by `verify`, `drill` and `restore`.
//!
//! Quick proof needs no database: every object is fetched, its stored sha256 checked,
//! decrypted (age's MAC catches tampering), decompressed, and the archive parsed to its end
//! with the data digests recomputed. Full proof restores into a database and recomputes the
//! fingerprint there (data through `COPY ... TO STDOUT`, schema through the catalog).
//!
//! `job`: the verify job itself (which backups, prove each, store the record), the engine of
//! `pgdr verify` and of the daemon's verification after a backup.

use std::io;
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::catalog::manifest::ObjectRecord;
use crate::catalog::sensitive;
use crate::catalog::{self, Manifest};
use crate::codec::Identities;
use crate::error::{Kind, PgdrError, Result};
use crate::fingerprint::archive::{large_object_digest, ArchiveParser, ArchiveSummary};
use crate::fingerprint::rows::{CopyRowSplitter, RowDigest};
use crate::fingerprint::schema;
use crate::pipeline;
use crate::sql::quote_ident as qi;

mod capture;
pub mod chain;
pub mod diff;
mod job;
pub mod scratch;
pub use capture::capture_checks;
pub use job::{run, Selection, VerifyOptions};
pub use scratch::Scratch;

/// sha256 of an object as stored, for naming a mismatch precisely.
async fn stored_sha256(repo: &catalog::Repository, key: &catalog::Key) -> Result<String> {
    let mut s = repo.get_object(key).await?;
    let mut h = Sha256::new();
    while let Some(c) = s.next().await {
        let c = c.map_err(|e| PgdrError::repository(format!("reading {key}: {e}")))?;
        h.update(&c);
    }
    Ok(hex::encode(h.finalize()))
}

/// Quick proof. Returns the differences found (empty = proven).
pub async fn quick(
    repo: &catalog::Repository,
    m: &Manifest,
    ids: Identities,
) -> Result<Vec<String>> {
    let mut diffs = Vec::new();
    for rec in &m.objects {
        let sink = if rec.name == "dump" {
            Sink::Parser(Box::default())
        } else if rec.name == sensitive::OBJECT || rec.name == "globals" {
            // Both are small: kept whole to be checked once decrypted.
            Sink::Collect(Vec::new())
        } else {
            Sink::Discard
        };
        if let Some(sink) = fetch_object(repo, m, rec, ids.clone(), sink, &mut diffs).await? {
            check_decrypted(m, rec, sink, &mut diffs);
        }
    }
    Ok(diffs)
}

/// Fetch, decrypt and decompress one object into `sink`, checked against the manifest's
/// sha256. A missing or damaged object is a difference (and `None`: nothing to look into);
/// any other failure means the proof could not run.
async fn fetch_object(
    repo: &catalog::Repository,
    m: &Manifest,
    rec: &ObjectRecord,
    ids: Identities,
    sink: Sink,
    diffs: &mut Vec<String>,
) -> Result<Option<Sink>> {
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let sink =
        match pipeline::download(repo, &key, Some(rec.sha256_stored.clone()), ids, sink).await {
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
                return Ok(None);
            }
            Err(e) if e.kind == Kind::Corrupt => {
                // Name a checksum mismatch when there is one: the clearest account of damage.
                match stored_sha256(repo, &key).await {
                    Ok(got) if got != rec.sha256_stored => diffs.push(format!(
                        "object {}: sha256 mismatch (stored {}..., computed {}...)",
                        rec.file,
                        &rec.sha256_stored[..12.min(rec.sha256_stored.len())],
                        &got[..12]
                    )),
                    _ => diffs.push(format!("object {}: {}", rec.file, e.message)),
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
    Ok(Some(sink))
}

/// What the decrypted content must hold beyond its checksum: globals only in pg_dumpall's
/// shapes, sensitive values for the names the manifest lists, the archive complete with the
/// data digests the manifest recorded.
fn check_decrypted(m: &Manifest, rec: &ObjectRecord, sink: Sink, diffs: &mut Vec<String>) {
    if let Sink::Collect(bytes) = &sink {
        if rec.name == "globals" {
            // Statements pg_dumpall does not emit would run as superuser on a restore.
            let text = String::from_utf8_lossy(bytes);
            if let Err(e) = crate::restore::globals::parse(&text) {
                diffs.push(format!("object {}: {}", rec.file, e.message));
            }
        // The values must belong to the names the manifest lists.
        } else if let Err(e) = sensitive::check(m, bytes) {
            diffs.push(e.message);
        }
    }
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

/// Where decrypted bytes go in a quick proof: the dump into the archive parser.
enum Sink {
    Parser(Box<ArchiveParser>),
    /// The sensitive object or the globals SQL: small, checked once decrypted.
    Collect(Vec<u8>),
    Discard,
}

impl io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Parser(p) => p.write(b),
            Sink::Collect(v) => v.write(b),
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

/// Tables whose data block is larger than this are read in several ctid ranges at once.
const SPLIT_BYTES: u64 = 64 << 20;

/// One piece of the recomputation: a table, or a block range of a large one.
struct Unit {
    table: usize,
    /// `[from, to)` heap blocks; `to == None` means to the end.
    blocks: Option<(u64, Option<u64>)>,
}

/// Recompute the data digests of the tables the archive had, on a restored database, over
/// `parallel` connections at once, each running `COPY ... TO STDOUT` unit after unit; large
/// tables are split into ctid ranges, so both the server's COPY and the digest run on every
/// core. The digest is order-independent, so the parts merge.
pub async fn recompute_data(
    target: &crate::restore::Target,
    expected: &ArchiveSummary,
    parallel: usize,
) -> Result<DataDigests> {
    let parallel = parallel.max(1);
    let db = target.database();
    // For catalog look-ups and large objects (binary results: no session settings needed).
    let client = crate::source::connect(&db).await?;
    let units = plan_units(&client, expected, parallel).await;
    tracing::debug!(
        units = units.len(),
        tables = expected.tables.len(),
        parallel,
        "recomputing row digests"
    );
    let results = run_workers(db, expected, units, parallel).await?;
    let mut out = DataDigests::default();
    for (t, d) in expected.tables.iter().zip(results) {
        // A table that could not be read is missing: compare_data names it.
        if let Some(d) = d {
            out.tables
                .insert((t.schema.clone(), t.name.clone()), (d.rows, d.hex()));
        }
    }
    large_object_digests(&client, expected, &mut out).await?;
    Ok(out)
}

/// The units of work: a table whole, or (on PostgreSQL 14+, for a table larger than
/// [`SPLIT_BYTES`]) several block ranges of it, so one big table does not leave the other
/// connections idle.
async fn plan_units(
    client: &tokio_postgres::Client,
    expected: &ArchiveSummary,
    parallel: usize,
) -> Vec<Unit> {
    // TID range scans (PostgreSQL 14+) make a ctid range cheap; before that each part would
    // scan the whole table.
    let tid_ranges = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map(|r| r.get::<_, i32>(0) >= 140000)
        .unwrap_or(false);
    let mut units = Vec::new();
    for (i, t) in expected.tables.iter().enumerate() {
        let parts = if tid_ranges && t.bytes > SPLIT_BYTES && !t.columns.is_empty() {
            (t.bytes / SPLIT_BYTES).min(parallel as u64 * 2).max(2)
        } else {
            1
        };
        if parts == 1 {
            units.push(Unit {
                table: i,
                blocks: None,
            });
            continue;
        }
        let pages: Option<i64> = client
            .query_one(
                &format!(
                    "SELECT (pg_relation_size({}::regclass) / current_setting('block_size')::int)::int8",
                    crate::sql::quote_literal(&format!("{}.{}", qi(&t.schema), qi(&t.name)))
                ),
                &[],
            )
            .await
            .ok()
            .map(|r| r.get(0));
        match pages {
            Some(p) if p as u64 >= parts => {
                let step = p as u64 / parts;
                for k in 0..parts {
                    let to = (k + 1 < parts).then_some((k + 1) * step);
                    units.push(Unit {
                        table: i,
                        blocks: Some((k * step, to)),
                    });
                }
            }
            _ => units.push(Unit {
                table: i,
                blocks: None,
            }),
        }
    }
    units
}

/// `parallel` workers over one queue of units; the digests merged per table (`None` for a
/// table that could not be read).
async fn run_workers(
    db: crate::config::Database,
    expected: &ArchiveSummary,
    units: Vec<Unit>,
    parallel: usize,
) -> Result<Vec<Option<RowDigest>>> {
    let tables = Arc::new(expected.tables.clone());
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        units,
    )));
    let results = Arc::new(std::sync::Mutex::new(vec![
        Some(RowDigest::default());
        expected.tables.len()
    ]));
    let db = Arc::new(db);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (tables, queue, results, db) =
            (tables.clone(), queue.clone(), results.clone(), db.clone());
        tasks.spawn(async move { digest_worker(&db, &tables, &queue, &results).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| PgdrError::internal(format!("digest worker: {e}")))??;
    }
    let results = results.lock().expect("results").clone();
    Ok(results)
}

/// The large objects' digests, read whole with `lo_get`; one that is missing is left out for
/// compare_data to report.
async fn large_object_digests(
    client: &tokio_postgres::Client,
    expected: &ArchiveSummary,
    out: &mut DataDigests,
) -> Result<()> {
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
    Ok(())
}

type Queue = std::sync::Mutex<std::collections::VecDeque<Unit>>;
type Results = std::sync::Mutex<Vec<Option<RowDigest>>>;

/// Takes units off the queue until it is empty, merging each digest into its table's; one
/// connection, set up to print rows as pg_dump did, serves all of its units.
async fn digest_worker(
    db: &crate::config::Database,
    tables: &[crate::fingerprint::archive::TableData],
    queue: &Queue,
    results: &Results,
) -> Result<()> {
    if queue.lock().expect("queue").is_empty() {
        return Ok(());
    }
    let client = crate::source::connect(db).await?;
    client
        .batch_execute(COPY_SETTINGS)
        .await
        .map_err(|e| PgdrError::database(format!("setting up the row re-read: {e}")))?;
    loop {
        let Some(unit) = queue.lock().expect("queue").pop_front() else {
            return Ok(());
        };
        let d = copy_digest(&client, &tables[unit.table], unit.blocks).await?;
        let mut r = results.lock().expect("results");
        match (d, r[unit.table].as_mut()) {
            (Some(d), Some(acc)) => acc.merge(&d),
            _ => r[unit.table] = None,
        }
    }
}

/// The session settings pg_dump uses (and PGTZ=UTC, which pgdr gives it), for the session
/// that re-reads rows: the same rows then print as the same COPY text (the client encoding
/// is UTF-8, as pgdr's pg_dump runs with `--encoding=UTF8`). search_path=pg_catalog prints
/// names as pg_dump's empty search_path does. Plain SETs, which poolers accept.
const COPY_SETTINGS: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET search_path = pg_catalog; \
    SET bytea_output = hex; SET row_security = off";

/// Digest of one table (or block range) as `COPY ... TO STDOUT` prints it; `None` when the
/// table cannot be read (missing after restore).
async fn copy_digest(
    client: &tokio_postgres::Client,
    t: &crate::fingerprint::archive::TableData,
    blocks: Option<(u64, Option<u64>)>,
) -> Result<Option<RowDigest>> {
    let table = format!("{}.{}", qi(&t.schema), qi(&t.name));
    let cols: Vec<String> = t.columns.iter().map(|c| qi(c)).collect();
    let sql = match blocks {
        None if cols.is_empty() => format!("COPY {table} TO STDOUT"),
        None => format!("COPY {table} ({}) TO STDOUT", cols.join(", ")),
        Some((from, to)) => {
            let upper = to
                .map(|b| format!(" AND ctid < '({b},0)'::tid"))
                .unwrap_or_default();
            format!(
                "COPY (SELECT {} FROM {table} WHERE ctid >= '({from},0)'::tid{upper}) TO STDOUT",
                cols.join(", ")
            )
        }
    };
    let what = format!("{}.{}", t.schema, t.name);
    let read_error = |e: tokio_postgres::Error| {
        PgdrError::database(format!(
            "recomputing {what}: {}",
            crate::restore::db_message(&e)
        ))
    };
    let stream = match client.copy_out(sql.as_str()).await {
        Ok(s) => s,
        // A table or column that is not there after the restore is a difference, named by
        // the caller.
        Err(e)
            if e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE
                    || *c == tokio_postgres::error::SqlState::UNDEFINED_COLUMN
            }) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(read_error(e)),
    };
    futures::pin_mut!(stream);
    let mut split = CopyRowSplitter::new();
    while let Some(chunk) = stream.next().await {
        split.feed(&chunk.map_err(read_error)?);
    }
    split
        .finish()
        .map(Some)
        .map_err(|e| PgdrError::database(format!("{what}: {e}")))
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
/// same queries the backup ran inside its snapshot. `opts` says which catalog parts count.
pub async fn compare_restored(
    target: &crate::restore::Target,
    m: &Manifest,
    opts: &schema::DiffOptions,
) -> Result<Vec<String>> {
    sensitive::require_revealed(m)?;
    let db = &target.database();
    let Some(fp) = &m.fingerprint else {
        return Ok(vec![
            "the manifest has no fingerprint to compare with".into()
        ]);
    };
    let mut diffs = Vec::new();
    if let Some(expected) = &fp.schema {
        let client = crate::source::connect(db).await?;
        let actual = schema::capture(&client).await?;
        diffs.extend(schema::diff(expected, &actual, opts));
    }
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let actual = recompute_data(target, &fp.data, parallel).await?;
    diffs.extend(compare_data(&fp.data, &actual, "after restore"));
    Ok(diffs)
}

/// What verify and drills compare: everything but database-level settings, which a restore
/// under the scratch cluster's defaults (locale) cannot reproduce exactly.
pub fn scratch_diff_options() -> schema::DiffOptions {
    schema::DiffOptions {
        database_properties: false,
        ..Default::default()
    }
}

/// The proof of a restore onto the scratch cluster (verify, drill): the whole fingerprint,
/// less the lines of roles that pre-existed there (the bootstrap superuser), which the roles
/// proof judges after their settings were applied, as a restore with `--roles=merge` would.
pub async fn compare_scratch(
    target: &crate::restore::Target,
    m: &Manifest,
    report: &mut crate::restore::EngineReport,
) -> Result<Vec<String>> {
    let existing = report.kept_role_names.clone();
    let fp = compare_restored(target, m, &scratch_diff_options()).await?;
    let mut d: Vec<String> = fp
        .into_iter()
        .filter(|x| {
            !existing
                .iter()
                .any(|r| x.starts_with(&format!("role {r}:")))
        })
        .collect();
    d.extend(crate::restore::roles_proof(target, report).await?);
    for k in &report.roles_kept {
        tracing::info!("roles: {k}");
    }
    Ok(d)
}
