//! Keys in `status`: every recipient of the newest backup must have been proven by a key
//! drill (`pgdr drill --key-check`) within `[keys] proof_max_age`, and must still be one of
//! the configured recipients (a recipient dropped from the config still opens that backup).

use chrono::{DateTime, Utc};

use super::DatabaseStatus;
use crate::catalog::format::records::StoredOutcome;
use crate::catalog::{Catalog, Listed};
use crate::config::{Settings, DEFAULT_PROOF_MAX_AGE};
use crate::error::Result;
use crate::progress::human_age;

pub(super) async fn apply(
    s: &mut DatabaseStatus,
    settings: &Settings,
    catalog: &Catalog,
    listed: &[Listed],
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(newest) = listed.iter().rev().find_map(|l| match l {
        Listed::Ok(e) => Some(&e.manifest),
        Listed::Damaged { .. } => None,
    }) else {
        return Ok(());
    };
    let name = &s.database;
    let recipients = &newest.codec.recipients;
    if !settings.recipients.is_empty() {
        for r in recipients
            .iter()
            .filter(|r| !settings.recipients.contains(r))
        {
            s.problems.push(format!(
                "database '{name}': newest backup {} is encrypted to recipient {r}, which is no longer configured: keep its identity until `pgdr rekey` or retention has replaced those backups",
                newest.id
            ));
        }
    }
    let checks = catalog.key_checks(name).await?;
    if settings.proof_max_age.is_none() && checks.is_empty() {
        // Key drills not adopted for this database: nothing to judge against.
        return Ok(());
    }
    let max_age = settings.proof_max_age.unwrap_or(DEFAULT_PROOF_MAX_AGE);
    let limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    for r in recipients {
        let proved = checks
            .iter()
            .flat_map(|c| c.identities.iter().map(move |i| (c.finished_at, i)))
            .filter(|(_, i)| i.outcome == StoredOutcome::Passed && i.recipients_proved.contains(r))
            .map(|(t, _)| t)
            .max();
        let line = match proved {
            Some(t) if now - t <= limit => continue,
            Some(t) => format!("last proven {} ago", human_age(now - t)),
            None => "never proven".to_string(),
        };
        s.problems.push(format!(
            "database '{name}': recipient {r} of the newest backup: {line} (limit {}): run `pgdr drill --key-check --identity FILE` with its identity",
            humantime::format_duration(max_age)
        ));
    }
    Ok(())
}
