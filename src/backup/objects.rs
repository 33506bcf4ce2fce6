//! The backup's three objects, uploaded at once: the dump, the globals and the sensitive
//! schema values.
//!
//! The dump is the long one. The globals (a pg_dumpall run) and the schema capture (catalog
//! queries on the snapshot's own session) used to run before it and were most of a small
//! backup's fixed cost; beside it they cost no wall time. All three read the same snapshot
//! (pg_dumpall's roles are cluster-wide and have none). The first failure stops the others
//! through one token, and all three are awaited before returning, so no child or upload
//! outlives the call and the caller's discard finds every key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{BackupOptions, Prepared};
use crate::catalog::manifest::{ObjectRecord, PhaseTimer};
use crate::catalog::{self, sensitive, BackupId, Catalog};
use crate::codec::EncodeParams;
use crate::config::Database;
use crate::error::{Kind, PgdrError, Result};
use crate::fingerprint::schema::{self, SchemaFingerprint};
use crate::fingerprint::{ArchiveParser, ArchiveSummary};
use crate::pipeline;
use crate::progress::{Meter, Tee};
use crate::source::dump::{self, GlobalsMode};
use crate::source::tools::Tool;

/// What the uploads produced, for the manifest.
pub(super) struct Objects {
    pub mode: GlobalsMode,
    /// Found by the globals task, beside the dump.
    pub pg_dumpall: Tool,
    pub globals_args: Vec<String>,
    pub dump_args: Vec<String>,
    pub objects: Vec<ObjectRecord>,
    pub data: ArchiveSummary,
    /// The catalog as the snapshot sees it, without the sensitive values (those are an object).
    pub schema: SchemaFingerprint,
}

/// Which of the concurrent tasks failed first: its error is the cause, the others' are only
/// the stop it triggered.
struct FirstFailure {
    stop: CancellationToken,
    first: Mutex<Option<&'static str>>,
}

impl FirstFailure {
    fn watch<T>(&self, task: &'static str, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.first.lock().unwrap().get_or_insert(task);
            self.stop.cancel();
        }
        r
    }
}

/// Upload the objects; each key is pushed to `written` before any upload starts, so a failure
/// anywhere lets the caller discard exactly what may exist.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    catalog: &Catalog,
    db: &Database,
    id: &BackupId,
    p: &Prepared,
    params: &Arc<EncodeParams>,
    opts: &BackupOptions,
    cancel: &CancellationToken,
    phases: &mut PhaseTimer,
    written: &mut Vec<catalog::Key>,
) -> Result<Objects> {
    let mode = if p.info.is_superuser {
        GlobalsMode::Full
    } else {
        GlobalsMode::RolesOnlyNoPasswords
    };
    let globals_args = dump::pg_dumpall_args(mode, db);
    let dump_args = dump::pg_dump_args(&p.snapshot.id, db);
    let dump_key = catalog::Key::object(&db.name, id, catalog::DUMP_FILE);
    let globals_key = catalog::Key::object(&db.name, id, catalog::GLOBALS_FILE);
    let secret_key = catalog::Key::object(&db.name, id, sensitive::FILE);
    written.extend([dump_key.clone(), globals_key.clone(), secret_key.clone()]);

    let f = FirstFailure {
        stop: cancel.child_token(),
        first: Mutex::new(None),
    };
    let start = Instant::now();
    let globals = async {
        let tool = super::find_tool("pg_dumpall", p.info.major(), p.pg_bin_dir.clone()).await?;
        let child = dump::spawn(&tool, "pg_dumpall", db, &globals_args, f.stop.clone())?;
        let up = pipeline::upload(
            catalog,
            &globals_key,
            child,
            params.clone(),
            std::io::sink(),
        )
        .await?;
        Ok((
            record("globals", catalog::GLOBALS_FILE, &up),
            tool,
            start.elapsed(),
        ))
    };
    let schema = capture_schema(catalog, db, p, params, &secret_key, start, &f.stop);
    let dump = dump_object(catalog, db, p, params, opts, &dump_args, &dump_key, &f.stop);
    let (g, s, d) = tokio::join!(
        async { f.watch("globals", globals.await) },
        async { f.watch("schema", schema.await) },
        async { f.watch("dump", dump.await) },
    );
    let first = *f.first.lock().unwrap();
    let cause = |task: &str| first.is_none() || first == Some(task);
    let ((globals, pg_dumpall, g_time), (schema, secret, s_time), (dump, data)) = match (g, s, d) {
        (Ok(g), Ok(s), Ok(d)) => (g, s, d),
        (Err(e), _, _) if cause("globals") => return Err(e),
        (_, Err(e), _) if cause("schema") => return Err(e),
        (_, _, Err(e)) if cause("dump") => return Err(e),
        (g, s, d) => return Err(g.err().or(s.err()).or(d.err()).expect("one failed")),
    };
    // They overlap: each phase is its own duration from the start of the uploads.
    phases.record("schema", s_time);
    phases.record("globals", g_time);
    phases.done("dump");
    Ok(Objects {
        mode,
        pg_dumpall,
        globals_args,
        dump_args,
        objects: vec![dump, globals, secret],
        data,
        schema,
    })
}

