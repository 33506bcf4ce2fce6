//! `pgdr keep ID|LABEL --keep-for D | --keep-forever | --release`: change how long retention
//! must keep a backup. The manifest is never rewritten (its checksum, and a signature, cover
//! the bytes the backup wrote): a keep record is written beside it, and the newest record is
//! the rule in force.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::labels::{self, KeepRecord, KeepRule};
use crate::catalog::{BackupId, Catalog, Pick};
use crate::config::Settings;
use crate::error::Result;

pub struct KeepOptions {
    pub database: Option<String>,
    /// Backup id, unique id prefix or label.
    pub backup: String,
    /// The new rule; None: release (retention decides again).
    pub rule: Option<KeepRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeepReport {
    pub database: String,
    pub id: BackupId,
    pub label: Option<String>,
    /// The rule in force before, as `show` describes it (None: none).
    pub before: Option<String>,
    pub after: Option<String>,
    /// The keep record written.
    pub record: String,
    /// On release: the Object Lock that still holds the backup, which no keep rule shortens.
    pub lock_note: Option<String>,
}

pub async fn run(
    settings: &Settings,
    opts: &KeepOptions,
    now: DateTime<Utc>,
) -> Result<KeepReport> {
    let catalog = Catalog::open(settings).await?;
    let e = catalog
        .select(opts.database.as_deref(), Pick::Id(&opts.backup))
        .await?;
    let m = &e.manifest;
    let record = KeepRecord {
        format_version: crate::catalog::format::keep::KEEP_FORMAT,
        database: m.database.clone(),
        backup_id: m.id.clone(),
        written_at: now,
        keep: labels::change_of(opts.rule),
        host: crate::catalog::records::hostname(),
    };
    let key = catalog.write_keep(&record).await?;
    let lock_note = match (opts.rule, catalog.lock_policy()) {
        (None, Some(p)) => catalog
            .backup_locked_until(&m.database, &m.id, now)
            .await?
            .map(|t| {
                format!(
                    "its {} Object Lock still holds it until {}: releasing the keep rule cannot shorten a lock; prune deletes it after that date",
                    p.mode.as_str(),
                    t.format("%Y-%m-%d %H:%M UTC")
                )
            }),
        _ => None,
    };
    Ok(KeepReport {
        database: m.database.clone(),
        id: m.id.clone(),
        label: m.label.clone(),
        before: e.keep_rule().map(|r| r.describe()),
        after: opts.rule.map(|r| r.describe()),
        record: key.to_string(),
        lock_note,
    })
}
