//! Drilling: a timed rehearsal of an emergency restore, the engine of `pgdr drill` and of the
//! daemon's drill job (the history and report of past drills are `commands::drill`'s). Picks
//! a backup, restores it into a scratch database exactly as `restore` would (roles, database,
//! pg_restore), proves it against the fingerprint, runs the drill's smoke checks, tears the
//! scratch database down, and records RTO, RPO and the worst RPO of the last 30 days in the
//! repository (`<database>/drills/<start>.json`), so the history survives the host that ran
//! it.
//!
//! RTO is the wall time from the drill's start to "restored, fingerprint equal, smoke checks
//! passed": the sum of the phases before `teardown`. RPO is the drill's start minus the
//! snapshot time of the backup restored; with the database's capture enabled, the data at
//! risk at the drill's start (time since the newest point durable in the repository), as
//! `status` says it; the record names which (`rpo_source`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{
    self, CheckResult, DrillBackup, DrillRecord, DrillTargets, Outcome, VerificationRecord,
    VerifyMode,
};
use crate::catalog::{Catalog, Listed, Manifest};
use crate::codec::{self, Identities};
use crate::config::{Settings, DEFAULT_RPO_TARGET, DEFAULT_RTO_TARGET};
use crate::error::{Kind, PgdrError, Result};
use crate::restore;
use crate::verify;
use crate::verify::Scratch;

mod capture_rpo;
mod checks;
pub mod key_check;
mod point;
mod prove;
pub mod rpo;
pub mod spec;

use checks::{run_check, server_version};
use prove::restore_and_prove;

pub use spec::{DrillSpec, Selection};

/// The worst RPO is looked for over this many days before the drill.
pub const WORST_RPO_WINDOW_DAYS: u32 = 30;

pub struct DrillOptions {
    pub database: Option<String>,
    /// A backup id or unique prefix; default: per the drill file's selection (newest).
    pub backup: Option<String>,
    /// A drill definition (drills/monthly.toml).
    pub drill: Option<PathBuf>,
}

/// One drill as run: its record and where it was stored.
pub struct DrillRun {
    pub record: DrillRecord,
    pub key: String,
}

pub async fn run(settings: &Settings, opts: &DrillOptions) -> Result<Vec<DrillRun>> {
    let spec = opts.drill.as_deref().map(DrillSpec::load).transpose()?;
    let ids: Identities = Arc::new(codec::require_identities(&settings.identities)?);
    let catalog = Catalog::open(settings).await?;
    let names = databases(&catalog, settings, opts, spec.as_ref()).await?;
    if let Some(Selection::RandomPointWithinDays(n)) = spec.as_ref().map(|s| &s.selection) {
        // Refused before anything runs or is recorded: no half a drill in the history.
        for db in &names {
            point::require_capture(&catalog, db, *n).await?;
        }
    }
    let mut out = Vec::new();
    for db in names {
        let record = drill_one(
            &catalog,
            settings,
            &db,
            opts.backup.as_deref(),
            spec.as_ref(),
            ids.clone(),
        )
        .await?;
        let key = catalog.write_drill(&record).await?;
        out.push(DrillRun { record, key });
    }
    Ok(out)
}

