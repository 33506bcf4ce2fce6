//! `pgdr verify`: prove backups by checking every object and, by default, restoring into a
//! scratch database and comparing the fingerprint. Each outcome is stored beside the backup.

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, Outcome, VerificationRecord, VerifyMode};
use crate::catalog::{self, Catalog, Listed, Manifest};
use crate::codec;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::restore::{self, EngineOptions, EngineReport, Identities};
use crate::scratch::Scratch;
use crate::store;
use crate::verify;

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

pub async fn run(settings: &Settings, opts: &VerifyOptions) -> Result<Vec<VerificationRecord>> {
    let ids: Identities = Arc::new(codec::require_identities(settings.identity.as_deref())?);
    let catalog = Catalog::new(store::open(settings).await?);
    let targets = select(&catalog, settings, opts).await?;
    let mut out = Vec::new();
    for m in targets {
        let rec = verify_one(&catalog, settings, &m, ids.clone(), opts.quick).await?;
        if rec.outcome != Outcome::Error {
            catalog.write_verification(&rec).await?;
        }
        out.push(rec);
    }
    Ok(out)
}

async fn select(
    catalog: &Catalog,
    settings: &Settings,
    opts: &VerifyOptions,
) -> Result<Vec<Manifest>> {
    let db = opts.database.as_deref();
    match &opts.selection {
        Selection::Id(id) => Ok(vec![catalog.find(db, id).await?]),
        Selection::Latest => {
            let names: Vec<String> = match db {
                Some(d) => vec![d.to_string()],
                None if !settings.databases.is_empty() => {
                    settings.databases.iter().map(|d| d.name.clone()).collect()
                }
                None => {
                    let mut n: Vec<String> = catalog
                        .list(None)
                        .await?
                        .iter()
                        .map(|l| l.database().to_string())
                        .collect();
                    n.dedup();
                    n
                }
            };
            let mut v = Vec::new();
            for n in names {
                v.push(catalog.latest(&n).await?);
            }
            Ok(v)
        }
        Selection::Unverified => Ok(catalog
            .list(db)
            .await?
            .into_iter()
            .filter_map(|l| match l {
                Listed::Ok(e)
                    if e.verification
                        .as_ref()
                        .is_none_or(|v| v.outcome != Outcome::Passed) =>
                {
                    Some(e.manifest)
                }
                _ => None,
            })
            .collect()),
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
    let store = catalog.store().as_ref();
    let mut scratch = None;
    let result: Result<Vec<String>> = async {
        if quick {
            let d = verify::quick(store, m, ids.clone()).await?;
            timer.done("quick");
            return Ok(d);
        }
        let sc = Scratch::open(settings, m, "verify").await?;
        scratch = Some(sc.describe());
        timer.done("scratch");
        let restored = async {
            // One pass over the dump: it is fingerprinted on its way into pg_restore.
            let opts = EngineOptions {
                fingerprint_archive: true,
                single_transaction: sc.single_transaction(),
                ..Default::default()
            };
            let mut report = EngineReport::default();
            restore::restore_with(
                store,
                m,
                ids.clone(),
                &sc.target,
                &opts,
                None,
                &mut timer,
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
            let existing = report.kept_role_names.clone();
            let opts = verify::scratch_diff_options();
            let fp = verify::compare_restored(&sc.target, m, &opts).await?;
            d.extend(fp.into_iter().filter(|x| {
                !existing
                    .iter()
                    .any(|r| x.starts_with(&format!("role {r}:")))
            }));
            d.extend(restore::roles_proof(&sc.target, &mut report).await?);
            for k in &report.roles_kept {
                tracing::info!("roles: {k}");
            }
            timer.done("compare");
            Ok::<_, PgdrError>(d)
        }
        .await;
        // Teardown, whatever happened.
        sc.teardown().await;
        timer.done("teardown");
        match restored {
            Ok(d) => Ok(d),
            // A restore that failed on damage in the repository: name the damage as quick
            // does; anything else (a scratch server problem) stays an error.
            Err(e) => {
                let d = verify::quick(store, m, ids).await.unwrap_or_default();
                if d.is_empty() {
                    Err(e)
                } else {
                    Ok(d)
                }
            }
        }
    }
    .await;
    let (outcome, differences, error) = match result {
        Ok(d) if d.is_empty() => (Outcome::Passed, d, None),
        Ok(d) => (Outcome::Failed, d, None),
        Err(e) => (Outcome::Error, Vec::new(), Some(e.to_string())),
    };
    Ok(VerificationRecord {
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
