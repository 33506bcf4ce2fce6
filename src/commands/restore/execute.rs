//! Running the plan: restore through the shared engine, prove the copy against the backup's
//! fingerprint, swap it into place, clean up after a failure, and record what happened.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::catalog::inuse::InUse;
use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, RestoreMode, RestoreOutcome, RestoreRecord};
use crate::catalog::Manifest;
use crate::error::{Kind, PgdrError, Result};
use crate::restore::{self, EngineOptions, EngineReport};

use super::plan::Plan;
use super::target::{self, clear_sessions, drop_database, swap};

/// What happened, for the summary, the record and the exit status.
pub struct RestoreReport {
    pub record: RestoreRecord,
    pub engine: Option<EngineReport>,
    pub error: Option<PgdrError>,
    /// Where the record went, or why it could not be written.
    pub record_key: std::result::Result<String, String>,
    pub notes: Vec<String>,
    /// From the manifest, for the summary.
    pub tables: usize,
    pub rows: u64,
}

impl RestoreReport {
    pub fn exit_code(&self) -> i32 {
        use crate::error::exit;
        match self.record.outcome {
            RestoreOutcome::Restored | RestoreOutcome::RestoredUnverified => exit::OK,
            RestoreOutcome::Differences => exit::CHECK_FAILED,
            RestoreOutcome::Failed => exit::COULD_NOT_RUN,
            RestoreOutcome::Interrupted => exit::INTERRUPTED,
        }
    }
}

#[derive(Default)]
struct Progress {
    /// `--clean` (or an empty target) was dropped.
    dropped_original: bool,
    restored: bool,
    engine: EngineReport,
    notes: Vec<String>,
    /// Point-in-time restore: what the replay did.
    replayed: Option<crate::catalog::format::replayed::StoredReplayed>,
}

/// Before the engine runs: drop an empty target (or a leftover `<name>_restoring` pgdr
/// marked) and mark this run's `<name>_restoring` in the repository.
async fn clear_target(
    plan: &Plan,
    client: &tokio_postgres::Client,
    timer: &mut PhaseTimer,
    progress: &mut Progress,
) -> Result<()> {
    match plan.mode {
        // `restore --table` runs elsewhere (tables_exec): never a full restore's mode.
        RestoreMode::Create | RestoreMode::IntoExisting | RestoreMode::Tables => {}
        RestoreMode::ReplaceEmpty => {
            clear_sessions(
                client,
                &[&plan.name],
                plan.terminate,
                &format!("DROP DATABASE {}", plan.name),
            )
            .await?;
            drop_database(client, &plan.name, plan.terminate).await?;
            progress.dropped_original = true;
            timer.done("drop");
        }
        RestoreMode::Swap | RestoreMode::Clean => {
            if plan.mode == RestoreMode::Clean && !plan.terminate {
                // Fail before the restore, not after it, when the original cannot be replaced.
                let what = format!("replacing {} (--clean)", plan.name);
                clear_sessions(client, &[&plan.name], false, &what).await?;
            }
            // Checked again: the plan may be minutes old. Only a leftover pgdr marked is
            // dropped, never the live database and never a database pgdr did not make.
            let repo_db = &plan.manifest.database;
            if let Some(l) = target::leftover(
                client,
                &plan.catalog,
                repo_db,
                &plan.server,
                &plan.restore_name,
            )
            .await?
            {
                let what = format!("dropping the leftover {}", l.name);
                clear_sessions(client, &[&l.name], plan.terminate, &what).await?;
                drop_database(client, &l.name, plan.terminate).await?;
                timer.done("drop");
            }
            plan.catalog
                .write_restoring_mark(repo_db, &plan.mark(None))
                .await
                .map_err(|e| e.context("marking the restore in progress in the repository"))?;
        }
    }
    Ok(())
}

