//! Taking a backup: snapshot, globals, dump, manifest, for each selected database. The engine
//! of `pgdr backup` (which is this, re-exported by `commands`) and of the daemon's backup job.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::catalog::manifest::{CodecInfo, PhaseTimer, SnapshotInfo, ToolsInfo};
use crate::catalog::{self, BackupId, Catalog, Manifest};
use crate::codec::{self, EncodeParams};
use crate::config::ops::JobKind;
use crate::config::{Database, Settings};
use crate::error::{Kind, PgdrError, Result};
use crate::fingerprint::Fingerprint;
use crate::source::snapshot::Snapshot;
use crate::source::{self, tools};

mod anchor;
mod labelling;
mod lock;
mod objects;

pub use labelling::Labelling;
pub use lock::SourceLock;

pub struct BackupOptions {
    pub database: Option<String>,
    pub show_progress: bool,
    /// Take the daemon's backup lock on each source first (the CLI; the daemon holds it
    /// already), so two backups of one database never run at once from anywhere.
    pub lock_source: bool,
    /// Label, note and keep rule to record (`pgdr backup --label ...`).
    pub labelling: Labelling,
}

/// The outcome per database: one failing database does not stop the others.
pub struct BackupReport {
    pub results: Vec<(String, Result<Manifest>)>,
}

impl BackupReport {
    pub fn failed(&self) -> impl Iterator<Item = (&String, &PgdrError)> {
        self.results
            .iter()
            .filter_map(|(d, r)| r.as_ref().err().map(|e| (d, e)))
    }
}

pub async fn run(
    settings: &Settings,
    opts: &BackupOptions,
    cancel: CancellationToken,
) -> Result<BackupReport> {
    // Everything that can be checked before touching the database or the repository is.
    let databases = settings.select(opts.database.as_deref())?;
    opts.labelling.check()?;
    let recipients = codec::parse_recipients(&settings.recipients)?;
    let params = Arc::new(EncodeParams {
        compression: settings.compression,
        recipients,
    });
    let catalog = Catalog::open(settings).await?;
    catalog.check_writable().await?;
    for db in &databases {
        labelling::ensure_free(&catalog, db, &opts.labelling).await?;
    }

    let mut results = Vec::new();
    for db in databases {
        if cancel.is_cancelled() {
            break;
        }
        let started = Instant::now();
        let r = backup_one(settings, db, &catalog, params.clone(), opts, cancel.clone()).await;
        match &r {
            Ok(m) => tracing::info!(
                database = %db.name,
                id = %m.id,
                seconds = started.elapsed().as_secs_f64(),
                "backup committed"
            ),
            Err(e) => tracing::error!(database = %db.name, error = %e.message, "backup failed"),
        }
        results.push((db.name.clone(), r));
    }
    Ok(BackupReport { results })
}

async fn backup_one(
    settings: &Settings,
    db: &Database,
    catalog: &Catalog,
    params: Arc<EncodeParams>,
    opts: &BackupOptions,
    cancel: CancellationToken,
) -> Result<Manifest> {
    let started_at = Utc::now();
    let mut phases = PhaseTimer::default();
    // The lock's session and the backup's own connect side by side: the lock is known before
    // anything is written. The first failure ends both at once: a refusal does not wait for the
    // snapshot (an anchor slot can wait a minute), and a lock taken for a backup that cannot
    // start goes with its session.
    let (lock, prepared) = tokio::try_join!(
        take_lock(db, opts.lock_source),
        prepare(settings, db, &mut phases, &cancel, opts.show_progress)
    )?;
    // Again under the lock: another backup may have taken the label since.
    let r = match labelling::ensure_free(catalog, db, &opts.labelling).await {
        Ok(()) => {
            dump_and_commit(
                db, catalog, params, opts, cancel, prepared, phases, started_at,
            )
            .await
        }
        Err(e) => Err(e),
    };
    if let Some(l) = lock {
        l.release().await;
    }
    r
}