/// Which databases to drill: --database, the drill file's, every configured one, or every
/// one in the repository.
async fn databases(
    catalog: &Catalog,
    settings: &Settings,
    opts: &DrillOptions,
    spec: Option<&DrillSpec>,
) -> Result<Vec<String>> {
    let from_file = spec.and_then(|s| s.database.clone());
    match (&opts.database, from_file) {
        (Some(d), Some(f)) if *d != f => Err(PgdrError::usage(format!(
            "the drill file is for database '{f}', not '{d}'"
        ))
        .hint("drop --database, or use a drill file written for that database")),
        (Some(d), _) => Ok(vec![d.clone()]),
        (None, Some(f)) => Ok(vec![f]),
        (None, None) => {
            if let Some(id) = &opts.backup {
                return Ok(vec![
                    catalog
                        .select(None, crate::catalog::Pick::Id(id))
                        .await?
                        .manifest
                        .database,
                ]);
            }
            if !settings.databases.is_empty() {
                return Ok(settings.databases.iter().map(|d| d.name.clone()).collect());
            }
            let n = catalog.databases().await?;
            if n.is_empty() {
                return Err(PgdrError::usage("no database to drill").hint(
                    "name it with --database NAME (a drill of a database without backups fails and is recorded)",
                ));
            }
            Ok(n)
        }
    }
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The drill file's value, else the config's, else the default; with where it came from.
pub fn target(
    file: Option<Duration>,
    config: Option<Duration>,
    default: Duration,
) -> (f64, &'static str) {
    match (file, config) {
        (Some(t), _) => (t.as_secs_f64(), "drill file"),
        (None, Some(t)) => (t.as_secs_f64(), "config"),
        (None, None) => (default.as_secs_f64(), "default"),
    }
}

/// A random index below `n`, from the clock: a drill needs no better randomness than that.
fn random_index(n: usize) -> usize {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x = t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32);
    // splitmix64: spreads the clock's low bits.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((x ^ (x >> 31)) % n as u64) as usize
}

/// The backup to restore, or why there is none (a failed drill, recorded).
fn choose(
    listed: &[Listed],
    given: Option<&str>,
    selection: &Selection,
    now: DateTime<Utc>,
    db: &str,
    repo: &str,
) -> Result<std::result::Result<Manifest, String>> {
    if let Some(typed) = given {
        let id = crate::catalog::id::resolve(typed, listed.iter().map(|l| l.id()))?;
        return Ok(match listed.iter().find(|l| *l.id() == id) {
            Some(Listed::Ok(e)) => Ok(e.manifest.clone()),
            Some(Listed::Damaged { error, .. }) => {
                Err(format!("backup {id} cannot be read: {error}"))
            }
            None => Err(format!("no backup with id '{typed}'")),
        });
    }
    let readable: Vec<&Manifest> = listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => Some(&e.manifest),
            Listed::Damaged { .. } => None,
        })
        .collect();
    let none = || {
        if listed.is_empty() {
            format!("no backup of database '{db}' in {repo}: nothing to restore")
        } else {
            format!(
                "no readable backup of database '{db}' in {repo} ({} damaged): nothing to restore",
                listed.len()
            )
        }
    };
    Ok(match selection {
        // Chosen with its point by `point::choose`; never asked here.
        Selection::RandomPointWithinDays(_) => Err("a point is chosen with its plan".into()),
        Selection::Newest => readable.last().map(|m| (*m).clone()).ok_or_else(none),
        Selection::RandomWithinDays(n) => {
            let since = now - chrono::Duration::days(*n as i64);
            let recent: Vec<&&Manifest> = readable
                .iter()
                .filter(|m| m.snapshot.time >= since)
                .collect();
            if recent.is_empty() {
                Err(if readable.is_empty() {
                    none()
                } else {
                    format!(
                        "no backup of database '{db}' in the last {n} days: nothing to restore (the newest is {})",
                        readable.last().expect("not empty").id
                    )
                })
            } else {
                Ok((*recent[random_index(recent.len())]).clone())
            }
        }
    })
}

/// No backup to restore: the drill fails, and the record says why.
fn no_backup(
    mut rec: DrillRecord,
    why: String,
    checks: &[spec::Check],
    t0: Instant,
    timer: PhaseTimer,
) -> DrillRecord {
    rec.failures.push(why);
    rec.checks = not_run(checks, "there was no backup to restore");
    rec.elapsed_seconds = t0.elapsed().as_secs_f64();
    finish(rec, timer)
}

