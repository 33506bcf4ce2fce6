//! `pgdr drill --key-check`: prove every identity alone. For each database, the newest backup
//! is quick-verified (every object decrypted, the archive parsed, checksums and data digests)
//! with one identity file at a time, so an escrow key that no longer opens the backups is
//! found by a drill and not in an emergency. The record names each identity by its file and
//! public keys (never its content) and lists the backup's recipients it proved.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use crate::catalog::format::key_check::{StoredIdentityProof, StoredKeyCheck, KEY_CHECK_FORMAT};
use crate::catalog::format::records::StoredOutcome;
use crate::catalog::{records, Catalog, Manifest};
use crate::codec;
use crate::config::Settings;
use crate::error::{Kind, PgdrError, Result};
use crate::verify;

/// One database's key check as run: its record and where it was stored.
pub struct KeyCheckRun {
    pub record: StoredKeyCheck,
    pub key: String,
}

/// Check every identity of `settings` against the newest backup of each database (the one
/// given, else the configured ones, else every one in the repository); each run is recorded.
pub async fn run(settings: &Settings, database: Option<&str>) -> Result<Vec<KeyCheckRun>> {
    if settings.identities.is_empty() {
        codec::require_identities(&settings.identities)?;
    }
    let catalog = Catalog::open(settings).await?;
    let names = match database {
        Some(d) => vec![d.to_string()],
        None if !settings.databases.is_empty() => {
            settings.databases.iter().map(|d| d.name.clone()).collect()
        }
        None => catalog.databases().await?,
    };
    if names.is_empty() {
        return Err(
            PgdrError::usage("no database to key-check: the repository holds no backup")
                .hint("make a backup first, or name the database with --database NAME"),
        );
    }
    let mut out = Vec::new();
    for db in names {
        let record = check_database(&catalog, settings, &db).await?;
        let key = catalog.write_key_check(&record).await?;
        out.push(KeyCheckRun { record, key });
    }
    Ok(out)
}

async fn check_database(
    catalog: &Catalog,
    settings: &Settings,
    db: &str,
) -> Result<StoredKeyCheck> {
    let started_at = Utc::now();
    let newest = match catalog.latest(db).await {
        Ok(m) => Some(m),
        Err(e) if e.kind == Kind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut identities = Vec::new();
    for path in &settings.identities {
        identities.push(match &newest {
            Some(m) => prove(catalog, m, path).await,
            None => failed(
                path,
                Vec::new(),
                format!("database '{db}' has no backup to prove the key with"),
            ),
        });
    }
    let passed = identities
        .iter()
        .all(|i| i.outcome == StoredOutcome::Passed);
    Ok(StoredKeyCheck {
        format_version: KEY_CHECK_FORMAT,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: db.to_string(),
        backup_id: newest.map(|m| m.id),
        outcome: if passed {
            StoredOutcome::Passed
        } else {
            StoredOutcome::Failed
        },
        started_at,
        finished_at: Utc::now(),
        identities,
        host: records::hostname(),
    })
}

/// One identity file alone against one backup. Anything that keeps it from opening the
/// backup (unreadable file, no matching recipient, damage) fails this identity.
async fn prove(catalog: &Catalog, m: &Manifest, path: &Path) -> StoredIdentityProof {
    let ids = match codec::load_identities(path) {
        Ok(ids) => ids,
        Err(e) => return failed(path, Vec::new(), e.message),
    };
    let public_keys: Vec<String> = ids.iter().map(|i| i.to_public().to_string()).collect();
    match verify::quick(catalog, m, Arc::new(ids)).await {
        Ok(d) if d.is_empty() => StoredIdentityProof {
            file: path.display().to_string(),
            recipients_proved: m
                .codec
                .recipients
                .iter()
                .filter(|r| public_keys.contains(r))
                .cloned()
                .collect(),
            public_keys,
            outcome: StoredOutcome::Passed,
            problems: Vec::new(),
        },
        Ok(d) => StoredIdentityProof {
            outcome: StoredOutcome::Failed,
            problems: d,
            ..failed(path, public_keys, String::new())
        },
        Err(e) => failed(path, public_keys, e.message),
    }
}

fn failed(path: &Path, public_keys: Vec<String>, problem: String) -> StoredIdentityProof {
    StoredIdentityProof {
        file: path.display().to_string(),
        public_keys,
        outcome: StoredOutcome::Failed,
        recipients_proved: Vec::new(),
        problems: vec![problem],
    }
}