/// The dump itself, with the archive parser listening for the data fingerprint.
#[allow(clippy::too_many_arguments)]
async fn dump_object(
    catalog: &Catalog,
    db: &Database,
    p: &Prepared,
    params: &Arc<EncodeParams>,
    opts: &BackupOptions,
    args: &[String],
    key: &catalog::Key,
    stop: &CancellationToken,
) -> Result<(ObjectRecord, ArchiveSummary)> {
    let child = dump::spawn(&p.pg_dump, "pg_dump", db, args, stop.clone())?;
    let total = p.size_estimate.map(|bytes| crate::progress::Total {
        bytes,
        estimated: true,
    });
    let meter = Meter::with_total(&format!("{} dump", db.name), opts.show_progress, total);
    let tap = Tee(meter, ArchiveParser::new());
    let up = pipeline::upload(catalog, key, child, params.clone(), tap).await?;
    let rec = record("dump", catalog::DUMP_FILE, &up);
    let Tee(meter, parser) = up.tap;
    meter.finish();
    // An archive that ended early (pg_dump cut off, yet exiting 0) fails here.
    let data = parser
        .finish()
        .map_err(|e| PgdrError::corrupt(format!("pg_dump output: {e}")))?;
    Ok((rec, data))
}

/// The schema fingerprint, as the snapshot sees it, with its sensitive values (settings,
/// comments) split off and stored encrypted: what a restore must bring back besides rows.
async fn capture_schema(
    catalog: &Catalog,
    db: &Database,
    p: &Prepared,
    params: &Arc<EncodeParams>,
    key: &catalog::Key,
    start: Instant,
    stop: &CancellationToken,
) -> Result<(SchemaFingerprint, ObjectRecord, Duration)> {
    // Catalog queries can wait on a lock a migration holds (the children are killed by the
    // token; a query has to be raced with it), and a stop must not wait with them.
    let captured = tokio::select! {
        r = schema::capture(&p.snapshot.client) => r,
        _ = stop.cancelled() => Err(PgdrError::new(
            Kind::Interrupted,
            format!("database '{}': interrupted while fingerprinting the schema", db.name),
        )),
    };
    let mut schema = captured
        .map_err(|e| e.context(format!("database '{}': fingerprinting the schema", db.name)))?;
    let secret = crate::fingerprint::sensitive::split(&mut schema);
    let plain = std::io::Cursor::new(sensitive::to_bytes(&secret)?);
    let up = pipeline::upload(catalog, key, plain, params.clone(), std::io::sink()).await?;
    let rec = record(sensitive::OBJECT, sensitive::FILE, &up);
    Ok((schema, rec, start.elapsed()))
}

fn record<T>(name: &str, file: &str, up: &pipeline::Uploaded<T>) -> ObjectRecord {
    ObjectRecord {
        name: name.to_string(),
        file: file.to_string(),
        raw_bytes: up.stats.plain_bytes,
        compressed_bytes: up.stats.compressed_bytes,
        stored_bytes: up.receipt.size,
        sha256_plain: up.stats.plain_sha256.clone(),
        sha256_stored: up.receipt.sha256.clone(),
    }
}
