//! `pgdr backup` (with `--label`, `--note`, `--keep-*`, `--verify`) and `pgdr keep`: parsing
//! and rendering.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::render::{backup_line, render_verifications};
use super::{overrides, report_error, Global};
use crate::catalog::labels::KeepRule;
use crate::catalog::records::Outcome;
use crate::catalog::Manifest;
use crate::commands;
use crate::config::Settings;
use crate::error::{exit, PgdrError};
use crate::progress;

#[derive(Args, Debug, Default)]
pub(super) struct BackupArgs {
    /// Name the backup (unique per database; a-z, 0-9, '.', '_', '-', starting with a letter,
    /// not all 0-9a-f): usable wherever a backup id is (show, verify, restore --backup, keep).
    #[arg(long, env = "PGDR_LABEL", value_name = "NAME")]
    label: Option<String>,
    /// Why it was taken (one line), shown by list and show.
    #[arg(long, env = "PGDR_NOTE", value_name = "TEXT")]
    note: Option<String>,
    #[command(flatten)]
    keep: KeepFlags,
    /// Prove the backup before returning (quick: objects and digests; full: restore into a
    /// scratch cluster and compare). Needs --identity; exit 1 if the proof finds differences,
    /// 2 if it cannot run (the backup stays committed either way).
    #[arg(long, env = "PGDR_VERIFY", value_enum, value_name = "MODE")]
    verify: Option<VerifyMode>,
    /// `--verify` reads the backup back, so backup takes the reading groups too.
    #[command(flatten)]
    pub(super) read: super::flags::ReadBackupArgs,
    #[command(flatten)]
    pub(super) encrypt: super::flags::EncryptArgs,
    #[command(flatten)]
    pub(super) job: super::flags::JobArgs,
}

#[derive(Args, Debug, Default)]
struct KeepFlags {
    /// Retention keeps the backup at least this long (e.g. 30d, 12w).
    #[arg(
        long,
        env = "PGDR_KEEP_FOR",
        value_name = "DURATION",
        conflicts_with = "keep_forever"
    )]
    keep_for: Option<String>,
    /// Retention never deletes the backup (until `pgdr keep ... --release`).
    #[arg(long, env = "PGDR_KEEP_FOREVER")]
    keep_forever: bool,
}

