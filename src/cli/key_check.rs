//! `pgdr drill --key-check`: run the key drill and render its records (one block per
//! database, one line per identity).

use crate::catalog::format::key_check::StoredKeyCheck;
use crate::catalog::format::records::StoredOutcome;
use crate::config::Settings;
use crate::drill::key_check;
use crate::error::{exit, PgdrError};

pub(super) async fn run(
    settings: &Settings,
    database: Option<&str>,
    json: bool,
) -> Result<i32, PgdrError> {
    let runs = key_check::run(settings, database).await?;
    if json {
        let v: Vec<_> = runs.iter().map(|r| &r.record).collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        for r in &runs {
            print!("{}", render(&r.record, &r.key));
        }
    }
    let failed = runs
        .iter()
        .any(|r| r.record.outcome != StoredOutcome::Passed);
    Ok(if failed { exit::CHECK_FAILED } else { exit::OK })
}

fn render(r: &StoredKeyCheck, key: &str) -> String {
    let mut out = format!(
        "key check of database '{}', backup {}: {}\n",
        r.database,
        r.backup_id
            .as_ref()
            .map_or("(none)".to_string(), |id| id.to_string()),
        word(r.outcome)
    );
    for i in &r.identities {
        out.push_str(&format!("  {}: {}", i.file, word(i.outcome)));
        if i.outcome == StoredOutcome::Passed {
            out.push_str(&format!(
                ", proved recipient(s) {}",
                i.recipients_proved.join(", ")
            ));
        }
        out.push('\n');
        for p in &i.problems {
            out.push_str(&format!("    {p}\n"));
        }
    }
    out.push_str(&format!("  recorded as {key}\n"));
    out
}

fn word(o: StoredOutcome) -> &'static str {
    match o {
        StoredOutcome::Passed => "passed",
        StoredOutcome::Failed => "FAILED",
        StoredOutcome::Error => "could not run",
    }
}

/// `pgdr rekey`: one line per backup.
pub(super) async fn rekey(
    g: &super::Global,
    ids: &[String],
    all: bool,
    ov: crate::config::Overrides,
) -> Result<i32, PgdrError> {
    let settings = Settings::load(&ov)?;
    let opts = crate::rekey::RekeyOptions {
        database: g.database.clone(),
        ids: ids.to_vec(),
        all,
    };
    let report = crate::rekey::run(&settings, &opts).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        return Ok(exit::OK);
    }
    for r in &report.backups {
        let what = if r.reencrypted {
            "re-encrypted to the current recipients"
        } else {
            "already encrypted to the current recipients"
        };
        let removed = if r.removed.is_empty() {
            String::new()
        } else {
            format!("; old objects removed: {}", r.removed.join(", "))
        };
        println!("{}/{}: {what}{removed}", r.database, r.backup_id);
        print_locked(&r.kept_locked);
    }
    for s in &report.segments {
        println!(
            "{}: change segments: {} re-encrypted, {} already encrypted to the current recipients, {} old objects removed",
            s.database,
            s.reencrypted,
            s.unchanged,
            s.removed.len()
        );
        print_locked(&s.kept_locked);
    }
    Ok(exit::OK)
}

/// Old objects an Object Lock holds: they stay, and the operator learns until when.
fn print_locked(kept: &[(String, chrono::DateTime<chrono::Utc>)]) {
    for (what, until) in kept {
        println!(
            "  old object {what} stays until {} (Object Lock); run rekey again after that to remove it",
            until.format("%Y-%m-%d %H:%M UTC")
        );
    }
}