async fn drill_one(
    catalog: &Catalog,
    settings: &Settings,
    db: &str,
    given: Option<&str>,
    spec: Option<&DrillSpec>,
    ids: Identities,
) -> Result<DrillRecord> {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let mut timer = PhaseTimer::default();
    let selection = spec.map_or(Selection::Newest, |s| s.selection.clone());
    let checks: &[spec::Check] = spec.map_or(&[], |s| &s.checks);

    // 1. Choose the backup, as the operator of an emergency restore would.
    let listed = catalog.list(Some(db)).await?;
    let points = rpo::points(&listed);
    let worst = rpo::worst_rpo(&points, started_at, WORST_RPO_WINDOW_DAYS);
    let (chosen, point_plan) = pick(catalog, &listed, given, &selection, started_at, db).await?;
    timer.done("select");

    let targets = drill_targets(settings, db, spec);
    let mut rec = new_record(db, spec, given, &selection, started_at, worst, targets);
    capture_rpo::record(&mut rec, settings, catalog, &listed).await?;
    let mut m = match chosen {
        Ok(m) => m,
        Err(why) => return Ok(no_backup(rec, why, checks, t0, timer)),
    };
    // Prune keeps it while the drill reads it; the mark goes when this function returns.
    let _in_use = catalog.mark_in_use(&m.database, &m.id, "drill").await?;
    rec.backup = Some(backup_facts(&m));
    capture_rpo::or_backup(&mut rec, &m);
    if refused(catalog, &m, &mut rec, checks, t0).await? {
        return Ok(finish(rec, timer));
    }

    // 2. Somewhere to restore into.
    let sc = match Scratch::open(settings, &m, "drill").await {
        Ok(sc) => sc,
        Err(e) => {
            timer.done("scratch");
            no_scratch(&mut rec, &e, checks);
            rec.elapsed_seconds = t0.elapsed().as_secs_f64();
            return Ok(finish(rec, timer));
        }
    };
    rec.scratch = Some(sc.describe());
    timer.done("scratch");

    // 3-5. Restore, prove, smoke checks.
    let (restored, proven) = restore_and_prove(
        catalog,
        &mut m,
        ids,
        &sc,
        (checks, point_plan.as_ref()),
        &mut rec,
        &mut timer,
    )
    .await;
    rec.elapsed_seconds = t0.elapsed().as_secs_f64();
    if restored.is_ok() && proven && rec.checks.iter().all(|c| c.passed) {
        // Exactly the phases so far: back to back from the start.
        rec.rto_seconds = Some(timer.phases.iter().map(|p| p.seconds).sum());
    }

    // 6. Teardown, whatever happened.
    sc.teardown().await;
    timer.done("teardown");

    let failure = restored.as_ref().err();
    store_verdict(catalog, &rec, &m, failure, started_at, &timer).await;

    check_targets(&mut rec, &selection, given, &points, started_at, &m);
    Ok(finish(rec, timer))
}

/// The backup to restore and, for a drill of a point, the point's plan.
async fn pick(
    catalog: &Catalog,
    listed: &[Listed],
    given: Option<&str>,
    selection: &Selection,
    now: DateTime<Utc>,
    db: &str,
) -> Result<(
    std::result::Result<Manifest, String>,
    Option<restore::point::PointPlan>,
)> {
    if let (Selection::RandomPointWithinDays(n), None) = (selection, given) {
        return Ok(match point::choose(catalog, listed, db, *n, now).await? {
            Ok((m, p)) => (Ok(m), Some(p)),
            Err(why) => (Err(why), None),
        });
    }
    let chosen = choose(listed, given, selection, now, db, &catalog.describe())?;
    Ok((chosen, None))
}