impl KeepFlags {
    fn rule(&self, now: DateTime<Utc>) -> Result<Option<KeepRule>, PgdrError> {
        if self.keep_forever {
            return Ok(Some(KeepRule::Forever));
        }
        let Some(d) = &self.keep_for else {
            return Ok(None);
        };
        let d = humantime::parse_duration(d.trim()).map_err(|e| {
            PgdrError::usage(format!("--keep-for '{d}': not a duration: {e}"))
                .hint("write a duration such as 30d, 12w or 90days")
        })?;
        let d = chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| {
                PgdrError::usage("--keep-for: too long").hint("use --keep-forever instead")
            })?;
        Ok(Some(KeepRule::Until(d)))
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum VerifyMode {
    Quick,
    Full,
}

#[derive(Args, Debug)]
pub(super) struct KeepArgs {
    /// Backup id, unique id prefix, or label.
    backup: String,
    #[command(flatten)]
    keep: KeepFlags,
    /// Drop the keep rule: retention decides about the backup again.
    #[arg(long, conflicts_with_all = ["keep_for", "keep_forever"])]
    release: bool,
    /// The report (backup, rule before and after, record written) as JSON on stdout.
    #[command(flatten)]
    pub(super) repo: super::flags::RepoArgs,
}

/// `pgdr backup`: one line per committed backup; the first failure decides the exit code;
/// with `--verify`, the proof of each committed backup decides it after that.
pub(super) async fn run_backup(
    g: &Global,
    a: &BackupArgs,
    cancel: CancellationToken,
) -> Result<i32, PgdrError> {
    let settings = Settings::load(&overrides(g))?;
    if a.verify.is_some() {
        // Refused before the dump, not after it: the proof needs the identity.
        crate::codec::require_identities(&settings.identities)
            .map_err(|e| e.hint("--verify proves the backup here; without it, verify later where the identity lives"))?;
    }
    let opts = commands::backup::BackupOptions {
        database: g.database.clone(),
        show_progress: progress::enabled(g.quiet),
        lock_source: true,
        labelling: commands::backup::Labelling {
            label: a.label.clone(),
            note: a.note.clone(),
            keep: a.keep.rule(Utc::now())?,
        },
    };
    let report = commands::backup::run(&settings, &opts, cancel.clone()).await?;
    let committed: Vec<&Manifest> = report
        .results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    for m in committed.iter().filter(|_| !g.json) {
        if !g.quiet {
            println!("{}", backup_line(m));
            if a.verify.is_none() {
                if let Some(line) = verify_later(m, &settings) {
                    println!("{line}");
                }
            }
        }
    }
    let failed: Vec<_> = report.failed().collect();
    for (_, e) in &failed {
        report_error(e);
    }
    let verified = match (failed.first(), cancel.is_cancelled(), a.verify) {
        (None, false, Some(mode)) => Some(
            verify_now(
                &settings,
                &committed,
                mode == VerifyMode::Quick,
                cancel.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    if g.json {
        let records = verified.as_ref().map(|(r, _)| r);
        let v = backup_json(&committed, &failed, records);
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        for r in records.into_iter().flatten() {
            if let Some(e) = r.error.as_ref().filter(|_| r.outcome == Outcome::Error) {
                eprintln!(
                    "pgdr: error: backup {} of '{}': could not verify: {e}",
                    r.backup_id, r.database
                );
            }
        }
    } else if let Some((records, _)) = &verified {
        render_verifications(records, false);
    }
    Ok(match (failed.first(), cancel.is_cancelled(), verified) {
        (Some((_, first)), _, _) => first.exit_code(),
        (None, true, _) => exit::INTERRUPTED,
        (None, false, Some((_, code))) => code,
        (None, false, None) => exit::OK,
    })
}

/// `backup --json`: the committed backups (the fields `list --json` has, plus objects and
/// phases), the databases that failed with why, and the `--verify` records.
fn backup_json(
    committed: &[&Manifest],
    failed: &[(&String, &PgdrError)],
    verified: Option<&Vec<crate::catalog::VerificationRecord>>,
) -> serde_json::Value {
    let backups: Vec<_> = committed.iter().map(|m| committed_json(m)).collect();
    let failures: Vec<_> = failed
        .iter()
        .map(|(db, e)| serde_json::json!({ "database": db, "error": e.message, "kind": e.kind }))
        .collect();
    let mut v = serde_json::json!({ "backups": backups, "failed": failures });
    if let Some((_, e)) = failed.first() {
        v["error"] = serde_json::json!(e.message);
    }
    if let Some(records) = verified {
        v["verifications"] = serde_json::json!(records);
    }
    v
}

fn committed_json(m: &Manifest) -> serde_json::Value {
    let objects: Vec<_> = m
        .objects
        .iter()
        .map(|o| serde_json::json!({ "name": o.name, "raw_bytes": o.raw_bytes, "stored_bytes": o.stored_bytes }))
        .collect();
    let phases: Vec<_> = m
        .phases
        .iter()
        .map(|p| serde_json::json!({ "name": p.name, "seconds": p.seconds }))
        .collect();
    serde_json::json!({
        "id": m.id,
        "database": m.database,
        "label": m.label,
        "snapshot_time": m.snapshot.time,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "duration_seconds": m.duration_seconds(),
        "raw_bytes": m.object("dump").map_or(0, |d| d.raw_bytes),
        "stored_bytes": m.objects.iter().map(|o| o.stored_bytes).sum::<u64>(),
        "objects": objects,
        "phases": phases,
    })
}

/// A labelled backup made without `--verify`: the exact command that proves it, to run where
/// the identity lives (the database host should not hold it).
fn verify_later(m: &Manifest, settings: &Settings) -> Option<String> {
    let label = m.label.as_ref()?;
    Some(format!(
        "labelled '{label}': not verified yet; where the identity lives, run:\n  pgdr verify {label} --database {} --repo {}",
        m.database,
        settings.repository
    ))
}

/// `backup --verify`: each committed backup proven now, recorded as `pgdr verify` records it;
/// the records and the exit status they decide.
async fn verify_now(
    settings: &Settings,
    committed: &[&Manifest],
    quick: bool,
    cancel: CancellationToken,
) -> Result<(Vec<crate::catalog::VerificationRecord>, i32), PgdrError> {
    let mut records = Vec::new();
    for m in committed {
        let opts = commands::verify::VerifyOptions {
            database: Some(m.database.clone()),
            selection: commands::verify::Selection::Id(m.id.to_string()),
            quick,
        };
        tokio::select! {
            r = commands::verify::run(settings, &opts) => records.extend(r?),
            _ = cancel.cancelled() => {
                return Err(PgdrError::new(crate::error::Kind::Interrupted, "verification interrupted; the backup is committed but not verified"));
            }
        }
    }
    let code = if records.iter().any(|r| r.outcome == Outcome::Failed) {
        exit::CHECK_FAILED
    } else if records.iter().any(|r| r.outcome == Outcome::Error) {
        exit::COULD_NOT_RUN
    } else {
        exit::OK
    };
    Ok((records, code))
}

/// `pgdr keep`: the rule before and after, and the record written.
pub(super) async fn run_keep(g: &Global, a: &KeepArgs) -> Result<i32, PgdrError> {
    let now = Utc::now();
    let rule = a.keep.rule(now)?;
    if rule.is_none() && !a.release {
        return Err(PgdrError::usage(
            "pgdr keep: say how long: --keep-for DURATION, --keep-forever or --release",
        ));
    }
    let settings = Settings::load(&overrides(g))?;
    let opts = commands::keep::KeepOptions {
        database: g.database.clone(),
        backup: a.backup.clone(),
        rule,
    };
    let r = commands::keep::run(&settings, &opts, now).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        let label = r
            .label
            .as_ref()
            .map(|l| format!(" ('{l}')"))
            .unwrap_or_default();
        println!(
            "backup {}{label} of '{}': {} (was: {}); recorded in {}",
            r.id,
            r.database,
            r.after
                .as_deref()
                .map_or("released: retention decides".into(), |a| format!(
                    "kept {a}"
                )),
            r.before.as_deref().unwrap_or("no keep rule"),
            r.record
        );
        if let Some(n) = &r.lock_note {
            println!("note: {n}");
        }
    }
    Ok(exit::OK)
}