/// The CLI's lock on the source (the daemon holds it already): one backup of a database at a
/// time from anywhere; its refusal names the holder.
async fn take_lock(db: &Database, wanted: bool) -> Result<Option<SourceLock>> {
    if !wanted {
        return Ok(None);
    }
    match SourceLock::try_acquire(db, JobKind::Backup).await? {
        Some(l) => Ok(Some(l)),
        None => {
            let who = SourceLock::holder(db, JobKind::Backup).await;
            Err(PgdrError::usage(format!(
                "database '{}': another backup of it is running ({who}); not starting a second one",
                db.name
            ))
            .hint("wait for it to finish, or stop it"))
        }
    }
}

/// The dump and the manifest, once the snapshot is open and the source is locked.
#[allow(clippy::too_many_arguments)]
async fn dump_and_commit(
    db: &Database,
    catalog: &Catalog,
    params: Arc<EncodeParams>,
    opts: &BackupOptions,
    cancel: CancellationToken,
    prepared: Prepared,
    mut phases: PhaseTimer,
    started_at: chrono::DateTime<Utc>,
) -> Result<Manifest> {
    let id = BackupId::from_time(started_at);
    let mut written: Vec<catalog::Key> = Vec::new();
    let result = objects::upload(
        catalog,
        db,
        &id,
        &prepared,
        &params,
        opts,
        &cancel,
        &mut phases,
        &mut written,
    )
    .await;

    let Prepared {
        info,
        pg_dump,
        snapshot,
        ..
    } = prepared;
    let snapshot_info = SnapshotInfo::of(&snapshot);
    // The snapshot transaction ends either way; its failure matters only if all else worked.
    let released = end_snapshot(snapshot, result.is_ok()).await;
    let o = match result.and_then(|r| released.map(|_| r)) {
        Ok(r) => r,
        Err(e) => {
            catalog.discard(&written).await;
            return Err(e.context(format!("database '{}'", db.name)));
        }
    };

    let mut manifest = Manifest {
        format_version: catalog::manifest::FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        id,
        database: db.name.clone(),
        source: info,
        snapshot: snapshot_info,
        started_at,
        finished_at: Utc::now(),
        phases: Vec::new(),
        tools: ToolsInfo {
            pg_dump_version: tools::reported_version(&pg_dump, &o.data.pg_dump_version),
            pg_dump_args: o.dump_args,
            pg_dumpall_version: o.pg_dumpall.version.clone(),
            pg_dumpall_args: o.globals_args,
        },
        codec: codec_info(&params),
        globals_mode: o.mode,
        objects: o.objects,
        fingerprint: Some(Fingerprint {
            data: o.data,
            schema: Some(o.schema),
            revealed: false,
        }),
        label: opts.labelling.label.clone(),
        note: opts.labelling.note.clone(),
        keep: opts.labelling.keep,
        extra: Default::default(),
    };
    manifest.phases = phases.phases;
    manifest.finished_at = Utc::now();
    commit(catalog, db, &manifest, &written, &cancel).await?;
    Ok(manifest)
}

/// How the objects were encoded, as the manifest records it for a restore to decode them.
fn codec_info(params: &EncodeParams) -> CodecInfo {
    CodecInfo {
        compression: "zstd".into(),
        zstd: params.compression,
        encryption: "age-x25519".into(),
        recipients: params.recipients.iter().map(|r| r.to_string()).collect(),
    }
}

/// What the backup learns from the server before the dump: its version and privileges, the
/// client tools that match it and the open snapshot.
struct Prepared {
    info: source::ServerInfo,
    pg_dump: tools::Tool,
    /// `[tools] pg_bin_dir`, for the globals' pg_dumpall found beside the dump.
    pg_bin_dir: Option<std::path::PathBuf>,
    snapshot: Snapshot,
    /// `pg_database_size`, the progress display's guess at the dump's size; None where
    /// nothing shows progress or the role may not read it.
    size_estimate: Option<u64>,
}

