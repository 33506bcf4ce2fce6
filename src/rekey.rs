//! `pgdr rekey`: re-encrypt existing backups to the current recipients, where the old identity
//! and a signing key are both present (an operator's workstation; never the database).
//!
//! Per backup: each object is streamed store -> age decrypt (old identity) -> age encrypt (new
//! recipients) -> store under a new name beside the old (the zstd stream inside is untouched,
//! its stored sha256 recomputed); then the manifest is replaced, signed, naming the new
//! objects; only then are the old objects removed. Killed before the manifest, the backup
//! still reads with the old key (the next run writes the new objects again); killed after
//! it, with the new key (the next run removes the old objects). The change segments of each
//! rekeyed database follow the same way (`segments`): new object beside the old, entry
//! replaced and re-signed last, old object removed after.
//!
//! On an Object Lock bucket an old object still locked is never deleted (no delete is sent:
//! on a versioned bucket it would only hide it); the report names it and its retain-until
//! date, and a run after that date removes it.

mod segments;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::catalog::format::signature::Acceptance;
use crate::catalog::{Catalog, Key, Listed, Manifest, Pick};
use crate::codec;
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::pipeline;

pub struct RekeyOptions {
    pub database: Option<String>,
    /// Backup ids, prefixes or labels; empty with `all`.
    pub ids: Vec<String>,
    pub all: bool,
}

/// One backup as rekey left it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rekeyed {
    pub database: String,
    pub backup_id: String,
    /// False when it already was encrypted to exactly the current recipients.
    pub reencrypted: bool,
    /// Old objects removed (by this run).
    pub removed: Vec<String>,
    /// Old objects an Object Lock still holds: they stay until that date.
    pub kept_locked: Vec<(String, DateTime<Utc>)>,
}

/// What rekey did: each backup, then the change segments of each rekeyed database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RekeyReport {
    pub backups: Vec<Rekeyed>,
    pub segments: Vec<segments::SegmentsRekeyed>,
}

/// Test hook: `PGDR_REKEY_PAUSE=1` stops after the first new object of a backup is stored,
/// before the manifest is replaced; `=segment`, after the first new segment object, before its
/// entry is replaced: a test can kill rekey midway. Not for production use.
const PAUSE_HOOK: &str = "PGDR_REKEY_PAUSE";

