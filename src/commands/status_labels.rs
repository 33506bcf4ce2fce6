//! `pgdr status` of labelled backups: a labelled backup is a checkpoint someone will rely on
//! ("backup verified and restorable" before a migration), so one that is not verified yet, or
//! failed its verification, is a problem named with the exact command that proves it.

use serde::Serialize;

use super::DatabaseStatus;
use crate::catalog::records::{Outcome, VerifyMode};
use crate::catalog::{BackupId, Listed};

#[derive(Debug, Clone, Serialize)]
pub struct LabelledBackup {
    pub label: String,
    pub id: BackupId,
    /// "passed", "failed", or "unverified" (none yet, or only runs that could not finish).
    pub verification: &'static str,
    /// The keep rule in force, if any ("keep-forever", "until ...").
    pub keep: Option<String>,
}

/// Add the database's labelled backups and their problems to its status.
pub(super) fn apply(s: &mut DatabaseStatus, listed: &[Listed]) {
    let name = s.database.clone();
    for l in listed {
        let Listed::Ok(e) = l else { continue };
        let Some(label) = e.manifest.label.clone() else {
            continue;
        };
        // A chain proof judges the stream, not this backup's dump.
        let v = e
            .verification
            .as_ref()
            .filter(|v| v.mode != VerifyMode::Chain);
        let verification = match v.map(|v| v.outcome) {
            Some(Outcome::Passed) => "passed",
            Some(Outcome::Failed) => "failed",
            _ => "unverified",
        };
        let id = e.manifest.id.clone();
        match verification {
            "unverified" => s.problems.push(format!(
                "database '{name}': labelled backup '{label}' ({id}) is not verified yet: where the identity lives, run `pgdr verify {label} --database {name}`"
            )),
            "failed" => s.problems.push(format!(
                "database '{name}': labelled backup '{label}' ({id}) FAILED verification: `pgdr show {label} --database {name}` names the differences"
            )),
            _ => {}
        }
        s.labelled.push(LabelledBackup {
            label,
            id,
            verification,
            keep: e.keep_rule().map(|r| r.describe()),
        });
    }
}
