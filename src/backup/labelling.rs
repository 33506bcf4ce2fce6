//! `pgdr backup --label NAME --note TEXT --keep-for D | --keep-forever`: what a labelled backup
//! records in its manifest, and the refusal of a label already taken, made before the dump.

use crate::catalog::labels::{check_label, KeepRule};
use crate::catalog::Catalog;
use crate::config::Database;
use crate::error::{PgdrError, Result};

/// The longest note kept: a sentence or two, not a document.
const NOTE_MAX: usize = 1000;

/// What the user asked to record with the backup (all optional; the daemon asks for none).
#[derive(Debug, Clone, Default)]
pub struct Labelling {
    pub label: Option<String>,
    pub note: Option<String>,
    pub keep: Option<KeepRule>,
}

impl Labelling {
    /// The label and note are well formed (nothing read yet).
    pub fn check(&self) -> Result<()> {
        if let Some(l) = &self.label {
            check_label(l)?;
        }
        if let Some(n) = &self.note {
            if n.chars().count() > NOTE_MAX || n.chars().any(char::is_control) {
                return Err(PgdrError::usage(format!(
                    "--note: at most {NOTE_MAX} characters on one line, no control characters"
                ))
                .hint("put longer text elsewhere and name it in the note"));
            }
        }
        Ok(())
    }
}

/// Refuse, by name, a label some backup of `db` already has: checked for every database before
/// any dump starts, and again under the source lock just before that database's dump (another
/// backup may have taken the label since).
pub async fn ensure_free(catalog: &Catalog, db: &Database, l: &Labelling) -> Result<()> {
    let Some(label) = &l.label else {
        return Ok(());
    };
    match catalog.labelled(&db.name, label).await? {
        None => Ok(()),
        Some(id) => Err(PgdrError::usage(format!(
            "database '{}': label '{label}' is already the label of backup {id}; nothing was written",
            db.name
        ))
        .hint("a label is unique per database: choose another (e.g. add a date or a ticket number)")),
    }
}