/// Wait forever at the test hook's point `at` ("1": a backup, "segment") when it is set there.
async fn pause_hook(at: &str) {
    if std::env::var(PAUSE_HOOK).is_ok_and(|v| v == at) {
        eprintln!("rekey paused (test hook {PAUSE_HOOK}={at})");
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

pub async fn run(settings: &Settings, opts: &RekeyOptions) -> Result<RekeyReport> {
    let ids = Arc::new(codec::require_identities(&settings.identities)?);
    let recipients = Arc::new(codec::parse_recipients(&settings.recipients)?);
    if settings.signing.key_file.is_none() {
        return Err(
            PgdrError::usage("rekey replaces manifests and must sign them")
                .hint("pass --signing-key FILE (a key your readers trust)"),
        );
    }
    let catalog = Catalog::open(settings).await?;
    let mut targets = Vec::new();
    if opts.all {
        for l in catalog.list(opts.database.as_deref()).await? {
            if let Listed::Ok(e) = l {
                targets.push(e.manifest);
            }
        }
    } else {
        for id in &opts.ids {
            let e = catalog
                .select(opts.database.as_deref(), Pick::Id(id))
                .await?;
            targets.push(e.manifest);
        }
    }
    let databases: BTreeSet<String> = targets.iter().map(|m| m.database.clone()).collect();
    let mut out = Vec::new();
    for m in targets {
        out.push(
            rekey_one(
                &catalog,
                m,
                ids.clone(),
                recipients.clone(),
                &settings.recipients,
            )
            .await?,
        );
    }
    let mut segs = Vec::new();
    for db in databases {
        let keys = segments::Keys {
            ids: ids.clone(),
            recipients: recipients.clone(),
            wanted: &settings.recipients,
        };
        segs.push(segments::rekey(&catalog, &db, keys).await?);
    }
    Ok(RekeyReport {
        backups: out,
        segments: segs,
    })
}

async fn rekey_one(
    catalog: &Catalog,
    m: Manifest,
    ids: codec::Identities,
    recipients: Arc<Vec<age::x25519::Recipient>>,
    wanted: &[String],
) -> Result<Rekeyed> {
    // A forged manifest is never re-signed: re-signing would make it trusted. Without trust
    // keys nothing is proven, so that is refused too (unless the operator allows it).
    let sig = catalog.authenticate(&m).await?;
    if sig.acceptance == Acceptance::NoTrustKeys {
        return Err(PgdrError::usage(format!(
            "backup {}/{}: rekey re-signs the manifest, and no trust key is configured to check it first",
            m.database, m.id
        ))
        .hint("pass --trust-key (the key that signed the backups), or --allow-unsigned to re-sign it anyway"));
    }
    let now: BTreeSet<&String> = m.codec.recipients.iter().collect();
    let reencrypted = now != wanted.iter().collect::<BTreeSet<_>>();
    let mut new = m.clone();
    if reencrypted {
        let tag = recipients_tag(wanted);
        for (n, rec) in new.objects.iter_mut().enumerate() {
            let from = Key::object(&m.database, &m.id, &rec.file);
            let file = rekeyed_name(&rec.file, &tag);
            let to = Key::object(&m.database, &m.id, &file);
            let receipt = pipeline::reencrypt(
                catalog,
                &from,
                &to,
                rec.sha256_stored.clone(),
                ids.clone(),
                recipients.clone(),
            )
            .await?;
            rec.file = file;
            rec.sha256_stored = receipt.sha256;
            rec.stored_bytes = receipt.size;
            if n == 0 {
                pause_hook("1").await;
            }
        }
        new.codec.recipients = wanted.to_vec();
        catalog.commit(&new).await?;
    }
    let (removed, kept_locked) = remove_old(catalog, &new).await?;
    Ok(Rekeyed {
        database: m.database.clone(),
        backup_id: m.id.to_string(),
        reencrypted,
        removed,
        kept_locked,
    })
}

/// Old objects removed, and those an Object Lock still holds (with its date).
type Removal = (Vec<String>, Vec<(String, DateTime<Utc>)>);

/// Encrypted objects of the backup's folder that its manifest no longer names: the old
/// objects of a finished (or killed after its manifest) rekey. Locked ones stay.
async fn remove_old(catalog: &Catalog, m: &Manifest) -> Result<Removal> {
    let named: BTreeSet<&str> = m.objects.iter().map(|o| o.file.as_str()).collect();
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for o in catalog.objects(&m.database).await? {
        if let Key::Object { id, file, .. } = &o.key {
            if *id == m.id && file.ends_with(".age") && !named.contains(file.as_str()) {
                match catalog.remove_unless_locked(&o.key).await? {
                    None => removed.push(file.clone()),
                    Some(until) => kept.push((o.key.to_string(), until)),
                }
            }
        }
    }
    Ok((removed, kept))
}

/// Eight hex digits naming a set of recipients, so each rekey writes new names.
fn recipients_tag(recipients: &[String]) -> String {
    let set: BTreeSet<&String> = recipients.iter().collect();
    let mut h = Sha256::new();
    for r in set {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())[..8].to_string()
}

/// `dump.zst.age` -> `dump.k<tag>.zst.age` (an older tag replaced).
fn rekeyed_name(file: &str, tag: &str) -> String {
    let (stem, rest) = file.split_once('.').unwrap_or((file, ""));
    let rest = match rest.split_once('.') {
        Some((first, after)) if first.len() == 9 && first.starts_with('k') => after,
        _ => rest,
    };
    format!("{stem}.k{tag}.{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rekeyed_names_replace_an_older_tag() {
        assert_eq!(
            rekeyed_name("dump.zst.age", "0123abcd"),
            "dump.k0123abcd.zst.age"
        );
        assert_eq!(
            rekeyed_name("dump.k0123abcd.zst.age", "fedc9876"),
            "dump.kfedc9876.zst.age"
        );
        assert_eq!(
            recipients_tag(&["b".into(), "a".into()]),
            recipients_tag(&["a".into(), "b".into()])
        );
    }
}