async fn restore_and_prove(
    plan: &Plan,
    timer: &mut PhaseTimer,
    progress: &mut Progress,
) -> Result<Vec<String>> {
    let client = crate::source::connect(&plan.maintenance).await?;
    clear_target(plan, &client, timer, progress).await?;
    let target = restore::Target {
        maintenance: plan.maintenance.clone(),
        dbname: plan.restore_name.clone(),
        bin_dir: plan.bin_dir.clone(),
    };
    let opts = EngineOptions {
        fingerprint_archive: false,
        roles: plan.roles,
        jobs: Some(plan.jobs),
        spool_dir: plan.spool.as_ref().map(|s| s.0.clone()),
        database_properties: true,
        show_progress: plan.show_progress,
        single_transaction: false,
        managed: plan.managed.clone(),
        use_list: None,
    };
    restore::restore_with(
        &plan.catalog,
        &plan.manifest,
        plan.ids.clone(),
        &target,
        &opts,
        Some(plan.globals_sql.clone()),
        timer,
        &mut progress.engine,
    )
    .await?;
    progress.restored = true;
    if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
        // Now that it exists, the mark names its OID: a database someone makes under the
        // same name later is not taken for ours.
        if let Ok(Some(oid)) = target::oid(&client, &plan.restore_name).await {
            let mark = plan.mark(Some(oid));
            if let Err(e) = plan
                .catalog
                .write_restoring_mark(&plan.manifest.database, &mark)
                .await
            {
                tracing::warn!(error = %e, "could not record the OID in the restore mark");
            }
        }
    }
    if !plan.verify {
        // The changes to the connecting role still run, last.
        restore::roles_proof(&target, &mut progress.engine).await?;
        replay_onto(plan, &target, timer, progress).await?;
        return Ok(Vec::new());
    }
    let kept = progress.engine.kept_role_names.clone();
    let proof = match &plan.managed {
        Some(p) => super::managed::prove(&target, &plan.manifest, p).await,
        None => prove(&target, &plan.manifest, &kept, &mut progress.notes).await,
    };
    let mut diffs = proof.map_err(|e| e.context("restored, but the proof could not run"))?;
    // Roles compared with the backup's globals: a remaining difference is a finding unless
    // --roles kept it (then listed as kept, in the summary and the record).
    let roles = restore::roles_proof(&target, &mut progress.engine)
        .await
        .map_err(|e| e.context("restored, but the roles proof could not run"))?;
    diffs.extend(roles);
    timer.done("verify");
    if diffs.is_empty() {
        replay_onto(plan, &target, timer, progress).await?;
    }
    Ok(diffs)
}

/// Point-in-time restore: the anchor is restored and proven; now the changes up to the point.
async fn replay_onto(
    plan: &Plan,
    target: &crate::restore::Target,
    timer: &mut PhaseTimer,
    progress: &mut Progress,
) -> Result<()> {
    if let Some(point) = &plan.point {
        // Part-way between the anchor and the point is no state to keep: until the replay
        // is done, a failure or an interrupt drops the copy as an unfinished restore's.
        progress.restored = false;
        let r = super::replay_run::run(plan, point, target, &mut progress.notes).await?;
        progress.restored = true;
        progress.replayed = Some(r);
        timer.done("replay");
    }
    Ok(())
}