/// Connect, find the tools and open the snapshot. Everything here can wait on the server, so
/// it races the cancel token; nothing is written yet.
async fn prepare(
    settings: &Settings,
    db: &Database,
    phases: &mut PhaseTimer,
    cancel: &CancellationToken,
    show_progress: bool,
) -> Result<Prepared> {
    // Everything before the dump can wait on the server (a lock held by a migration, a slow
    // network): a cancel must not wait with it. Nothing has been written yet.
    let prepare = async {
        let client = source::connect(db).await?;
        let info = source::server_info(&client).await?;
        let size_estimate = match crate::progress::shown(show_progress) {
            true => database_size(&client).await,
            false => None,
        };
        phases.done("connect");
        // pg_dump from Debian's layout needs no probe (the archive header names its version);
        // elsewhere it is probed (5-15 ms) beside the snapshot's opening. pg_dumpall is found
        // beside the dump, by the globals (`objects`).
        let pg_dump = async {
            if let Some(t) =
                tools::find_in_layout("pg_dump", info.major(), settings.pg_bin_dir.as_deref())
            {
                return Ok(t);
            }
            find_tool("pg_dump", info.major(), settings.pg_bin_dir.clone()).await
        };
        let (snapshot, pg_dump) =
            tokio::join!(anchor::open_snapshot(settings, db, client), pg_dump);
        let pg_dump = pg_dump?;
        let snapshot = snapshot?;
        phases.done("snapshot");
        // With capture, the anchor slot's wait is part of the snapshot's time and its own
        // phase besides: the fixed cost of a backup without capture stays comparable.
        if let Some(waited) = snapshot.slot_wait {
            phases.record("anchor", waited);
        }
        Ok::<_, PgdrError>(Prepared {
            info,
            pg_dump,
            pg_bin_dir: settings.pg_bin_dir.clone(),
            snapshot,
            size_estimate,
        })
    };
    tokio::select! {
        r = prepare => r,
        _ = cancel.cancelled() => Err(PgdrError::new(
            Kind::Interrupted,
            format!("database '{}': interrupted before the dump started; nothing was written", db.name),
        )),
    }
}

/// `tools::find` on a blocking thread: a probe runs the program.
pub(super) async fn find_tool(
    name: &'static str,
    major: u32,
    dir: Option<std::path::PathBuf>,
) -> Result<tools::Tool> {
    tokio::task::spawn_blocking(move || tools::find(name, major, dir.as_deref()))
        .await
        .map_err(|e| PgdrError::internal(format!("probing {name}: {e}")))?
}

/// After a failure the session may still be running a catalog query that waits on a lock (a
/// stop does not cancel it server-side), and a COMMIT would queue behind it: dropping the
/// connection ends the transaction (and an anchor's temporary slot) without waiting.
async fn end_snapshot(snapshot: Snapshot, succeeded: bool) -> Result<()> {
    if succeeded {
        snapshot.release().await
    } else {
        drop(snapshot);
        Ok(())
    }
}

/// The database's size on disk, best effort: a guess at the dump's size for the progress
/// display (a role without CONNECT on it cannot be here, but a managed service may refuse).
async fn database_size(client: &tokio_postgres::Client) -> Option<u64> {
    let row = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .ok()?;
    u64::try_from(row.get::<_, i64>(0)).ok()
}

/// Write the manifest, the step that makes the backup exist; an interrupt before it, or a
/// failed write, removes the objects so no half backup is left behind.
async fn commit(
    catalog: &Catalog,
    db: &Database,
    manifest: &Manifest,
    written: &[catalog::Key],
    cancel: &CancellationToken,
) -> Result<()> {
    if cancel.is_cancelled() {
        catalog.discard(written).await;
        return Err(PgdrError::new(
            Kind::Interrupted,
            "interrupted before the manifest was written; nothing was kept",
        ));
    }
    if let Err(e) = catalog.commit(manifest).await {
        catalog.discard(written).await;
        return Err(e.context(format!("database '{}'", db.name)));
    }
    Ok(())
}