/// Whether the backup is not drilled because no trusted key signed it: the drill fails and
/// the record says why (or, when accepted, how). Errors other than a refusal are the drill's.
async fn refused(
    catalog: &Catalog,
    m: &Manifest,
    rec: &mut DrillRecord,
    checks: &[spec::Check],
    t0: Instant,
) -> Result<bool> {
    match catalog.authenticate(m).await {
        Ok(sig) => {
            rec.backup_signature = Some(sig);
            Ok(false)
        }
        Err(e) if e.kind == crate::error::Kind::Crypto => {
            rec.failures
                .push(format!("{} ({})", e.message, e.hints.join("; ")));
            rec.checks = not_run(checks, "the backup was refused (signature)");
            rec.elapsed_seconds = t0.elapsed().as_secs_f64();
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// What the record says of the backup a drill restores.
fn backup_facts(m: &Manifest) -> DrillBackup {
    DrillBackup {
        id: m.id.clone(),
        snapshot_time: m.snapshot.time,
        server_version: m.source.server_version.clone(),
        dump_bytes: m.object("dump").map_or(0, |d| d.raw_bytes),
        stored_bytes: m.objects.iter().map(|o| o.stored_bytes).sum(),
    }
}

/// A drill that found nowhere to restore could not run: an error, not a failed backup.
fn no_scratch(rec: &mut DrillRecord, e: &PgdrError, checks: &[spec::Check]) {
    rec.outcome = Outcome::Error;
    rec.failures
        .push(format!("could not run: no scratch database: {}", e.message));
    rec.error = Some(e.to_string());
    rec.checks = not_run(checks, "no scratch database");
}

/// RTO and RPO targets of this drill: the drill file's, else the database's, else the
/// defaults; each with where it came from.
fn drill_targets(settings: &Settings, db: &str, spec: Option<&DrillSpec>) -> DrillTargets {
    let configured = settings.databases.iter().find(|d| d.name == db);
    let (rto_target, rto_from) = target(
        spec.and_then(|s| s.rto_target),
        configured.and_then(|d| d.rto_target),
        DEFAULT_RTO_TARGET,
    );
    let (rpo_target, rpo_from) = target(
        spec.and_then(|s| s.rpo_target),
        configured.and_then(|d| d.rpo_target),
        DEFAULT_RPO_TARGET,
    );
    DrillTargets {
        rto_seconds: rto_target,
        rpo_seconds: rpo_target,
        rto_from: rto_from.into(),
        rpo_from: rpo_from.into(),
        rto_met: None,
        rpo_met: None,
    }
}

/// The record of a drill that has chosen its backup (or failed to): filled in as it runs.
fn new_record(
    db: &str,
    spec: Option<&DrillSpec>,
    given: Option<&str>,
    selection: &Selection,
    started_at: DateTime<Utc>,
    worst: Option<records::WorstRpo>,
    targets: DrillTargets,
) -> DrillRecord {
    DrillRecord {
        backup_signature: None,
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: db.to_string(),
        drill: spec.map(|s| s.name.clone()),
        outcome: Outcome::Failed,
        started_at,
        finished_at: started_at,
        selection: if given.is_some() {
            "given".into()
        } else {
            selection.to_string()
        },
        backup: None,
        phases: Vec::new(),
        rto_seconds: None,
        elapsed_seconds: 0.0,
        rpo_seconds: None,
        rpo_source: None,
        worst_rpo: worst,
        targets,
        checks: Vec::new(),
        differences: Vec::new(),
        failures: Vec::new(),
        error: None,
        scratch: None,
        scratch_server_version: None,
        host: records::hostname(),
        replay: None,
    }
}

/// The smoke checks' results when they could not run, each saying why.
fn not_run(checks: &[spec::Check], why: &str) -> Vec<CheckResult> {
    checks
        .iter()
        .map(|c| CheckResult {
            name: c.name.clone(),
            sql: c.sql.clone(),
            expect: c.expect_text.clone(),
            passed: false,
            rows: None,
            value: None,
            message: Some(format!("not run: {why}")),
            seconds: 0.0,
        })
        .collect()
}

/// What the restore proved about the backup is kept beside it, as a verification would.
async fn store_verdict(
    catalog: &Catalog,
    rec: &DrillRecord,
    m: &Manifest,
    restored_error: Option<&PgdrError>,
    started_at: DateTime<Utc>,
    timer: &PhaseTimer,
) {
    let verdict = match restored_error {
        None if rec
            .failures
            .iter()
            .any(|f| f.starts_with("fingerprint comparison")) =>
        {
            None
        }
        None => Some(rec.differences.clone()),
        Some(e) if matches!(e.kind, Kind::Corrupt | Kind::NotFound) => {
            Some(vec![format!("restore failed: {}", e.message)])
        }
        Some(_) => None,
    };
    if let Some(differences) = verdict {
        let v = VerificationRecord {
            backup_signature: None,
            format_version: records::RECORD_FORMAT_VERSION,
            pgdr_version: rec.pgdr_version.clone(),
            database: m.database.clone(),
            backup_id: m.id.clone(),
            mode: VerifyMode::Full,
            outcome: if differences.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            started_at,
            finished_at: Utc::now(),
            phases: timer.phases.clone(),
            differences,
            error: None,
            scratch: rec.scratch.clone(),
            host: rec.host.clone(),
        };
        if let Err(e) = catalog.write_verification(&v).await {
            tracing::warn!(error = %e, "could not store the drill's verification of the backup");
        }
    }
}

/// Step 7: the RTO and RPO against their targets.
fn check_targets(
    rec: &mut DrillRecord,
    selection: &Selection,
    given: Option<&str>,
    points: &[rpo::BackupPoint],
    started_at: DateTime<Utc>,
    m: &Manifest,
) {
    // 7. Targets. With a random old backup the drill's own RPO says nothing of today's: the
    //    RPO target is then checked against the newest restorable backup.
    rec.targets.rto_met = rec.rto_seconds.map(|r| r <= rec.targets.rto_seconds);
    if rec.targets.rto_met == Some(false) {
        rec.failures.push(format!(
            "RTO {} exceeds the target {}",
            crate::progress::human_duration(rec.rto_seconds.unwrap_or_default()),
            crate::progress::human_duration(rec.targets.rto_seconds)
        ));
    }
    let capture = rec.rpo_source.as_deref() == Some("capture");
    let (rpo_basis, basis_text) = match (&selection, given) {
        _ if capture => (rec.rpo_seconds, "RPO (capture)"),
        (Selection::RandomWithinDays(_), None) => (
            points
                .iter()
                .filter(|p| p.restorable)
                .map(|p| p.snapshot)
                .max()
                .map(|t| secs(started_at - t)),
            "the age of the newest restorable backup",
        ),
        _ => (rec.rpo_seconds, "RPO"),
    };
    rec.targets.rpo_met = rpo_basis.map(|r| r <= rec.targets.rpo_seconds);
    if rec.targets.rpo_met == Some(false) && capture {
        rec.failures.push(format!(
            "{basis_text} {} exceeds the target {} (time since the newest change durable in the repository): is the capture running?",
            crate::progress::human_duration(rpo_basis.unwrap_or_default()),
            crate::progress::human_duration(rec.targets.rpo_seconds),
        ));
    } else if rec.targets.rpo_met == Some(false) {
        rec.failures.push(format!(
            "{basis_text} {} exceeds the target {} (snapshot of backup {} taken {})",
            crate::progress::human_duration(rpo_basis.unwrap_or_default()),
            crate::progress::human_duration(rec.targets.rpo_seconds),
            m.id,
            m.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
}

fn finish(mut rec: DrillRecord, timer: PhaseTimer) -> DrillRecord {
    rec.phases = timer.phases;
    rec.finished_at = Utc::now();
    if rec.outcome != Outcome::Error {
        rec.outcome = if rec.failures.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::checks::outcome_of;
    use super::*;
    use tokio_postgres::SimpleQueryMessage as M;

    #[test]
    fn targets_come_from_the_drill_file_then_the_config() {
        let m = Duration::from_secs(60);
        assert_eq!(target(Some(m), Some(2 * m), 3 * m), (60.0, "drill file"));
        assert_eq!(target(None, Some(2 * m), 3 * m), (120.0, "config"));
        assert_eq!(target(None, None, 3 * m), (180.0, "default"));
    }

    #[test]
    fn the_last_result_set_counts() {
        // `SET ROLE anon; SELECT ...`: SET completes without a result set.
        let msgs = vec![M::CommandComplete(0), M::CommandComplete(0)];
        assert_eq!(outcome_of(&msgs).rows, None);
        for n in [0, 3] {
            assert!(random_index(n.max(1)) < n.max(1));
        }
    }
}
