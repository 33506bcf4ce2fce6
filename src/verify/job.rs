//! The verify job (`pgdr verify`, and the daemon's verification after a backup): prove backups
//! by checking every object and, by default, restoring into a scratch database and comparing
//! the fingerprint. Each outcome is stored beside the backup.

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, Outcome, VerificationRecord, VerifyMode};
use crate::catalog::{self, Catalog, Listed, Manifest, Pick};
use crate::codec::{self, Identities};
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::restore::{self, EngineOptions, EngineReport};
use crate::verify;
use crate::verify::Scratch;

#[derive(Debug, Clone)]
pub enum Selection {
    Id(String),
    Latest,
    /// Every backup whose newest verification did not pass (or that has none).
    Unverified,
}

pub struct VerifyOptions {
    pub database: Option<String>,
    pub selection: Selection,
    pub quick: bool,
}

/// What `select` picked: a backup to verify, or one whose manifest cannot be read (a finding
/// in itself: it is reported as failed, never passed over for an older one).
enum Target {
    Backup(Box<Manifest>),
    Damaged {
        database: String,
        id: catalog::BackupId,
        error: String,
    },
}

pub async fn run(settings: &Settings, opts: &VerifyOptions) -> Result<Vec<VerificationRecord>> {
    crate::scratch::sweep_orphans(&settings.scratch).await;
    let ids: Identities = Arc::new(codec::require_identities(&settings.identities)?);
    let catalog = Catalog::open(settings).await?;
    let targets = select(&catalog, settings, opts).await?;
    let mut out = Vec::new();
    for t in targets {
        let m = match t {
            Target::Backup(m) => m,
            Target::Damaged {
                database,
                id,
                error,
            } => {
                // Not stored: the record would sit beside a manifest that may only be
                // unreadable for a moment, and a failed record makes prune delete the backup.
                let d = format!(
                    "manifest {}: cannot be read: {error}",
                    catalog::Key::manifest(&database, &id)
                );
                out.push(damaged_record(database, id, d, opts.quick));
                continue;
            }
        };
        // A backup no trusted key signed is a finding (a forgery proves nothing); its record
        // is not stored beside it, as for a damaged manifest.
        let signature = match catalog.authenticate(&m).await {
            Ok(sig) => sig,
            Err(e) if e.kind == crate::error::Kind::Crypto => {
                let hints = e.hints.join("; ");
                out.push(damaged_record(
                    m.database.clone(),
                    m.id.clone(),
                    format!("{} ({hints})", e.message),
                    opts.quick,
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        // Prune keeps the backup while it is read, and says why.
        let in_use = catalog.mark_in_use(&m.database, &m.id, "verify").await?;
        let mut rec = verify_one(&catalog, settings, &m, ids.clone(), opts.quick).await?;
        rec.backup_signature = Some(signature);
        if rec.outcome != Outcome::Error {
            // A backup deleted while it was read (prune by hand, a person) must not be
            // reported as verified, nor get a record in a folder that is gone.
            match catalog.load_exact(&m.database, &m.id).await {
                Ok(_) => catalog.write_verification(&rec).await?,
                Err(e) => {
                    rec.outcome = Outcome::Error;
                    rec.differences.clear();
                    rec.error = Some(format!(
                        "backup {}/{} disappeared while it was being verified ({}); no record written",
                        m.database, m.id, e.message
                    ));
                }
            }
        }
        in_use.release().await;
        out.push(rec);
    }
    Ok(out)
}

fn damaged_record(
    database: String,
    id: catalog::BackupId,
    difference: String,
    quick: bool,
) -> VerificationRecord {
    let now = Utc::now();
    VerificationRecord {
        backup_signature: None,
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        differences: vec![difference],
        database,
        backup_id: id,
        mode: if quick {
            VerifyMode::Quick
        } else {
            VerifyMode::Full
        },
        outcome: Outcome::Failed,
        started_at: now,
        finished_at: now,
        phases: Vec::new(),
        error: None,
        scratch: None,
        host: records::hostname(),
    }
}

fn target(l: Listed) -> Target {
    match l {
        Listed::Ok(e) => Target::Backup(Box::new(e.manifest)),
        Listed::Damaged {
            database,
            id,
            error,
        } => Target::Damaged {
            database,
            id,
            error,
        },
    }
}

fn empty_repository(catalog: &Catalog, what: &str) -> PgdrError {
    PgdrError::not_found(format!("no backup{what} in {}", catalog.describe()))
        .hint("run `pgdr backup` first, or check --repo and --database")
}

async fn select(
    catalog: &Catalog,
    settings: &Settings,
    opts: &VerifyOptions,
) -> Result<Vec<Target>> {
    let db = opts.database.as_deref();
    match &opts.selection {
        Selection::Id(id) => Ok(vec![Target::Backup(Box::new(
            catalog.select(db, Pick::Id(id)).await?.manifest,
        ))]),
        Selection::Latest => {
            let names: Vec<String> = match db {
                Some(d) => vec![d.to_string()],
                None if !settings.databases.is_empty() => {
                    settings.databases.iter().map(|d| d.name.clone()).collect()
                }
                None => {
                    let n = catalog.databases().await?;
                    if n.is_empty() {
                        return Err(empty_repository(catalog, ""));
                    }
                    n
                }
            };
            let mut v = Vec::new();
            for n in names {
                // The newest backup, damaged or not: a damaged newest manifest is a finding.
                match catalog.list(Some(&n)).await?.pop() {
                    Some(l) => v.push(target(l)),
                    None => return Err(empty_repository(catalog, &format!(" of database '{n}'"))),
                }
            }
            Ok(v)
        }
        Selection::Unverified => {
            let listed = catalog.list(db).await?;
            if listed.is_empty() {
                let what = db
                    .map(|d| format!(" of database '{d}'"))
                    .unwrap_or_default();
                return Err(empty_repository(catalog, &what));
            }
            Ok(listed
                .into_iter()
                .filter(|l| match l {
                    Listed::Ok(e) => e
                        .verification
                        .as_ref()
                        .is_none_or(|v| v.outcome != Outcome::Passed),
                    Listed::Damaged { .. } => true,
                })
                .map(target)
                .collect())
        }
    }
}

async fn verify_one(
    catalog: &Catalog,
    settings: &Settings,
    m: &Manifest,
    ids: Identities,
    quick: bool,
) -> Result<VerificationRecord> {
    let started_at = Utc::now();
    let mut timer = PhaseTimer::default();
    let mut scratch = None;
    let result: Result<Vec<String>> = if quick {
        let r = verify::quick(catalog, m, ids.clone()).await;
        if r.is_ok() {
            timer.done("quick");
        }
        r
    } else {
        full_proof(catalog, settings, m, ids, &mut timer, &mut scratch).await
    };
    let (outcome, differences, error) = match result {
        Ok(d) if d.is_empty() => (Outcome::Passed, d, None),
        Ok(d) => (Outcome::Failed, d, None),
        Err(e) => (Outcome::Error, Vec::new(), Some(e.to_string())),
    };
    Ok(VerificationRecord {
        backup_signature: None,
        format_version: records::RECORD_FORMAT_VERSION,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: m.database.clone(),
        backup_id: m.id.clone(),
        mode: if quick {
            VerifyMode::Quick
        } else {
            VerifyMode::Full
        },
        outcome,
        started_at,
        finished_at: Utc::now(),
        phases: timer.phases,
        differences,
        error,
        scratch,
        host: records::hostname(),
    })
}

/// Full proof on a scratch cluster, torn down whatever happened. A restore that failed on
/// damage in the repository is reported as quick proof names that damage; anything else (a
/// scratch server problem) stays an error.
async fn full_proof(
    catalog: &Catalog,
    settings: &Settings,
    m: &Manifest,
    ids: Identities,
    timer: &mut PhaseTimer,
    scratch: &mut Option<String>,
) -> Result<Vec<String>> {
    let sc = Scratch::open(settings, m, "verify").await?;
    *scratch = Some(sc.describe());
    timer.done("scratch");
    let restored = restore_and_compare(catalog, m, ids.clone(), &sc, timer).await;
    // Teardown, whatever happened.
    sc.teardown().await;
    timer.done("teardown");
    match restored {
        Ok(d) => Ok(d),
        // A restore that failed on damage in the repository: name the damage as quick
        // does; anything else (a scratch server problem) stays an error.
        Err(e) => {
            let d = verify::quick(catalog, m, ids).await.unwrap_or_default();
            if d.is_empty() {
                Err(e)
            } else {
                Ok(d)
            }
        }
    }
}

/// Restore into the scratch cluster with the archive fingerprinted on its way in, then
/// compare data, schema and roles with the manifest: the differences found.
async fn restore_and_compare(
    catalog: &Catalog,
    m: &Manifest,
    ids: Identities,
    sc: &Scratch,
    timer: &mut PhaseTimer,
) -> Result<Vec<String>> {
    // Setting values and comments, to compare, come out of their encrypted object.
    let m = &crate::restore::sensitive::reveal(catalog, m, ids.clone()).await?;
    // One pass over the dump: it is fingerprinted on its way into pg_restore.
    let opts = EngineOptions {
        fingerprint_archive: true,
        single_transaction: sc.single_transaction(),
        ..Default::default()
    };
    let mut report = EngineReport::default();
    restore::restore_with(
        catalog,
        m,
        ids.clone(),
        &sc.target,
        &opts,
        None,
        timer,
        &mut report,
    )
    .await?;
    let mut d = match (&report.archive, &m.fingerprint) {
        (Some(Ok(summary)), Some(fp)) => verify::compare_data(
            &fp.data,
            &verify::summary_digests(summary),
            "in the stored archive",
        ),
        (Some(Err(e)), _) => vec![format!("object {}: {e}", catalog::DUMP_FILE)],
        _ => Vec::new(),
    };
    // The backup's roles on the scratch cluster: all created there but the bootstrap
    // superuser, which is handled as any existing role (--roles=merge) and said so;
    // the roles proof judges it, after its settings were applied (last).
    d.extend(verify::compare_scratch(&sc.target, m, &mut report).await?);
    timer.done("compare");
    Ok(d)
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