/// Compare the restored database with the backup's fingerprint as `verify` does, including
/// the database-level properties (replayed by the engine). Differences of existing roles that
/// were deliberately kept as they are (`--roles=skip-existing`) are notes, not differences.
async fn prove(
    target: &crate::restore::Target,
    m: &Manifest,
    kept_roles: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<String>> {
    let opts = crate::fingerprint::schema::DiffOptions {
        database_properties: true,
        ..Default::default()
    };
    let mut diffs = Vec::new();
    for d in crate::verify::compare_restored(target, m, &opts).await? {
        if kept_roles
            .iter()
            .any(|r| d.starts_with(&format!("role {r}:")))
        {
            notes.push(format!("{d} (an existing role, kept as is)"));
        } else {
            diffs.push(d);
        }
    }
    Ok(diffs)
}

/// `--clean`, once the proven copy is in place: drop the original (renamed to `prev`). What
/// is still kept, if the drop fails.
async fn drop_previous(
    plan: &Plan,
    prev: &str,
    timer: &mut PhaseTimer,
    notes: &mut Vec<String>,
) -> Option<String> {
    let dropped = async {
        let c = crate::source::connect(&plan.maintenance).await?;
        clear_sessions(
            &c,
            &[prev],
            plan.terminate,
            &format!("DROP DATABASE {prev}"),
        )
        .await?;
        drop_database(&c, prev, plan.terminate).await
    }
    .await;
    match dropped {
        Ok(()) => {
            timer.done("drop");
            None
        }
        Err(e) => {
            notes.push(format!(
                "the restored copy is in place as '{}'; the original, renamed '{prev}', could not be dropped ({}): drop it by hand",
                plan.name, e.message
            ));
            Some(prev.to_string())
        }
    }
}

/// Run the plan. Never returns early without a report: every run that started is recorded.
pub async fn execute(plan: Plan, cancel: CancellationToken) -> RestoreReport {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let mut timer = PhaseTimer::default();
    let mut progress = Progress::default();
    let in_use = mark_in_use(&plan).await;
    let result = {
        let work = restore_and_prove(&plan, &mut timer, &mut progress);
        tokio::select! {
            r = work => Some(r),
            _ = cancel.cancelled() => None,
        }
    };
    let mut notes = std::mem::take(&mut progress.notes);
    let mut previous_kept_as = None;
    let (outcome, differences, error) = settle(
        &plan,
        result,
        &progress,
        &mut timer,
        &mut notes,
        &mut previous_kept_as,
    )
    .await;
    if let Some(u) = in_use {
        u.release().await;
    }
    let finished_at = Utc::now();
    let m = &plan.manifest;
    let (tables, rows) = plan.table_count();
    let engine = Some(progress.engine);
    let record = RestoreRecord {
        backup_signature: Some(plan.backup_signature.clone()),
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: m.database.clone(),
        backup_id: m.id.clone(),
        snapshot_time: m.snapshot.time,
        target: plan.target.describe(),
        mode: plan.mode,
        jobs: plan.jobs,
        outcome,
        started_at,
        finished_at,
        phases: timer.phases,
        total_seconds: clock.elapsed().as_secs_f64(),
        rpo_seconds: (finished_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0,
        differences,
        error: error.as_ref().map(|e| e.message.clone()),
        previous_kept_as,
        roles_created: engine
            .as_ref()
            .map(|e| e.roles_created.clone())
            .unwrap_or_default(),
        roles_kept: engine
            .as_ref()
            .map(|e| e.roles_kept.clone())
            .unwrap_or_default(),
        managed: managed_lines(&plan, engine.as_ref()),
        host: records::hostname(),
        replay: progress.replayed.take(),
        tables: None,
    };
    let record_key = plan
        .catalog
        .write_restore(&record)
        .await
        .map_err(|e| e.message);
    RestoreReport {
        record,
        engine,
        error,
        record_key,
        notes,
        tables,
        rows,
    }
}

/// Prune keeps the backup while it is restored (a failure to mark is only logged: an
/// emergency restore does not wait on a repository write).
async fn mark_in_use(plan: &Plan) -> Option<InUse> {
    plan.catalog
        .mark_in_use(&plan.manifest.database, &plan.manifest.id, "restore")
        .await
        .map_err(|e| tracing::warn!(error = %e, "could not mark the backup in use"))
        .ok()
}

/// What a run's result means for the databases: swap a proven copy into place, keep a
/// differing one for inspection, clean up after a failure or an interrupt.
async fn settle(
    plan: &Plan,
    result: Option<Result<Vec<String>>>,
    progress: &Progress,
    timer: &mut PhaseTimer,
    notes: &mut Vec<String>,
    previous_kept_as: &mut Option<String>,
) -> (RestoreOutcome, Vec<String>, Option<PgdrError>) {
    let failed = !matches!(result, Some(Ok(_)));
    // Only an empty target is dropped before the restore; after a failure nothing is in its
    // place unless the restored copy is kept (its proof could not run).
    if failed
        && progress.dropped_original
        && (!progress.engine.created_database || discard(plan, progress))
    {
        notes.push(format!(
            "the previous '{}' (without any user object) was dropped before the failure; nothing is in its place",
            plan.name
        ));
    }
    match result {
        Some(Ok(diffs)) if !diffs.is_empty() => {
            if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
                notes.push(format!(
                    "not swapped: the copy differs from the backup; '{}' is untouched, the copy is kept as '{}' for inspection (drop it when done)",
                    plan.name, plan.restore_name
                ));
            }
            (RestoreOutcome::Differences, diffs, None)
        }
        Some(Ok(_)) => put_in_place(plan, timer, notes, previous_kept_as).await,
        Some(Err(e)) => {
            if discard(plan, progress) {
                cleanup(plan, notes).await;
            }
            (RestoreOutcome::Failed, Vec::new(), Some(e))
        }
        None => {
            if discard(plan, progress) {
                cleanup(plan, notes).await;
            }
            (
                RestoreOutcome::Interrupted,
                Vec::new(),
                Some(PgdrError::new(
                    Kind::Interrupted,
                    "restore interrupted by a signal",
                )),
            )
        }
    }
}

/// The copy is proven (or not to be proven): for `--swap`/`--clean`, rename it into place
/// (and for `--clean` drop the original).
async fn put_in_place(
    plan: &Plan,
    timer: &mut PhaseTimer,
    notes: &mut Vec<String>,
    previous_kept_as: &mut Option<String>,
) -> (RestoreOutcome, Vec<String>, Option<PgdrError>) {
    let swapped = match (plan.mode, &plan.previous_name) {
        (RestoreMode::Swap | RestoreMode::Clean, Some(prev)) => match swap(plan, prev).await {
            Ok(()) => {
                timer.done("swap");
                plan.catalog
                    .delete_restoring_mark(
                        &plan.manifest.database,
                        &plan.server,
                        &plan.restore_name,
                    )
                    .await;
                *previous_kept_as = Some(prev.clone());
                if plan.mode == RestoreMode::Clean {
                    *previous_kept_as = drop_previous(plan, prev, timer, notes).await;
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    match swapped {
        Ok(()) if plan.verify => (RestoreOutcome::Restored, Vec::new(), None),
        Ok(()) => (RestoreOutcome::RestoredUnverified, Vec::new(), None),
        Err(e) => {
            notes.push(format!(
                "'{}' is untouched and in place; the proven copy is kept as '{}': run the restore again with --terminate, or rename by hand once the sessions are gone",
                plan.name, plan.restore_name
            ));
            (RestoreOutcome::Failed, Vec::new(), Some(e))
        }
    }
}

/// Whether a failed or interrupted run drops the database it restored into: only one this run
/// created (never a database it found), and for `--clean`/new databases only an unfinished one
/// (a restored copy whose proof could not run is kept).
fn discard(plan: &Plan, progress: &Progress) -> bool {
    progress.engine.created_database
        && (matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) || !progress.restored)
}

/// After a failure or an interrupt: remove what this run created, never the original.
async fn cleanup(plan: &Plan, notes: &mut Vec<String>) {
    let what = match plan.mode {
        RestoreMode::Swap | RestoreMode::Clean => format!(
            "'{}' is untouched and in place; the unfinished copy '{}'",
            plan.name, plan.restore_name
        ),
        _ => format!("the partly restored database '{}'", plan.restore_name),
    };
    let dropped = async {
        let c = crate::source::connect(&plan.maintenance).await?;
        drop_database(&c, &plan.restore_name, true).await
    }
    .await;
    match dropped {
        Ok(()) => {
            if matches!(plan.mode, RestoreMode::Swap | RestoreMode::Clean) {
                plan.catalog
                    .delete_restoring_mark(
                        &plan.manifest.database,
                        &plan.server,
                        &plan.restore_name,
                    )
                    .await;
            }
            notes.push(format!("{what} was dropped"))
        }
        Err(e) => notes.push(format!(
            "{what} could not be dropped ({}); drop it by hand",
            e.message
        )),
    }
}

/// On a managed target: the plan's decisions, then what the run skipped or changed.
fn managed_lines(plan: &Plan, engine: Option<&EngineReport>) -> Vec<String> {
    let Some(p) = &plan.managed else {
        return Vec::new();
    };
    let mut out = p.decisions.clone();
    if let Some(e) = engine {
        out.extend(e.managed.iter().cloned());
    }
    out
}
