//! The capture state object (`<database>/capture/state.json`): read, checked, written.
//!
//! Not signed, by decision (issue 19): it is pgdr's working state (slot, publication, tables,
//! start position), rewritten by `capture enable`/`disable`, `auto_add` and the runner, not
//! evidence anyone restores from. What a restore trusts is signed where it is written: the
//! segment entries (each holds its segment's sha256) and the marks. A planted state can only
//! point the capture host at another slot or publication of the source it already connects
//! to; the names are checked here before they reach a replication command, and the changes
//! read that way are still the source's own, signed by the capture host.

use super::format::capture::{CaptureState, CAPTURE_STATE_FORMAT};
use super::{Key, Repository};
use crate::config::names;
use crate::error::{Kind, PgdrError, Result};

fn key(database: &str) -> Key {
    Key::CaptureState {
        database: database.to_string(),
    }
}

impl Repository {
    /// The database's capture state; None if capture was never enabled.
    pub async fn capture_state(&self, database: &str) -> Result<Option<CaptureState>> {
        names::database_name(database, "database").map_err(|e| PgdrError::usage(e.to_string()))?;
        let k = key(database);
        let bytes = match self.get_bytes(&k).await {
            Ok(b) => b,
            Err(e) if e.kind == Kind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let state: CaptureState = serde_json::from_slice(&bytes)
            .map_err(|e| PgdrError::corrupt(format!("{k}: not a capture state: {e}")))?;
        if state.format_version > CAPTURE_STATE_FORMAT {
            return Err(PgdrError::corrupt(format!(
                "{k}: format {} is newer than this pgdr reads ({CAPTURE_STATE_FORMAT})",
                state.format_version
            ))
            .hint("upgrade pgdr"));
        }
        check_names(&state, &k)?;
        Ok(Some(state))
    }

    pub async fn save_capture_state(&self, state: &CaptureState) -> Result<()> {
        self.put_json(&key(&state.database), state).await
    }
}

/// Slot and publication names reach replication commands unquoted: whoever can write the
/// repository must not be able to smuggle SQL through them.
fn check_names(state: &CaptureState, k: &Key) -> Result<()> {
    let plain = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if plain(&state.slot) && plain(&state.publication) && state.database == k.database() {
        Ok(())
    } else {
        Err(PgdrError::corrupt(format!(
            "{k}: slot '{}' / publication '{}' / database '{}' were not written by pgdr",
            state.slot, state.publication, state.database
        ))
        .hint("remove the object and run `pgdr capture enable` again"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_reach_a_replication_command_are_checked() {
        let golden = format!(
            "{}/tests/fixtures/format/capture-state-v1.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let good: CaptureState = serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap();
        let k = key("app");
        assert!(check_names(&good, &k).is_ok());
        for (slot, publication) in [
            ("x LOGICAL 0/0 (proto_version '2')", "pgdr_app"),
            ("pgdr_app", "p', publication_names 'q"),
            ("", "pgdr_app"),
        ] {
            let bad = CaptureState {
                slot: slot.into(),
                publication: publication.into(),
                ..good.clone()
            };
            let e = check_names(&bad, &k).unwrap_err();
            assert_eq!(e.kind, Kind::Corrupt, "{slot} / {publication}");
        }
        let other = CaptureState {
            database: "other".into(),
            ..good
        };
        assert!(check_names(&other, &k).is_err());
    }
}
